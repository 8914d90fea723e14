//! The report of a sweep: each setting aggregated over seeds, compared in figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::RunSummary;
use serde::{Deserialize, Serialize};

use crate::analyze::Analysis;
use crate::classes::ConnectionClass;
use crate::figures::{CurveSeries, curves_svg};
use crate::report::{Figure, page_end, page_start, write_files};
use crate::subnetworks::mean_sd;

use super::plan::SweepRun;

/// Mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub sd: f64,
}

fn stat(values: &[f64]) -> Stat {
    let (mean, sd) = mean_sd(values);
    Stat { mean, sd }
}

/// One setting of a sweep, aggregated over seeds. Layers are numbered from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingSummary {
    /// The setting.
    pub setting: String,
    /// Its abscissa.
    pub x: f64,
    /// Seeds aggregated.
    pub seeds: usize,
    /// Mean per-connection entropy of each layer.
    pub entropy: Vec<Stat>,
    /// Fractions per layer: very important, unimportant, variable.
    pub very_important: Vec<Stat>,
    /// Fraction of unimportant connections per layer.
    pub unimportant: Vec<Stat>,
    /// Fraction of variable connections per layer.
    pub variable: Vec<Stat>,
    /// Test accuracy with noise (percent).
    pub mean_field_pct: Stat,
    /// Test accuracy of the mean network.
    pub mean_network_pct: Stat,
    /// Mean accuracy of sampled sub-networks.
    pub subnetwork_pct: Stat,
    /// Accuracy of the sub-network ensemble.
    pub ensemble_pct: Stat,
    /// Test accuracy of the deterministic baseline, when trained.
    pub deterministic_pct: Option<Stat>,
}

/// Aggregates analyses of spike-and-slab runs and summaries of deterministic runs by setting.
pub fn summarise(
    analyses: &[(SweepRun, Analysis)],
    baselines: &[(SweepRun, RunSummary)],
) -> Vec<SettingSummary> {
    let mut settings: BTreeMap<(i64, String), Vec<&(SweepRun, Analysis)>> = BTreeMap::new();
    for entry in analyses {
        let key = ((entry.0.x * 1e6) as i64, entry.0.setting.clone());
        settings.entry(key).or_default().push(entry);
    }
    settings
        .into_values()
        .map(|group| {
            let first = &group[0].0;
            let layers = group[0].1.layers.len();
            let per_layer = |f: &dyn Fn(&Analysis, usize) -> f64| -> Vec<Stat> {
                (0..layers)
                    .map(|l| stat(&group.iter().map(|(_, a)| f(a, l)).collect::<Vec<_>>()))
                    .collect()
            };
            let over = |f: &dyn Fn(&Analysis) -> f64| {
                stat(&group.iter().map(|(_, a)| f(a)).collect::<Vec<_>>())
            };
            let fraction = |c: ConnectionClass| per_layer(&|a, l| a.layers[l].classes.fraction(c));
            let subnetworks = |a: &Analysis, f: &dyn Fn(&crate::SubnetworkReport) -> f64| {
                a.accuracy.subnetworks.as_ref().map_or(f64::NAN, f)
            };
            let baseline: Vec<f64> = baselines
                .iter()
                .filter(|(run, _)| run.setting == first.setting)
                .map(|(_, s)| s.test_accuracy_mean_network_pct)
                .collect();
            SettingSummary {
                setting: first.setting.clone(),
                x: first.x,
                seeds: group.len(),
                entropy: per_layer(&|a, l| a.layers[l].entropy_mean),
                very_important: fraction(ConnectionClass::VeryImportant),
                unimportant: fraction(ConnectionClass::Unimportant),
                variable: fraction(ConnectionClass::Variable),
                mean_field_pct: over(&|a| a.accuracy.mean_field_pct),
                mean_network_pct: over(&|a| a.accuracy.mean_network_pct),
                subnetwork_pct: over(&|a| subnetworks(a, &|s| s.mean_pct)),
                ensemble_pct: over(&|a| subnetworks(a, &|s| s.ensemble_pct)),
                deterministic_pct: (!baseline.is_empty()).then(|| stat(&baseline)),
            }
        })
        .collect()
}

