//! `credit reproduce`: the paper's MNIST experiments under both of the authors' protocols
//! (`configs/mnist.toml`, 2020; `configs/mnist-2022.toml`, 2022), each over seeds with its
//! deterministic baseline and over training-set sizes, compared with what the authors' code
//! gives, in one report.
//!
//! The authors' numbers ([`AUTHORS`]) were measured with their code (Chan-Li/SAS-model),
//! unmodified maths, seeds 0, 1, 2, 100 epochs: `Training for MNIST/DNN-SAS-MNIST.py` at
//! c74f63a (2020) and at HEAD with `utils/optimizers.py` (2022).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::{ModelKind, RunDir, RunSummary};
use serde::{Deserialize, Serialize};

use super::plan::{PlanKind, SweepPlan, SweepRun, resolved};
use crate::analyze::{Analysis, AnalysisConfig};
use crate::classes::ConnectionClass;
use crate::figures::{CurveSeries, curves_svg};
use crate::report::{Figure, escape, page_end, page_start, write_files};
use crate::subnetworks::mean_sd;

/// One of the authors' protocols: its presets and what their code gives.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// `2020` or `2022`.
    pub name: &'static str,
    /// The spike-and-slab preset, in the configs folder.
    pub spike_slab: &'static str,
    /// The deterministic baseline's preset.
    pub deterministic: &'static str,
    /// The authors' numbers, per seed 0, 1, 2.
    pub authors: AuthorsNumbers,
}

/// What the authors' code gives for one protocol, per seed (0, 1, 2); percentages.
#[derive(Debug, Clone, Copy)]
pub struct AuthorsNumbers {
    /// Test accuracy of the mean-field network (noise on).
    pub mean_field: [f64; 3],
    /// Test accuracy of the mean network `(1 - pi) m`, noise off.
    pub mean_network: [f64; 3],
    /// Mean test accuracy of 20 sampled sub-networks.
    pub subnetworks: [f64; 3],
    /// Test accuracy of their 20-ensemble.
    pub ensemble: [f64; 3],
    /// Very important connections (`pi = 0`, `xi = 0` exactly), `[seed][layer]`.
    pub very_important: [[f64; 3]; 3],
    /// Unimportant connections (`pi = 1` exactly), `[seed][layer]`.
    pub unimportant: [[f64; 3]; 3],
}

/// The two protocols, with the authors' numbers.
pub const AUTHORS: [Protocol; 2] = [
    Protocol {
        name: "2020",
        spike_slab: "mnist.toml",
        deterministic: "mnist-deterministic.toml",
        authors: AuthorsNumbers {
            mean_field: [96.29, 96.17, 96.33],
            mean_network: [96.47, 96.27, 96.52],
            subnetworks: [96.30, 96.18, 96.34],
            ensemble: [96.53, 96.34, 96.44],
            very_important: [[4.19, 3.76, 9.50], [2.63, 1.41, 7.40], [4.10, 2.52, 3.70]],
            unimportant: [[1.68, 1.22, 1.80], [1.40, 1.47, 1.50], [1.52, 1.34, 1.30]],
        },
    },
    Protocol {
        name: "2022",
        spike_slab: "mnist-2022.toml",
        deterministic: "mnist-2022-deterministic.toml",
        authors: AuthorsNumbers {
            mean_field: [95.21, 95.37, 95.10],
            mean_network: [95.99, 95.72, 95.77],
            subnetworks: [95.29, 95.15, 95.24],
            ensemble: [95.91, 95.72, 95.73],
            very_important: [[5.86, 7.39, 20.6], [10.1, 11.2, 19.6], [6.45, 7.91, 16.1]],
            unimportant: [[14.6, 14.2, 7.30], [11.3, 11.0, 9.00], [11.8, 9.38, 5.10]],
        },
    },
];

/// The training-set size of the protocols' own runs.
pub const PROTOCOL_TRAIN_SIZE: usize = 10_000;

/// What `credit reproduce` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReproduceOptions {
    /// The folder of the presets (`configs`).
    pub configs: PathBuf,
    /// Seeds per protocol and setting (0, 1, ...).
    pub seeds: usize,
    /// Training-set sizes of the size sweep, besides the protocols' 10,000 (0: all images).
    pub sizes: Vec<usize>,
    /// Overrides for every run (e.g. `train.epochs=2` for a quick look).
    pub overrides: Vec<String>,
    /// Analysis settings of every spike-and-slab run.
    pub analysis: AnalysisConfig,
}

