//! Writing an analysis: `analysis.json`, CSV tables, SVG figures and a self-contained
//! `report.html` with the figures inline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use credit_train::write_atomic;

use crate::analyze::{AnalysedRun, Analysis};
use crate::classes::ConnectionClass;
use crate::figures::{Fonts, Plot, png};
use crate::progress::Progress;

mod figures;

pub use figures::figures;

/// One figure: its files' name, the report's group it belongs to, caption, SVG and data.
pub struct Figure {
    /// File name inside the output folder (`NAME.svg`; its data is `NAME.csv`, its PNG
    /// `NAME.png`).
    pub file: String,
    /// The report's section it is shown in ("Layer 1 (784 → 100 units)", "Training").
    pub group: String,
    /// Caption in the report.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
    /// The plotted data (see [`Plot::csv`]).
    pub csv: String,
    /// A short title for the contents: the panel's title (less a "Layer N: " its group
    /// gives), or the caption up to its first colon for a figure of several panels.
    pub title: String,
}

impl Figure {
    /// The figure `plot`, to be written as `stem.svg`, `stem.csv` and `stem.png`.
    ///
    /// # Errors
    /// If plotters fails to draw it.
    pub fn new(stem: &str, group: &str, caption: String, plot: &Plot) -> Result<Self> {
        let title = match plot.panels.as_slice() {
            [one] => {
                let t = one.title.as_str();
                t.split_once(": ")
                    .filter(|(head, _)| head.starts_with("Layer "))
                    .map_or(t, |(_, rest)| rest)
                    .to_string()
            }
            // The caption up to its first ": " or ". " (not the dot of "metrics.csv").
            _ => {
                let end = [caption.find(": "), caption.find(". ")]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(caption.len());
                caption[..end].trim_end_matches('.').to_string()
            }
        };
        Ok(Self {
            title,
            file: format!("{stem}.svg"),
            group: group.to_string(),
            caption,
            svg: plot.svg()?,
            csv: plot.csv(),
        })
    }

    /// The file name without `.svg`: the figure's id in the report and the stem of its files.
    pub fn stem(&self) -> &str {
        self.file.trim_end_matches(".svg")
    }
}

/// A figure of one panel of curves ([`crate::figures::curves_panel`]), in the group
/// "Figures", written as `stem.svg`.
///
/// # Errors
/// If plotters fails to draw it.
pub(crate) fn curve_figure(
    stem: &str,
    caption: String,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[crate::figures::CurveSeries],
    y_from_zero: bool,
) -> Result<Figure> {
    let panel = crate::figures::curves_panel(title, x_label, y_label, series, y_from_zero);
    Figure::new(
        stem,
        "Figures",
        caption,
        &Plot::single(panel, crate::figures::SINGLE),
    )
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

/// The authors' protocol a run's settings follow, in words: the training settings (model
/// other than its widths, batch, drop_last, optimizer) compared with the presets'.
fn protocol(c: &credit_train::RunConfig) -> Option<&'static str> {
    const PRESET_2022: &str = include_str!("../../../configs/mnist-2022.toml");
    let same = |p: &credit_train::RunConfig| {
        c.optimizer == p.optimizer
            && c.train.batch_size == p.train.batch_size
            && c.train.drop_last == p.train.drop_last
            && credit_train::ModelConfig {
                sizes: p.model.sizes.clone(),
                ..c.model.clone()
            } == p.model
    };
    if same(&credit_train::RunConfig::default()) {
        return Some("the authors' 2020 protocol (preset configs/mnist.toml)");
    }
    let preset = credit_train::RunConfig::parse(PRESET_2022, &[]).ok()?;
    same(&preset).then_some("the authors' 2022 protocol (preset configs/mnist-2022.toml)")
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
        credit_train::ModelKind::SpikeSlabRnn => "spike-and-slab recurrent",
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
                "lr {} times {} every {} epochs{}",
                o.lr,
                o.lr_step_factor,
                o.lr_step_epochs,
                match o.lr_step_offset.unwrap_or(0) {
                    0 => String::new(),
                    k => format!(" counted from {k} epoch(s) early"),
                }
            )
        };
        let schedule = match o.clip_grad_norm {
            Some(bound) => format!(
                "{schedule}, gradients clipped to {} norm {bound}",
                match o.clip_grad_kind.unwrap_or_default() {
                    credit_train::ClipNorm::Spectral => "spectral",
                    credit_train::ClipNorm::Frobenius => "Frobenius",
                }
            ),
            None => schedule,
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
            ", batch {}{}; {schedule}, {adam}, decay {} on {}; data {} ({}); {}",
            c.train.batch_size,
            match c.train.batches_per_epoch {
                Some(b) => format!(", {b} batches per epoch"),
                None => String::new(),
            },
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
        if a.model_kind == credit_train::ModelKind::SpikeSlabRnn {
            let preset = credit_train::RunConfig::parse(
                include_str!("../../../configs/smnist-rnn.toml"),
                &[],
            )
            .expect("the recurrent preset parses");
            let same = credit_train::RunConfig {
                seed: c.seed,
                data: c.data.clone(),
                train: credit_train::TrainConfig {
                    epochs: c.train.epochs,
                    ..preset.train.clone()
                },
                ..preset
            };
            if &same == c {
                text.push_str(
                    "; the authors' recurrent protocol (preset configs/smnist-rnn.toml, BPTT-SAS-28by28.py)",
                );
            }
        }
        if a.model_kind == credit_train::ModelKind::SpikeSlab {
            match protocol(c) {
                Some(words) => {
                    let _ = write!(text, "; {words}");
                }
                None => {
                    text.push_str("; its own training settings (not one of the authors' protocols)")
                }
            }
        }
    }
    text
}

