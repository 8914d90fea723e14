//! Figures: panels of curves and histograms drawn as SVG with plotters, their data as CSV,
//! and PNG renderings of the SVG (resvg) for publication.
//!
//! One style for every figure: text of at least 12 px at the figure's own size, a light grid
//! at the labelled ticks only, legends and notes in a band below the panels (never over the
//! data), the same hue for the same thing across figures ([`CLASS_COLOURS`]), and dashed
//! vertical marks for events on the `x` axis (the learning-rate steps).
//!
//! plotters draws the axes, series and text; the ticks and the grid are placed here, so that a
//! log axis gets its decades, a categorical axis its names, and no axis a "-0".

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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

/// The hue of each class of connection in every figure: very important (blue), unimportant
/// (red), variable (green), and the random control (grey).
pub const CLASS_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(110, 110, 110),
];

/// Colours of series that are not classes of connection (ways of predicting, layers,
/// settings, protocols), in order: purple, orange, brown, cyan, pink, olive; none of the
/// classes' hues ([`CLASS_COLOURS`]).
pub const SERIES: [RGBColor; 6] = [
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
];

/// The bars of a single distribution (`pi`, `xi`, `m`, the members' accuracies): slate,
/// not a class's hue.
pub const BULK: RGBColor = RGBColor(96, 116, 145);

/// A reference value drawn beside the data (a mean over members): grey.
pub const NEUTRAL: RGBColor = RGBColor(120, 120, 120);

/// The colour of layer `l` (0-based) where layers are the series.
pub fn layer_colour(l: usize) -> RGBColor {
    SERIES[l % SERIES.len()]
}

/// The colour of exact masses (values exactly at a bound), drawn as separate bars.
pub const EXACT_COLOUR: RGBColor = RGBColor(60, 60, 60);

/// Font sizes in pixels at the figure's own size.
const TITLE_PX: u32 = 14;
const TEXT_PX: u32 = 12;

/// A sans-serif font `px` pixels high in the SVG (plotters writes a font's size divided by
/// 1.24 into the SVG's `font-size`).
fn font(px: u32) -> FontDesc<'static> {
    ("sans-serif", f64::from(px) * 1.24).into_font()
}
/// Height of one line of legend text, pixels.
const LINE_PX: u32 = 17;
/// The grid's colour (light) and the axes' colour.
const GRID: RGBColor = RGBColor(226, 226, 226);
const AXIS: RGBColor = RGBColor(90, 90, 90);
const MARK: RGBColor = RGBColor(150, 150, 150);
/// Reference lines (the diagonal of perfect calibration): a light solid grey.
const GRID_DARK: RGBColor = RGBColor(170, 170, 170);

/// How a panel's `y` values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Linear.
    Linear,
    /// Log10 of counts: decade ticks, empty bins left out (a count of 0 sits on the floor).
    Log,
}

/// A panel's `x` axis.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Linear, with nice ticks.
    Linear,
    /// Categories at `x = 1, 2, ...`, labelled with these names (layers, say).
    Categories(Vec<String>),
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line through the points, with a marker at each and error bars where `sd > 0`.
    Line,
    /// A solid line without markers (long series: epochs).
    Thin,
    /// A dashed line without markers.
    Dashed,
    /// Markers only, with error bars where `sd > 0` (categories).
    Points,
    /// Filled bars (one histogram alone).
    Bars,
    /// The outline of the bars as a step line, unfilled, so that overlaid histograms all stay
    /// visible.
    Steps,
    /// A thin dashed grey reference line (the diagonal of perfect calibration).
    Reference,
}

/// A series' values.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Points `(x, y)` with the half-height `sd` of an error bar each (0: none).
    Points {
        /// Abscissae.
        x: Vec<f64>,
        /// Ordinates.
        y: Vec<f64>,
        /// Error bar half-heights (standard deviations; 0 or empty for none).
        sd: Vec<f64>,
    },
    /// Histogram bins `[lo, hi)` and their counts.
    Bins {
        /// Lower edges.
        lo: Vec<f64>,
        /// Upper edges.
        hi: Vec<f64>,
        /// Counts.
        count: Vec<f64>,
    },
}

/// One series of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label (also the series' name in the CSV).
    pub label: String,
    /// Colour.
    pub colour: RGBColor,
    /// How it is drawn.
    pub style: Style,
    /// Its values.
    pub data: Data,
    /// Whether the legend shows it.
    pub in_legend: bool,
    /// Where the data file puts the bins, when they are drawn elsewhere (exact masses drawn
    /// beside the range are written at their values, with no upper edge).
    pub data_x: Option<Vec<f64>>,
}

impl Series {
    /// Points `(x, y)` without error bars.
    pub fn line(
        label: impl Into<String>,
        colour: RGBColor,
        style: Style,
        x: Vec<f64>,
        y: Vec<f64>,
    ) -> Self {
        Self {
            label: label.into(),
            colour,
            style,
            data: Data::Points {
                x,
                y,
                sd: Vec::new(),
            },
            in_legend: true,
            data_x: None,
        }
    }

