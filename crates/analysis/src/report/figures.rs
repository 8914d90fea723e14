//! The figures of an analysis: per layer, the distributions of `pi`, `xi` and `m`, `m` by
//! class and the perturbation curves (with the random-deletion control); the learning curve
//! and the classes through training; the pruning curve over thresholds on `pi`; a
//! reliability diagram per way of predicting; the out-of-distribution score histograms.

use anyhow::Result;

use super::Figure;
use crate::analyze::{AnalysedRun, Analysis};
use crate::classes::ConnectionClass;
use crate::figures::{CurveSeries, HistogramSeries, curves_svg, histogram_svg};
use crate::perturb::Curve;

/// The test accuracy after each epoch: mean-field (noise on; the network itself for a
/// deterministic run) and, where `metrics.csv` has it, one sampled network per epoch (the
/// 2020 scripts' learning curve).
fn learning_curve(
    metrics: &[credit_train::EpochMetrics],
    spike_slab: bool,
) -> Result<Option<Figure>> {
    if metrics.is_empty() {
        return Ok(None);
    }
    let epochs: Vec<f64> = metrics.iter().map(|m| m.epoch as f64).collect();
    let sampled = metrics
        .iter()
        .any(|m| m.test_accuracy_sampled_pct.is_some());
    let mut series = vec![CurveSeries {
        label: if spike_slab {
            "mean-field (noise on)".into()
        } else {
            "test accuracy".into()
        },
        x: epochs.clone(),
        y: metrics.iter().map(|m| m.test_accuracy_pct).collect(),
        error: vec![0.0; epochs.len()],
    }];
    if sampled {
        series.push(CurveSeries {
            label: "one sampled network".into(),
            x: epochs.clone(),
            y: metrics
                .iter()
                .map(|m| m.test_accuracy_sampled_pct.unwrap_or(f64::NAN))
                .collect(),
            error: vec![0.0; epochs.len()],
        });
    }
    let caption = match (spike_slab, sampled) {
        (true, true) => {
            "Test accuracy after each epoch (metrics.csv): the mean-field network with its \
             noise, and one network sampled after the epoch (each weight 0 with probability \
             pi, else drawn from N(m, xi))."
        }
        (true, false) => {
            "Test accuracy after each epoch (metrics.csv): the mean-field network with its \
             noise (this run's metrics.csv has no sampled-network column)."
        }
        (false, _) => "Test accuracy after each epoch (metrics.csv).",
    };
    Ok(Some(Figure {
        file: "learning-curve.svg".into(),
        caption: caption.into(),
        svg: curves_svg(
            "Test accuracy through training",
            "epoch",
            "test accuracy (%)",
            &series,
            false,
        )?,
    }))
}