/// The self-contained HTML report: `png[i]` says whether figure `i` has its PNG, `warnings`
/// are shown as notes.
pub fn html(a: &Analysis, figures: &[Figure], png: &[bool], warnings: &[String]) -> String {
    let name = std::path::Path::new(&a.run)
        .file_name()
        .map_or_else(|| a.run.clone(), |n| n.to_string_lossy().into_owned());
    let mut h = page_start(&format!("credit analysis: {name}"));
    let mut version = if a.credit_version.is_empty() {
        "credit".to_string()
    } else {
        format!("credit {}", a.credit_version)
    };
    if !a.credit_commit.is_empty() {
        let _ = write!(version, " (commit {})", a.credit_commit);
    }
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
    if a.recurrent.is_some() {
        h.push_str(" · <a href=\"#recurrent\">recurrent connections</a>");
    }
    h.push_str(" · <a href=\"#figures\">figures</a>");
    contents(&mut h, figures);
    let tables: Vec<String> = tables(a)
        .into_iter()
        .map(|(name, _)| format!("<a href=\"{name}\">{name}</a>"))
        .chain(std::iter::once(
            "<a href=\"analysis.json\">analysis.json</a> (every number)".to_string(),
        ))
        .collect();
    let _ = write!(
        h,
        "<p><b>Data</b>: {}; each figure's data beside it as NAME.csv.</p>",
        tables.join(" · ")
    );
    h.push_str("</nav>\n");
    h.push_str("<div class=\"tables\"><div><h2 id=\"accuracy\">Test accuracy</h2>\n<table><tr><th>network</th><th>accuracy (%)</th></tr>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(h, "<tr><td>{name}</td><td>{value}</td></tr>");
    };
    if a.model_kind != credit_train::ModelKind::Deterministic {
        row(
            "mean-field (noise on)",
            format!("{:.2}", a.accuracy.mean_field_pct),
        );
        row(
            "mean network (noise off)",
            format!("{:.2}", a.accuracy.mean_network_pct),
        );
    } else {
        row(
            "the network (deterministic)",
            format!("{:.2}", a.accuracy.mean_network_pct),
        );
    }
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
    h.push_str("</table></div>\n");
    if !a.calibration.is_empty() {
        h.push_str(
            "<div><h2 id=\"calibration\">Calibration</h2>\n<table><tr><th>predicting with</th><th>accuracy (%)</th><th>NLL</th><th>Brier</th><th>ECE</th></tr>\n",
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
        h.push_str("</table></div>\n");
    }
    h.push_str("</div>\n");
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
             <th>variable (%)</th><th>mean pi</th><th>entropy (nats): mean ± sd over connections</th></tr>\n",
            if a.config.tolerance == Default::default() {
                String::new()
            } else {
                format!(
                    " (tolerance: pi within {:e} of a bound, xi ≤ {:e})",
                    a.config.tolerance.pi, a.config.tolerance.xi
                )
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
                a.layer_name(l.layer),
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
    if let Some(r) = &a.recurrent {
        let _ = write!(
            h,
            "<h2 id=\"recurrent\">Recurrent connections</h2>\n<p>The recurrent matrix's \
             self-connections (its diagonal, which starts at m = 1) apart from the other \
             recurrent connections.</p>\n<table><tr><th>connections</th><th>count</th>\
             <th>very important (%)</th><th>unimportant (%)</th><th>variable (%)</th>\
             <th>mean m</th></tr>\n"
        );
        for (name, c, m) in [
            (
                "self-connections",
                &r.self_connections,
                format!("{:.3}", r.self_mean_m),
            ),
            (
                "other recurrent",
                &r.other_recurrent,
                format!("{:.3} (mean |m|)", r.other_mean_abs_m),
            ),
        ] {
            let pct = |class| 100.0 * c.fraction(class);
            let _ = writeln!(
                h,
                "<tr><td>{name}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{m}</td></tr>",
                c.total(),
                pct(ConnectionClass::VeryImportant),
                pct(ConnectionClass::Unimportant),
                pct(ConnectionClass::Variable),
            );
        }
        h.push_str("</table>\n");
        if let Some(redrawn) = r.redrawn_sampled_pct {
            let _ = writeln!(
                h,
                "<p>Test accuracy with the weights redrawn at every step (the authors' \
                 <code>sample_forward</code>, which samples no single network): {redrawn:.2}%; \
                 the sampled sub-networks above keep one draw for the whole sequence.</p>"
            );
        }
    }
    h.push_str("<h2 id=\"figures\">Figures</h2>\n");
    for w in warnings {
        let _ = writeln!(h, "<p class=\"meta\">Note: {}.</p>", escape(w));
    }
    page_end(h, figures, png)
}

/// The start of a report page: doctype, title, style.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;font-size:15px;line-height:1.4;max-width:1260px;margin:1.2em auto;padding:0 10px;color:#222}}\
         h1{{font-size:1.6em;margin:0.2em 0}}h2{{font-size:1.3em;margin:1.2em 0 0.4em;border-bottom:1px solid #ddd}}\
         h3{{font-size:1.1em;margin:1em 0 0.3em}}\
         table{{border-collapse:collapse;margin:0.4em 0}}td,th{{border:1px solid #bbb;padding:3px 9px;text-align:right}}\
         th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}\
         .tables{{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}}\
         .figs{{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}}\
         figure{{margin:0}}figure svg{{display:block}}\
         figcaption{{font-size:13px;color:#444;margin:2px 4px 8px}}.files{{white-space:nowrap}}\
         .rowcaption{{font-size:13px;color:#444;margin:0 4px 8px}}.meta{{color:#444}}\
         nav p{{margin:0.15em 0;font-size:14px}}</style></head><body>\n",
        escape(title)
    )
}

/// The figures' groups in order, each with its figures' numbers (1-based) and figures.
fn groups(figures: &[Figure]) -> Vec<(&str, Vec<(usize, &Figure)>)> {
    let mut groups: Vec<(&str, Vec<(usize, &Figure)>)> = Vec::new();
    for (n, f) in figures.iter().enumerate() {
        match groups.last_mut() {
            Some((g, members)) if *g == f.group => members.push((n + 1, f)),
            _ => groups.push((&f.group, vec![(n + 1, f)])),
        }
    }
    groups
}

/// An HTML id from a group's name.
fn slug(s: &str) -> String {
    let mut out = String::from("group-");
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The contents of the figures: one line per group, its figures by number and short title.
pub(crate) fn contents(h: &mut String, figures: &[Figure]) {
    for (group, members) in groups(figures) {
        let _ = write!(
            h,
            "<p><a href=\"#{}\"><b>{}</b></a>: ",
            slug(group),
            escape(group)
        );
        let links: Vec<String> = members
            .iter()
            .map(|(n, f)| format!("<a href=\"#{}\">{n}</a> {}", f.stem(), escape(&f.title)))
            .collect();
        h.push_str(&links.join(" · "));
        h.push_str("</p>");
    }
}

/// The width of an SVG document, from its `width` attribute.
fn svg_width(svg: &str) -> Option<u32> {
    let start = svg.find("<svg")?;
    let rest = &svg[start..];
    let at = rest.find("width=\"")? + 7;
    rest[at..].split('"').next()?.parse().ok()
}

/// Appends the figures, inline and grouped, each numbered and linked to its files (SVG,
/// PNG when `png`, and its data as CSV), and closes the page. A row of narrow figures (a
/// layer's five panels) gets one caption below it.
pub(crate) fn page_end(mut h: String, figures: &[Figure], png: &[bool]) -> String {
    for (group, members) in groups(figures) {
        let _ = writeln!(
            h,
            "<section id=\"{}\"><h3>{}</h3><div class=\"figs\">",
            slug(group),
            escape(group)
        );
        let narrow = members.len() > 2
            && members
                .iter()
                .all(|(_, f)| svg_width(&f.svg).is_some_and(|w| w < 300));
        let mut row_caption = Vec::new();
        for (n, f) in &members {
            // Inline the <svg> element itself, without any XML prolog.
            let svg = f
                .svg
                .find("<svg")
                .map_or(f.svg.as_str(), |start| &f.svg[start..]);
            let stem = f.stem();
            let files = format!(
                "<span class=\"files\">[<a href=\"{stem}.svg\">SVG</a>{} · <a href=\"{stem}.csv\">data</a>]</span>",
                if png.get(n - 1).copied().unwrap_or(false) {
                    format!(" · <a href=\"{stem}.png\">PNG</a>")
                } else {
                    String::new()
                }
            );
            let width = svg_width(&f.svg).unwrap_or(400);
            let caption = if narrow {
                row_caption.push(format!("<b>{n}.</b> {}", escape(&f.caption)));
                String::new()
            } else {
                format!(" {}", escape(&f.caption))
            };
            let _ = writeln!(
                h,
                "<figure id=\"{stem}\" style=\"width:{width}px\">{svg}<figcaption><b>Figure {n}.</b>{caption} {files}</figcaption></figure>"
            );
        }
        h.push_str("</div>");
        if !row_caption.is_empty() {
            let _ = write!(h, "<p class=\"rowcaption\">{}</p>", row_caption.join(" "));
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// The PNG of every figure at `dpi` (`None` for each without `fonts`), rendered on two
/// threads, and a warning for each that could not be drawn: a PNG is a copy of its SVG, so a
/// failure loses nothing else.
pub(crate) fn render_pngs(
    figures: &[Figure],
    dpi: u32,
    fonts: Option<&Fonts>,
    progress: &Progress,
) -> (Vec<Option<Vec<u8>>>, Vec<String>) {
    let Some(fonts) = fonts.filter(|_| dpi > 0) else {
        return (vec![None; figures.len()], Vec::new());
    };
    let render = |f: &Figure| {
        let drawn =
            png(&f.svg, dpi, fonts).map_err(|e| format!("{}.png not written: {e:#}", f.stem()));
        progress.step();
        drawn
    };
    let half = figures.len().div_ceil(2);
    let (first, second) = figures.split_at(half);
    let results: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
        let other = scope.spawn(|| second.iter().map(render).collect::<Vec<_>>());
        let mut done: Vec<_> = first.iter().map(render).collect();
        match other.join() {
            Ok(rest) => done.extend(rest),
            Err(_) => done.extend(second.iter().map(|f| {
                Err(format!(
                    "{}.png not written: its renderer stopped",
                    f.stem()
                ))
            })),
        }
        done
    });
    let mut warnings = Vec::new();
    let pngs = results
        .into_iter()
        .map(|r| r.map_err(|w| warnings.push(w)).ok())
        .collect();
    (pngs, warnings)
}

/// The fonts for PNGs at `dpi` (none for 0), or a warning why there are none: the SVGs and
/// data are written either way.
pub(crate) fn png_fonts(dpi: u32) -> (Option<Fonts>, Option<String>) {
    if dpi == 0 {
        return (None, None);
    }
    match Fonts::system() {
        Ok(fonts) => (Some(fonts), None),
        Err(e) => (None, Some(format!("no PNG copies of the figures: {e:#}"))),
    }
}

/// The PNG copies of `figures` at `dpi` with the warnings printed (no font, a figure that
/// could not be drawn): each figure's PNG or `None`, and the warnings for the report.
pub(crate) fn report_pngs(
    figures: &[Figure],
    dpi: u32,
    progress: &Progress,
) -> (Vec<Option<Vec<u8>>>, Vec<String>) {
    let (fonts, no_fonts) = png_fonts(dpi);
    let (pngs, mut warnings) = render_pngs(figures, dpi, fonts.as_ref(), progress);
    warnings.extend(no_fonts);
    warn(&warnings);
    (pngs, warnings)
}

/// Writes each figure's SVG, data (CSV) and PNG (where `pngs` has one), then `files` (name,
/// contents) in their order, into `out`, each atomically, and returns the paths written: the
/// last file is the one whose presence says the folder is complete.
///
/// # Errors
/// If a file cannot be written, naming it.
pub(crate) fn write_files(
    out: &Path,
    files: Vec<(String, Vec<u8>)>,
    figures: &[Figure],
    pngs: Vec<Option<Vec<u8>>>,
) -> Result<Vec<PathBuf>> {
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    for f in figures {
        all.push((f.file.clone(), f.svg.clone().into_bytes()));
        all.push((format!("{}.csv", f.stem()), f.csv.clone().into_bytes()));
    }
    for (f, png) in figures.iter().zip(pngs) {
        if let Some(bytes) = png {
            all.push((format!("{}.png", f.stem()), bytes));
        }
    }
    all.into_iter()
        .chain(files)
        .map(|(name, bytes)| {
            let path = out.join(name);
            write_atomic(&path, &bytes)?;
            Ok(path)
        })
        .collect()
}

/// Prints each warning on standard error.
pub(crate) fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
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
    write_report_with(run, out, &mut Progress::quiet())
}

/// [`write_report`], showing its stages on `progress`.
///
/// # Errors
/// As [`write_report`].
pub fn write_report_with(
    run: &AnalysedRun,
    out: &Path,
    progress: &mut Progress,
) -> Result<Vec<PathBuf>> {
    let dpi = run.analysis.config.png_dpi;
    progress.stage("figures", 1);
    let figures = figures(run)?;
    if dpi > 0 {
        progress.stage("PNG copies", figures.len());
    }
    let (pngs, warnings) = report_pngs(&figures, dpi, progress);
    let has_png: Vec<bool> = pngs.iter().map(Option::is_some).collect();
    let mut analysis = run.analysis.clone();
    analysis.files = figures
        .iter()
        .zip(&has_png)
        .flat_map(|(f, &png)| {
            let mut names = vec![f.file.clone(), format!("{}.csv", f.stem())];
            if png {
                names.push(format!("{}.png", f.stem()));
            }
            names
        })
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = tables(&analysis)
        .into_iter()
        .map(|(n, csv)| (n, csv.into_bytes()))
        .collect();
    files.push((
        "report.html".into(),
        html(&analysis, &figures, &has_png, &warnings).into_bytes(),
    ));
    // Last: a sweep counts a run as analysed once its analysis.json is there.
    files.push((
        "analysis.json".to_string(),
        credit_train::files::to_json(&analysis)?.into_bytes(),
    ));
    // A report written again: figure files of the earlier analysis that this one does not
    // write (a mode or an OOD score fewer, PNGs turned off) would otherwise stay beside it.
    // Only the files the earlier analysis.json lists are removed (before that list existed:
    // SVGs named as an analysis names its figures); anything else in the folder is the
    // user's. analysis.json goes first, so that the folder does not look complete while it is
    // rewritten.
    let earlier: Option<Vec<String>> = std::fs::read(out.join("analysis.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| {
            json.get("files")?.as_array().map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
        });
    let _ = std::fs::remove_file(out.join("analysis.json"));
    let current: std::collections::HashSet<&str> =
        analysis.files.iter().map(String::as_str).collect();
    let stale: Vec<String> = match earlier {
        Some(names) => names,
        None => std::fs::read_dir(out)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.ends_with(".svg") && is_analysis_figure(name))
                    .collect()
            })
            .unwrap_or_default(),
    };
    for name in stale {
        // Plain names only: a listed path never leaves the folder.
        let plain = Path::new(&name)
            .file_name()
            .is_some_and(|f| f == name.as_str());
        if plain && !current.contains(name.as_str()) {
            let _ = std::fs::remove_file(out.join(&name));
        }
    }
    progress.stage("writing the files", 1);
    let written = write_files(out, files, &figures, pngs);
    progress.finish();
    written
}

/// Whether `name` is one an analysis gives its figures' files (`.svg`, `.png` and `.csv` of
/// `layer{L}-*`, `reliability`, `reliability-*`, `ood-*`, `sparsity-*`, `ensemble-*`,
/// `classes-through-training`, `learning-curve`, `entropy-per-layer`; not the tables such as
/// `sparsity.csv`).
fn is_analysis_figure(name: &str) -> bool {
    let Some(stem) = [".svg", ".png", ".csv"]
        .iter()
        .find_map(|e| name.strip_suffix(e))
    else {
        return false;
    };
    let layer = stem.strip_prefix("layer").is_some_and(|rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with('-')
    });
    layer
        || stem == "reliability"
        || stem.starts_with("reliability-")
        || stem.starts_with("ood-")
        || stem.starts_with("sparsity-")
        || stem.starts_with("ensemble-")
        || stem == "classes-through-training"
        || stem == "learning-curve"
        || stem == "entropy-per-layer"
}

#[cfg(test)]
mod tests {
    use super::{is_analysis_figure, protocol, utc_date};

    #[test]
    fn the_presets_are_named_as_the_authors_protocols() {
        let mut c = credit_train::RunConfig::default();
        assert!(protocol(&c).unwrap().contains("2020"));
        // The widths and the data do not change the protocol; the optimizer does.
        c.model.sizes = vec![784, 200, 10];
        c.data.train_size = 60_000;
        assert!(protocol(&c).unwrap().contains("2020"));
        c.optimizer.lr = 0.05;
        assert_eq!(protocol(&c), None);
        let text = include_str!("../../../configs/mnist-2022.toml");
        let c = credit_train::RunConfig::parse(text, &[]).unwrap();
        assert!(protocol(&c).unwrap().contains("2022"));
    }

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
            "layer1-pi.png",
            "layer1-pi.csv",
            "reliability.svg",
            "entropy-per-layer.png",
        ] {
            assert!(is_analysis_figure(ours), "{ours}");
        }
        for theirs in [
            "my-drawing.svg",
            "layer.svg",
            "layers-notes.svg",
            "layer.png",
            "reliability.txt",
            "sparsity.csv",
            "entropy.csv",
            "notes.txt",
        ] {
            assert!(!is_analysis_figure(theirs), "{theirs}");
        }
    }
}