    /// Points `(x, y)` with error bars of half-height `sd`.
    pub fn with_sd(
        label: impl Into<String>,
        colour: RGBColor,
        style: Style,
        x: Vec<f64>,
        y: Vec<f64>,
        sd: Vec<f64>,
    ) -> Self {
        Self {
            label: label.into(),
            colour,
            style,
            data: Data::Points { x, y, sd },
            in_legend: true,
            data_x: None,
        }
    }

    /// Bins with their counts.
    pub fn bins(label: impl Into<String>, colour: RGBColor, style: Style, bins: Bins) -> Self {
        Self {
            label: label.into(),
            colour,
            style,
            data: Data::Bins {
                lo: bins.lo,
                hi: bins.hi,
                count: bins.count,
            },
            in_legend: true,
            data_x: None,
        }
    }

    /// The same series, left out of the legend.
    #[must_use]
    pub fn unlabelled(mut self) -> Self {
        self.in_legend = false;
        self
    }
}

/// Histogram bins and counts (see [`bin_values`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bins {
    /// Lower edges.
    pub lo: Vec<f64>,
    /// Upper edges.
    pub hi: Vec<f64>,
    /// Counts.
    pub count: Vec<f64>,
}

/// A vertical dashed mark at `x` (a learning-rate step, a reference value).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Where.
    pub x: f64,
    /// Its legend label (marks with the same label share one legend entry).
    pub label: String,
    /// Colour (grey for events, a series' colour for a value of it).
    pub colour: RGBColor,
}

/// A text at a data point (a count above a bar), centred above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Abscissa.
    pub x: f64,
    /// Ordinate (in data units; for a log panel the count itself).
    pub y: f64,
    /// The text.
    pub text: String,
}

/// One set of axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Title above the axes.
    pub title: String,
    /// `x` axis label.
    pub x_label: String,
    /// `y` axis label.
    pub y_label: String,
    /// The `x` axis.
    pub x_axis: XAxis,
    /// The `y` scale.
    pub y_scale: Scale,
    /// A fixed `x` range (default: the data's, padded).
    pub x_range: Option<(f64, f64)>,
    /// A fixed `y` range (default: the data's; for a log panel, in counts). Set the same on
    /// panels that are compared.
    pub y_range: Option<(f64, f64)>,
    /// Whether a linear `y` axis starts at zero.
    pub y_from_zero: bool,
    /// The series.
    pub series: Vec<Series>,
    /// Vertical marks.
    pub marks: Vec<Mark>,
    /// Texts at data points.
    pub annotations: Vec<Annotation>,
    /// Ticks of a linear `x` axis at these values (the swept values of a sweep), instead of
    /// nice numbers.
    pub x_ticks: Option<Vec<f64>>,
}

impl Panel {
    /// An empty linear panel.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_axis: XAxis::Linear,
            y_scale: Scale::Linear,
            x_range: None,
            y_range: None,
            y_from_zero: false,
            series: Vec::new(),
            marks: Vec::new(),
            annotations: Vec::new(),
            x_ticks: None,
        }
    }

    /// With `y` on a log scale of counts.
    #[must_use]
    pub fn log(mut self) -> Self {
        self.y_scale = Scale::Log;
        self
    }

    /// With `y` from zero.
    #[must_use]
    pub fn from_zero(mut self) -> Self {
        self.y_from_zero = true;
        self
    }

    /// With categories on `x` at `1, 2, ...`.
    #[must_use]
    pub fn categories(mut self, names: Vec<String>) -> Self {
        self.x_axis = XAxis::Categories(names);
        self
    }

    /// With these series.
    #[must_use]
    pub fn with(mut self, series: Vec<Series>) -> Self {
        self.series = series;
        self
    }

    /// The finite `(x, y)` extent of the data, `y` including the error bars: `None` without
    /// any finite point.
    fn extent(&self) -> Option<((f64, f64), (f64, f64))> {
        let mut x = (f64::INFINITY, f64::NEG_INFINITY);
        let mut y = (f64::INFINITY, f64::NEG_INFINITY);
        let grow = |r: &mut (f64, f64), v: f64| {
            if v.is_finite() {
                r.0 = r.0.min(v);
                r.1 = r.1.max(v);
            }
        };
        for s in &self.series {
            match &s.data {
                Data::Points { x: xs, y: ys, sd } => {
                    for (i, (&a, &b)) in xs.iter().zip(ys).enumerate() {
                        if !(a.is_finite() && b.is_finite()) {
                            continue;
                        }
                        grow(&mut x, a);
                        let e = sd.get(i).copied().filter(|e| e.is_finite()).unwrap_or(0.0);
                        grow(&mut y, b - e);
                        grow(&mut y, b + e);
                    }
                }
                Data::Bins { lo, hi, count } => {
                    for ((&a, &b), &c) in lo.iter().zip(hi).zip(count) {
                        if a.is_finite() && b.is_finite() && c.is_finite() {
                            grow(&mut x, a);
                            grow(&mut x, b);
                            grow(&mut y, 0.0);
                            grow(&mut y, c);
                        }
                    }
                }
            }
        }
        (x.0 <= x.1 && y.0 <= y.1).then_some((x, y))
    }
}

/// A legend entry: label, colour, how its swatch is drawn.
type LegendEntry = (String, RGBColor, Style);

