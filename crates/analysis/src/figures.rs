//! SVG figures (plotters): histograms with log-scaled counts and curves with error bars.

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// Figure size in pixels.
const SIZE: (u32, u32) = (640, 400);
/// Series colours, in order (matplotlib's "tab10").
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One histogram series: a legend label and its values.
pub struct HistogramSeries<'a> {
    /// Legend label.
    pub label: String,
    /// Values to bin.
    pub values: &'a [f32],
}

/// One curve: legend label, x, y and the half-height of each error bar.
pub struct CurveSeries {
    /// Legend label.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates.
    pub y: Vec<f64>,
    /// Error bar half-heights (standard deviations).
    pub error: Vec<f64>,
}

/// A chart area with the title and margins every figure shares.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65);
    builder
}

/// The legend box every figure draws.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("cannot draw figure: {e}")
}

/// Bin counts of `values` over `[lo, hi]` into `bins` equal bins.
pub fn bin_counts(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let mut counts = vec![0; bins];
    let width = (hi - lo) / bins as f64;
    for &v in values {
        let v = f64::from(v);
        if !(lo..=hi).contains(&v) {
            continue;
        }
        let b = if width > 0.0 {
            (((v - lo) / width) as usize).min(bins - 1)
        } else {
            0
        };
        counts[b] += 1;
    }
    counts
}