/// The ensemble of sampled sub-networks: the accuracy and NLL of the ensemble of the first
/// `k` members against `k`, and the histogram of the members' accuracies.
fn ensemble_figures(a: &crate::analyze::Analysis) -> Result<Vec<Figure>> {
    let Some(s) = &a.accuracy.subnetworks else {
        return Ok(Vec::new());
    };
    let mut figures = Vec::new();
    let k = s.accuracies_pct.len();
    if !s.ensemble_by_size_pct.is_empty() {
        let sizes: Vec<f64> = (1..=s.ensemble_by_size_pct.len())
            .map(|k| k as f64)
            .collect();
        let zeros = vec![0.0; sizes.len()];
        let accuracy = [
            CurveSeries {
                label: "ensemble of the first k".into(),
                x: sizes.clone(),
                y: s.ensemble_by_size_pct.clone(),
                error: zeros.clone(),
            },
            CurveSeries {
                label: format!("mean of the {k} members"),
                x: sizes.clone(),
                y: vec![s.mean_pct; sizes.len()],
                error: zeros.clone(),
            },
        ];
        figures.push(Figure {
            file: "ensemble-size.svg".into(),
            caption: format!(
                "Ensemble size: test accuracy of the ensemble (mean softmax) of the first k \
                 of {k} sampled sub-networks, against k, beside the members' mean accuracy."
            ),
            svg: curves_svg(
                "Accuracy against ensemble size",
                "sub-networks in the ensemble, k",
                "test accuracy (%)",
                &accuracy,
                false,
            )?,
        });
        let nll = [CurveSeries {
            label: "ensemble of the first k".into(),
            x: sizes,
            y: s.ensemble_nll_by_size.clone(),
            error: zeros,
        }];
        figures.push(Figure {
            file: "ensemble-nll.svg".into(),
            caption: format!(
                "Ensemble size: mean negative log-likelihood (nats) of the ensemble of the \
                 first k of {k} sampled sub-networks on the test images, against k."
            ),
            svg: curves_svg(
                "NLL against ensemble size",
                "sub-networks in the ensemble, k",
                "test NLL (nats)",
                &nll,
                false,
            )?,
        });
    }
    let members: Vec<f32> = s.accuracies_pct.iter().map(|&a| a as f32).collect();
    let series = [HistogramSeries {
        label: "sampled sub-networks".into(),
        values: &members,
    }];
    figures.push(Figure {
        file: "ensemble-members.svg".into(),
        caption: format!(
            "The {k} sampled sub-networks' test accuracies (each weight drawn once: 0 with \
             probability pi, else from N(m, xi)); their ensemble reaches {:.2}%.",
            s.ensemble_pct
        ),
        svg: histogram_svg(
            "Accuracies of the sampled sub-networks",
            "test accuracy (%)",
            "sub-networks",
            &series,
            k.clamp(5, 20),
        )?,
    });
    Ok(figures)
}

/// The pruning curve: accuracies against the threshold on `pi`, and the hidden units cut
/// off.
fn sparsity_figures(a: &crate::analyze::Analysis) -> Result<Vec<Figure>> {
    let Some(s) = &a.sparsity else {
        return Ok(Vec::new());
    };
    let t = s.thresholds.clone();
    let zeros = vec![0.0; t.len()];
    let accuracy = [
        CurveSeries {
            label: "mean network (1 - pi) m".into(),
            x: t.clone(),
            y: s.mean_network_accuracy_pct.clone(),
            error: zeros.clone(),
        },
        CurveSeries {
            label: format!("sampled networks (mean, sd of {})", s.samples),
            x: t.clone(),
            y: s.sampled_accuracy_mean_pct.clone(),
            error: s.sampled_accuracy_sd_pct.clone(),
        },
    ];
    let ratios: Vec<String> = t
        .iter()
        .zip(&s.compression_ratio)
        .map(|(t, r)| match r {
            Some(r) => format!("{t}: {r:.2}"),
            None => format!("{t}: nothing kept"),
        })
        .collect();
    let mut units: Vec<CurveSeries> = Vec::new();
    for h in &s.hidden {
        for (name, values) in [
            ("no incoming", &h.no_incoming),
            ("no outgoing", &h.no_outgoing),
        ] {
            units.push(CurveSeries {
                label: format!("hidden layer {}: {name}", h.layer),
                x: t.clone(),
                y: values.iter().map(|v| 100.0 * v).collect(),
                error: zeros.clone(),
            });
        }
    }
    let mut figures = vec![Figure {
        file: "sparsity-accuracy.svg".into(),
        caption: format!(
            "Pruning by spike probability: test accuracy with every connection of pi > t \
             removed (pi = 1 is always removed). Compression ratio (all / kept connections) \
             at t = {} (sparsity.csv).",
            ratios.join(", ")
        ),
        svg: curves_svg(
            "Accuracy against the threshold on pi",
            "threshold t (connections with pi > t removed)",
            "test accuracy (%)",
            &accuracy,
            false,
        )?,
    }];
    if !units.is_empty() {
        figures.push(Figure {
            file: "sparsity-units.svg".into(),
            caption: "Hidden units cut off by the pruning: the percentage of each hidden \
                      layer's units with every incoming, or every outgoing, connection removed \
                      at threshold t."
                .into(),
            svg: curves_svg(
                "Hidden units cut off",
                "threshold t (connections with pi > t removed)",
                "units (%)",
                &units,
                true,
            )?,
        });
    }
    Ok(figures)
}

