//! The figures of an analysis, in the report's groups:
//!
//! - per layer one row of five panels: the distributions of `pi`, `xi` and `m` (exact masses
//!   at the bounds as separate bars with their counts), `m` by class, and the perturbation
//!   curves with the random-deletion control, on one `y` axis for all layers;
//! - training: the learning curves (loss and accuracy) and the classes through training, one
//!   panel per layer, with the learning-rate steps marked;
//! - the entropy per layer (Monte Carlo beside the closed form) and its distribution;
//! - the ensemble of sampled sub-networks: accuracy and NLL against the ensemble size, the
//!   histogram of the members' accuracies;
//! - the pruning curve over thresholds on `pi`;
//! - calibration: one overlaid reliability diagram over a histogram of confidences;
//! - the out-of-distribution score histograms.
//!
//! Colours: a class of connection has one hue everywhere ([`CLASS_COLOURS`]).

use anyhow::Result;

use super::Figure;
use crate::analyze::{AnalysedRun, Analysis};
use crate::classes::ConnectionClass;
use crate::figures::{
    Annotation, BULK, Bins, CLASS_COLOURS, EXACT_COLOUR, HistogramSeries, Mark, NEUTRAL, Panel,
    Plot, SERIES, Series, Style, bin_values, finite_range, histogram_panel, layer_colour,
};
use crate::params::LayerParams;
use crate::perturb::Curve;

/// One panel of a layer's row: five side by side fit a 1280 px window at their own size.
const LAYER_PANEL: (u32, u32) = (236, 226);
/// The legend band of a layer's row (the same on all five, so that their axes align).
const LAYER_BAND: u32 = 76;
/// One panel of the other groups.
const PANEL: (u32, u32) = (400, 270);
/// A panel of a figure with one panel per layer.
const PER_LAYER_PANEL: (u32, u32) = (300, 250);

fn class_colour(c: ConnectionClass) -> plotters::style::RGBColor {
    match c {
        ConnectionClass::VeryImportant => CLASS_COLOURS[0],
        ConnectionClass::Unimportant => CLASS_COLOURS[1],
        ConnectionClass::Variable => CLASS_COLOURS[2],
    }
}

/// `n` with thousands separated: 78,400.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The epochs after which the learning rate changed, as marks between that epoch and the
/// next, and their legend label ("lr × 0.5" when every step has the same factor).
fn lr_marks(metrics: &[credit_train::EpochMetrics]) -> Vec<Mark> {
    let steps: Vec<(f64, f64)> = metrics
        .windows(2)
        .filter(|w| w[0].learning_rate > 0.0 && w[1].learning_rate > 0.0)
        .filter(|w| (w[1].learning_rate / w[0].learning_rate - 1.0).abs() > 1e-9)
        .map(|w| {
            (
                w[0].epoch as f64 + 0.5,
                w[1].learning_rate / w[0].learning_rate,
            )
        })
        .collect();
    let same = steps.windows(2).all(|w| (w[0].1 - w[1].1).abs() < 1e-9);
    let label = match steps.first() {
        Some(&(_, factor)) if same => format!("learning rate × {}", trim(factor)),
        _ => "learning-rate step".to_string(),
    };
    steps
        .into_iter()
        .map(|(x, _)| Mark {
            x,
            label: label.clone(),
            colour: plotters::style::RGBColor(150, 150, 150),
        })
        .collect()
}

/// Ticks at every epoch for a run of up to 8 epochs (no 0.5 epoch); nice numbers otherwise.
fn epoch_ticks(epochs: &[f64]) -> Option<Vec<f64>> {
    (epochs.len() <= 8).then(|| epochs.to_vec())
}