/// A figure: panels in a grid of `columns`, and a band below them with the legend and notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The panels, row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub columns: usize,
    /// Size of one panel, pixels.
    pub panel_size: (u32, u32),
    /// Lines of text below the legend.
    pub notes: Vec<String>,
    /// The least height of the legend band, pixels (figures shown side by side get the same,
    /// so that their axes align).
    pub band_px: u32,
}

impl Plot {
    /// Panels side by side in one row, each `panel_size`.
    pub fn row(panels: Vec<Panel>, panel_size: (u32, u32)) -> Self {
        let columns = panels.len().max(1);
        Self {
            panels,
            columns,
            panel_size,
            notes: Vec::new(),
            band_px: 0,
        }
    }

    /// One panel.
    pub fn single(panel: Panel, panel_size: (u32, u32)) -> Self {
        Self::row(vec![panel], panel_size)
    }

    /// With these notes below the legend.
    #[must_use]
    pub fn notes(mut self, notes: Vec<String>) -> Self {
        self.notes = notes;
        self
    }

    /// With a legend band at least `px` high.
    #[must_use]
    pub fn band(mut self, px: u32) -> Self {
        self.band_px = px;
        self
    }

    /// A panel's legend entries: its labelled series and marks, each label once, in order.
    fn panel_legend(p: &Panel) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = Vec::new();
        let series = p.series.iter().filter(|s| s.in_legend).map(|s| {
            let colour = if s.style == Style::Reference {
                MARK
            } else {
                s.colour
            };
            (s.label.clone(), colour, s.style)
        });
        let marks = p
            .marks
            .iter()
            .map(|m| (m.label.clone(), m.colour, Style::Dashed));
        for e in series.chain(marks) {
            if !e.0.is_empty() && !entries.iter().any(|x| x.0 == e.0) {
                entries.push(e);
            }
        }
        entries
    }

    /// The legend's entries: every labelled series and mark once, in order.
    fn legend(&self) -> Vec<LegendEntry> {
        let mut entries: Vec<LegendEntry> = Vec::new();
        for e in self.panels.iter().flat_map(Self::panel_legend) {
            if !entries.iter().any(|x| x.0 == e.0) {
                entries.push(e);
            }
        }
        entries
    }

    /// Whether each panel of a single row gets its own legend, below it: when no panel has
    /// every entry (a histogram beside a curve); otherwise one legend spans the figure.
    fn legend_per_panel(&self) -> bool {
        let single_row = self.columns > 1 && self.panels.len() <= self.columns;
        let all = self.legend().len();
        single_row
            && self
                .panels
                .iter()
                .all(|p| Self::panel_legend(p).len() < all)
    }

    /// The legend's layout in a band `width` wide: each entry with its `x` and line, and the
    /// number of lines.
    fn legend_layout(&self, width: u32) -> (Vec<(LegendEntry, u32, u32)>, u32) {
        // Each group of entries: its left edge, its width, its entries.
        let groups: Vec<(u32, u32, Vec<LegendEntry>)> = if self.legend_per_panel() {
            self.panels
                .iter()
                .enumerate()
                .map(|(c, p)| {
                    (
                        c as u32 * self.panel_size.0,
                        self.panel_size.0,
                        Self::panel_legend(p),
                    )
                })
                .collect()
        } else {
            vec![(0, width, self.legend())]
        };
        let mut placed = Vec::new();
        let mut lines = 0;
        for (origin, room, entries) in groups {
            let (mut x, mut line) = (8u32, 0u32);
            for entry in &entries {
                let w = 26 + text_width(&entry.0, TEXT_PX) + 14;
                if x > 8 && x + w > room {
                    x = 8;
                    line += 1;
                }
                placed.push((entry.clone(), origin + x, line));
                x += w;
            }
            if !entries.is_empty() {
                lines = lines.max(line + 1);
            }
        }
        (placed, lines)
    }

    /// Width and height of the whole figure, pixels.
    pub fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.columns.max(1)).max(1) as u32;
        let width = self.panel_size.0 * self.columns.max(1) as u32;
        (width, self.panel_size.1 * rows + self.band_height(width))
    }

    fn band_height(&self, width: u32) -> u32 {
        let (_, lines) = self.legend_layout(width);
        let notes: u32 = self
            .notes
            .iter()
            .map(|n| wrap(n, width.saturating_sub(16), TEXT_PX).len() as u32)
            .sum();
        let used = (lines + notes) * LINE_PX;
        let used = if used > 0 { used + 8 } else { 0 };
        used.max(self.band_px)
    }

    /// The figure as an SVG document.
    ///
    /// # Errors
    /// If plotters fails to draw.
    pub fn svg(&self) -> Result<String> {
        let (width, height) = self.size();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            let grid_height = height - self.band_height(width);
            let (grid, band) = root.split_vertically(grid_height);
            let rows = self.panels.len().div_ceil(self.columns.max(1)).max(1);
            let areas = grid.split_evenly((rows, self.columns.max(1)));
            for (panel, area) in self.panels.iter().zip(&areas) {
                draw_panel(&root, area, panel)?;
            }
            self.draw_band(&band, width)?;
            root.present().map_err(plot_error)?;
        }
        Ok(svg)
    }

    fn draw_band<DB: DrawingBackend>(
        &self,
        band: &DrawingArea<DB, plotters::coord::Shift>,
        width: u32,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (placed, lines) = self.legend_layout(width);
        let text = font(TEXT_PX).color(&BLACK);
        let left = text.pos(Pos::new(HPos::Left, VPos::Center));
        for ((label, colour, style), x, line) in &placed {
            let (label, colour, style) = (label, colour, style);
            let (x, line) = (*x, *line);
            let y = (4 + line * LINE_PX + LINE_PX / 2) as i32;
            let x = x as i32;
            match style {
                Style::Bars => band
                    .draw(&Rectangle::new(
                        [(x, y - 5), (x + 18, y + 5)],
                        colour.mix(0.7).filled(),
                    ))
                    .map_err(plot_error)?,
                Style::Steps => band
                    .draw(&Rectangle::new(
                        [(x, y - 5), (x + 18, y + 5)],
                        colour.stroke_width(2),
                    ))
                    .map_err(plot_error)?,
                Style::Dashed => {
                    for d in [0, 8, 16] {
                        band.draw(&PathElement::new(
                            [(x + d, y), (x + (d + 4).min(20), y)],
                            colour.stroke_width(2),
                        ))
                        .map_err(plot_error)?;
                    }
                }
                Style::Reference => band
                    .draw(&PathElement::new(
                        [(x, y), (x + 20, y)],
                        GRID_DARK.stroke_width(1),
                    ))
                    .map_err(plot_error)?,
                Style::Points => band
                    .draw(&Circle::new((x + 9, y), 4, colour.filled()))
                    .map_err(plot_error)?,
                Style::Line | Style::Thin => {
                    band.draw(&PathElement::new(
                        [(x, y), (x + 20, y)],
                        colour.stroke_width(2),
                    ))
                    .map_err(plot_error)?;
                    if *style == Style::Line {
                        band.draw(&Circle::new((x + 10, y), 3, colour.filled()))
                            .map_err(plot_error)?;
                    }
                }
            }
            band.draw_text(label, &left, (x + 26, y))
                .map_err(plot_error)?;
        }
        let grey = font(TEXT_PX).color(&RGBColor(70, 70, 70));
        let mut line = lines;
        for note in &self.notes {
            for piece in wrap(note, width.saturating_sub(16), TEXT_PX) {
                let y = (4 + line * LINE_PX + LINE_PX / 2) as i32;
                band.draw_text(
                    &piece,
                    &grey.pos(Pos::new(HPos::Left, VPos::Center)),
                    (8, y),
                )
                .map_err(plot_error)?;
                line += 1;
            }
        }
        Ok(())
    }

    /// The figure's data as CSV, one row per point, bin or mark:
    /// `panel,series,x,x_hi,y,y_sd` (bins: `x` and `x_hi` are the edges and `y` the count;
    /// marks: `x` only; empty where a column does not apply).
    pub fn csv(&self) -> String {
        let mut csv = String::from("panel,series,x,x_hi,y,y_sd\n");
        for p in &self.panels {
            let panel = csv_field(&p.title);
            for s in &p.series {
                let name = csv_field(&s.label);
                match &s.data {
                    Data::Points { x, y, sd } => {
                        for i in 0..x.len().min(y.len()) {
                            let e = sd.get(i).map_or_else(String::new, f64::to_string);
                            // A category's points may be drawn beside it: written at it.
                            let at = s.data_x.as_ref().and_then(|d| d.get(i)).copied();
                            let x = category_or_value(&p.x_axis, at.unwrap_or(x[i]));
                            let _ = writeln!(csv, "{panel},{name},{x},,{},{e}", y[i]);
                        }
                    }
                    Data::Bins { lo, hi, count } => {
                        for i in 0..lo.len().min(hi.len()).min(count.len()) {
                            match s.data_x.as_ref().and_then(|x| x.get(i)) {
                                Some(x) => {
                                    let _ = writeln!(csv, "{panel},{name},{x},,{},", count[i]);
                                }
                                None => {
                                    let _ = writeln!(
                                        csv,
                                        "{panel},{name},{},{},{},",
                                        lo[i], hi[i], count[i]
                                    );
                                }
                            }
                        }
                    }
                }
            }
            for m in &p.marks {
                let _ = writeln!(csv, "{panel},{},{},,,", csv_field(&m.label), m.x);
            }
        }
        csv
    }
}