/// The plan of `credit reproduce`: for each protocol, `seeds` spike-and-slab runs and as many
/// baselines (group `2020`, `2022`), and the same at each training-set size of
/// `options.sizes` (group `sizes-2020`, `sizes-2022`).
///
/// # Errors
/// If a preset cannot be read or a run's configuration is not valid.
pub fn plan(options: &ReproduceOptions) -> Result<SweepPlan> {
    anyhow::ensure!(options.seeds >= 1, "--seeds must be at least 1");
    for set in &options.overrides {
        let key = credit_train::split_override(set)?.0;
        anyhow::ensure!(
            !["seed", "model.kind", "data.train_size"].contains(&key),
            "--set {set:?}: credit reproduce sets {key} itself (--seeds, the presets, --sizes)"
        );
    }
    let mut runs = Vec::new();
    for protocol in AUTHORS {
        let sizes = std::iter::once(None).chain(
            options
                .sizes
                .iter()
                .filter(|&&n| n != PROTOCOL_TRAIN_SIZE)
                .map(|&n| Some(n)),
        );
        for size in sizes {
            for seed in 0..options.seeds as u64 {
                for kind in [ModelKind::SpikeSlab, ModelKind::Deterministic] {
                    let preset = match kind {
                        ModelKind::SpikeSlab => protocol.spike_slab,
                        ModelKind::Deterministic => protocol.deterministic,
                    };
                    let mut overrides = options.overrides.clone();
                    let (group, folder, setting, x) = match size {
                        None => (
                            protocol.name.to_string(),
                            protocol.name.to_string(),
                            format!("protocol {}", protocol.name),
                            PROTOCOL_TRAIN_SIZE as f64,
                        ),
                        Some(n) => {
                            overrides.push(format!("data.train_size={n}"));
                            (
                                format!("sizes-{}", protocol.name),
                                format!("sizes-{}/train_size={n}", protocol.name),
                                format!("data.train_size={n}"),
                                if n == 0 { 60_000.0 } else { n as f64 },
                            )
                        }
                    };
                    overrides.push(format!("seed={seed}"));
                    let config = resolved(&options.configs.join(preset), &overrides)?;
                    runs.push(SweepRun {
                        index: runs.len(),
                        name: format!("{folder}/seed{seed}/{}", kind.name()),
                        group,
                        setting,
                        x,
                        seed,
                        kind,
                        overrides,
                        config,
                    });
                }
            }
        }
    }
    let plan = SweepPlan {
        format: 1,
        kind: PlanKind::Reproduce,
        x_label: "data.train_size".into(),
        analysis: options.analysis.clone(),
        runs,
    };
    plan.validate()?;
    Ok(plan)
}

/// Mean, sample standard deviation and count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for fewer than two values).
    pub sd: f64,
    /// Values.
    pub n: usize,
}

fn summary(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let (mean, sd) = mean_sd(values);
    Some(Summary {
        mean,
        sd,
        n: values.len(),
    })
}

/// One row of the comparison with the authors' code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// What the row measures.
    pub quantity: String,
    /// credit, over its seeds.
    pub credit: Option<Summary>,
    /// credit's value per seed.
    pub credit_values: Vec<f64>,
    /// The authors' code, over seeds 0-2 (none for the baseline).
    pub authors: Option<Summary>,
    /// `credit - authors` in units of the pooled seed standard deviation
    /// `sqrt((sd_credit² + sd_authors²) / 2)`.
    pub difference_in_pooled_sd: Option<f64>,
}

/// The comparison of one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolComparison {
    /// `2020` or `2022`.
    pub protocol: String,
    /// The rows.
    pub rows: Vec<ComparisonRow>,
}

fn row(quantity: String, credit: Vec<f64>, authors: Option<Vec<f64>>) -> ComparisonRow {
    let c = summary(&credit);
    let a = authors.as_deref().and_then(summary);
    let difference_in_pooled_sd = match (c, a) {
        (Some(c), Some(a)) => {
            let pooled = ((c.sd * c.sd + a.sd * a.sd) / 2.0).sqrt();
            (pooled > 0.0).then(|| (c.mean - a.mean) / pooled)
        }
        _ => None,
    };
    ComparisonRow {
        quantity,
        credit: c,
        credit_values: credit,
        authors: a,
        difference_in_pooled_sd,
    }
}

