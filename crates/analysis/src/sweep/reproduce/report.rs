//! The reproduction's report: the comparison tables, the size sweep and the figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::{RunDir, RunSummary};
use serde::{Deserialize, Serialize};

use super::AUTHORS;
use super::comparison::{ProtocolComparison, Summary, compare};
use crate::analyze::Analysis;
use crate::classes::ConnectionClass;
use crate::figures::{CLASS_COLOURS, CurveSeries, Panel, Plot, SERIES, SINGLE, Series, Style};
use crate::report::{Figure, curve_figure, escape, page_end, page_start, report_pngs, write_files};
use crate::subnetworks::mean_sd;
use crate::sweep::plan::{SweepPlan, SweepRun};
use plotters::style::RGBColor;

/// What `reproduce.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]

pub struct ReproduceReport {
    /// Runs complete, of the plan's.
    pub complete: usize,
    /// Runs planned.
    pub planned: usize,
    /// The `--set` overrides every run was trained with (besides the seed and the size).
    #[serde(default)]
    pub overrides: Vec<String>,
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
            label: format!("protocol {} (n = {})", protocol.name, own.len()),
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
        let layers = entropy.iter().map(|s| s.x.len()).max().unwrap_or(0);
        let mut panel = Panel::new("Entropy per layer", "", "mean entropy (nats)")
            .categories((1..=layers).map(|l| format!("layer {l}")).collect());
        let count = entropy.len() as f64;
        for (i, s) in entropy.iter().enumerate() {
            let offset = (i as f64 - (count - 1.0) / 2.0) * 0.12;
            let mut series = Series::with_sd(
                s.label.clone(),
                SERIES[i % SERIES.len()],
                Style::Points,
                s.x.iter().map(|x| x + offset).collect(),
                s.y.clone(),
                s.error.clone(),
            );
            // Drawn beside each layer, written at it.
            series.data_x = Some(s.x.clone());
            panel.series.push(series);
        }
        figures.push(Figure::new(
            "entropy-by-layer",
            "Figures",
            "Mean entropy of the weight distributions in each layer, per protocol (mean over \
             seeds; bars: sd over seeds, drawn for n >= 2)."
                .to_string(),
            &Plot::single(panel, SINGLE),
        )?);
    }
    let report = ReproduceReport {
        complete: analyses.len() + summaries.len(),
        planned: plan.runs.len(),
        overrides: common_overrides(plan),
        protocols,
    };
    let mut csv = String::from(
        "protocol,quantity,credit_mean,credit_sd,credit_n,authors_mean,authors_sd,difference_in_pooled_sd,not_compared\n",
    );
    for p in &report.protocols {
        for r in &p.rows {
            let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            let _ = writeln!(
                csv,
                "{},\"{}\",{},{},{},{},{},{},\"{}\"",
                p.protocol,
                r.quantity,
                num(r.credit.map(|s| s.mean)),
                num(r.credit.map(|s| s.sd)),
                r.credit.map_or(0, |s| s.n),
                num(r.authors.map(|s| s.mean)),
                num(r.authors.map(|s| s.sd)),
                num(r.difference_in_pooled_sd),
                r.not_compared.as_deref().unwrap_or("").replace('"', "\"\"")
            );
        }
    }
    let (pngs, _) = report_pngs(
        &figures,
        plan.analysis.png_dpi,
        &crate::progress::Progress::quiet(),
    );
    let has_png: Vec<bool> = pngs.iter().map(Option::is_some).collect();
    let files = vec![
        (
            "reproduce.json".to_string(),
            credit_train::files::to_json(&report)?.into_bytes(),
        ),
        ("reproduce.csv".to_string(), csv.into_bytes()),
        (
            "report.html".to_string(),
            page_end(html(&report), &figures, &has_png).into_bytes(),
        ),
    ];
    write_files(dir, files, &figures, pngs)
}

/// The overrides of the plan's runs that `credit reproduce --set` gave (every run's, less
/// the seed and training-set size the plan sets itself).
fn common_overrides(plan: &SweepPlan) -> Vec<String> {
    plan.runs.first().map_or_else(Vec::new, |run| {
        run.overrides
            .iter()
            .filter(|o| {
                credit_train::split_override(o)
                    .is_ok_and(|(key, _)| !["seed", "data.train_size"].contains(&key))
            })
            .cloned()
            .collect()
    })
}