/// `x` as written in a CSV: the category's name on a categorical axis.
fn category_or_value(axis: &XAxis, x: f64) -> String {
    match axis {
        XAxis::Categories(names) if x >= 1.0 && (x - x.round()).abs() < 1e-9 => names
            .get(x as usize - 1)
            .map_or_else(|| x.to_string(), |n| csv_field(n)),
        _ => x.to_string(),
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Estimated width of `s` in a sans-serif font of `px` pixels (an average glyph of 0.56 em;
/// DejaVu Sans and Liberation Sans both stay within it for these labels).
fn text_width(s: &str, px: u32) -> u32 {
    (s.chars().count() as f64 * f64::from(px) * 0.56).ceil() as u32
}

/// `s` broken into lines that fit `width` pixels.
fn wrap(s: &str, width: u32, px: u32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(&candidate, px) > width {
            lines.push(std::mem::take(&mut line));
            line = word.to_string();
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("cannot draw figure: {e}")
}

/// Nice tick positions covering `[lo, hi]`: about `target` of them, at 1, 2, 2.5 or 5 times a
/// power of ten.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let ticks = |step: f64| -> Vec<f64> {
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        (first..=last).map(|k| k as f64 * step).collect()
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    // The first nice step at least the raw one that still gives three ticks (two for a
    // target below three), else the largest smaller one that does.
    let candidates: Vec<f64> = [0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|f| f * power)
        .collect();
    let least = target.clamp(2, 3);
    candidates
        .iter()
        .find(|&&s| s >= raw && ticks(s).len() >= least)
        .or_else(|| candidates.iter().rev().find(|&&s| ticks(s).len() >= least))
        .map_or_else(|| ticks(raw), |&s| ticks(s))
}

/// A tick label: integers without decimals, else as few decimals as the step needs; never
/// "-0".
fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step.abs() * 1e-6 { 0.0 } else { v };
    let decimals = (0..=6)
        .find(|&d| {
            let scaled = step.abs() * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

/// A decade label on a log axis: 1, 10, 100, 1000, 10⁴, 10⁵, ...
fn decade_label(k: i32) -> String {
    if (0..=3).contains(&k) {
        format!("{}", 10i64.pow(k as u32))
    } else {
        const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        let mut label = String::from("10");
        if k < 0 {
            label.push('⁻');
        }
        for d in k.unsigned_abs().to_string().bytes() {
            label.push(SUPERSCRIPTS[usize::from(d - b'0')]);
        }
        label
    }
}

/// Draws one panel into `area`; text that lies outside the axes goes onto `root`.
fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let title = font(TITLE_PX).color(&BLACK);
    let text = font(TEXT_PX).color(&BLACK);
    let (w, _) = area.dim_in_pixel();
    area.draw_text(
        &panel.title,
        &title.pos(Pos::new(HPos::Center, VPos::Top)),
        (w as i32 / 2, 6),
    )
    .map_err(plot_error)?;
    let Some(((dx0, dx1), (dy0, dy1))) = panel.extent() else {
        area.draw_text(
            "no data to show",
            &text
                .color(&RGBColor(110, 110, 110))
                .pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, area.dim_in_pixel().1 as i32 / 2),
        )
        .map_err(plot_error)?;
        return Ok(());
    };
    let log = panel.y_scale == Scale::Log;
    // The x range: fixed, categories, or the data's padded by 3%.
    let (x0, x1) = match (&panel.x_axis, panel.x_range) {
        (_, Some(r)) => r,
        (XAxis::Categories(names), None) => (0.5, names.len().max(1) as f64 + 0.5),
        (XAxis::Linear, None) => {
            let has_bins = panel
                .series
                .iter()
                .any(|s| matches!(s.data, Data::Bins { .. }));
            let pad = if has_bins {
                0.0
            } else {
                ((dx1 - dx0) * 0.03).max(1e-9)
            };
            if dx1 > dx0 {
                (dx0 - pad, dx1 + pad)
            } else {
                (dx0 - 0.5, dx0 + 0.5)
            }
        }
    };
    // The y range, in drawn units (log10 of counts on a log panel).
    let (y0, y1) = if log {
        let top = panel.y_range.map_or(dy1, |r| r.1).max(1.0);
        // Room above the tallest bar for a count written over it.
        let room = if panel.annotations.is_empty() {
            1.6
        } else {
            5.0
        };
        (-0.3, (top * room).log10().max(0.5))
    } else if let Some(r) = panel.y_range {
        r
    } else if panel.y_from_zero {
        let low = dy0.min(0.0);
        (low, if dy1 > 0.0 { dy1 * 1.06 } else { 1.0 })
    } else {
        let pad = ((dy1 - dy0) * 0.08).max(0.05);
        (dy0 - pad, dy1 + pad)
    };
    let fy = |v: f64| {
        if log {
            if v > 0.0 { v.log10() } else { y0 }
        } else {
            v
        }
    };

    let y_ticks: Vec<(f64, String)> = if log {
        (0..=y1.floor() as i32)
            .map(|k| (f64::from(k), decade_label(k)))
            .collect()
    } else {
        let ticks = nice_ticks(y0, y1, 5);
        let step = ticks.get(1).map_or(1.0, |t| t - ticks[0]);
        ticks.iter().map(|&t| (t, tick_label(t, step))).collect()
    };
    // Room for the widest tick label, a gap, and the rotated axis label.
    let label_area = y_ticks
        .iter()
        .map(|(_, l)| text_width(l, TEXT_PX))
        .max()
        .unwrap_or(0)
        + 26;
    let mut chart = ChartBuilder::on(area)
        .margin_top(26)
        .margin_right(12)
        .margin_left(4)
        .x_label_area_size(38)
        .y_label_area_size(label_area)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .axis_desc_style(font(TEXT_PX))
        .axis_style(AXIS)
        .draw()
        .map_err(plot_error)?;

    // Ticks and the grid at them.
    let below = text.pos(Pos::new(HPos::Center, VPos::Top));
    let beside = text.pos(Pos::new(HPos::Right, VPos::Center));
    let x_ticks: Vec<(f64, String)> = match &panel.x_axis {
        XAxis::Categories(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| ((i + 1) as f64, n.clone()))
            .collect(),
        XAxis::Linear => match &panel.x_ticks {
            Some(given) => {
                // The least gap between the given values sets their decimals.
                let step = given
                    .windows(2)
                    .map(|w| (w[1] - w[0]).abs())
                    .filter(|d| *d > 0.0)
                    .fold(f64::INFINITY, f64::min);
                let step = if step.is_finite() { step } else { 1.0 };
                given.iter().map(|&t| (t, tick_label(t, step))).collect()
            }
            None => {
                let ticks = nice_ticks(x0, x1, (w as usize / 70).clamp(3, 8));
                let step = ticks.get(1).map_or(1.0, |t| t - ticks[0]);
                ticks.iter().map(|&t| (t, tick_label(t, step))).collect()
            }
        },
    };
    for (t, label) in &x_ticks {
        chart
            .draw_series(LineSeries::new([(*t, y0), (*t, y1)], GRID.stroke_width(1)))
            .map_err(plot_error)?;
        let (px, py) = chart.backend_coord(&(*t, y0));
        root.draw_text(label, &below, (px, py + 4))
            .map_err(plot_error)?;
    }
    for (t, label) in &y_ticks {
        chart
            .draw_series(LineSeries::new([(x0, *t), (x1, *t)], GRID.stroke_width(1)))
            .map_err(plot_error)?;
        let (px, py) = chart.backend_coord(&(x0, *t));
        root.draw_text(label, &beside, (px - 4, py))
            .map_err(plot_error)?;
    }

    for m in &panel.marks {
        chart
            .draw_series(DashedLineSeries::new(
                [(m.x, y0), (m.x, y1)],
                4,
                4,
                m.colour.stroke_width(1),
            ))
            .map_err(plot_error)?;
    }

    for s in &panel.series {
        let c = s.colour;
        match (&s.data, s.style) {
            (Data::Bins { lo, hi, count }, Style::Bars) => {
                let bars = lo.iter().zip(hi).zip(count).filter(|&(_, &n)| n > 0.0).map(
                    |((&a, &b), &n)| {
                        Rectangle::new([(a, y0.max(fy(0.0))), (b, fy(n))], c.mix(0.7).filled())
                    },
                );
                chart.draw_series(bars).map_err(plot_error)?;
            }
            (Data::Bins { lo, hi, count }, _) => {
                // The outline of the bars: up and down at every edge.
                let floor = if log { y0 } else { 0f64.max(y0) };
                let mut points = Vec::with_capacity(2 * lo.len() + 2);
                for ((&a, &b), &n) in lo.iter().zip(hi).zip(count) {
                    let top = if n > 0.0 { fy(n) } else { floor };
                    if points.is_empty() {
                        points.push((a, floor));
                    }
                    points.push((a, top));
                    points.push((b, top));
                }
                if let Some(&(b, _)) = points.last() {
                    points.push((b, floor));
                }
                chart
                    .draw_series(LineSeries::new(points, c.stroke_width(2)))
                    .map_err(plot_error)?;
            }
            (Data::Points { x, y, sd }, style) => {
                let points: Vec<(f64, f64)> = x
                    .iter()
                    .zip(y)
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(&a, &b)| (a, fy(b)))
                    .collect();
                match style {
                    Style::Dashed => {
                        chart
                            .draw_series(DashedLineSeries::new(
                                points.clone(),
                                6,
                                4,
                                c.stroke_width(2),
                            ))
                            .map_err(plot_error)?;
                    }
                    // Solid and light: dashes along a slope, each rounded to whole pixels,
                    // zig-zag.
                    Style::Reference => {
                        chart
                            .draw_series(LineSeries::new(points.clone(), GRID_DARK.stroke_width(1)))
                            .map_err(plot_error)?;
                    }
                    Style::Points => {}
                    _ => {
                        chart
                            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                            .map_err(plot_error)?;
                    }
                }
                if matches!(style, Style::Line | Style::Points) {
                    let radius = if style == Style::Points { 4 } else { 3 };
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, radius, c.filled())))
                        .map_err(plot_error)?;
                    let bars = x
                        .iter()
                        .zip(y)
                        .zip(sd.iter().chain(std::iter::repeat(&0.0)))
                        .filter(|((a, b), e)| {
                            a.is_finite() && b.is_finite() && e.is_finite() && **e > 0.0
                        });
                    chart
                        .draw_series(bars.map(|((&a, &b), &e)| {
                            let low = if panel.y_from_zero {
                                (b - e).max(0.0)
                            } else {
                                b - e
                            };
                            ErrorBar::new_vertical(
                                a,
                                fy(low),
                                fy(b),
                                fy(b + e),
                                c.stroke_width(1),
                                7,
                            )
                        }))
                        .map_err(plot_error)?;
                }
            }
        }
    }

    // Counts above all the bars (never over the data), each over its bar; near an edge of
    // the axes it leans inwards, off the axis and its tick labels.
    let (left, _) = chart.backend_coord(&(x0, y0));
    let (right, _) = chart.backend_coord(&(x1, y0));
    let tallest = fy(dy1);
    for a in &panel.annotations {
        let (px, py) = chart.backend_coord(&(a.x, tallest.max(fy(a.y))));
        let at = (a.x - x0) / (x1 - x0);
        let (h, x) = if at < 0.2 {
            (HPos::Left, (px - 4).max(left + 3))
        } else if at > 0.8 {
            (HPos::Right, (px + 4).min(right - 3))
        } else {
            (HPos::Center, px)
        };
        root.draw_text(&a.text, &text.pos(Pos::new(h, VPos::Bottom)), (x, py - 3))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// Bin counts of `values` over `[lo, hi]` into `bins` equal bins (values outside or not
/// finite are left out).
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

/// The range of the finite values of all `sets`, widened to one unit when they are all equal;
/// `None` without any finite value.
pub fn finite_range<'a>(sets: impl IntoIterator<Item = &'a [f32]>) -> Option<(f64, f64)> {
    let (lo, hi) = sets
        .into_iter()
        .flatten()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    Some(if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    })
}

