//! Line charts.

use std::cell::RefCell;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{render_err, ReportError, Result};
use crate::layout::{legend_corner, min_max, padded_range, tick_labels, PlotArea};
use crate::text::{self, Canvas, HAlign, Label, Rgb, VAlign};

/// One named line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name` through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points }
    }
}

/// A dashed, labelled vertical marker line at `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VLine {
    /// Where the line stands on the x axis.
    pub x: f64,
    /// Text drawn beside it.
    pub label: String,
}

impl VLine {
    /// A marker at `x` labelled `label`.
    pub fn new(x: f64, label: impl Into<String>) -> Self {
        Self { x, label: label.into() }
    }
}

/// A line chart: series drawn as lines with markers in distinct colours,
/// a legend, axis labels and optional dashed vertical marker lines.
///
/// Non-finite points are skipped; on a log axis points with a coordinate
/// `<= 0` are skipped as well. Axis ranges come from the data (and the
/// vertical lines' x positions) plus a small margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineChart {
    /// Heading above the plot.
    pub title: String,
    /// Axis captions.
    pub x_label: String,
    /// See `x_label`.
    pub y_label: String,
    /// The lines, one legend entry each.
    pub series: Vec<Series>,
    /// Dashed vertical markers.
    pub vlines: Vec<VLine>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Image size in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
}

const MIN_WIDTH: u32 = 200;
const MIN_HEIGHT: u32 = 150;

/// Colour-blind-friendly-ish "tab10" palette.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const MARKER_KINDS: usize = 4;
const MARKER_SIZE: i32 = 4;
const VLINE_COLOR: RGBColor = RGBColor(60, 60, 60);
const VLINE_TEXT: Rgb = [50, 50, 50];
const TEXT: Rgb = [45, 45, 45];
const BLACK_TEXT: Rgb = [0, 0, 0];
const TITLE_PX: f32 = 22.0;
const DESC_PX: f32 = 17.0;
const TICK_PX: f32 = 14.0;
const LEGEND_PX: f32 = 15.0;
const VLINE_PX: f32 = 14.0;
const X_LABEL_AREA: u32 = 52;
const Y_LABEL_AREA: u32 = 84;
const LEGEND_PAD: i32 = 8;
const LEGEND_SAMPLE: i32 = 26;