/// The comparison rows of one protocol from its complete runs.
fn compare(
    protocol: &Protocol,
    analyses: &[&Analysis],
    baselines: &[&RunSummary],
) -> ProtocolComparison {
    let au = &protocol.authors;
    let of = |f: &dyn Fn(&Analysis) -> Option<f64>| -> Vec<f64> {
        analyses.iter().filter_map(|a| f(a)).collect()
    };
    let mut rows = vec![
        row(
            "mean-field test accuracy, noise on (%)".into(),
            of(&|a| Some(a.accuracy.mean_field_pct)),
            Some(au.mean_field.to_vec()),
        ),
        row(
            "mean network (1 - pi) m, noise off (%)".into(),
            of(&|a| Some(a.accuracy.mean_network_pct)),
            Some(au.mean_network.to_vec()),
        ),
        row(
            "sampled sub-networks, mean (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.mean_pct)),
            Some(au.subnetworks.to_vec()),
        ),
        row(
            "sub-network ensemble (%)".into(),
            of(&|a| a.accuracy.subnetworks.as_ref().map(|s| s.ensemble_pct)),
            Some(au.ensemble.to_vec()),
        ),
    ];
    for (name, class, authors) in [
        (
            "very important (pi = 0, xi = 0 exactly)",
            ConnectionClass::VeryImportant,
            &au.very_important,
        ),
        (
            "unimportant (pi = 1 exactly)",
            ConnectionClass::Unimportant,
            &au.unimportant,
        ),
    ] {
        for l in 0..3 {
            rows.push(row(
                format!("{name}, layer {} (%)", l + 1),
                of(&|a| {
                    a.layers
                        .get(l)
                        .map(|layer| 100.0 * layer.classes.fraction(class))
                }),
                Some(authors.iter().map(|seed| seed[l]).collect()),
            ));
        }
    }
    rows.push(row(
        "deterministic baseline test accuracy (%)".into(),
        baselines
            .iter()
            .map(|s| s.test_accuracy_mean_network_pct)
            .collect(),
        None,
    ));
    ProtocolComparison {
        protocol: protocol.name.to_string(),
        rows,
    }
}

/// What `reproduce.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproduceReport {
    /// Runs complete, of the plan's.
    pub complete: usize,
    /// Runs planned.
    pub planned: usize,
    /// The comparison of each protocol with the authors' code.
    pub protocols: Vec<ProtocolComparison>,
}

fn group_runs<'a, T>(
    plan: &'a SweepPlan,
    results: &'a [(usize, T)],
    group: &str,
    setting: Option<&str>,
) -> Vec<(&'a SweepRun, &'a T)>
where
    T: 'a,
{
    results
        .iter()
        .filter(|(i, _)| plan.runs[*i].group == group)
        .filter(|(i, _)| setting.is_none_or(|s| plan.runs[*i].setting == s))
        .map(|(i, t)| (&plan.runs[*i], t))
        .collect()
}