/// The bins of `values` over `[lo, hi]` (see [`bin_counts`]).
///
/// # Panics
/// If `bins` is 0.
pub fn bin_values(values: &[f32], lo: f64, hi: f64, bins: usize) -> Bins {
    assert!(bins > 0, "at least one bin");
    let width = (hi - lo) / bins as f64;
    Bins {
        lo: (0..bins).map(|b| lo + b as f64 * width).collect(),
        hi: (0..bins).map(|b| lo + (b + 1) as f64 * width).collect(),
        count: bin_counts(values, lo, hi, bins)
            .into_iter()
            .map(|c| c as f64)
            .collect(),
    }
}

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

/// The size of a figure of one panel.
pub const SINGLE: (u32, u32) = (420, 300);

/// Overlaid histograms in one panel: counts on a log axis when the largest bin holds more
/// than 50 (mass at the bounds then does not hide the rest), else linear; `counted` names what
/// a bar counts. One series is drawn as filled bars, several as outlines.
///
/// # Panics
/// If `bins` is 0 (analysis settings are validated before).
pub fn histogram_panel(
    title: &str,
    x_label: &str,
    counted: &str,
    series: &[HistogramSeries],
    bins: usize,
) -> Panel {
    assert!(bins > 0, "at least one bin");
    let Some((lo, hi)) = finite_range(series.iter().map(|s| s.values)) else {
        return Panel::new(title, x_label, counted);
    };
    let binned: Vec<Bins> = series
        .iter()
        .map(|s| bin_values(s.values, lo, hi, bins))
        .collect();
    let max = binned
        .iter()
        .flat_map(|b| b.count.iter().copied())
        .fold(0.0, f64::max);
    let log = max > 50.0;
    let style = if series.len() > 1 {
        Style::Steps
    } else {
        Style::Bars
    };
    let mut panel = Panel::new(
        title,
        x_label,
        if log {
            format!("{counted} (log scale)")
        } else {
            counted.to_string()
        },
    )
    .from_zero()
    .with(
        series
            .iter()
            .zip(binned)
            .enumerate()
            .map(|(i, (s, b))| {
                Series::bins(
                    format!("{} (n = {})", s.label, s.values.len()),
                    if series.len() == 1 {
                        BULK
                    } else {
                        SERIES[i % SERIES.len()]
                    },
                    style,
                    b,
                )
            })
            .collect(),
    );
    if log {
        panel = panel.log();
    }
    panel
}

