//! Writing an analysis: `analysis.json`, CSV tables, SVG figures and a self-contained
//! `report.html` with the figures inline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::write_atomic;

use crate::analyze::{AnalysedRun, Analysis};
use crate::classes::ConnectionClass;

mod figures;

pub use figures::figures;

/// One figure: file name, caption, SVG text.
pub struct Figure {
    /// File name inside the output folder.
    pub file: String,
    /// Caption in the report.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// CSV tables: `(file name, contents)`.
pub fn tables(a: &Analysis) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    if !a.layers.is_empty() {
        let mut classes = String::from("layer,class,count,fraction,count_loose,fraction_loose\n");
        let mut entropy = String::from(
            "layer,entropy_mean,entropy_sd,entropy_closed_form_mean,mean_pi,mean_xi\n",
        );
        for l in &a.layers {
            for c in ConnectionClass::ALL {
                let _ = writeln!(
                    classes,
                    "{},{},{},{},{},{}",
                    l.layer,
                    c.label(),
                    l.classes.get(c),
                    l.classes.fraction(c),
                    l.classes_loose.get(c),
                    l.classes_loose.fraction(c)
                );
            }
            let _ = writeln!(
                entropy,
                "{},{},{},{},{},{}",
                l.layer,
                l.entropy_mean,
                l.entropy_sd,
                l.entropy_closed_form_mean,
                l.mean_pi,
                l.mean_xi
            );
        }
        tables.push(("classes.csv".to_string(), classes));
        tables.push(("entropy.csv".to_string(), entropy));
    }
    if !a.perturbation.is_empty() {
        let mut csv = String::from("layer,curve,fraction,changed,error_mean_pct,error_sd_pct\n");
        for p in &a.perturbation {
            for (name, c) in [
                ("very_important_removed", &p.very_important_removed),
                ("variable_removed", &p.variable_removed),
                ("unimportant_randomised", &p.unimportant_randomised),
                ("random_removed", &p.random_removed),
            ] {
                for i in 0..c.fractions.len() {
                    let _ = writeln!(
                        csv,
                        "{},{name},{},{},{},{}",
                        p.layer,
                        c.fractions[i],
                        c.changed[i],
                        c.error_mean_pct[i],
                        c.error_sd_pct[i]
                    );
                }
            }
        }
        tables.push(("perturbation.csv".to_string(), csv));
    }
    if let Some(s) = &a.sparsity {
        let mut csv = String::from(
            "pi_threshold,kept,total,compression_ratio,mean_network_accuracy_pct,sampled_accuracy_mean_pct,sampled_accuracy_sd_pct",
        );
        for h in &s.hidden {
            let l = h.layer;
            let _ = write!(
                csv,
                ",hidden{l}_no_incoming,hidden{l}_no_outgoing,hidden{l}_cut_off"
            );
        }
        csv.push('\n');
        for i in 0..s.thresholds.len() {
            let _ = write!(
                csv,
                "{},{},{},{},{},{},{}",
                s.thresholds[i],
                s.kept[i],
                s.total,
                s.compression_ratio[i].map_or_else(String::new, |r| r.to_string()),
                s.mean_network_accuracy_pct[i],
                s.sampled_accuracy_mean_pct[i],
                s.sampled_accuracy_sd_pct[i]
            );
            for h in &s.hidden {
                let _ = write!(
                    csv,
                    ",{},{},{}",
                    h.no_incoming[i], h.no_outgoing[i], h.cut_off[i]
                );
            }
            csv.push('\n');
        }
        tables.push(("sparsity.csv".to_string(), csv));
    }
    if let Some(s) = &a.accuracy.subnetworks {
        let mut csv = String::from("sample,accuracy_pct,zero_fraction\n");
        for (i, (acc, zeros)) in s.accuracies_pct.iter().zip(&s.zero_fractions).enumerate() {
            let _ = writeln!(csv, "{},{acc},{zeros}", i + 1);
        }
        tables.push(("subnetworks.csv".to_string(), csv));
    }
    tables
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Which seed trained the run and which drew the analysis's noise and sub-networks.
fn seeds(a: &Analysis) -> String {
    match (a.run_seed, a.config.seed) {
        (Some(run), Some(analysis)) if run == analysis => {
            format!("run seed {run}, also the analysis's seed")
        }
        (Some(run), Some(analysis)) => format!("run seed {run}; analysis seed {analysis}"),
        (None, Some(analysis)) => format!("analysis seed {analysis}"),
        (Some(run), None) => format!("run seed {run}"),
        (None, None) => "seeds not recorded".to_string(),
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a time in seconds since 1970 (the civil calendar of Howard
/// Hinnant's `civil_from_days`).
fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (hour, minute) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// The backend in words.
fn backend_in_words(backend: &str) -> String {
    match backend {
        "flex" => "flex (burn's CPU backend)".to_string(),
        "ndarray" => "ndarray (CPU)".to_string(),
        "wgpu" => "wgpu (GPU)".to_string(),
        other => other.to_string(),
    }
}

/// The run's key settings in words: widths, data, budget, schedule, protocol.
fn run_settings(a: &Analysis) -> String {
    let sizes = a
        .sizes
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("-");
    let kind = match a.model_kind {
        credit_train::ModelKind::SpikeSlab => "spike-and-slab",
        credit_train::ModelKind::Deterministic => "deterministic (plain backprop)",
    };
    let mut text = format!(
        "{kind} network {sizes}; {} training and {} test images; {} epochs",
        a.train_images, a.test_images, a.epochs
    );
    if let Some(c) = &a.run_config {
        let o = &c.optimizer;
        let schedule = if o.lr_step_epochs == 0 {
            format!("lr {} constant", o.lr)
        } else {
            format!(
                "lr {} times {} every {} epochs",
                o.lr, o.lr_step_factor, o.lr_step_epochs
            )
        };
        let adam = if o.restart_each_epoch {
            "AdamW restarted each epoch"
        } else {
            "one AdamW for the run"
        };
        let decay: Vec<String> = o
            .decay
            .iter()
            .map(|d| format!("{d:?}").to_lowercase())
            .collect();
        let _ = write!(
            text,
            ", batch {}; {schedule}, {adam}, decay {} on {}; data {} ({}); {}",
            c.train.batch_size,
            o.weight_decay,
            if decay.is_empty() {
                "nothing".to_string()
            } else {
                decay.join(", ")
            },
            escape(&c.data.dir.display().to_string()),
            format!("{:?}", c.data.format).to_lowercase(),
            match c.train.precision {
                credit_train::Precision::F32 => "float32",
                credit_train::Precision::F64 => "float64",
            }
        );
    }
    text
}

/// The self-contained HTML report.
pub fn html(a: &Analysis, figures: &[Figure]) -> String {
    let name = std::path::Path::new(&a.run)
        .file_name()
        .map_or_else(|| a.run.clone(), |n| n.to_string_lossy().into_owned());
    let mut h = page_start(&format!("credit analysis: {name}"));
    let version = if a.credit_version.is_empty() {
        "credit".to_string()
    } else {
        format!("credit {}", a.credit_version)
    };
    let when = if a.finished_unix_seconds == 0 {
        String::new()
    } else {
        format!(", {}", utc_date(a.finished_unix_seconds))
    };
    let _ = write!(
        h,
        "<h1>Analysis of {name}</h1>\n\
         <p class=\"meta\">{run_settings}; {seeds}.<br>Analysed by {version}{when} on {backend} \
         in {secs:.1} s; the run's folder: <code>{run}</code>.</p>\n",
        name = escape(&name),
        run_settings = run_settings(a),
        seeds = seeds(a),
        version = escape(&version),
        backend = backend_in_words(&a.backend),
        secs = a.seconds,
        run = escape(&a.run),
    );
    // Contents: the sections below and every figure by number.
    h.push_str("<nav><b>Contents</b>: <a href=\"#accuracy\">test accuracy</a>");
    if !a.calibration.is_empty() {
        h.push_str(" · <a href=\"#calibration\">calibration</a>");
    }
    if a.ood.is_some() {
        h.push_str(" · <a href=\"#ood\">out of distribution</a>");
    }
    if !a.layers.is_empty() {
        h.push_str(" · <a href=\"#classes\">connection classes</a>");
    }
    h.push_str(" · <a href=\"#figures\">figures</a><ol class=\"toc\">");
    for f in figures {
        let id = f.file.trim_end_matches(".svg");
        let title = f.caption.split(". ").next().unwrap_or(&f.caption);
        let _ = write!(h, "<li><a href=\"#{id}\">{}</a></li>", escape(title));
    }
    h.push_str("</ol></nav>\n");
    h.push_str("<h2 id=\"accuracy\">Test accuracy</h2>\n<table><tr><th>network</th><th>accuracy (%)</th></tr>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(h, "<tr><td>{name}</td><td>{value}</td></tr>");
    };
    row(
        "mean-field (noise on)",
        format!("{:.2}", a.accuracy.mean_field_pct),
    );
    row(
        "mean network (noise off)",
        format!("{:.2}", a.accuracy.mean_network_pct),
    );
    if let Some(s) = &a.accuracy.subnetworks {
        let k = s.accuracies_pct.len();
        row(
            &format!("{k} sampled sub-networks: mean ± sd [min, max]"),
            format!(
                "{:.2} ± {:.2} [{:.2}, {:.2}]",
                s.mean_pct, s.sd_pct, s.min_pct, s.max_pct
            ),
        );
        row(
            &format!("{k}-ensemble (mean softmax)"),
            format!("{:.2}", s.ensemble_pct),
        );
        let zeros = 100.0 * s.zero_fractions.iter().sum::<f64>() / k as f64;
        row(
            "zero weights in a sampled sub-network (%)",
            format!("{zeros:.1}"),
        );
    }
    if let Some(p) = &a.accuracy.pruned {
        row(
            &format!(
                "pruned (1-pi) m network, {} of {} weights non-zero",
                p.nonzero, p.total
            ),
            format!("{:.2}", p.accuracy_pct),
        );
    }
    h.push_str("</table>\n");
    if !a.calibration.is_empty() {
        h.push_str(
            "<h2 id=\"calibration\">Calibration</h2>\n<table><tr><th>predicting with</th><th>accuracy (%)</th><th>NLL</th><th>Brier</th><th>ECE</th></tr>\n",
        );
        for m in &a.calibration {
            let c = &m.calibration;
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.2}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(&m.mode),
                c.accuracy_pct,
                c.nll,
                c.brier,
                c.ece
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(ood) = &a.ood {
        let _ = writeln!(
            h,
            "<h2 id=\"ood\">Out of distribution</h2>\n<p>{} images of <code>{}</code> against the test images.</p>\n<table><tr><th>score</th><th>AUROC</th><th>AUPR</th></tr>",
            ood.images,
            escape(&ood.data.display().to_string())
        );
        for s in &ood.scores {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(&s.score),
                s.auroc,
                s.aupr
            );
        }
        h.push_str("</table>\n");
    }

    if !a.layers.is_empty() {
        let _ = write!(
            h,
            "<h2 id=\"classes\">Connection classes</h2>\n<p>Very important: pi = 0 and xi = 0; unimportant: \
             pi = 1; variable: the rest. Exact comparisons{}; in brackets with the loose \
             tolerance pi within {:e} of a bound, xi ≤ {:e}.</p>\n<table><tr><th>layer</th>\
             <th>connections</th><th>very important (%)</th><th>unimportant (%)</th>\
             <th>variable (%)</th><th>mean pi</th><th>entropy (nats, mean ± sd)</th></tr>\n",
            if a.config.tolerance == Default::default() {
                String::new()
            } else {
                format!(" (tolerance {:?})", a.config.tolerance)
            },
            a.config.loose_tolerance.pi,
            a.config.loose_tolerance.xi,
        );
        for l in &a.layers {
            let pct = |c| 100.0 * l.classes.fraction(c);
            let loose = |c| 100.0 * l.classes_loose.fraction(c);
            let _ = writeln!(
                h,
                "<tr><td>{} ({}→{})</td><td>{}</td><td>{:.1} [{:.1}]</td><td>{:.1} [{:.1}]</td>\
                 <td>{:.1} [{:.1}]</td><td>{:.3}</td><td>{:.3} ± {:.3}</td></tr>",
                l.layer,
                l.d_input,
                l.d_output,
                l.classes.total(),
                pct(ConnectionClass::VeryImportant),
                loose(ConnectionClass::VeryImportant),
                pct(ConnectionClass::Unimportant),
                loose(ConnectionClass::Unimportant),
                pct(ConnectionClass::Variable),
                loose(ConnectionClass::Variable),
                l.mean_pi,
                l.entropy_mean,
                l.entropy_sd
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2 id=\"figures\">Figures</h2>\n");
    page_end(h, figures)
}

/// The start of a report page: doctype, title, style.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}\
         figure{{display:inline-block;margin:0.5em;vertical-align:top;width:640px}}\
         figcaption{{font-size:0.9em;color:#444}}.meta{{color:#444}}\
         ol.toc{{columns:3;font-size:0.9em;margin:0.5em 0 1em}}</style></head><body>\n",
        escape(title)
    )
}

/// Appends the figures, inline, each linked to its SVG file, and closes the page.
pub(crate) fn page_end(mut h: String, figures: &[Figure]) -> String {
    for (n, f) in figures.iter().enumerate() {
        // Inline the <svg> element itself, without any XML prolog.
        let svg = f
            .svg
            .find("<svg")
            .map_or(f.svg.as_str(), |start| &f.svg[start..]);
        let _ = writeln!(
            h,
            "<figure id=\"{id}\">{svg}<figcaption><b>Figure {number}.</b> {caption} <a href=\"{file}\">{file}</a></figcaption></figure>",
            id = f.file.trim_end_matches(".svg"),
            number = n + 1,
            caption = escape(&f.caption),
            file = f.file
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes the figures' SVGs, then `files` (name, contents) in their order, into `out`, each
/// atomically, and returns the paths written: the last file is the one whose presence says
/// the folder is complete.
pub(crate) fn write_files(
    out: &Path,
    files: Vec<(String, Vec<u8>)>,
    figures: &[Figure],
) -> Result<Vec<PathBuf>> {
    let svgs = figures
        .iter()
        .map(|f| (f.file.clone(), f.svg.clone().into_bytes()));
    svgs.chain(files)
        .map(|(name, bytes)| {
            let path = out.join(name);
            write_atomic(&path, &bytes)?;
            Ok(path)
        })
        .collect()
}

/// Writes everything into `out` and returns the paths written: figures, tables and
/// `report.html` first, `analysis.json` last (its presence means the report is complete).
/// Figures an earlier analysis left in `out` that this one does not draw are removed (only
/// files named like an analysis's figures; anything else in `out` stays).
///
/// # Errors
/// If a figure cannot be drawn or a file written, naming it; or a number in the analysis is
/// not finite.
pub fn write_report(run: &AnalysedRun, out: &Path) -> Result<Vec<PathBuf>> {
    let figures = figures(run)?;
    let mut files: Vec<(String, Vec<u8>)> = tables(&run.analysis)
        .into_iter()
        .map(|(n, csv)| (n, csv.into_bytes()))
        .collect();
    files.push((
        "report.html".into(),
        html(&run.analysis, &figures).into_bytes(),
    ));
    // Last: a sweep counts a run as analysed once its analysis.json is there.
    files.push((
        "analysis.json".to_string(),
        credit_train::files::to_json(&run.analysis)?.into_bytes(),
    ));
    // A report written again: figures of the earlier analysis that this one does not have
    // (a mode or an OOD score fewer) would otherwise stay beside it. Only names an analysis
    // gives its figures are removed: other files in the folder are the user's. analysis.json goes first,
    // so that the folder does not look complete while it is rewritten.
    let _ = std::fs::remove_file(out.join("analysis.json"));
    let current: std::collections::HashSet<&str> =
        figures.iter().map(|f| f.file.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_analysis_figure(&name) && !current.contains(name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    write_files(out, files, &figures)
}

/// Whether `name` is one an analysis gives its figures (`layer{L}-*.svg`,
/// `reliability-*.svg`, `ood-*.svg`, `sparsity-*.svg`, `ensemble-*.svg`,
/// `classes-through-training.svg`,
/// `learning-curve.svg`).
fn is_analysis_figure(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".svg") else {
        return false;
    };
    let layer = stem.strip_prefix("layer").is_some_and(|rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with('-')
    });
    layer
        || stem.starts_with("reliability-")
        || stem.starts_with("ood-")
        || stem.starts_with("sparsity-")
        || stem.starts_with("ensemble-")
        || stem == "classes-through-training"
        || stem == "learning-curve"
}

#[cfg(test)]
mod tests {
    use super::{is_analysis_figure, utc_date};

    #[test]
    fn dates_are_the_civil_calendar_in_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(1_796_170_080), "2026-12-02 00:08 UTC");
        assert_eq!(utc_date(1_709_251_140), "2024-02-29 23:59 UTC");
        assert_eq!(utc_date(951_912_000), "2000-03-01 12:00 UTC");
    }

    #[test]
    fn only_names_of_analysis_figures_are_removed_as_stale() {
        for ours in [
            "layer1-pi.svg",
            "layer12-m-by-class.svg",
            "reliability-mean-field.svg",
            "ood-mutual-information.svg",
            "classes-through-training.svg",
        ] {
            assert!(is_analysis_figure(ours), "{ours}");
        }
        for theirs in [
            "my-drawing.svg",
            "layer.svg",
            "layers-notes.svg",
            "layer1-pi.png",
            "reliability.svg",
            "notes.txt",
        ] {
            assert!(!is_analysis_figure(theirs), "{theirs}");
        }
    }
}