/// A factor without trailing zeros: 0.5, 0.1, 2.
fn trim(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The learning curves: loss and accuracy, train and test, mean-field and (where
/// `metrics.csv` has it) one sampled network per epoch, with the learning-rate steps marked.
fn learning_curves(
    metrics: &[credit_train::EpochMetrics],
    spike_slab: bool,
) -> Result<Option<Figure>> {
    if metrics.is_empty() {
        return Ok(None);
    }
    let epochs: Vec<f64> = metrics.iter().map(|m| m.epoch as f64).collect();
    let marks = lr_marks(metrics);
    let col =
        |f: fn(&credit_train::EpochMetrics) -> f64| metrics.iter().map(f).collect::<Vec<f64>>();
    let style = if epochs.len() > 30 {
        Style::Thin
    } else {
        Style::Line
    };
    let test = if spike_slab {
        "test, mean-field (noise on)"
    } else {
        "test"
    };
    let mut loss = Panel::new("Loss", "epoch", "cross-entropy (nats)").with(vec![
        Series::line(
            "train (during the epoch)",
            SERIES[2],
            style,
            epochs.clone(),
            col(|m| m.train_loss),
        ),
        Series::line(test, SERIES[0], style, epochs.clone(), col(|m| m.test_loss)),
    ]);
    loss.y_from_zero = true;
    loss.marks.clone_from(&marks);
    loss.x_ticks = epoch_ticks(&epochs);
    let mut accuracy = Panel::new("Accuracy", "epoch", "accuracy (%)").with(vec![
        Series::line(
            "train (during the epoch)",
            SERIES[2],
            style,
            epochs.clone(),
            col(|m| m.train_accuracy_pct),
        ),
        Series::line(
            test,
            SERIES[0],
            style,
            epochs.clone(),
            col(|m| m.test_accuracy_pct),
        ),
    ]);
    let sampled = metrics
        .iter()
        .any(|m| m.test_accuracy_sampled_pct.is_some());
    if sampled {
        accuracy.series.push(Series::line(
            "test, one sampled network",
            SERIES[1],
            style,
            epochs.clone(),
            metrics
                .iter()
                .map(|m| m.test_accuracy_sampled_pct.unwrap_or(f64::NAN))
                .collect(),
        ));
    }
    accuracy.marks = marks;
    accuracy.x_ticks = epoch_ticks(&epochs);
    let steps = if accuracy.marks.is_empty() {
        ""
    } else {
        "; dashed lines: the learning-rate steps"
    };
    let caption = format!(
        "Learning curves: the cross-entropy and the accuracy of the training images during \
         each epoch and of the test images after it (metrics.csv){}{steps}.",
        match (spike_slab, sampled) {
            (true, true) => {
                ", with the mean-field network's noise on, and for one network sampled after \
                 the epoch (each weight 0 with probability pi, else drawn from N(m, xi))"
            }
            (true, false) => ", with the mean-field network's noise on",
            (false, _) => "",
        }
    );
    Ok(Some(Figure::new(
        "learning-curve",
        "Training",
        caption,
        &Plot::row(vec![loss, accuracy], PER_LAYER_PANEL),
    )?))
}

/// The percentages of very important and unimportant connections of every layer against
/// the epoch, from `metrics.csv` (runs of earlier versions have none): one panel per layer
/// on one `y` axis.
fn classes_through_training(
    metrics: &[credit_train::EpochMetrics],
    a: &Analysis,
) -> Result<Option<Figure>> {
    // Rows of an earlier version have no classes (a run resumed across versions): the rows
    // that have them are drawn.
    let layers = metrics.iter().map(|m| m.layers.len()).max().unwrap_or(0);
    let metrics: Vec<credit_train::EpochMetrics> = metrics
        .iter()
        .filter(|m| m.layers.len() == layers)
        .cloned()
        .collect();
    let metrics = metrics.as_slice();
    if layers == 0 {
        return Ok(None);
    }
    let epochs: Vec<f64> = metrics.iter().map(|m| m.epoch as f64).collect();
    let style = if epochs.len() > 30 {
        Style::Thin
    } else {
        Style::Line
    };
    let marks = lr_marks(metrics);
    let top = metrics
        .iter()
        .flat_map(|m| {
            m.layers
                .iter()
                .flat_map(|c| [c.very_important, c.unimportant])
        })
        .fold(0.0f64, f64::max)
        * 100.0;
    let panels = (0..layers)
        .map(|l| {
            let mut p = Panel::new(
                capitalised(&a.layer_name(l + 1)),
                "epoch",
                "connections (%)",
            )
            .with(vec![
                Series::line(
                    "very important (pi = 0, xi = 0)",
                    class_colour(ConnectionClass::VeryImportant),
                    style,
                    epochs.clone(),
                    metrics
                        .iter()
                        .map(|m| 100.0 * m.layers[l].very_important)
                        .collect(),
                ),
                Series::line(
                    "unimportant (pi = 1)",
                    class_colour(ConnectionClass::Unimportant),
                    style,
                    epochs.clone(),
                    metrics
                        .iter()
                        .map(|m| 100.0 * m.layers[l].unimportant)
                        .collect(),
                ),
            ]);
            p.y_range = Some((0.0, (top * 1.06).max(1.0)));
            p.marks.clone_from(&marks);
            p.x_ticks = epoch_ticks(&epochs);
            p
        })
        .collect();
    let steps = if marks.is_empty() {
        ""
    } else {
        "; dashed lines: the learning-rate steps"
    };
    Ok(Some(Figure::new(
        "classes-through-training",
        "Training",
        format!(
            "Connection classes through training: the percentage of very important (pi = 0 \
             and xi = 0 exactly) and unimportant (pi = 1 exactly) connections of each layer \
             after each epoch (metrics.csv), on one y axis{steps}."
        ),
        &Plot::row(panels, PER_LAYER_PANEL),
    )?))
}

/// A distribution whose bounds hold exact masses: the values strictly inside as bins, each
/// exact mass as a separate dark bar beside the range with its count above it.
fn with_exact_masses(
    title: String,
    axis: &str,
    values: &[f32],
    bounds: &[f64],
    bins: usize,
) -> (Panel, Vec<(f64, usize)>) {
    let inside: Vec<f32> = values
        .iter()
        .copied()
        .filter(|&v| !bounds.iter().any(|&b| f64::from(v) == b))
        .collect();
    let exact: Vec<(f64, usize)> = bounds
        .iter()
        .map(|&b| (b, values.iter().filter(|&&v| f64::from(v) == b).count()))
        .collect();
    let (lo, hi) = finite_range([inside.as_slice()])
        .map_or((bounds[0], bounds[0] + 1.0), |(lo, hi)| {
            (lo.min(bounds[0]), hi.max(*bounds.last().unwrap_or(&hi)))
        });
    let width = (hi - lo) / bins as f64;
    let mut panel = Panel::new(title, axis, "connections (log scale)")
        .log()
        .with(vec![Series::bins(
            "strictly inside",
            BULK,
            Style::Bars,
            bin_values(&inside, lo, hi, bins),
        )]);
    // Exact masses two bins outside the range.
    let mut exact_bins = Bins::default();
    for &(b, n) in &exact {
        let centre = if b <= lo {
            lo - 2.0 * width
        } else {
            hi + 2.0 * width
        };
        exact_bins.lo.push(centre - width);
        exact_bins.hi.push(centre + width);
        exact_bins.count.push(n as f64);
        if n > 0 {
            panel.annotations.push(Annotation {
                x: centre,
                y: n as f64,
                text: thousands(n),
            });
        }
    }
    let mut exact_series =
        Series::bins("exactly at a bound", EXACT_COLOUR, Style::Bars, exact_bins);
    // In the data, the masses sit at their values, not where they are drawn.
    exact_series.data_x = Some(exact.iter().map(|&(b, _)| b).collect());
    panel.series.push(exact_series);
    panel.x_range = Some((
        lo - 3.5 * width,
        hi + if bounds.len() > 1 { 3.5 * width } else { width },
    ));
    // Ticks only over the values' own range, not under the bars drawn beside it.
    panel.x_ticks = Some(crate::figures::nice_ticks(lo, hi, 3));
    (panel, exact)
}

/// The five panels of a layer's row.
fn layer_row(
    a: &Analysis,
    n: usize,
    p: &LayerParams,
    perturbation_top: f64,
) -> Result<Vec<Figure>> {
    let bins = a.config.bins;
    let total = p.len();
    let name = capitalised(&a.layer_name(n));
    let group = format!("{name} ({} → {} units)", p.d_input, p.d_output);
    let pct = |k: usize| 100.0 * k as f64 / total.max(1) as f64;
    let mut figures = Vec::new();

    let (pi_panel, exact) = with_exact_masses(
        format!("{name}: pi"),
        "spike probability pi",
        &p.pi,
        &[0.0, 1.0],
        bins,
    );
    figures.push(Figure::new(
        &format!("layer{n}-pi"),
        &group,
        format!(
            "{name}: distribution of the spike probability pi of its {} connections; the \
             exact masses at pi = 0 and pi = 1 as separate dark bars with their counts.",
            thousands(total)
        ),
        &Plot::single(pi_panel, LAYER_PANEL)
            .band(LAYER_BAND)
            .notes(vec![
                format!(
                    "pi = 0 exactly: {} ({:.1}%)",
                    thousands(exact[0].1),
                    pct(exact[0].1)
                ),
                format!(
                    "pi = 1 exactly: {} ({:.1}%)",
                    thousands(exact[1].1),
                    pct(exact[1].1)
                ),
            ]),
    )?);

    let (xi_panel, exact) = with_exact_masses(
        format!("{name}: xi"),
        "slab variance xi",
        &p.xi,
        &[0.0],
        bins,
    );
    figures.push(Figure::new(
        &format!("layer{n}-xi"),
        &group,
        format!(
            "{name}: distribution of the slab variance xi; the exact mass at xi = 0 as a \
             separate dark bar with its count."
        ),
        &Plot::single(xi_panel, LAYER_PANEL)
            .band(LAYER_BAND)
            .notes(vec![format!(
                "xi = 0 exactly: {} ({:.1}%)",
                thousands(exact[0].1),
                pct(exact[0].1)
            )]),
    )?);

    let mut m_panel = histogram_panel(
        &format!("{name}: m"),
        "slab mean m",
        "connections",
        &[HistogramSeries {
            label: "m".into(),
            values: &p.m,
        }],
        bins,
    );
    for s in &mut m_panel.series {
        s.in_legend = false;
    }
    let (m_lo, m_hi) = finite_range([p.m.as_slice()]).unwrap_or((0.0, 1.0));
    figures.push(Figure::new(
        &format!("layer{n}-m"),
        &group,
        format!("{name}: distribution of the slab mean m (all connections)."),
        &Plot::single(m_panel, LAYER_PANEL)
            .band(LAYER_BAND)
            .notes(vec![
                format!("{} connections", thousands(total)),
                // The values' own extremes (the bins' range is widened when they are equal).
                match p.m.iter().filter(|v| v.is_finite()).fold(
                    None,
                    |r: Option<(f32, f32)>, &v| {
                        Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
                    },
                ) {
                    Some((lo, hi)) => format!("m from {lo:.2} to {hi:.2}"),
                    None => "no finite m".to_string(),
                },
            ]),
    )?);

    let classes = p.classes(a.config.tolerance);
    let mut by_class = Panel::new(
        format!("{name}: m by class"),
        "slab mean m",
        "connections (log scale)",
    )
    .log();
    for c in ConnectionClass::ALL {
        let values: Vec<f32> = (0..p.len())
            .filter(|&k| classes[k] == c)
            .map(|k| p.m[k])
            .collect();
        by_class.series.push(Series::bins(
            format!("{} ({})", c.label(), thousands(values.len())),
            class_colour(c),
            Style::Steps,
            bin_values(&values, m_lo, m_hi, bins),
        ));
    }
    figures.push(Figure::new(
        &format!("layer{n}-m-by-class"),
        &group,
        format!(
            "{name}: the slab mean m within each class of connection, as outlines so that \
             no class hides another (very important: pi = 0 and xi = 0; unimportant: pi = 1; \
             variable: the rest)."
        ),
        &Plot::single(by_class, LAYER_PANEL).band(LAYER_BAND),
    )?);

    if let Some(pert) = a.perturbation.iter().find(|q| q.layer == n) {
        let series = |label: &str, colour, c: &Curve| {
            Series::with_sd(
                label,
                colour,
                Style::Line,
                c.fractions.clone(),
                c.error_mean_pct.clone(),
                c.error_sd_pct.clone(),
            )
        };
        let mut panel = Panel::new(
            format!("{name}: perturbation"),
            "fraction f perturbed",
            "test error (%)",
        )
        .with(vec![
            series(
                "very important removed",
                CLASS_COLOURS[0],
                &pert.very_important_removed,
            ),
            series(
                "as many variable removed",
                CLASS_COLOURS[2],
                &pert.variable_removed,
            ),
            series(
                "unimportant given N(0,1)",
                CLASS_COLOURS[1],
                &pert.unimportant_randomised,
            ),
            series(
                "as many removed at random",
                CLASS_COLOURS[3],
                &pert.random_removed,
            ),
        ]);
        panel.y_range = Some((0.0, perturbation_top));
        figures.push(Figure::new(
            &format!("layer{n}-perturbation"),
            &group,
            format!(
                "{name}: test error of sampled networks against the perturbed fraction f \
                 (mean and sd over {} sampled networks), on the same y axis for every layer: a \
                 fraction f of the very important connections removed, as many variable or \
                 random ones removed, a fraction f of the unimportant ones given N(0, 1) \
                 weights.",
                a.config.repetitions
            ),
            &Plot::single(panel, LAYER_PANEL).band(LAYER_BAND),
        )?);
    }
    Ok(figures)
}

/// The entropy per layer: the Monte Carlo mean (bars: the spread over the layer's
/// connections, one sd) beside the closed form's mean, and the distribution of the
/// connections' entropies.
fn entropy_figure(run: &AnalysedRun) -> Result<Option<Figure>> {
    let a = &run.analysis;
    if a.layers.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = a.layers.iter().map(|l| a.layer_name(l.layer)).collect();
    let x: Vec<f64> = (1..=a.layers.len()).map(|l| l as f64).collect();
    // Drawn beside each layer's name, written at it in the data.
    let beside = |offset: f64, mut series: Series| {
        if let crate::figures::Data::Points { x: drawn, .. } = &mut series.data {
            series.data_x = Some(drawn.clone());
            drawn.iter_mut().for_each(|x| *x += offset);
        }
        series
    };
    let mut means = Panel::new("Mean entropy per layer", "", "entropy (nats)")
        .categories(names)
        .with(vec![
            beside(
                -0.12,
                Series::with_sd(
                    "Monte Carlo (bars: sd over connections)",
                    BULK,
                    Style::Points,
                    x.clone(),
                    a.layers.iter().map(|l| l.entropy_mean).collect(),
                    a.layers.iter().map(|l| l.entropy_sd).collect(),
                ),
            ),
            beside(
                0.12,
                Series::line(
                    "with the slab term in closed form",
                    SERIES[5],
                    Style::Points,
                    x.clone(),
                    a.layers
                        .iter()
                        .map(|l| l.entropy_closed_form_mean)
                        .collect(),
                ),
            ),
        ]);
    means.series.push(
        Series::line(
            "zero (reference)",
            NEUTRAL,
            Style::Reference,
            vec![0.5, x.len() as f64 + 0.5],
            vec![0.0, 0.0],
        )
        .unlabelled(),
    );
    let per_connection: Vec<Vec<f32>> = run
        .entropies
        .iter()
        .map(|e| e.iter().map(|&v| v as f32).collect())
        .collect();
    let mut panels = vec![means];
    if let Some((lo, hi)) = finite_range(per_connection.iter().map(Vec::as_slice)) {
        let mut spread = Panel::new(
            "Entropy of each connection",
            "entropy (nats)",
            "connections (log scale)",
        )
        .log();
        for (l, values) in per_connection.iter().enumerate() {
            spread.series.push(Series::bins(
                a.layer_name(l + 1),
                layer_colour(l),
                Style::Steps,
                bin_values(values, lo, hi, a.config.bins),
            ));
        }
        panels.push(spread);
    }
    Ok(Some(Figure::new(
        "entropy-per-layer",
        "Entropy",
        format!(
            "Entropy of the connections' weight distributions (nats), per layer: the \
             differential entropy of the spike-and-slab density with the spike as a box of \
             width 2e-4 around 0, its slab expectation by Monte Carlo ({} draws \
             per connection) beside the closed form -(1-pi) E[ln((1-pi) N(z)/sqrt(xi))], \
             exact where the box is negligible under the slab. It is negative where slabs are \
             narrow (ln(2 pi e xi)/2 < 0 for xi < 0.059) and 0 for a connection that is always \
             absent or fixed. The bars are the spread over the layer's connections, not an \
             uncertainty of the mean.",
            a.config.entropy_samples
        ),
        &Plot::row(panels, PANEL),
    )?))
}

/// The ensemble of sampled sub-networks: the accuracy and NLL of the ensemble of the first
/// `k` members against `k`, and the histogram of the members' accuracies.
fn ensemble_figures(a: &Analysis) -> Result<Vec<Figure>> {
    let Some(s) = &a.accuracy.subnetworks else {
        return Ok(Vec::new());
    };
    let mut figures = Vec::new();
    let k = s.accuracies_pct.len();
    if !s.ensemble_by_size_pct.is_empty() {
        let sizes: Vec<f64> = (1..=s.ensemble_by_size_pct.len())
            .map(|k| k as f64)
            .collect();
        let accuracy = Panel::new(
            "Accuracy",
            "sub-networks in the ensemble, k",
            "test accuracy (%)",
        )
        .with(vec![
            Series::line(
                "ensemble of the first k",
                SERIES[0],
                Style::Line,
                sizes.clone(),
                s.ensemble_by_size_pct.clone(),
            ),
            Series::line(
                format!("mean of the {k} members"),
                NEUTRAL,
                Style::Dashed,
                vec![1.0, sizes.len() as f64],
                vec![s.mean_pct; 2],
            ),
            Series::line(
                "mean network (noise off)",
                SERIES[2],
                Style::Dashed,
                vec![1.0, sizes.len() as f64],
                vec![a.accuracy.mean_network_pct; 2],
            ),
        ]);
        let nll = Panel::new(
            "Negative log-likelihood",
            "sub-networks in the ensemble, k",
            "test NLL (nats)",
        )
        .with(vec![Series::line(
            "ensemble of the first k",
            SERIES[0],
            Style::Line,
            sizes,
            s.ensemble_nll_by_size.clone(),
        )]);
        figures.push(Figure::new(
            "ensemble-size",
            "Ensemble of sub-networks",
            format!(
                "Ensemble size: the test accuracy and the mean negative log-likelihood of the \
                 ensemble (mean softmax) of the first k of {k} sampled sub-networks against k, \
                 beside the members' mean accuracy and the mean network's."
            ),
            &Plot::row(vec![accuracy, nll], PANEL),
        )?);
    }
    let members: Vec<f32> = s.accuracies_pct.iter().map(|&a| a as f32).collect();
    // The axis spans the members and their ensemble; the bins span the axis (members of
    // one accuracy each get a narrow bar, not one filling the panel).
    let lo = s.min_pct.min(s.ensemble_pct);
    let hi = s.max_pct.max(s.ensemble_pct);
    let pad = ((hi - lo) * 0.05).max(0.01);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut panel = Panel::new(
        "Accuracies of the sampled sub-networks",
        "test accuracy (%)",
        "sub-networks",
    )
    .from_zero()
    .with(vec![Series::bins(
        format!("sampled sub-networks (n = {k})"),
        BULK,
        Style::Bars,
        bin_values(&members, lo, hi, k.clamp(5, 20)),
    )]);
    for (x, label, colour) in [
        (
            s.mean_pct,
            format!("their mean, {:.2}%", s.mean_pct),
            NEUTRAL,
        ),
        (
            s.ensemble_pct,
            format!("their ensemble, {:.2}%", s.ensemble_pct),
            SERIES[0],
        ),
    ] {
        panel.marks.push(Mark { x, label, colour });
    }
    panel.x_range = Some((lo, hi));
    figures.push(Figure::new(
        "ensemble-members",
        "Ensemble of sub-networks",
        format!(
            "The {k} sampled sub-networks' test accuracies (each weight drawn once: 0 with \
             probability pi, else from N(m, xi)), their mean and their ensemble's accuracy."
        ),
        &Plot::single(panel, PANEL),
    )?);
    Ok(figures)
}

/// The pruning curve: accuracies against the threshold on `pi`, and the hidden units cut
/// off.
fn sparsity_figure(a: &Analysis) -> Result<Option<Figure>> {
    let Some(s) = &a.sparsity else {
        return Ok(None);
    };
    let t = s.thresholds.clone();
    let accuracy = Panel::new(
        "Accuracy after pruning",
        "threshold t (pi > t removed)",
        "test accuracy (%)",
    )
    .with(vec![
        Series::line(
            "mean network (1 - pi) m",
            SERIES[2],
            Style::Line,
            t.clone(),
            s.mean_network_accuracy_pct.clone(),
        ),
        Series::with_sd(
            format!("sampled networks (mean, sd of {})", s.samples),
            SERIES[0],
            Style::Line,
            t.clone(),
            s.sampled_accuracy_mean_pct.clone(),
            s.sampled_accuracy_sd_pct.clone(),
        ),
    ]);
    let mut panels = vec![accuracy];
    if !s.hidden.is_empty() {
        let mut units = Panel::new(
            "Hidden units cut off",
            "threshold t (pi > t removed)",
            "units (%)",
        )
        .from_zero();
        for h in &s.hidden {
            let colour = layer_colour(h.layer - 1);
            units.series.push(Series::line(
                format!("hidden layer {}: no incoming", h.layer),
                colour,
                Style::Line,
                t.clone(),
                h.no_incoming.iter().map(|v| 100.0 * v).collect(),
            ));
            units.series.push(Series::line(
                format!("hidden layer {}: no outgoing", h.layer),
                colour,
                Style::Dashed,
                t.clone(),
                h.no_outgoing.iter().map(|v| 100.0 * v).collect(),
            ));
        }
        panels.push(units);
    }
    let none_cut = s.hidden.iter().all(|h| {
        h.no_incoming
            .iter()
            .chain(&h.no_outgoing)
            .all(|&v| v == 0.0)
    });
    let ratios: Vec<String> = t
        .iter()
        .zip(&s.compression_ratio)
        .map(|(t, r)| match r {
            Some(r) => format!("{t}: {r:.2}"),
            None => format!("{t}: nothing kept"),
        })
        .collect();
    Ok(Some(Figure::new(
        "sparsity-pruning",
        "Pruning",
        format!(
            "Pruning by spike probability: the test accuracy with every connection of pi > t \
             removed (pi = 1 is always removed), and the percentage of each hidden layer's \
             units with every incoming, or every outgoing, connection removed. Compression \
             ratio (all / kept connections) at t = {} (sparsity.csv).",
            ratios.join(", ")
        ),
        &Plot::row(panels, PANEL).notes(if none_cut && !s.hidden.is_empty() {
            vec!["No hidden unit is cut off at any threshold.".to_string()]
        } else {
            Vec::new()
        }),
    )?))
}

/// One reliability diagram for every way of predicting, over the histogram of their
/// confidences.
fn calibration_figure(a: &Analysis) -> Result<Option<Figure>> {
    if a.calibration.is_empty() {
        return Ok(None);
    }
    let mut diagram = Panel::new(
        "Reliability",
        "confidence (largest probability)",
        "accuracy",
    )
    .with(vec![Series::line(
        "perfectly calibrated",
        NEUTRAL,
        Style::Reference,
        vec![0.0, 1.0],
        vec![0.0, 1.0],
    )]);
    diagram.x_range = Some((0.0, 1.0));
    diagram.y_range = Some((0.0, 1.0));
    let mut counts = Panel::new(
        "Confidences",
        "confidence (largest probability)",
        "test images (log scale)",
    )
    .log();
    counts.x_range = Some((0.0, 1.0));
    for (i, m) in a.calibration.iter().enumerate() {
        let colour = SERIES[[0, 2, 1, 3][i % 4]];
        let filled: Vec<_> = m.calibration.bins.iter().filter(|b| b.count > 0).collect();
        diagram.series.push(Series::line(
            format!("{} (ECE {:.3})", m.mode, m.calibration.ece),
            colour,
            Style::Line,
            filled.iter().map(|b| b.confidence).collect(),
            filled.iter().map(|b| b.accuracy).collect(),
        ));
        counts.series.push(
            Series::bins(
                m.mode.clone(),
                colour,
                Style::Steps,
                Bins {
                    lo: m.calibration.bins.iter().map(|b| b.lower).collect(),
                    hi: m.calibration.bins.iter().map(|b| b.upper).collect(),
                    count: m.calibration.bins.iter().map(|b| b.count as f64).collect(),
                },
            )
            .unlabelled(),
        );
    }
    let bins = a.calibration[0].calibration.bins.len();
    let mut plot = Plot::row(vec![diagram, counts], (420, 250));
    plot.columns = 1;
    let ways = if a.calibration.len() > 1 {
        "for every way of predicting"
    } else {
        "of the network's predictions"
    };
    Ok(Some(Figure::new(
        "reliability",
        "Calibration",
        format!(
            "Reliability diagram: the accuracy of the test images in each of {bins} \
             equal-width confidence bins against their mean confidence, {ways} (empty bins \
             left out), above the number of images in each bin. NLL and Brier scores are in \
             the calibration table."
        ),
        &plot,
    )?))
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
            Figure::new(
                &format!("ood-{}", score.score.replace(' ', "-")),
                "Out of distribution",
                format!(
                    "{} of the test images and of {} (AUROC {:.3}, AUPR {:.3}).",
                    score.score,
                    ood.data.display(),
                    score.auroc,
                    score.aupr
                ),
                &Plot::single(
                    histogram_panel(
                        &format!("Out of distribution: {}", score.score),
                        &score.score,
                        "images",
                        &series,
                        run.analysis.config.bins,
                    ),
                    PANEL,
                ),
            )
        })
        .collect()
}

