//! What the commands print.

use std::path::{Path, PathBuf};

use credit_analysis::classes::ConnectionClass;
use credit_analysis::export::ExportReport;
use credit_analysis::{Analysis, EvalReport};
use credit_train::{BenchReport, RunDir, RunSummary};

/// The closing line of `credit train`.
pub(crate) fn summary(summary: &RunSummary, run: &RunDir, deterministic: bool) {
    let accuracy = if deterministic {
        format!("{:.2}%", summary.test_accuracy_mean_network_pct)
    } else {
        format!(
            "{:.2}% mean-field, {:.2}% mean network",
            summary.test_accuracy_mean_field_pct, summary.test_accuracy_mean_network_pct
        )
    };
    out!(
        "done: {} epochs, {:.3} s/epoch; test accuracy {accuracy} ({})",
        summary.epochs,
        summary.seconds_per_epoch,
        run.path().display()
    );
}

/// `credit eval` as a table.
pub(crate) fn eval(report: &EvalReport) {
    out!(
        "{} on {}, {} test images",
        report.run,
        report.backend,
        report.test_images
    );
    if report.model == "deterministic" {
        out!(
            "  deterministic network      {:6.2}%",
            report.test_accuracy_mean_network_pct
        );
    } else {
        out!(
            "  mean-field (noise on)      {:6.2}%",
            report.test_accuracy_mean_field_pct
        );
        out!(
            "  mean network (noise off)   {:6.2}%",
            report.test_accuracy_mean_network_pct
        );
    }
    if let Some(s) = &report.subnetworks {
        let k = s.accuracies_pct.len();
        let zeros = s.zero_fractions.iter().sum::<f64>() / k as f64;
        out!(
            "  {k} sampled sub-networks    {:6.2}% mean, sd {:.2}, min {:.2}, max {:.2} ({:.1}% zero weights)",
            s.mean_pct,
            s.sd_pct,
            s.min_pct,
            s.max_pct,
            100.0 * zeros
        );
        out!("  {k}-ensemble (mean softmax) {:6.2}%", s.ensemble_pct);
    }
    if !report.calibration.is_empty() {
        out!("  calibration                 NLL      Brier    ECE");
        for m in &report.calibration {
            let c = &m.calibration;
            out!(
                "    {:<24} {:.4}   {:.4}   {:.4}",
                m.mode,
                c.nll,
                c.brier,
                c.ece
            );
        }
    }
    if let Some(ood) = &report.ood {
        out!(
            "  out of distribution: {} images of {}",
            ood.images,
            ood.data.display()
        );
        for s in &ood.scores {
            out!(
                "    {:<24} AUROC {:.4}   AUPR {:.4}",
                s.score,
                s.auroc,
                s.aupr
            );
        }
    }
    if let Some(baseline) = &report.baseline {
        out!("baseline:");
        eval(baseline);
    }
}

/// Predictions as a table.
pub(crate) fn predictions(report: &credit_analysis::predict::PredictReport) {
    out!(
        "{} predictions of {} ({}); entropies in nats",
        report.predictions.len(),
        report.run,
        members(report)
    );
    let labelled =
        !report.predictions.is_empty() && report.predictions.iter().all(|p| p.label.is_some());
    let label_head = if labelled { "  label" } else { "" };
    out!(
        "{:<28} {:>9}{label_head} {:>6} {:>10} {:>9} {:>8} {:>9}",
        "input",
        "predicted",
        "p",
        "predictive",
        "expected",
        "mutual",
        "agreement"
    );
    for p in &report.predictions {
        let q = &p.prediction;
        let label = match (labelled, p.label) {
            (true, Some(label)) => format!(" {label:>6}"),
            _ => String::new(),
        };
        out!(
            "{:<28} {:>9}{label} {:>6.3} {:>10} {:>9} {:>8} {:>8.0}%",
            p.input,
            p.predicted_label,
            q.probabilities[q.predicted],
            nats(q.predictive_entropy),
            nats(q.expected_entropy),
            nats(q.mutual_information),
            100.0 * q.agreement
        );
    }
    if labelled {
        let right = report
            .predictions
            .iter()
            .filter(|p| p.label == Some(p.predicted_label))
            .count();
        out!(
            "{right} of {} predicted as labelled ({:.2}%)",
            report.predictions.len(),
            100.0 * right as f64 / report.predictions.len() as f64
        );
    }
}

/// An entropy in nats: four decimals, or two significant digits below 0.0001 (so that a
/// confident prediction does not read as exactly 0).
fn nats(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-4 {
        format!("{value:.1e}")
    } else {
        format!("{value:.4}")
    }
}