/// Curves with error bars in one panel, coloured in [`PALETTE`] order. With `y_from_zero`
/// the `y` axis starts at zero (errors, fractions), otherwise it spans the data
/// (accuracies). Points that are not finite are left out.
pub fn curves_panel(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[CurveSeries],
    y_from_zero: bool,
) -> Panel {
    let mut panel = Panel::new(title, x_label, y_label).with(
        series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Series::with_sd(
                    s.label.clone(),
                    SERIES[i % SERIES.len()],
                    if s.x.len() > 30 {
                        Style::Thin
                    } else {
                        Style::Line
                    },
                    s.x.clone(),
                    s.y.clone(),
                    s.error.clone(),
                )
            })
            .collect(),
    );
    panel.y_from_zero = y_from_zero;
    panel
}

/// Fonts for rendering figures to PNG: the system's, with a sans-serif family that has the
/// glyphs (DejaVu Sans, Liberation Sans, Noto Sans, Arial or FreeSans, the first found).
pub struct Fonts(Arc<resvg::usvg::fontdb::Database>);

impl Fonts {
    /// The system's fonts.
    ///
    /// # Errors
    /// If none of the sans-serif families above is installed (Debian: `fonts-dejavu-core`):
    /// a PNG without text would be drawn otherwise.
    pub fn system() -> Result<Self> {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_system_fonts();
        let family = [
            "DejaVu Sans",
            "Liberation Sans",
            "Noto Sans",
            "Arial",
            "FreeSans",
        ]
        .into_iter()
        .find(|f| {
            db.faces()
                .any(|face| face.families.iter().any(|(name, _)| name == f))
        })
        .context(
            "no sans-serif font to draw the PNG figures' text with (install one, e.g. \
                 Debian's fonts-dejavu-core, or set png_dpi = 0 in the analysis settings)",
        )?;
        db.set_sans_serif_family(family);
        Ok(Self(Arc::new(db)))
    }
}