/// Writes `credit reproduce`'s report of the complete runs into `dir`: `reproduce.json`,
/// `reproduce.csv`, the figures and `report.html`; returns the files written.
///
/// # Errors
/// If a run's metrics cannot be read or a file cannot be written.
pub fn write_report(
    plan: &SweepPlan,
    dir: &Path,
    analyses: &[(usize, Analysis)],
    summaries: &[(usize, RunSummary)],
) -> Result<Vec<PathBuf>> {
    let mut figures = Vec::new();
    let mut protocols = Vec::new();
    let mut entropy = Vec::new();
    for protocol in &AUTHORS {
        let runs = group_runs(plan, analyses, protocol.name, None);
        let baselines = group_runs(plan, summaries, protocol.name, None);
        let own: Vec<&Analysis> = runs.iter().map(|(_, a)| *a).collect();
        let base: Vec<&RunSummary> = baselines.iter().map(|(_, s)| *s).collect();
        protocols.push(compare(protocol, &own, &base));
        if own.is_empty() {
            continue;
        }
        figures.extend(through_training(plan, dir, protocol.name, &runs)?);
        figures.extend(perturbation(protocol.name, &own)?);
        let layers = own[0].layers.len();
        entropy.push(CurveSeries {
            label: format!("protocol {}", protocol.name),
            x: (1..=layers).map(|l| l as f64).collect(),
            y: (0..layers)
                .map(|l| {
                    mean_sd(
                        &own.iter()
                            .map(|a| a.layers[l].entropy_mean)
                            .collect::<Vec<_>>(),
                    )
                    .0
                })
                .collect(),
            error: (0..layers)
                .map(|l| {
                    mean_sd(
                        &own.iter()
                            .map(|a| a.layers[l].entropy_mean)
                            .collect::<Vec<_>>(),
                    )
                    .1
                })
                .collect(),
        });
        figures.extend(sizes(plan, protocol.name, analyses, summaries)?);
    }
    if !entropy.is_empty() {
        figures.push(Figure {
            file: "entropy-by-layer.svg".into(),
            caption: "Mean entropy of the weight distributions in each layer, per protocol (mean and sd over seeds).".into(),
            svg: curves_svg("Entropy per layer", "layer", "mean entropy (nats)", &entropy, false)?,
        });
    }
    let report = ReproduceReport {
        complete: analyses.len() + summaries.len(),
        planned: plan.runs.len(),
        protocols,
    };
    let mut csv = String::from(
        "protocol,quantity,credit_mean,credit_sd,credit_n,authors_mean,authors_sd,difference_in_pooled_sd\n",
    );
    for p in &report.protocols {
        for r in &p.rows {
            let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            let _ = writeln!(
                csv,
                "{},\"{}\",{},{},{},{},{},{}",
                p.protocol,
                r.quantity,
                num(r.credit.map(|s| s.mean)),
                num(r.credit.map(|s| s.sd)),
                r.credit.map_or(0, |s| s.n),
                num(r.authors.map(|s| s.mean)),
                num(r.authors.map(|s| s.sd)),
                num(r.difference_in_pooled_sd)
            );
        }
    }
    let files = vec![
        (
            "reproduce.json".to_string(),
            credit_train::files::to_json(&report)?.into_bytes(),
        ),
        ("reproduce.csv".to_string(), csv.into_bytes()),
        (
            "report.html".to_string(),
            page_end(html(&report), &figures).into_bytes(),
        ),
    ];
    write_files(dir, files, &figures)
}

/// The page up to the figures: the comparison tables.
fn html(report: &ReproduceReport) -> String {
    let mut h = page_start("credit reproduce");
    let _ = writeln!(
        h,
        "<h1>The paper's MNIST experiments under both protocols</h1>\n<p>{} of {} runs complete. \
         credit: mean ± sd over its seeds (n); the authors' code: seeds 0-2. The last column is the \
         difference of the means in units of the pooled seed sd, sqrt((sd₁² + sd₂²)/2); beyond 2 it is \
         marked.</p>",
        report.complete, report.planned
    );
    for p in &report.protocols {
        let _ = writeln!(
            h,
            "<h2>Protocol {}</h2>\n<table><tr><th>quantity</th><th>credit</th><th>authors' code</th><th>difference / pooled sd</th></tr>",
            escape(&p.protocol)
        );
        for r in &p.rows {
            let cell = |s: Option<Summary>| {
                s.map_or("-".to_string(), |s| {
                    format!("{:.2} ± {:.2} ({})", s.mean, s.sd, s.n)
                })
            };
            let z = r.difference_in_pooled_sd.map_or("-".to_string(), |z| {
                if z.abs() > 2.0 {
                    format!("<b>{z:+.2}</b>")
                } else {
                    format!("{z:+.2}")
                }
            });
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{z}</td></tr>",
                escape(&r.quantity),
                cell(r.credit),
                cell(r.authors)
            );
        }
        h.push_str("</table>\n");
    }
    h
}

/// Mean and sd over runs of a per-epoch value, epoch by epoch (the epochs all runs have).
fn over_runs(
    rows: &[Vec<credit_train::EpochMetrics>],
    value: impl Fn(&credit_train::EpochMetrics) -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let epochs = rows.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for e in 0..epochs {
        let (mean, sd) = mean_sd(&rows.iter().map(|r| value(&r[e])).collect::<Vec<_>>());
        out.0.push(rows[0][e].epoch as f64);
        out.1.push(mean);
        out.2.push(sd);
    }
    out
}