impl LineChart {
    /// An empty 800x500 chart with linear axes.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            vlines: Vec::new(),
            log_x: false,
            log_y: false,
            width: 800,
            height: 500,
        }
    }

    /// Render to PNG bytes (RGB8).
    pub fn render_png(&self) -> Result<Vec<u8>> {
        let (w, h) = (self.width, self.height);
        if !(MIN_WIDTH..=crate::MAX_SIDE).contains(&w) || !(MIN_HEIGHT..=crate::MAX_SIDE).contains(&h) {
            return Err(ReportError::BadInput(format!(
                "chart size {w}x{h} outside {MIN_WIDTH}x{MIN_HEIGHT} ..= {0}x{0}",
                crate::MAX_SIDE
            )));
        }
        let prep = self.prepare()?;
        crate::font::ensure_registered()?;

        let mut buf = vec![255u8; w as usize * h as usize * 3];
        let texts = {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(render_err)?;
            let (xr, yr) = (prep.x.0..prep.x.1, prep.y.0..prep.y.1);
            let texts = match (self.log_x, self.log_y) {
                (false, false) => self.draw(&root, &prep, xr, yr)?,
                (true, false) => self.draw(&root, &prep, xr.log_scale(), yr)?,
                (false, true) => self.draw(&root, &prep, xr, yr.log_scale())?,
                (true, true) => self.draw(&root, &prep, xr.log_scale(), yr.log_scale())?,
            };
            root.present().map_err(render_err)?;
            texts
        };
        let mut canvas = Canvas { buf: &mut buf, width: w, height: h };
        for t in &texts {
            let label = Label { text: &t.text, px: t.px, color: t.color };
            text::draw(&mut canvas, &label, t.at, t.h, t.v, t.rotated)?;
        }
        crate::encode_rgb_png(&buf, w, h)
    }

    fn keep(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    fn keep_vline(&self, x: f64) -> bool {
        x.is_finite() && (!self.log_x || x > 0.0)
    }

    /// Filter the points and compute the axis ranges.
    fn prepare(&self) -> Result<Prepared> {
        if self.series.is_empty() {
            return Err(ReportError::BadInput(format!("chart '{}' has no series", self.title)));
        }
        let points: Vec<Vec<(f64, f64)>> =
            self.series.iter().map(|s| s.points.iter().copied().filter(|&p| self.keep(p)).collect()).collect();
        let all = || points.iter().flatten();
        if all().next().is_none() {
            return Err(ReportError::BadInput(format!(
                "chart '{}' has no plottable points (all series empty, non-finite{})",
                self.title,
                if self.log_x || self.log_y { " or <= 0 on a log axis" } else { "" }
            )));
        }
        let xs = all().map(|p| p.0).chain(self.vlines.iter().map(|v| v.x).filter(|&x| self.keep_vline(x)));
        let x = padded_range(min_max(xs), self.log_x);
        let y = padded_range(min_max(all().map(|p| p.1)), self.log_y);
        Ok(Prepared { points, x, y })
    }

    /// Draw everything but text with plotters; return the text to draw.
    fn draw<X, Y>(
        &self,
        root: &DrawingArea<BitMapBackend<'_>, Shift>,
        prep: &Prepared,
        xs: X,
        ys: Y,
    ) -> Result<Vec<PendingText>>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut texts = Vec::new();
        let (w, _) = root.dim_in_pixel();
        let has_title = !self.title.trim().is_empty();
        let title_h =
            if has_title { (text::measure(&self.title, TITLE_PX)?.line_height() + 10.0).ceil() as u32 } else { 0 };
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_top(12 + title_h)
            .margin_right(24)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(xs, ys)
            .map_err(render_err)?;

        // Plotters draws grid, axes and tick marks; the formatters only
        // record where tick labels go, the text itself is drawn later.
        let x_ticks = RefCell::new(Vec::new());
        let y_ticks = RefCell::new(Vec::new());
        let fx = |v: &f64| {
            x_ticks.borrow_mut().push(*v);
            String::new()
        };
        let fy = |v: &f64| {
            y_ticks.borrow_mut().push(*v);
            String::new()
        };
        chart
            .configure_mesh()
            .x_labels(if self.log_x { 12 } else { 10 })
            .y_labels(if self.log_y { 12 } else { 8 })
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .x_max_light_lines(if self.log_x { 10 } else { 1 })
            .y_max_light_lines(if self.log_y { 10 } else { 1 })
            .bold_line_style(RGBColor(215, 215, 215))
            .light_line_style(RGBColor(242, 242, 242))
            .axis_style(RGBColor(80, 80, 80))
            .draw()
            .map_err(render_err)?;

        let (px_x, px_y) = chart.plotting_area().get_pixel_range();
        let area = PlotArea { left: px_x.start, right: px_x.end, top: px_y.start, bottom: px_y.end };
        let (y_lo, y_hi) = prep.y;

        // Tick labels, axis descriptions and the title.
        let x_ticks = x_ticks.into_inner();
        for (&v, label) in x_ticks.iter().zip(tick_labels(&x_ticks, self.log_x)) {
            let (px, _) = chart.backend_coord(&(v, y_lo));
            if (area.left - 1..=area.right).contains(&px) {
                texts.push(
                    PendingText::new(label, TICK_PX, TEXT, (px as f32, area.bottom as f32 + 9.0))
                        .align(HAlign::Center, VAlign::Top),
                );
            }
        }
        let x_lo = prep.x.0;
        let y_ticks = y_ticks.into_inner();
        for (&v, label) in y_ticks.iter().zip(tick_labels(&y_ticks, self.log_y)) {
            let (_, py) = chart.backend_coord(&(x_lo, v));
            if (area.top - 1..=area.bottom).contains(&py) {
                texts.push(
                    PendingText::new(label, TICK_PX, TEXT, (area.left as f32 - 9.0, py as f32))
                        .align(HAlign::Right, VAlign::Middle),
                );
            }
        }
        let mid_x = (area.left + area.right) as f32 / 2.0;
        let mid_y = (area.top + area.bottom) as f32 / 2.0;
        if !self.x_label.is_empty() {
            let y = area.bottom as f32 + X_LABEL_AREA as f32 - 4.0;
            texts.push(
                PendingText::new(self.x_label.clone(), DESC_PX, BLACK_TEXT, (mid_x, y))
                    .align(HAlign::Center, VAlign::Bottom),
            );
        }
        if !self.y_label.is_empty() {
            let x = area.left as f32 - Y_LABEL_AREA as f32 + 4.0;
            let mut t = PendingText::new(self.y_label.clone(), DESC_PX, BLACK_TEXT, (x, mid_y))
                .align(HAlign::Center, VAlign::Top);
            t.rotated = true;
            texts.push(t);
        }
        if has_title {
            texts.push(
                PendingText::new(self.title.clone(), TITLE_PX, BLACK_TEXT, (w as f32 / 2.0, 10.0))
                    .align(HAlign::Center, VAlign::Top),
            );
        }

        // Vertical marker lines go below the data.
        let visible_vlines: Vec<&VLine> = self.vlines.iter().filter(|v| self.keep_vline(v.x)).collect();
        for v in &visible_vlines {
            chart
                .draw_series(DashedLineSeries::new([(v.x, y_lo), (v.x, y_hi)], 6, 4, VLINE_COLOR.stroke_width(1)))
                .map_err(render_err)?;
        }

        for (i, pts) in prep.points.iter().enumerate() {
            let style = SeriesStyle::of(i);
            chart.draw_series(LineSeries::new(pts.iter().copied(), style.color.stroke_width(2))).map_err(render_err)?;
            for &p in pts {
                let at = chart.backend_coord(&p);
                style.draw_marker(root, at)?;
            }
        }

        // Labels of the vertical lines, on a translucent backing, staggered
        // so that neighbouring lines stay readable.
        for (i, v) in visible_vlines.iter().enumerate() {
            if v.label.is_empty() {
                continue;
            }
            let (px, _) = chart.backend_coord(&(v.x, y_hi));
            let m = text::measure(&v.label, VLINE_PX)?;
            let x = px + 4;
            let y = area.top + 4 + (i % 3) as i32 * (m.line_height().ceil() as i32 + 2);
            let (tw, th) = (m.width.ceil() as i32, m.line_height().ceil() as i32);
            root.draw(&Rectangle::new([(x - 2, y), (x + tw + 2, y + th)], WHITE.mix(0.8).filled()))
                .map_err(render_err)?;
            texts.push(
                PendingText::new(v.label.clone(), VLINE_PX, VLINE_TEXT, (x as f32, y as f32))
                    .align(HAlign::Left, VAlign::Top),
            );
        }

        // Legend in the plot corner that hides the fewest data.
        let entries: Vec<(usize, &str)> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.name.trim().is_empty())
            .map(|(i, s)| (i, s.name.as_str()))
            .collect();
        if !entries.is_empty() {
            let row_h = (text::measure("Hg", LEGEND_PX)?.line_height() + 4.0).ceil() as i32;
            let mut text_w = 0.0f32;
            for (_, name) in &entries {
                text_w = text_w.max(text::measure(name, LEGEND_PX)?.width);
            }
            let (bw, bh) = (
                LEGEND_PAD * 2 + LEGEND_SAMPLE + 8 + text_w.ceil() as i32,
                LEGEND_PAD * 2 + row_h * entries.len() as i32,
            );
            let pixels: Vec<Vec<(i32, i32)>> =
                prep.points.iter().map(|pts| pts.iter().map(|p| chart.backend_coord(p)).collect()).collect();
            let (lx, ly) = legend_corner(&area, (bw, bh), &pixels);
            root.draw(&Rectangle::new([(lx, ly), (lx + bw, ly + bh)], WHITE.mix(0.88).filled())).map_err(render_err)?;
            root.draw(&Rectangle::new([(lx, ly), (lx + bw, ly + bh)], RGBColor(150, 150, 150))).map_err(render_err)?;
            for (k, (i, name)) in entries.iter().enumerate() {
                let style = SeriesStyle::of(*i);
                let cy = ly + LEGEND_PAD + row_h * k as i32 + row_h / 2;
                let x0 = lx + LEGEND_PAD;
                root.draw(&PathElement::new([(x0, cy), (x0 + LEGEND_SAMPLE, cy)], style.color.stroke_width(2)))
                    .map_err(render_err)?;
                style.draw_marker(root, (x0 + LEGEND_SAMPLE / 2, cy))?;
                let at = ((x0 + LEGEND_SAMPLE + 8) as f32, cy as f32);
                texts.push(
                    PendingText::new((*name).to_string(), LEGEND_PX, BLACK_TEXT, at)
                        .align(HAlign::Left, VAlign::Middle),
                );
            }
        }
        Ok(texts)
    }
}