/// `svg` rendered to PNG at `dpi` (the SVG's pixels taken as 1/96 inch), with the
/// resolution recorded in the file (`pHYs`).
///
/// # Errors
/// If the SVG does not parse or the image would be empty or over 100 megapixels.
pub fn png(svg: &str, dpi: u32, fonts: &Fonts) -> Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let options = usvg::Options {
        fontdb: Arc::clone(&fonts.0),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).context("the figure's SVG does not parse")?;
    let scale = dpi as f32 / 96.0;
    let size = tree.size();
    let (w, h) = (
        (size.width() * scale).ceil() as u32,
        (size.height() * scale).ceil() as u32,
    );
    anyhow::ensure!(
        w > 0 && h > 0 && u64::from(w) * u64::from(h) <= 100_000_000,
        "a PNG of {w} x {h} pixels at {dpi} dpi is out of range"
    );
    let mut pixmap = tiny_skia::Pixmap::new(w, h).context("cannot allocate the PNG's pixels")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    // Drawn over an opaque white background, every pixel is opaque: its premultiplied
    // RGBA is its RGBA.
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let per_metre = (f64::from(dpi) / 0.0254).round() as u32;
        encoder.set_pixel_dims(Some(png::PixelDimensions {
            xppu: per_metre,
            yppu: per_metre,
            unit: png::Unit::Meter,
        }));
        let mut writer = encoder.write_header().context("cannot encode the PNG")?;
        writer
            .write_image_data(pixmap.data())
            .context("cannot encode the PNG")?;
    }
    Ok(bytes)
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
            let svg = Plot::single(curves_panel("t", "x", "y", &series, false), SINGLE)
                .svg()
                .unwrap();
            assert!(svg.contains("no data to show"));
        }
        let values = [f32::NAN];
        let histogram = [HistogramSeries {
            label: "h".into(),
            values: &values,
        }];
        assert!(
            Plot::single(
                histogram_panel("t", "x", "connections", &histogram, 5),
                SINGLE
            )
            .svg()
            .unwrap()
            .contains("no data")
        );
        assert!(
            Plot::single(histogram_panel("t", "x", "connections", &[], 5), SINGLE)
                .svg()
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
        let svg = Plot::single(curves_panel("t", "x", "y", &[partly], true), SINGLE)
            .svg()
            .unwrap();
        assert!(!svg.contains("no data"));
    }

    #[test]
    fn ticks_are_nice_and_never_minus_zero() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(-0.3, 2.2, 5), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        // Three ticks at least: not a lone 0 for m in [-19.3, 17.3].
        assert_eq!(nice_ticks(-19.29, 17.27, 3), vec![-10.0, 0.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 100.0, 3), vec![0.0, 50.0, 100.0]);
        let labels: Vec<String> = nice_ticks(96.3, 96.56, 5)
            .into_iter()
            .map(|t| tick_label(t, 0.1))
            .collect();
        assert_eq!(labels, ["96.3", "96.4", "96.5"]);
        assert_eq!(tick_label(-1e-17, 0.2), "0.0");
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(96.35000000000001, 0.05), "96.35");
        assert_eq!(tick_label(7.5, 2.5), "7.5");
        assert_eq!(tick_label(20.0, 10.0), "20");
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(-5.0, 5.0), "-5");
    }

    #[test]
    fn legends_sit_below_the_panels_and_marks_share_an_entry() {
        let mut panel = Panel::new("p", "x", "y").with(vec![
            Series::line(
                "first",
                PALETTE[0],
                Style::Line,
                vec![0.0, 1.0],
                vec![0.0, 1.0],
            ),
            Series::line(
                "second",
                PALETTE[1],
                Style::Dashed,
                vec![0.0, 1.0],
                vec![1.0, 0.0],
            ),
        ]);
        for x in [0.3, 0.6] {
            panel.marks.push(Mark {
                x,
                label: "lr step".into(),
                colour: MARK,
            });
        }
        let plot = Plot::row(vec![panel.clone(), panel], (240, 200));
        assert_eq!(plot.legend().len(), 3);
        let (width, height) = plot.size();
        assert_eq!(width, 480);
        assert!(height > 200, "a band below the panels");
        let svg = plot.svg().unwrap();
        assert_eq!(svg.matches("lr step").count(), 1, "{svg}");
        let csv = plot.csv();
        assert_eq!(csv.lines().filter(|l| l.contains(",lr step,")).count(), 4);
        assert_eq!(csv.lines().count(), 1 + 2 * (2 + 2 + 2));
    }

    #[test]
    fn a_png_has_the_figure_size_at_the_resolution_and_records_it() {
        let fonts = Fonts::system().expect("a sans-serif font (Debian: fonts-dejavu-core)");
        let svg = Plot::single(curves_panel("t", "x", "y", &[], false), SINGLE)
            .svg()
            .unwrap();
        let bytes = png(&svg, 192, &fonts).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (2 * SINGLE.0, 2 * SINGLE.1));
        let dims = info.pixel_dims.unwrap();
        assert_eq!(dims.xppu, 7559);
    }
}