/// The closing line of commands that write a report folder.
pub(crate) fn written(written: &[PathBuf], out: &Path) {
    out!(
        "wrote {} files to {} (open {})",
        written.len(),
        out.display(),
        out.join("report.html").display()
    );
}

/// The closing summary of a sweep (from `sweep.json`) or of `credit reproduce` (from
/// `reproduce.json`).
pub(crate) fn sweep_report(
    dir: &Path,
    plan: &credit_analysis::sweep::SweepPlan,
) -> anyhow::Result<()> {
    use credit_analysis::sweep::PlanKind;
    match plan.kind {
        PlanKind::Sweep => {
            let summaries: Vec<credit_analysis::sweep::SettingSummary> =
                credit_train::read_json(&dir.join("sweep.json"))?;
            // The sd only over two runs or more.
            let with_sd = |mean: f64, sd: f64, n: usize| {
                if n >= 2 {
                    format!("{mean:.2}% (sd {sd:.2})")
                } else {
                    format!("{mean:.2}%")
                }
            };
            for s in &summaries {
                out!(
                    "  {}: mean-field {}, deterministic {}, entropy per layer {}",
                    s.setting,
                    with_sd(s.mean_field_pct.mean, s.mean_field_pct.sd, s.seeds),
                    s.deterministic_pct.map_or("-".into(), |d| with_sd(
                        d.mean,
                        d.sd,
                        s.deterministic_seeds
                    )),
                    s.entropy
                        .iter()
                        .map(|e| format!("{:.3}", e.mean))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        PlanKind::Reproduce => {
            let report: credit_analysis::sweep::reproduce::ReproduceReport =
                credit_train::read_json(&dir.join("reproduce.json"))?;
            if !report.overrides.is_empty() {
                out!(
                    "  every run trained with {} (unlike the authors' presets)",
                    report.overrides.join(" ")
                );
            }
            for p in &report.protocols {
                out!("  protocol {}:", p.protocol);
                for r in &p.rows {
                    let cell = |s: Option<credit_analysis::sweep::reproduce::Summary>| {
                        s.map_or("-".to_string(), |s| match s.n {
                            1 => format!("{:.2} (n = 1)", s.mean),
                            _ => format!("{:.2} ± {:.2}", s.mean, s.sd),
                        })
                    };
                    let z = match (r.difference_in_pooled_sd, &r.not_compared) {
                        (Some(z), _) => format!("{z:+.2} sd"),
                        (None, Some(why)) => format!("not compared: {why}"),
                        (None, None) => String::new(),
                    };
                    out!(
                        "    {:<48} credit {:<16} authors {:<16} {z}",
                        r.quantity,
                        cell(r.credit),
                        cell(r.authors),
                    );
                }
            }
        }
    }
    Ok(())
}

/// `credit bench`.
pub(crate) fn bench(report: &BenchReport, config: &Path) {
    out!(
        "{} on {} ({})",
        config.display(),
        report.backend,
        report.device
    );
    out!(
        "  training   {:.4} s/epoch median of {} ({:.0} images/s, {} images/epoch)",
        report.epoch_seconds_median,
        report.epoch_seconds.len(),
        report.train_images_per_second,
        report.train_images
    );
    out!(
        "  evaluation {:.4} s per mean-field pass over {} test images ({:.0} images/s)",
        report.eval_seconds_median,
        report.test_images,
        report.eval_images_per_second
    );
    if let Some(seconds) = report.analyze_seconds {
        out!("  analysis   {seconds:.2} s for `credit analyze` (K = 20, S = 10, all layers)");
    }
}

/// `credit export`.
pub(crate) fn export(report: &ExportReport) {
    if let Some((accuracy, nonzero, total)) = report.pruned {
        out!("pruned network: {accuracy:.2}% test accuracy, {nonzero} of {total} weights non-zero");
    }
    out!(
        "wrote {} tensors ({}) to {}",
        report.tensors.len(),
        report.tensors.join(", "),
        report.path.display()
    );
}

/// `credit analyze`'s findings.
pub(crate) fn analysis(a: &Analysis) {
    let kind = match a.model_kind {
        credit_train::ModelKind::SpikeSlab => "spike-and-slab",
        credit_train::ModelKind::Deterministic => "deterministic",
        credit_train::ModelKind::SpikeSlabRnn => "spike-and-slab recurrent",
    };
    let sizes: Vec<String> = a.sizes.iter().map(usize::to_string).collect();
    out!(
        "{}: {kind} network {}, analysed on {} in {:.2} s",
        a.run,
        sizes.join("-"),
        a.backend,
        a.seconds
    );
    match a.model_kind {
        credit_train::ModelKind::SpikeSlab | credit_train::ModelKind::SpikeSlabRnn => out!(
            "  accuracy: mean-field {:.2}%, mean network {:.2}%",
            a.accuracy.mean_field_pct,
            a.accuracy.mean_network_pct
        ),
        // A deterministic network has neither noise nor a mean network: one accuracy.
        credit_train::ModelKind::Deterministic => {
            out!("  test accuracy {:.2}%", a.accuracy.mean_network_pct);
        }
    }
    if let Some(s) = &a.accuracy.subnetworks {
        out!(
            "  {} sampled sub-networks {:.2}% (sd {:.2}), ensemble {:.2}%",
            s.accuracies_pct.len(),
            s.mean_pct,
            s.sd_pct,
            s.ensemble_pct
        );
    }
    if let Some(p) = &a.accuracy.pruned {
        out!(
            "  pruned (1-pi) m network {:.2}% with {} of {} weights",
            p.accuracy_pct,
            p.nonzero,
            p.total
        );
    }
    for l in &a.layers {
        out!(
            "  {}: very important {:5.1}%  unimportant {:5.1}%  variable {:5.1}%  entropy {:.3} ± {:.3}",
            a.layer_name(l.layer),
            100.0 * l.classes.fraction(ConnectionClass::VeryImportant),
            100.0 * l.classes.fraction(ConnectionClass::Unimportant),
            100.0 * l.classes.fraction(ConnectionClass::Variable),
            l.entropy_mean,
            l.entropy_sd
        );
    }
    // Numbers with `digits` decimals, space-separated.
    let row = |values: &[f64], digits: usize| {
        values
            .iter()
            .map(|v| format!("{v:.digits$}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(r) = &a.recurrent {
        let classes = |c: &credit_analysis::classes::ClassCounts| {
            format!(
                "very important {:5.1}%  unimportant {:5.1}%  variable {:5.1}%",
                100.0 * c.fraction(ConnectionClass::VeryImportant),
                100.0 * c.fraction(ConnectionClass::Unimportant),
                100.0 * c.fraction(ConnectionClass::Variable)
            )
        };
        out!(
            "  self-connections:  {}  mean m {:.3}",
            classes(&r.self_connections),
            r.self_mean_m
        );
        out!(
            "  other recurrent:   {}  mean |m| {:.3}",
            classes(&r.other_recurrent),
            r.other_mean_abs_m
        );
        out!(
            "  accuracy (%) with the sequence cut after t = 1..{} steps:",
            r.steps
        );
        out!("    mean-field    {}", row(&r.truncated_mean_field_pct, 1));
        out!(
            "    mean network  {}",
            row(&r.truncated_mean_network_pct, 1)
        );
    }
    for p in &a.perturbation {
        let fmt = |c: &credit_analysis::perturb::Curve| row(&c.error_mean_pct, 1);
        let fractions = p
            .very_important_removed
            .fractions
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join(", ");
        out!("  layer {} error (%) at f = {fractions}:", p.layer);
        out!(
            "    very important removed    {}",
            fmt(&p.very_important_removed)
        );
        out!("    as many variable removed  {}", fmt(&p.variable_removed));
        out!(
            "    unimportant randomised    {}",
            fmt(&p.unimportant_randomised)
        );
        if !p.random_removed.fractions.is_empty() {
            out!("    as many removed at random {}", fmt(&p.random_removed));
        }
    }
    if let Some(s) = &a.sparsity {
        let thresholds = s
            .thresholds
            .iter()
            .map(|t| format!("{t}"))
            .collect::<Vec<_>>()
            .join(", ");
        out!("  pruned at pi > t, t = {thresholds}:");
        let ratios: Vec<String> = s
            .compression_ratio
            .iter()
            .map(|r| r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}")))
            .collect();
        // The labels in one column, the numbers beside them.
        out!("    {:<27}{}", "compression (all/kept)", ratios.join(" "));
        out!(
            "    {:<27}{}",
            "mean network accuracy (%)",
            row(&s.mean_network_accuracy_pct, 2)
        );
        out!(
            "    {:<27}{}",
            "sampled accuracy (%)",
            row(&s.sampled_accuracy_mean_pct, 2)
        );
        for h in &s.hidden {
            let cut: Vec<f64> = h.cut_off.iter().map(|c| 100.0 * c).collect();
            out!(
                "    {:<27}{}",
                format!("hidden layer {} cut off (%)", h.layer),
                row(&cut, 1)
            );
        }
    }
}

/// The mode and its members in words: `ensemble, 20 members`, `mean-network`.
pub(crate) fn members(report: &credit_analysis::predict::PredictReport) -> String {
    match report.members {
        1 => format!("{}, one member", report.mode),
        k => format!("{}, {k} members", report.mode),
    }
}