/// Overlaid histograms with counts on a log axis, so that mass at the bounds (pi at 0 and 1,
/// xi at 0) does not hide the rest; `counted` names what a bar counts (the `y` axis:
/// connections, images, sub-networks). Empty bins are not drawn; values that are not finite are
/// left out, and a figure without any value says so ([`no_data_svg`]).
///
/// # Errors
/// If plotters fails to draw (no font).
///
/// # Panics
/// If `bins` is 0 (analysis settings are validated before).
pub fn histogram_svg(
    title: &str,
    x_label: &str,
    counted: &str,
    series: &[HistogramSeries],
    bins: usize,
) -> Result<String> {
    assert!(bins > 0, "at least one bin");
    let all = series
        .iter()
        .flat_map(|s| s.values.iter().map(|&v| f64::from(v)))
        .filter(|v| v.is_finite());
    if all.clone().next().is_none() {
        return no_data_svg(title);
    }
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|s| bin_counts(s.values, lo, hi, bins))
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let width = (hi - lo) / bins as f64;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = chart_builder(&root, title)
            .build_cartesian_2d(lo..hi, (0.5f64..max * 2.0).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(format!("{counted} (log scale)"))
            .x_label_formatter(&tick)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(plot_error)?;
        // One series: filled bars. Several: each as the outline of its bars over a light
        // fill, so that overlapping classes stay distinguishable.
        let overlaid = series.len() > 1;
        for (i, (s, counts)) in series.iter().zip(&counts).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let fill = color.mix(if overlaid { 0.12 } else { 0.55 }).filled();
            let bars = || {
                counts
                    .iter()
                    .enumerate()
                    .filter(|&(_, &c)| c > 0)
                    .map(|(b, &c)| {
                        let x0 = lo + b as f64 * width;
                        [(x0, 0.5), (x0 + width, c as f64)]
                    })
            };
            chart
                .draw_series(bars().map(|corners| Rectangle::new(corners, fill)))
                .map_err(plot_error)?
                .label(format!("{} (n = {})", s.label, s.values.len()))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            if overlaid {
                chart
                    .draw_series(
                        bars().map(|corners| Rectangle::new(corners, color.stroke_width(1))),
                    )
                    .map_err(plot_error)?;
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperMiddle)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// A tick label: integers without decimals.
fn tick(v: &f64) -> String {
    // `{:.0}` of a value just below zero is "-0".
    let v = if v.abs() < 5e-3 { 0.0 } else { *v };
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A figure that says it has no data (every value missing or not finite), instead of axes
/// over an empty or infinite range.
///
/// # Errors
/// If plotters cannot draw the text (no font).
pub fn no_data_svg(title: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (width, height) = SIZE;
        let style = ("sans-serif", 18).into_font().color(&BLACK);
        root.draw_text(title, &style, (20, 20))
            .map_err(plot_error)?;
        root.draw_text(
            "no data to show",
            &("sans-serif", 16).into_font().color(&BLACK.mix(0.6)),
            (width as i32 / 2 - 60, height as i32 / 2),
        )
        .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Curves with error bars on linear axes. With `y_from_zero` the `y` axis starts at zero
/// (errors, fractions), otherwise it spans the data (accuracies). Points that are not
/// finite are left out; with none left the figure says so ([`no_data_svg`]).
///
/// # Errors
/// If plotters fails to draw (no font).
pub fn curves_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[CurveSeries],
    y_from_zero: bool,
) -> Result<String> {
    let finite = |s: &CurveSeries| {
        let keep: Vec<usize> = (0..s.x.len().min(s.y.len()))
            .filter(|&i| s.x[i].is_finite() && s.y[i].is_finite())
            .collect();
        CurveSeries {
            label: s.label.clone(),
            x: keep.iter().map(|&i| s.x[i]).collect(),
            y: keep.iter().map(|&i| s.y[i]).collect(),
            error: keep
                .iter()
                .map(|&i| {
                    s.error
                        .get(i)
                        .copied()
                        .filter(|e| e.is_finite())
                        .unwrap_or(0.0)
                })
                .collect(),
        }
    };
    let series: Vec<CurveSeries> = series.iter().map(finite).collect();
    let series = series.as_slice();
    if series.iter().all(|s| s.x.is_empty()) {
        return no_data_svg(title);
    }
    let x_lo = series
        .iter()
        .flat_map(|s| s.x.iter().copied())
        .fold(f64::INFINITY, f64::min);
    let x_hi = series
        .iter()
        .flat_map(|s| s.x.iter().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    let bars = || {
        series
            .iter()
            .flat_map(|s| s.y.iter().zip(&s.error).map(|(y, e)| (y - e, y + e)))
            .filter(|(lo, hi)| lo.is_finite() && hi.is_finite())
    };
    let y_hi = bars().map(|b| b.1).fold(f64::NEG_INFINITY, f64::max);
    let y_lo = bars().map(|b| b.0).fold(f64::INFINITY, f64::min);
    let (y_lo, y_hi) = if !y_hi.is_finite() {
        (0.0, 1.0)
    } else if y_from_zero {
        // All zero: a unit axis, not eleven ticks labelled 0.
        (0.0, if y_hi > 0.0 { y_hi * 1.08 } else { 1.0 })
    } else {
        let pad = ((y_hi - y_lo) * 0.1).max(0.05);
        (y_lo - pad, y_hi + pad)
    };
    let pad = ((x_hi - x_lo) * 0.03).max(1e-9);
    let distinct_x = {
        let mut xs: Vec<f64> = series.iter().flat_map(|s| s.x.iter().copied()).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs.len()
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = chart_builder(&root, title)
            .build_cartesian_2d(x_lo - pad..x_hi + pad, y_lo..y_hi)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(distinct_x.clamp(2, 11))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .draw()
            .map_err(plot_error)?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = s.x.iter().copied().zip(s.y.iter().copied()).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .map_err(plot_error)?;
            chart
                .draw_series(s.x.iter().zip(&s.y).zip(&s.error).map(|((&x, &y), &e)| {
                    let low = if y_from_zero { (y - e).max(0.0) } else { y - e };
                    ErrorBar::new_vertical(x, low, y, y + e, color.stroke_width(1), 6)
                }))
                .map_err(plot_error)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_without_finite_data_say_so() {
        let empty = CurveSeries {
            label: "a".into(),
            x: vec![],
            y: vec![],
            error: vec![],
        };
        let nan = CurveSeries {
            label: "b".into(),
            x: vec![1.0, 2.0],
            y: vec![f64::NAN, f64::INFINITY],
            error: vec![0.0, 0.0],
        };
        for series in [vec![], vec![empty], vec![nan]] {
            let svg = curves_svg("t", "x", "y", &series, false).unwrap();
            assert!(svg.contains("no data to show"));
        }
        let values = [f32::NAN];
        let histogram = [HistogramSeries {
            label: "h".into(),
            values: &values,
        }];
        assert!(
            histogram_svg("t", "x", "connections", &histogram, 5)
                .unwrap()
                .contains("no data")
        );
        assert!(
            histogram_svg("t", "x", "connections", &[], 5)
                .unwrap()
                .contains("no data")
        );
        // One finite value among others draws a figure.
        let partly = CurveSeries {
            label: "c".into(),
            x: vec![1.0, 2.0],
            y: vec![0.5, f64::NAN],
            error: vec![f64::NAN, 0.0],
        };
        let svg = curves_svg("t", "x", "y", &[partly], true).unwrap();
        assert!(!svg.contains("no data"));
    }
}