/// Draws every figure of an analysis, in the report's order.
///
/// # Errors
/// If plotters fails to draw one.
pub fn figures(run: &AnalysedRun) -> Result<Vec<Figure>> {
    let a = &run.analysis;
    let mut figures = Vec::new();
    for (l, (shape, weights)) in run.deterministic_weights.iter().enumerate() {
        let group = match shape.as_slice() {
            [out, inp] => format!("Layer {} ({inp} → {out} units)", l + 1),
            _ => format!("Layer {}", l + 1),
        };
        figures.push(Figure::new(
            &format!("layer{}-weights", l + 1),
            &group,
            format!("Layer {}: weights of the deterministic network.", l + 1),
            &Plot::single(
                histogram_panel(
                    &format!("Layer {}: weights", l + 1),
                    "weight w",
                    "connections",
                    &[HistogramSeries {
                        label: "w".into(),
                        values: weights,
                    }],
                    a.config.bins,
                ),
                PANEL,
            ),
        )?);
    }
    // One y axis for the perturbation curves of every layer.
    let perturbation_top = a
        .perturbation
        .iter()
        .flat_map(|p| {
            [
                &p.very_important_removed,
                &p.variable_removed,
                &p.unimportant_randomised,
                &p.random_removed,
            ]
            .into_iter()
            .flat_map(|c| {
                c.error_mean_pct
                    .iter()
                    .zip(&c.error_sd_pct)
                    .map(|(m, s)| m + s)
            })
        })
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.06;
    for (l, p) in run.params.iter().enumerate() {
        figures.extend(layer_row(a, l + 1, p, perturbation_top.min(100.0))?);
    }
    let spike_slab = a.model_kind != credit_train::ModelKind::Deterministic;
    figures.extend(learning_curves(&run.metrics, spike_slab)?);
    figures.extend(classes_through_training(&run.metrics, a)?);
    figures.extend(truncation_figure(a)?);
    figures.extend(entropy_figure(run)?);
    figures.extend(ensemble_figures(a)?);
    figures.extend(sparsity_figure(a)?);
    figures.extend(calibration_figure(a)?);
    figures.extend(ood_figures(run)?);
    Ok(figures)
}

