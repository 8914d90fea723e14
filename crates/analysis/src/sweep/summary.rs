//! The report of a sweep: each setting aggregated over seeds, compared in figures.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::RunSummary;
use serde::{Deserialize, Serialize};

use crate::analyze::Analysis;
use crate::classes::ConnectionClass;
use crate::figures::{CLASS_COLOURS, Data, NEUTRAL, Panel, Plot, SERIES, Series, Style};
use crate::report::{Figure, escape, page_end, page_start, report_pngs, write_files};
use crate::subnetworks::mean_sd;

use super::plan::{SweepPlan, SweepRun};

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
    /// Seeds of the deterministic baseline aggregated (0 in summaries written before it was
    /// recorded).
    #[serde(default)]
    pub deterministic_seeds: usize,
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
                deterministic_seeds: baseline.len(),
            }
        })
        .collect()
}

/// What the sweep trained, in words, for its report's header: the overrides every run shares,
/// the widths, epochs and batch of its runs, credit's version and commit, the date, the
/// backend; and a table linking each run's own report.
fn sweep_header(plan: &SweepPlan, analyses: &[(SweepRun, Analysis)]) -> String {
    let mut h = String::new();
    let first = analyses.first().map(|(_, a)| a);
    let mut shared: Vec<String> = plan
        .runs
        .first()
        .map_or_else(Vec::new, |r| r.overrides.clone());
    shared.retain(|o| plan.runs.iter().all(|r| r.overrides.contains(o)));
    let sizes = |c: &credit_train::RunConfig| {
        c.model
            .sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    };
    let mut widths: Vec<String> = plan.runs.iter().map(|r| sizes(&r.config)).collect();
    widths.dedup();
    let epochs: BTreeSet<usize> = plan.runs.iter().map(|r| r.config.train.epochs).collect();
    let batches: BTreeSet<usize> = plan
        .runs
        .iter()
        .map(|r| r.config.train.batch_size)
        .collect();
    let list = |v: &BTreeSet<usize>| {
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let seeds: BTreeSet<u64> = plan.runs.iter().map(|r| r.seed).collect();
    let _ = write!(
        h,
        "<p class=\"meta\">{} runs against {}: networks {}; {} epochs, batch {}; seeds {}. \
         Every run trained with <code>{}</code>.",
        plan.runs.len(),
        escape(&plan.x_label),
        escape(&widths.join(", ")),
        list(&epochs),
        list(&batches),
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        escape(&if shared.is_empty() {
            "the base configuration".to_string()
        } else {
            shared.join(" ")
        })
    );
    if let Some(a) = first {
        let commit = if a.credit_commit.is_empty() {
            String::new()
        } else {
            format!(" (commit {})", escape(&a.credit_commit))
        };
        let _ = write!(
            h,
            "<br>Analysed by credit {}{commit} on {}; each run's own report is linked below.",
            escape(&a.credit_version),
            escape(&a.backend)
        );
    }
    h.push_str("</p>\n<details><summary>Runs and their reports</summary><table><tr><th>setting</th><th>seed</th><th>report</th></tr>\n");
    for (run, _) in analyses {
        let link = format!("{}/analysis/report.html", run.name);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><a href=\"{}\">{}</a></td></tr>",
            escape(&run.setting),
            run.seed,
            escape(&link),
            escape(&run.name)
        );
    }
    h.push_str("</table></details>\n");
    h
}