/// The class fractions of a protocol's runs through training, mean and sd over seeds.
fn through_training(
    plan: &SweepPlan,
    dir: &Path,
    name: &str,
    runs: &[(&SweepRun, &Analysis)],
) -> Result<Vec<Figure>> {
    let metrics: Vec<Vec<credit_train::EpochMetrics>> = runs
        .iter()
        .map(|(run, _)| RunDir::new(dir.join(&run.name)).metrics())
        .collect::<Result<_>>()?;
    let layers = metrics
        .iter()
        .flat_map(|m| m.iter().map(|r| r.layers.len()))
        .min()
        .unwrap_or(0);
    if layers == 0 {
        return Ok(Vec::new());
    }
    let _ = plan;
    let mut series = Vec::new();
    for l in 0..layers {
        for (class, value) in [
            (
                "very important",
                (|c: &credit_train::LayerClasses| c.very_important) as fn(&_) -> f64,
            ),
            ("unimportant", |c| c.unimportant),
        ] {
            let (x, y, error) = over_runs(&metrics, |m| 100.0 * value(&m.layers[l]));
            series.push(CurveSeries {
                label: format!("layer {}: {class}", l + 1),
                x,
                y,
                error,
            });
        }
    }
    Ok(vec![Figure {
        file: format!("classes-through-training-{name}.svg"),
        caption: format!(
            "Protocol {name}: very important and unimportant connections of each layer after each epoch (mean and sd over seeds)."
        ),
        svg: curves_svg(
            &format!("Protocol {name}: connection classes through training"),
            "epoch",
            "connections (%)",
            &series,
            true,
        )?,
    }])
}

/// One of the three curves of a layer's perturbation.
type CurveOf = fn(&crate::perturb::LayerPerturbation) -> &crate::perturb::Curve;

/// The runs of one training-set size: the size, its analyses and its baselines' summaries.
type SizePoint<'a> = (f64, Vec<&'a Analysis>, Vec<&'a RunSummary>);

/// The perturbation curves of a protocol, per layer, mean and sd over seeds.
fn perturbation(name: &str, analyses: &[&Analysis]) -> Result<Vec<Figure>> {
    let layers = analyses
        .iter()
        .map(|a| a.perturbation.len())
        .min()
        .unwrap_or(0);
    let mut figures = Vec::new();
    for l in 0..layers {
        let curves: [(&str, CurveOf); 3] = [
            ("very important removed", |p| &p.very_important_removed),
            ("as many variable removed", |p| &p.variable_removed),
            ("unimportant randomised", |p| &p.unimportant_randomised),
        ];
        let series: Vec<CurveSeries> = curves
            .iter()
            .map(|(label, curve)| {
                let first = curve(&analyses[0].perturbation[l]);
                let points = first.fractions.len();
                let at = |f: usize| -> Vec<f64> {
                    analyses
                        .iter()
                        .filter_map(|a| curve(&a.perturbation[l]).error_mean_pct.get(f).copied())
                        .collect()
                };
                CurveSeries {
                    label: label.to_string(),
                    x: first.fractions.clone(),
                    y: (0..points).map(|f| mean_sd(&at(f)).0).collect(),
                    error: (0..points).map(|f| mean_sd(&at(f)).1).collect(),
                }
            })
            .collect();
        figures.push(Figure {
            file: format!("perturbation-{name}-layer{}.svg", l + 1),
            caption: format!(
                "Protocol {name}, layer {}: test error of sampled networks against the fraction f perturbed (mean and sd over seeds).",
                l + 1
            ),
            svg: curves_svg(
                &format!("Protocol {name}, layer {}: targeted perturbation", l + 1),
                "fraction f",
                "test error (%)",
                &series,
                true,
            )?,
        });
    }
    Ok(figures)
}