/// The page up to the figures: the comparison tables.
fn html(report: &ReproduceReport) -> String {
    let mut h = page_start("credit reproduce");
    let _ = writeln!(
        h,
        "<h1>The paper's MNIST experiments under both protocols</h1>\n<p>{} of {} runs complete. \
         credit: mean ± sd over its seeds (n); the authors' code: {}. The last column is the \
         difference of the means in units of the pooled seed sd, sqrt((sd₁² + sd₂²)/2); beyond 2 it is \
         marked.</p>",
        report.complete,
        report.planned,
        super::AUTHORS
            .iter()
            .map(|p| format!("seeds 0-{} ({})", p.authors.mean_field.len() - 1, p.name))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    if !report.overrides.is_empty() {
        let _ = writeln!(
            h,
            "<p><b>Every run was trained with</b> <code>{}</code>, unlike the presets the authors' numbers are compared with; rows whose budget differs give no difference.</p>",
            escape(&report.overrides.join(" "))
        );
    }
    for p in &report.protocols {
        let _ = writeln!(
            h,
            "<h2>Protocol {}</h2>\n<table><tr><th>quantity</th><th>credit</th><th>authors' code</th><th>difference / pooled sd</th></tr>",
            escape(&p.protocol)
        );
        for r in &p.rows {
            let cell = |s: Option<Summary>| {
                s.map_or("-".to_string(), |s| {
                    if s.n < 2 {
                        format!("{:.2} (n = 1, no sd)", s.mean)
                    } else {
                        format!("{:.2} ± {:.2} ({})", s.mean, s.sd, s.n)
                    }
                })
            };
            let z = match (r.difference_in_pooled_sd, &r.not_compared) {
                (Some(z), _) if z.abs() > 2.0 => format!("<b>{z:+.2}</b>"),
                (Some(z), _) => format!("{z:+.2}"),
                (None, Some(why)) => format!("not compared: {}", escape(why)),
                (None, None) => "-".to_string(),
            };
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
    let n = runs.len();
    let mut panels = Vec::new();
    let mut top = 0.0f64;
    for l in 0..layers {
        let mut panel = Panel::new(
            format!("Protocol {name}, layer {}", l + 1),
            "epoch",
            "connections (%)",
        );
        for (class, colour, value) in [
            (
                "very important",
                CLASS_COLOURS[0],
                (|c: &credit_train::LayerClasses| c.very_important) as fn(&_) -> f64,
            ),
            ("unimportant", CLASS_COLOURS[1], |c| c.unimportant),
        ] {
            let (x, y, sd) = over_runs(&metrics, |m| 100.0 * value(&m.layers[l]));
            top = y.iter().copied().fold(top, f64::max);
            // A line per class without bars: the sd over seeds is in the CSV.
            panel
                .series
                .push(Series::with_sd(class, colour, Style::Thin, x, y, sd));
        }
        panels.push(panel);
    }
    for p in &mut panels {
        p.y_range = Some((0.0, (top * 1.06).max(1.0)));
    }
    Ok(vec![Figure::new(
        &format!("classes-through-training-{name}"),
        "Figures",
        format!(
            "Protocol {name}: very important (pi = 0 and xi = 0) and unimportant (pi = 1) \
             connections of each layer after each epoch, one panel per layer on one y axis \
             (mean over n = {n} seeds; the sd in the CSV)."
        ),
        &Plot::row(panels, (300, 250)),
    )?])
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
    let n = analyses.len();
    let mut panels = Vec::new();
    let mut top = 0.0f64;
    for l in 0..layers {
        let curves: [(&str, RGBColor, CurveOf); 4] = [
            ("very important removed", CLASS_COLOURS[0], |p| {
                &p.very_important_removed
            }),
            ("as many variable removed", CLASS_COLOURS[2], |p| {
                &p.variable_removed
            }),
            ("unimportant given N(0,1)", CLASS_COLOURS[1], |p| {
                &p.unimportant_randomised
            }),
            ("as many removed at random", CLASS_COLOURS[3], |p| {
                &p.random_removed
            }),
        ];
        let mut panel = Panel::new(
            format!("Protocol {name}, layer {}", l + 1),
            "fraction f perturbed",
            "test error (%)",
        );
        for (label, colour, curve) in curves {
            let first = curve(&analyses[0].perturbation[l]);
            if first.fractions.is_empty() {
                // Analyses written before the random control was recorded.
                continue;
            }
            let at = |f: usize| -> Vec<f64> {
                analyses
                    .iter()
                    .filter_map(|a| curve(&a.perturbation[l]).error_mean_pct.get(f).copied())
                    .collect()
            };
            let (y, sd): (Vec<f64>, Vec<f64>) =
                (0..first.fractions.len()).map(|f| mean_sd(&at(f))).unzip();
            top = y.iter().zip(&sd).map(|(y, s)| y + s).fold(top, f64::max);
            panel.series.push(Series::with_sd(
                label,
                colour,
                Style::Line,
                first.fractions.clone(),
                y,
                sd,
            ));
        }
        panels.push(panel);
    }
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    for p in &mut panels {
        p.y_range = Some((0.0, (top * 1.06).clamp(1.0, 100.0)));
    }
    Ok(vec![Figure::new(
        &format!("perturbation-{name}"),
        "Figures",
        format!(
            "Protocol {name}: test error of sampled networks against the fraction f perturbed, \
             one panel per layer on one y axis (mean and sd over n = {n} seeds; bars only for \
             n >= 2)."
        ),
        &Plot::row(panels, (300, 260)),
    )?])
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
    let mut class_panels = Vec::new();
    for l in 0..layers {
        let mut panel = Panel::new(
            format!("Protocol {name}, layer {}", l + 1),
            "training images",
            "connections (%)",
        );
        for (label, colour, class) in [
            (
                "very important",
                CLASS_COLOURS[0],
                ConnectionClass::VeryImportant,
            ),
            (
                "unimportant",
                CLASS_COLOURS[1],
                ConnectionClass::Unimportant,
            ),
        ] {
            let s = series(label.to_string(), &|p| {
                p.1.iter()
                    .map(|a| 100.0 * a.layers[l].classes.fraction(class))
                    .collect()
            });
            panel.series.push(Series::with_sd(
                label,
                colour,
                Style::Line,
                s.x,
                s.y,
                s.error,
            ));
        }
        class_panels.push(panel);
    }
    let top = class_panels
        .iter()
        .flat_map(|p| &p.series)
        .filter_map(|s| match &s.data {
            crate::figures::Data::Points { y, sd, .. } => {
                Some(y.iter().zip(sd).map(|(y, e)| y + e).fold(0.0f64, f64::max))
            }
            crate::figures::Data::Bins { .. } => None,
        })
        .fold(1.0f64, f64::max);
    for p in &mut class_panels {
        p.y_range = Some((0.0, (top * 1.06).min(100.0)));
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
        {
            // Layers as the series: the layers' colours, not the classes' hues.
            let mut panel = crate::figures::curves_panel(
                &format!("Protocol {name}: entropy against training-set size"),
                "training images",
                "mean entropy (nats)",
                &entropy,
                false,
            );
            for (l, s) in panel.series.iter_mut().enumerate() {
                s.colour = crate::figures::layer_colour(l);
            }
            Figure::new(
                &format!("sizes-{name}-entropy"),
                "Figures",
                format!(
                    "Protocol {name}: mean entropy per layer against the training-set size (mean \
                     and sd over the seeds of each size; bars only for n >= 2)."
                ),
                &Plot::single(panel, SINGLE),
            )?
        },
        Figure::new(
            &format!("sizes-{name}-classes"),
            "Figures",
            format!(
                "Protocol {name}: very important (pi = 0 and xi = 0) and unimportant (pi = 1) \
                 connections against the training-set size, one panel per layer on one y axis \
                 (mean and sd over the seeds of each size; bars only for n >= 2)."
            ),
            &Plot::row(class_panels, (300, 250)),
        )?,
        curve_figure(
            &format!("sizes-{name}-accuracy"),
            format!(
                "Protocol {name}: test accuracy against the training-set size, with the deterministic baseline."
            ),
            &format!("Protocol {name}: accuracy against training-set size"),
            "training images",
            "test accuracy (%)",
            &accuracy,
            false,
        )?,
    ])
}