/// Writes `sweep.json`, `sweep.csv`, the comparison figures and `report.html` into `out`:
/// the summaries of the settings, headed by what `plan` trained, with a link to each of the
/// `analyses`' own report.
///
/// # Errors
/// If a figure cannot be drawn or a file written, naming it.
pub fn write_sweep_report(
    plan: &SweepPlan,
    analyses: &[(SweepRun, Analysis)],
    summaries: &[SettingSummary],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let x_label = plan.x_label.as_str();
    let mut figures = Vec::new();
    // Settings may differ in depth (a sweep over model.sizes): the deepest sets the figures,
    // and a setting without a layer has no point there.
    let layers = summaries.iter().map(|s| s.entropy.len()).max().unwrap_or(0);
    // Error bars only where there is a spread: two seeds or more.
    let spread = |s: &SettingSummary, sd: f64| if s.seeds >= 2 { sd } else { 0.0 };
    let names: Vec<String> = (1..=layers).map(|l| format!("layer {l}")).collect();
    let dodge = |i: usize| {
        let n = summaries.len().max(1) as f64;
        (i as f64 - (n - 1.0) / 2.0) * (0.6 / n).min(0.15)
    };
    let mut entropy = Panel::new("Entropy per layer", "", "mean entropy (nats)").categories(names);
    for (i, s) in summaries.iter().enumerate() {
        let mut series = Series::with_sd(
            format!("{} (n = {})", s.setting, s.seeds),
            SERIES[i % SERIES.len()],
            Style::Points,
            (1..=s.entropy.len()).map(|l| l as f64 + dodge(i)).collect(),
            s.entropy.iter().map(|e| e.mean).collect(),
            s.entropy.iter().map(|e| spread(s, e.sd)).collect(),
        );
        // Drawn beside each layer, written at it.
        series.data_x = Some((1..=s.entropy.len()).map(|l| l as f64).collect());
        entropy.series.push(series);
    }
    let n_note = n_note(summaries);
    figures.push(Figure::new(
        "entropy-by-layer",
        "Figures",
        format!(
            "Mean entropy of the weight distribution in each layer, one marker per setting \
             (mean over seeds; bars: sd over seeds, drawn for n >= 2). {n_note}"
        ),
        &Plot::single(entropy, (520, 300)),
    )?);
    let xs: Vec<f64> = summaries.iter().map(|s| s.x).collect();
    let mut class_panels = Vec::new();
    for l in 0..layers {
        let series = |label: &str, colour, f: &dyn Fn(&SettingSummary) -> Option<Stat>| {
            Series::with_sd(
                label,
                colour,
                Style::Line,
                xs.clone(),
                summaries
                    .iter()
                    .map(|s| f(s).map_or(f64::NAN, |v| 100.0 * v.mean))
                    .collect(),
                summaries
                    .iter()
                    .map(|s| f(s).map_or(0.0, |v| 100.0 * spread(s, v.sd)))
                    .collect(),
            )
        };
        let mut panel = Panel::new(format!("Layer {}", l + 1), x_label, "connections (%)")
            .from_zero()
            .with(vec![
                series("very important", CLASS_COLOURS[0], &|s| {
                    s.very_important.get(l).copied()
                }),
                series("unimportant", CLASS_COLOURS[1], &|s| {
                    s.unimportant.get(l).copied()
                }),
                series("variable", CLASS_COLOURS[2], &|s| {
                    s.variable.get(l).copied()
                }),
            ]);
        panel.y_range = Some((0.0, 100.0));
        panel.x_ticks = swept_ticks(&xs);
        class_panels.push(panel);
    }
    if !class_panels.is_empty() {
        figures.push(Figure::new(
            "classes-by-layer",
            "Figures",
            format!(
                "Connection classes of each layer against {x_label} (mean over seeds; bars: \
                 sd over seeds, drawn for n >= 2). {n_note}"
            ),
            &Plot::row(class_panels, (300, 250)),
        )?);
    }
    // Each statistic with the number of runs it is over.
    let accuracy_series =
        |label: &str, colour, f: &dyn Fn(&SettingSummary) -> Option<(Stat, usize)>| {
            let points: Vec<(f64, Stat, usize)> = summaries
                .iter()
                .filter_map(|s| f(s).map(|(v, n)| (s.x, v, n)))
                .collect();
            Series::with_sd(
                label,
                colour,
                Style::Line,
                points.iter().map(|p| p.0).collect(),
                points.iter().map(|p| p.1.mean).collect(),
                points
                    .iter()
                    .map(|p| if p.2 >= 2 { p.1.sd } else { 0.0 })
                    .collect(),
            )
        };
    let mut accuracies = Panel::new("Test accuracy", x_label, "test accuracy (%)").with(
        [
            accuracy_series("mean-field", SERIES[0], &|s| {
                Some((s.mean_field_pct, s.seeds))
            }),
            accuracy_series("mean network", SERIES[2], &|s| {
                Some((s.mean_network_pct, s.seeds))
            }),
            accuracy_series("sub-network ensemble", SERIES[3], &|s| {
                Some((s.ensemble_pct, s.seeds))
            }),
            accuracy_series("deterministic baseline", NEUTRAL, &|s| {
                s.deterministic_pct.map(|d| (d, s.deterministic_seeds))
            }),
        ]
        .into_iter()
        .filter(|s| matches!(&s.data, Data::Points { x, .. } if !x.is_empty()))
        .collect(),
    );
    figures.push(Figure::new(
        "accuracy",
        "Figures",
        format!(
            "Test accuracy against {x_label} (mean over seeds; bars: sd over seeds, drawn for \
             n >= 2). {n_note}"
        ),
        &Plot::single(
            {
                accuracies.x_ticks = swept_ticks(&xs);
                accuracies
            },
            (520, 300),
        ),
    )?);

    let mut csv = String::from(
        "setting,x,seeds,layer,entropy_mean,entropy_sd,very_important,very_important_sd,unimportant,unimportant_sd,variable,variable_sd,mean_field_pct,mean_field_pct_sd,mean_network_pct,mean_network_pct_sd,subnetwork_pct,subnetwork_pct_sd,ensemble_pct,ensemble_pct_sd,deterministic_pct,deterministic_pct_sd\n",
    );
    for s in summaries {
        for l in 0..s.entropy.len() {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                crate::figures::csv_field(&s.setting),
                s.x,
                s.seeds,
                l + 1,
                s.entropy[l].mean,
                s.entropy[l].sd,
                s.very_important[l].mean,
                s.very_important[l].sd,
                s.unimportant[l].mean,
                s.unimportant[l].sd,
                s.variable[l].mean,
                s.variable[l].sd,
                s.mean_field_pct.mean,
                s.mean_field_pct.sd,
                s.mean_network_pct.mean,
                s.mean_network_pct.sd,
                s.subnetwork_pct.mean,
                s.subnetwork_pct.sd,
                s.ensemble_pct.mean,
                s.ensemble_pct.sd,
                s.deterministic_pct.map_or(f64::NAN, |d| d.mean),
                s.deterministic_pct.map_or(f64::NAN, |d| d.sd)
            );
        }
    }
    let mut html = page_start("credit sweep");
    html.push_str(
        "<h1>Sweep</h1>\n<table><tr><th>setting</th><th>seeds</th><th>mean-field (%)</th>\
         <th>mean network (%)</th><th>ensemble (%)</th><th>deterministic (%)</th>\
         <th>entropy per layer (nats)</th></tr>\n",
    );
    html.insert_str(
        html.find("<table>").unwrap_or(html.len()),
        &format!(
            "{}<p>Mean ± sd over the seeds of each setting (the sd only where there are two seeds or more).</p>\n",
            sweep_header(plan, analyses)
        ),
    );
    for s in summaries {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            crate::report::escape(&s.setting),
            s.seeds,
            mean_and_sd(s.mean_field_pct, s.seeds),
            mean_and_sd(s.mean_network_pct, s.seeds),
            mean_and_sd(s.ensemble_pct, s.seeds),
            s.deterministic_pct
                .map_or("-".to_string(), |d| mean_and_sd(d, s.deterministic_seeds)),
            s.entropy
                .iter()
                .map(|e| if s.seeds >= 2 {
                    format!("{:.3} ± {:.3}", e.mean, e.sd)
                } else {
                    format!("{:.3}", e.mean)
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    html.push_str("</table>\n");
    let (pngs, _) = report_pngs(
        &figures,
        plan.analysis.png_dpi,
        &crate::progress::Progress::quiet(),
    );
    let has_png: Vec<bool> = pngs.iter().map(Option::is_some).collect();
    let files = vec![
        (
            "sweep.json".to_string(),
            credit_train::files::to_json(&summaries)?.into_bytes(),
        ),
        ("sweep.csv".to_string(), csv.into_bytes()),
        (
            "report.html".to_string(),
            page_end(html, &figures, &has_png).into_bytes(),
        ),
    ];
    write_files(out, files, &figures, pngs)
}

/// Ticks at the swept values themselves when there are a few (up to 8), so that every
/// setting has its tick; nice numbers otherwise.
fn swept_ticks(xs: &[f64]) -> Option<Vec<f64>> {
    let mut ticks: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    (2..=8).contains(&ticks.len()).then_some(ticks)
}

/// `mean ± sd` with two decimals, the mean alone for one seed.
fn mean_and_sd(s: Stat, seeds: usize) -> String {
    if seeds >= 2 {
        format!("{:.2} ± {:.2}", s.mean, s.sd)
    } else {
        format!("{:.2}", s.mean)
    }
}

/// The seeds per setting in words: "n = 3 seeds per setting", or the range when they differ.
fn n_note(summaries: &[SettingSummary]) -> String {
    let lo = summaries.iter().map(|s| s.seeds).min().unwrap_or(0);
    let hi = summaries.iter().map(|s| s.seeds).max().unwrap_or(0);
    if lo == hi {
        format!(
            "n = {lo} seed{} per setting.",
            if lo == 1 { "" } else { "s" }
        )
    } else {
        format!("n = {lo} to {hi} seeds per setting.")
    }
}