/// A protocol's training-set-size sweep (with its own 10,000): entropy, classes and
/// accuracies against the size, mean and sd over seeds.
fn sizes(
    plan: &SweepPlan,
    name: &str,
    analyses: &[(usize, Analysis)],
    summaries: &[(usize, RunSummary)],
) -> Result<Vec<Figure>> {
    let mut points: Vec<SizePoint> = Vec::new();
    let mut add = |group: &str| {
        let mut xs: Vec<f64> = plan
            .runs
            .iter()
            .filter(|r| r.group == group)
            .map(|r| r.x)
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let a: Vec<&Analysis> = analyses
                .iter()
                .filter(|(i, _)| plan.runs[*i].group == group && plan.runs[*i].x == x)
                .map(|(_, a)| a)
                .collect();
            let s: Vec<&RunSummary> = summaries
                .iter()
                .filter(|(i, _)| plan.runs[*i].group == group && plan.runs[*i].x == x)
                .map(|(_, s)| s)
                .collect();
            if !a.is_empty() {
                points.push((x, a, s));
            }
        }
    };
    add(name);
    add(&format!("sizes-{name}"));
    if points.len() < 2 {
        return Ok(Vec::new());
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let stat = |f: &dyn Fn(&SizePoint) -> Vec<f64>| -> (Vec<f64>, Vec<f64>) {
        points
            .iter()
            .map(|p| {
                let v = f(p);
                if v.is_empty() {
                    (f64::NAN, 0.0)
                } else {
                    mean_sd(&v)
                }
            })
            .unzip()
    };
    let layers = points[0].1[0].layers.len();
    let series = |label: String, f: &dyn Fn(&SizePoint) -> Vec<f64>| {
        let (y, error) = stat(f);
        CurveSeries {
            label,
            x: xs.clone(),
            y,
            error,
        }
    };
    let entropy: Vec<CurveSeries> = (0..layers)
        .map(|l| {
            series(format!("layer {}", l + 1), &|p| {
                p.1.iter().map(|a| a.layers[l].entropy_mean).collect()
            })
        })
        .collect();
    let mut classes = Vec::new();
    for l in 0..layers {
        classes.push(series(format!("layer {}: very important", l + 1), &|p| {
            p.1.iter()
                .map(|a| 100.0 * a.layers[l].classes.fraction(ConnectionClass::VeryImportant))
                .collect()
        }));
        classes.push(series(format!("layer {}: unimportant", l + 1), &|p| {
            p.1.iter()
                .map(|a| 100.0 * a.layers[l].classes.fraction(ConnectionClass::Unimportant))
                .collect()
        }));
    }
    let accuracy = vec![
        series("mean-field".into(), &|p| {
            p.1.iter().map(|a| a.accuracy.mean_field_pct).collect()
        }),
        series("mean network".into(), &|p| {
            p.1.iter().map(|a| a.accuracy.mean_network_pct).collect()
        }),
        series("deterministic baseline".into(), &|p| {
            p.2.iter()
                .map(|s| s.test_accuracy_mean_network_pct)
                .collect()
        }),
    ];
    Ok(vec![
        Figure {
            file: format!("sizes-{name}-entropy.svg"),
            caption: format!(
                "Protocol {name}: mean entropy per layer against the training-set size (mean and sd over seeds)."
            ),
            svg: curves_svg(
                &format!("Protocol {name}: entropy against training-set size"),
                "training images",
                "mean entropy (nats)",
                &entropy,
                false,
            )?,
        },
        Figure {
            file: format!("sizes-{name}-classes.svg"),
            caption: format!(
                "Protocol {name}: very important and unimportant connections against the training-set size."
            ),
            svg: curves_svg(
                &format!("Protocol {name}: classes against training-set size"),
                "training images",
                "connections (%)",
                &classes,
                true,
            )?,
        },
        Figure {
            file: format!("sizes-{name}-accuracy.svg"),
            caption: format!(
                "Protocol {name}: test accuracy against the training-set size, with the deterministic baseline."
            ),
            svg: curves_svg(
                &format!("Protocol {name}: accuracy against training-set size"),
                "training images",
                "test accuracy (%)",
                &accuracy,
                false,
            )?,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_compare_in_pooled_seed_sds() {
        let r = row("x".into(), vec![1.0, 2.0, 3.0], Some(vec![2.0, 3.0, 4.0]));
        assert_eq!(r.credit.unwrap().mean, 2.0);
        assert_eq!(r.authors.unwrap().mean, 3.0);
        // Both sds are 1: the pooled sd is 1.
        assert_eq!(r.difference_in_pooled_sd, Some(-1.0));
        let none = row("y".into(), vec![], Some(vec![1.0, 1.0]));
        assert!(none.credit.is_none() && none.difference_in_pooled_sd.is_none());
    }
}