/// The fractions of very important and unimportant connections of every layer against the
/// epoch, from `metrics.csv` (runs of earlier versions have none).
fn classes_through_training(metrics: &[credit_train::EpochMetrics]) -> Result<Option<Figure>> {
    let layers = metrics.iter().map(|m| m.layers.len()).min().unwrap_or(0);
    if layers == 0 {
        return Ok(None);
    }
    let epochs: Vec<f64> = metrics.iter().map(|m| m.epoch as f64).collect();
    let mut series = Vec::new();
    for l in 0..layers {
        for (name, value) in [
            (
                "very important",
                (|c: &credit_train::LayerClasses| c.very_important) as fn(&_) -> f64,
            ),
            ("unimportant", |c| c.unimportant),
        ] {
            series.push(CurveSeries {
                label: format!("layer {}: {name}", l + 1),
                x: epochs.clone(),
                y: metrics
                    .iter()
                    .map(|m| 100.0 * value(&m.layers[l]))
                    .collect(),
                error: vec![0.0; epochs.len()],
            });
        }
    }
    Ok(Some(Figure {
        file: "classes-through-training.svg".into(),
        caption: "Connection classes through training: the percentage of very important \
                  (pi = 0 and xi = 0 exactly) and unimportant (pi = 1 exactly) connections of \
                  each layer after each epoch (metrics.csv; loose tolerances there too)."
            .into(),
        svg: curves_svg(
            "Connection classes through training",
            "epoch",
            "connections (%)",
            &series,
            true,
        )?,
    }))
}

/// A reliability diagram per way of predicting: the accuracy of each confidence bin against
/// its mean confidence (empty bins left out), with the diagonal of perfect calibration.
fn calibration_figures(a: &Analysis) -> Result<Vec<Figure>> {
    a.calibration
        .iter()
        .map(|m| {
            let filled: Vec<_> = m.calibration.bins.iter().filter(|b| b.count > 0).collect();
            let series = [
                CurveSeries {
                    label: "perfectly calibrated".into(),
                    x: vec![0.0, 1.0],
                    y: vec![0.0, 1.0],
                    error: vec![0.0, 0.0],
                },
                CurveSeries {
                    label: format!("{} (ECE {:.4})", m.mode, m.calibration.ece),
                    x: filled.iter().map(|b| b.confidence).collect(),
                    y: filled.iter().map(|b| b.accuracy).collect(),
                    error: vec![0.0; filled.len()],
                },
            ];
            let slug: String = m
                .mode
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            Ok(Figure {
                file: format!("reliability-{slug}.svg"),
                caption: format!(
                    "Reliability diagram of the {}: accuracy against confidence in {} equal-width bins (NLL {:.4}, Brier {:.4}, ECE {:.4}).",
                    m.mode,
                    m.calibration.bins.len(),
                    m.calibration.nll,
                    m.calibration.brier,
                    m.calibration.ece
                ),
                svg: curves_svg(
                    &format!("Reliability: {}", m.mode),
                    "confidence (max probability)",
                    "accuracy",
                    &series,
                    true,
                )?,
            })
        })
        .collect()
}

/// Histograms of each out-of-distribution score, test images against the others.
fn ood_figures(run: &AnalysedRun) -> Result<Vec<Figure>> {
    let Some(ood) = &run.analysis.ood else {
        return Ok(Vec::new());
    };
    run.ood_scores
        .iter()
        .map(|score| {
            let inside: Vec<f32> = score.inside.iter().map(|&v| v as f32).collect();
            let outside: Vec<f32> = score.outside.iter().map(|&v| v as f32).collect();
            let series = [
                HistogramSeries {
                    label: "test images".into(),
                    values: &inside,
                },
                HistogramSeries {
                    label: "out of distribution".into(),
                    values: &outside,
                },
            ];
            let slug = score.score.replace(' ', "-");
            Ok(Figure {
                file: format!("ood-{slug}.svg"),
                caption: format!(
                    "{} of the test images and of {} (AUROC {:.3}, AUPR {:.3}).",
                    score.score,
                    ood.data.display(),
                    score.auroc,
                    score.aupr
                ),
                svg: histogram_svg(
                    &format!("Out of distribution: {}", score.score),
                    &score.score,
                    "images",
                    &series,
                    run.analysis.config.bins,
                )?,
            })
        })
        .collect()
}