/// Writes `sweep.json`, `sweep.csv`, the comparison figures and `report.html` into `out`.
///
/// # Errors
/// If a figure cannot be drawn or a file written, naming it.
pub fn write_sweep_report(
    summaries: &[SettingSummary],
    x_label: &str,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut figures = Vec::new();
    // Settings may differ in depth (a sweep over model.sizes): the deepest sets the figures,
    // and a setting without a layer has no point there.
    let layers = summaries.iter().map(|s| s.entropy.len()).max().unwrap_or(0);
    let entropy: Vec<CurveSeries> = summaries
        .iter()
        .map(|s| CurveSeries {
            label: s.setting.clone(),
            x: (1..=s.entropy.len()).map(|l| l as f64).collect(),
            y: s.entropy.iter().map(|e| e.mean).collect(),
            error: s.entropy.iter().map(|e| e.sd).collect(),
        })
        .collect();
    figures.push(Figure {
        file: "entropy-by-layer.svg".into(),
        caption: "Mean entropy of the weight distribution in each layer, one curve per setting \
                  (mean and sd over seeds)."
            .into(),
        svg: curves_svg(
            "Entropy per layer",
            "layer",
            "mean entropy (nats)",
            &entropy,
            false,
        )?,
    });
    let xs: Vec<f64> = summaries.iter().map(|s| s.x).collect();
    for l in 0..layers {
        let missing = Stat {
            mean: f64::NAN,
            sd: 0.0,
        };
        let series = |label: &str, f: &dyn Fn(&SettingSummary) -> Option<Stat>| CurveSeries {
            label: label.to_string(),
            x: xs.clone(),
            y: summaries
                .iter()
                .map(|s| 100.0 * f(s).unwrap_or(missing).mean)
                .collect(),
            error: summaries
                .iter()
                .map(|s| 100.0 * f(s).unwrap_or(missing).sd)
                .collect(),
        };
        let all = [
            series("very important", &|s| s.very_important.get(l).copied()),
            series("unimportant", &|s| s.unimportant.get(l).copied()),
            series("variable", &|s| s.variable.get(l).copied()),
        ];
        figures.push(Figure {
            file: format!("classes-layer{}.svg", l + 1),
            caption: format!("Layer {}: connection classes against {x_label}.", l + 1),
            svg: curves_svg(
                &format!("Layer {}: connection classes", l + 1),
                x_label,
                "connections (%)",
                &all,
                true,
            )?,
        });
    }
    let accuracy_series = |label: &str, f: &dyn Fn(&SettingSummary) -> Option<Stat>| {
        let points: Vec<(f64, Stat)> = summaries
            .iter()
            .filter_map(|s| f(s).map(|v| (s.x, v)))
            .collect();
        CurveSeries {
            label: label.to_string(),
            x: points.iter().map(|p| p.0).collect(),
            y: points.iter().map(|p| p.1.mean).collect(),
            error: points.iter().map(|p| p.1.sd).collect(),
        }
    };
    let accuracies = [
        accuracy_series("mean-field", &|s| Some(s.mean_field_pct)),
        accuracy_series("mean network", &|s| Some(s.mean_network_pct)),
        accuracy_series("sub-network ensemble", &|s| Some(s.ensemble_pct)),
        accuracy_series("deterministic baseline", &|s| s.deterministic_pct),
    ];
    figures.push(Figure {
        file: "accuracy.svg".into(),
        caption: format!("Test accuracy against {x_label} (mean and sd over seeds)."),
        svg: curves_svg(
            "Test accuracy",
            x_label,
            "test accuracy (%)",
            &accuracies,
            false,
        )?,
    });

    let mut csv = String::from(
        "setting,x,seeds,layer,entropy_mean,entropy_sd,very_important,unimportant,variable,mean_field_pct,mean_network_pct,subnetwork_pct,ensemble_pct,deterministic_pct\n",
    );
    for s in summaries {
        for l in 0..s.entropy.len() {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                s.setting,
                s.x,
                s.seeds,
                l + 1,
                s.entropy[l].mean,
                s.entropy[l].sd,
                s.very_important[l].mean,
                s.unimportant[l].mean,
                s.variable[l].mean,
                s.mean_field_pct.mean,
                s.mean_network_pct.mean,
                s.subnetwork_pct.mean,
                s.ensemble_pct.mean,
                s.deterministic_pct.map_or(f64::NAN, |d| d.mean)
            );
        }
    }
    let mut html = page_start("credit sweep");
    html.push_str(
        "<h1>Sweep</h1>\n<table><tr><th>setting</th><th>seeds</th><th>mean-field (%)</th>\
         <th>mean network (%)</th><th>ensemble (%)</th><th>deterministic (%)</th>\
         <th>entropy per layer (nats)</th></tr>\n",
    );
    for s in summaries {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.2} ± {:.2}</td><td>{:.2} ± {:.2}</td><td>{:.2} ± {:.2}</td><td>{}</td><td>{}</td></tr>",
            s.setting,
            s.seeds,
            s.mean_field_pct.mean,
            s.mean_field_pct.sd,
            s.mean_network_pct.mean,
            s.mean_network_pct.sd,
            s.ensemble_pct.mean,
            s.ensemble_pct.sd,
            s.deterministic_pct
                .map_or("-".to_string(), |d| format!("{:.2} ± {:.2}", d.mean, d.sd)),
            s.entropy
                .iter()
                .map(|e| format!("{:.3}", e.mean))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    html.push_str("</table>\n");
    let files = vec![
        (
            "sweep.json".to_string(),
            credit_train::files::to_json(&summaries)?.into_bytes(),
        ),
        ("sweep.csv".to_string(), csv.into_bytes()),
        (
            "report.html".to_string(),
            page_end(html, &figures).into_bytes(),
        ),
    ];
    write_files(out, files, &figures)
}