/// `text` with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A recurrent run's test accuracy against the steps read before the readout.
fn truncation_figure(a: &Analysis) -> Result<Option<Figure>> {
    let Some(r) = &a.recurrent else {
        return Ok(None);
    };
    let t: Vec<f64> = (1..=r.steps).map(|t| t as f64).collect();
    let series = |label: &str, y: &[f64]| crate::figures::CurveSeries {
        label: label.to_string(),
        x: t.clone(),
        y: y.to_vec(),
        error: Vec::new(),
    };
    let panel = crate::figures::curves_panel(
        "Sequences cut after t steps",
        "steps read (t)",
        "test accuracy (%)",
        &[
            series("mean-field (noise on)", &r.truncated_mean_field_pct),
            series("mean network", &r.truncated_mean_network_pct),
        ],
        true,
    );
    Ok(Some(Figure::new(
        "recurrent-truncation",
        "Recurrence",
        format!(
            "Test accuracy when the readout reads the state after the first t of the {} \
             steps ({} inputs per step), for the mean-field network (noise on, the draws of \
             the mean-field accuracy) and the mean network; at t = {} the accuracies of the \
             table.",
            r.steps,
            a.sizes.first().copied().unwrap_or(0),
            r.steps
        ),
        &Plot::single(panel, crate::figures::SINGLE),
    )?))
}