/// Draws every figure of an analysis.
///
/// # Errors
/// If plotters fails to draw one (no font).
pub fn figures(run: &AnalysedRun) -> Result<Vec<Figure>> {
    let a = &run.analysis;
    let bins = a.config.bins;
    let mut figures = Vec::new();
    for (l, (_, weights)) in run.deterministic_weights.iter().enumerate() {
        let series = [HistogramSeries {
            label: "w".into(),
            values: weights,
        }];
        figures.push(Figure {
            file: format!("layer{}-weights.svg", l + 1),
            caption: format!("Layer {}: weights of the deterministic network.", l + 1),
            svg: histogram_svg(
                &format!("Layer {}: weights", l + 1),
                "weight w",
                "connections",
                &series,
                bins,
            )?,
        });
    }
    for (l, p) in run.params.iter().enumerate() {
        let n = l + 1;
        for (name, values, axis, note) in [
            (
                "pi",
                &p.pi,
                "spike probability pi",
                "mass at pi = 0 and pi = 1 is exact",
            ),
            ("xi", &p.xi, "slab variance xi", "mass at xi = 0 is exact"),
            ("m", &p.m, "slab mean m", "all connections"),
        ] {
            let series = [HistogramSeries {
                label: name.into(),
                values,
            }];
            figures.push(Figure {
                file: format!("layer{n}-{name}.svg"),
                caption: format!("Layer {n}: distribution of {name} ({note})."),
                svg: histogram_svg(
                    &format!("Layer {n}: {name}"),
                    axis,
                    "connections",
                    &series,
                    bins,
                )?,
            });
        }
        let classes = p.classes(a.config.tolerance);
        let by_class: Vec<(ConnectionClass, Vec<f32>)> = ConnectionClass::ALL
            .iter()
            .map(|&c| {
                let values = (0..p.len())
                    .filter(|&k| classes[k] == c)
                    .map(|k| p.m[k])
                    .collect();
                (c, values)
            })
            .collect();
        let series: Vec<HistogramSeries> = by_class
            .iter()
            .map(|(c, v)| HistogramSeries {
                label: c.label().into(),
                values: v,
            })
            .collect();
        figures.push(Figure {
            file: format!("layer{n}-m-by-class.svg"),
            caption: format!("Layer {n}: slab mean m within each class of connection."),
            svg: histogram_svg(
                &format!("Layer {n}: m by class"),
                "slab mean m",
                "connections",
                &series,
                bins,
            )?,
        });
    }
    let spike_slab = a.model_kind == credit_train::ModelKind::SpikeSlab;
    if let Some(figure) = learning_curve(&run.metrics, spike_slab)? {
        figures.push(figure);
    }
    if let Some(figure) = classes_through_training(&run.metrics)? {
        figures.push(figure);
    }
    figures.extend(ensemble_figures(a)?);
    figures.extend(sparsity_figures(a)?);
    figures.extend(calibration_figures(a)?);
    figures.extend(ood_figures(run)?);
    for p in &a.perturbation {
        let n = p.layer;
        let series = |label: &str, c: &Curve| CurveSeries {
            label: label.to_string(),
            x: c.fractions.clone(),
            y: c.error_mean_pct.clone(),
            error: c.error_sd_pct.clone(),
        };
        let all = [
            series("very important removed", &p.very_important_removed),
            series("as many variable removed", &p.variable_removed),
            series(
                "unimportant given N(0,1) weights",
                &p.unimportant_randomised,
            ),
            series("as many removed at random", &p.random_removed),
        ];
        figures.push(Figure {
            file: format!("layer{n}-perturbation.svg"),
            caption: format!(
                "Layer {n}: test error of sampled networks against the perturbed fraction f \
                 (mean and sd over {} sampled networks).",
                a.config.repetitions
            ),
            svg: curves_svg(
                &format!("Layer {n}: targeted perturbation"),
                "fraction f of the class perturbed",
                "test error (%)",
                &all,
                true,
            )?,
        });
    }
    Ok(figures)
}