/// Text to draw onto the finished bitmap.
struct PendingText {
    text: String,
    px: f32,
    color: Rgb,
    at: (f32, f32),
    h: HAlign,
    v: VAlign,
    rotated: bool,
}

impl PendingText {
    fn new(text: String, px: f32, color: Rgb, at: (f32, f32)) -> Self {
        Self { text, px, color, at, h: HAlign::Left, v: VAlign::Top, rotated: false }
    }

    fn align(mut self, h: HAlign, v: VAlign) -> Self {
        self.h = h;
        self.v = v;
        self
    }
}

/// Colour and marker shape of series `i`.
#[derive(Clone, Copy)]
struct SeriesStyle {
    color: RGBColor,
    kind: usize,
}

impl SeriesStyle {
    fn of(i: usize) -> Self {
        Self { color: PALETTE[i % PALETTE.len()], kind: i % MARKER_KINDS }
    }

    /// Draw the marker (circle, square, triangle, cross) at a pixel position.
    fn draw_marker(self, root: &DrawingArea<BitMapBackend<'_>, Shift>, at: (i32, i32)) -> Result<()> {
        let (m, c) = (MARKER_SIZE, self.color);
        match self.kind {
            0 => root.draw(&Circle::new(at, m, c.filled())),
            1 => root.draw(&Rectangle::new([(at.0 - m + 1, at.1 - m + 1), (at.0 + m - 1, at.1 + m - 1)], c.filled())),
            2 => root.draw(&TriangleMarker::new(at, m + 1, c.filled())),
            _ => root.draw(&Cross::new(at, m, c.stroke_width(2))),
        }
        .map_err(render_err)
    }
}

struct Prepared {
    points: Vec<Vec<(f64, f64)>>,
    x: (f64, f64),
    y: (f64, f64),
}