#[cfg(test)]
mod tests {
    use super::{lr_marks, thousands};

    #[test]
    fn counts_have_thousands_separated() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (78_400, "78,400"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn learning_rate_steps_are_marked_between_epochs() {
        let row = |epoch: usize, learning_rate: f64| credit_train::EpochMetrics {
            epoch,
            learning_rate,
            ..Default::default()
        };
        let halving: Vec<_> = [0.1, 0.1, 0.05, 0.05, 0.025]
            .iter()
            .enumerate()
            .map(|(e, &lr)| row(e + 1, lr))
            .collect();
        let marks = lr_marks(&halving);
        assert_eq!(marks.iter().map(|m| m.x).collect::<Vec<_>>(), [2.5, 4.5]);
        assert!(marks.iter().all(|m| m.label == "learning rate × 0.5"));
        let constant: Vec<_> = (1..=5).map(|e| row(e, 0.01)).collect();
        assert!(lr_marks(&constant).is_empty());
        // Files written before the rate was recorded hold 0: no marks.
        let unknown: Vec<_> = (1..=5).map(|e| row(e, 0.0)).collect();
        assert!(lr_marks(&unknown).is_empty());
        let mixed: Vec<_> = [0.1, 0.05, 0.005]
            .iter()
            .enumerate()
            .map(|(e, &lr)| row(e + 1, lr))
            .collect();
        assert!(
            lr_marks(&mixed)
                .iter()
                .all(|m| m.label == "learning-rate step")
        );
    }
}
