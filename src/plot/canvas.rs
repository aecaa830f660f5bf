//! Shared drawing helpers: the embedded font, rendering into a buffer and writing the PNG,
//! colours, axis ranges, tick positions and number formatting, legend placement.

use super::text::Label;
use super::PlotError;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::error::Error as StdError;
use std::path::Path;
use std::sync::OnceLock;

/// The error type of drawing code; turned into [`PlotError::Draw`] naming the file.
pub(crate) type DResult<T = ()> = Result<T, Box<dyn StdError>>;

/// The font family every figure uses (DejaVu Sans, embedded).
pub(crate) const FONT: &str = "sans-serif";

// Sizes are the font's full height in pixels (ascent to descent), about 1.16 em for DejaVu.
pub(crate) const TITLE_SIZE: f64 = 28.0;
pub(crate) const LABEL_SIZE: f64 = 22.0;
pub(crate) const TICK_SIZE: f64 = 18.0;
pub(crate) const LEGEND_SIZE: f64 = 18.0;

/// Figure background: white.
pub(crate) const BACKGROUND: RGBColor = WHITE;
pub(crate) const TEXT: RGBColor = RGBColor(30, 30, 30);

/// Register the embedded DejaVu Sans (regular and bold) as `sans-serif`, once per process.
pub(crate) fn ensure_font(file: &Path) -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let r = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let b = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
        r.is_ok() && b.is_ok() && super::text::fonts_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw {
            file: file.to_path_buf(),
            msg: "the embedded DejaVu Sans font could not be loaded".into(),
        })
    }
}

/// Draw a `size` figure with `draw` on a light background and write it to `path` as PNG.
pub(crate) fn render<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DResult,
{
    ensure_font(path)?;
    let (w, h) = size;
    let mut buf = vec![255u8; (w as usize) * (h as usize) * 3];
    {
        let drawn: DResult = (|| {
            let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
            root.fill(&BACKGROUND)?;
            draw(&root)?;
            root.present()?;
            Ok(())
        })();
        drawn.map_err(|e| PlotError::Draw { file: path.to_path_buf(), msg: e.to_string() })?;
    }
    // Atomically: encoded into a hidden sibling, renamed over `path` when complete.
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let saved =
        image::save_buffer_with_format(&tmp, &buf, w, h, image::ColorType::Rgb8, image::ImageFormat::Png)
            .map_err(|e| match e {
                image::ImageError::IoError(source) => PlotError::Write { file: path.to_path_buf(), source },
                other => {
                    PlotError::Draw { file: path.to_path_buf(), msg: format!("cannot encode PNG: {other}") }
                }
            })
            .and_then(|_| {
                std::fs::rename(&tmp, path)
                    .map_err(|source| PlotError::Write { file: path.to_path_buf(), source })
            });
    if saved.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    saved
}

// ---------------------------------------------------------------------------------------------
// Colours

fn lerp_rgb(stops: &[(u8, u8, u8)], s: f64) -> RGBColor {
    let s = if s.is_finite() { s.clamp(0.0, 1.0) } else { 0.0 };
    let n = stops.len() - 1;
    let pos = s * n as f64;
    let i = (pos.floor() as usize).min(n - 1);
    let f = pos - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The time colour map: viridis from dark purple to green, without its light yellow end (which
/// vanishes on white). `s` in [0, 1], early to late.
pub(crate) fn time_color(s: f64) -> RGBColor {
    const VIRIDIS: [(u8, u8, u8); 10] = [
        (0x44, 0x01, 0x54),
        (0x48, 0x24, 0x75),
        (0x41, 0x44, 0x87),
        (0x35, 0x5f, 0x8d),
        (0x2a, 0x78, 0x8e),
        (0x21, 0x91, 0x8c),
        (0x22, 0xa8, 0x84),
        (0x44, 0xbf, 0x70),
        (0x7a, 0xd1, 0x51),
        (0xa5, 0xda, 0x3c),
    ];
    lerp_rgb(&VIRIDIS, s)
}

/// A sequential map for heatmaps: near-white to dark blue.
pub(crate) fn heat_color(s: f64) -> RGBColor {
    const BLUES: [(u8, u8, u8); 6] =
        [(247, 251, 255), (198, 219, 239), (107, 174, 214), (49, 130, 189), (8, 81, 156), (8, 48, 107)];
    lerp_rgb(&BLUES, s)
}

/// A qualitative palette (Tableau 10) for named curves.
pub(crate) fn series_color(i: usize) -> RGBColor {
    const TAB10: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    TAB10[i % TAB10.len()]
}

// ---------------------------------------------------------------------------------------------
// Ranges, ticks, numbers

/// Min and max of the finite values, if any.
pub(crate) fn finite_range(v: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    v.into_iter().filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    })
}

/// A drawable range around `[lo, hi]`: `frac` of the span added each side, and a degenerate
/// (single-value) or missing range widened so that it has a width.
pub(crate) fn pad_range(r: Option<(f64, f64)>, frac: f64) -> (f64, f64) {
    let Some((lo, hi)) = r else {
        return (0.0, 1.0);
    };
    let span = hi - lo;
    let scale = lo.abs().max(hi.abs());
    if !(span.is_finite()) || span <= 1e-12 * scale.max(1e-300) || span == 0.0 {
        let pad = if scale > 0.0 { 0.1 * scale } else { 1.0 };
        return (lo - pad, hi + pad);
    }
    (lo - frac * span, hi + frac * span)
}

/// Tick positions in `[lo, hi]` with a 1-2-5 step, about `target` of them, and the step.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo], 1.0);
    }
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last)
        .take(200)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    (ticks, step)
}

/// A linear `f64` axis with tick positions chosen here (plotters' own `WithKeyPoints` loses the
/// value formatter that `configure_mesh` needs).
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    /// Minor grid lines (no labels).
    light: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let f = if span > 0.0 { (v - self.lo) / span } else { 0.5 };
        let len = (limit.1 - limit.0) as f64;
        let p = limit.0 as f64 + (len * f + 1e-3).floor();
        // far-away points stay far away without overflowing
        p.clamp(-1e6, 1e6) as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A linear axis over `[lo, hi]` with nice ticks (about `target`), and the tick step.
pub(crate) fn linear_axis(lo: f64, hi: f64, target: usize) -> (Axis, f64) {
    let (ticks, step) = nice_ticks(lo, hi, target);
    (Axis { lo, hi, ticks, light: vec![] }, step)
}

/// A log axis drawn as a linear axis over `log10` values `[llo, lhi]`, with ticks at decades (or
/// 1-2-5 multiples when the range is short). Label values with [`fmt_pow10`].
pub(crate) fn log10_axis(llo: f64, lhi: f64) -> Axis {
    let span = lhi - llo;
    let (d0, d1) = (llo.floor() as i64, lhi.ceil() as i64);
    let inside = |v: f64| v >= llo - 1e-12 && v <= lhi + 1e-12;
    let at = |mults: &[f64]| -> Vec<f64> {
        let mut v = Vec::new();
        for k in d0..=d1 {
            for m in mults {
                let l = (m * 10f64.powi(k as i32)).log10();
                if inside(l) {
                    v.push(l);
                }
            }
        }
        v
    };
    const ALL: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let (ticks, light) = if span > 4.0 {
        // every decade, or every k-th one
        let every = ((span / 8.0).ceil() as i64).max(1);
        let t: Vec<f64> =
            (d0..=d1).filter(|k| k.rem_euclid(every) == 0).map(|k| k as f64).filter(|&v| inside(v)).collect();
        let light = if every == 1 && span <= 7.0 { at(&ALL) } else { vec![] };
        (t, light)
    } else {
        let t = at(&[1.0, 2.0, 5.0]);
        if t.len() >= 3 {
            (t, at(&ALL))
        } else {
            (at(&ALL), vec![])
        }
    };
    let ticks = if ticks.len() < 2 { nice_ticks(llo, lhi, 4).0 } else { ticks };
    Axis { lo: llo, hi: lhi, ticks, light }
}

/// Decimal places needed to show multiples of `step`.
fn decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 2;
    }
    let d = -step.log10().floor();
    let mut dec = d.max(0.0) as usize;
    // 2.5 × 10^k needs one more digit
    let m = step / 10f64.powf(step.log10().floor());
    if (m - 2.5).abs() < 1e-9 {
        dec += 1;
    }
    dec.min(12)
}

/// A tick label for `v` on an axis with tick spacing `step`.
pub(crate) fn fmt_tick(v: f64, step: f64) -> String {
    let a = v.abs().max(step.abs());
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        return fmt_sci(v);
    }
    format!("{:.*}", decimals(step), v)
}

/// `1e-3`, `2.5e4`: short scientific notation.
pub(crate) fn fmt_sci(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let e = v.abs().log10().floor() as i32;
    let m = v / 10f64.powi(e);
    let ms = format!("{m:.2}");
    let ms = ms.trim_end_matches('0').trim_end_matches('.');
    if ms == "1" {
        format!("1e{e}")
    } else if ms == "-1" {
        format!("-1e{e}")
    } else {
        format!("{ms}e{e}")
    }
}

/// Label for a log-axis tick at `log10` value `lv`.
pub(crate) fn fmt_pow10(lv: f64) -> String {
    let v = 10f64.powf(lv);
    if (1e-3..1e5).contains(&v) {
        let s = format!("{:.3}", v);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        fmt_sci(v)
    }
}

/// A general number for tables and cells: 3 significant digits.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return fmt_sci(v);
    }
    let dec = (2 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.dec$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Cut `s` to at most `n` characters, marking the cut with an ellipsis.
pub(crate) fn ellipsize(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Width in pixels of `s` at font size `size`.
pub(crate) fn text_width(s: &str, size: f64) -> f64 {
    super::text::measure(s, size, false).0
}

// ---------------------------------------------------------------------------------------------
// Axes: plotters draws the grid, axis lines and tick marks; the tick labels and axis titles are
// drawn with [`Label`] (see `text.rs`).

/// The figure title, centred at the top of `area`.
pub(crate) fn draw_title(area: &DrawingArea<BitMapBackend<'_>, Shift>, title: &str) -> DResult {
    let (w, _) = area.dim_in_pixel();
    area.draw(&Label::new(title, (w as i32 / 2, 30), TITLE_SIZE).bold().anchor(HPos::Center, VPos::Center))?;
    Ok(())
}

/// A chart on the bitmap backend with [`Axis`] coordinates.
pub(crate) type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>;

/// Tick label formats and axis titles.
pub(crate) struct AxisText<'s> {
    pub x_desc: &'s str,
    pub y_desc: &'s str,
    pub fx: &'s dyn Fn(f64) -> String,
    pub fy: &'s dyn Fn(f64) -> String,
    /// Font scale.
    pub scale: f64,
}

const TICK_GAP: f64 = 7.0;

/// Pixels needed left of the plot for the `y` tick labels and title.
pub(crate) fn y_label_room(y: &Axis, t: &AxisText) -> u32 {
    let w = y.ticks.iter().map(|&v| text_width(&(t.fy)(v), TICK_SIZE * t.scale)).fold(0.0, f64::max);
    (TICK_GAP + w + 10.0 + LABEL_SIZE * t.scale + 4.0).ceil() as u32
}

/// Pixels needed below the plot for the `x` tick labels and title.
pub(crate) fn x_label_room(t: &AxisText) -> u32 {
    (TICK_GAP + (TICK_SIZE + LABEL_SIZE) * t.scale + 12.0).ceil() as u32
}

/// Grid, axes, tick labels and titles.
pub(crate) fn draw_axes(chart: &mut Chart, x: &Axis, y: &Axis, t: &AxisText) -> DResult {
    chart
        .configure_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new())
        .bold_line_style(RGBColor(220, 220, 220))
        .light_line_style(RGBColor(242, 242, 242))
        .axis_style(RGBColor(90, 90, 90))
        .draw()?;
    let pa = chart.plotting_area();
    let (tick, label) = (TICK_SIZE * t.scale, LABEL_SIZE * t.scale);
    let gap = TICK_GAP as i32;
    for &v in &x.ticks {
        pa.draw(&Label::new((t.fx)(v), (v, y.lo), tick).anchor(HPos::Center, VPos::Top).offset(0, gap))?;
    }
    let mut wmax: f64 = 0.0;
    for &v in &y.ticks {
        let s = (t.fy)(v);
        wmax = wmax.max(text_width(&s, tick));
        pa.draw(&Label::new(s, (x.lo, v), tick).anchor(HPos::Right, VPos::Center).offset(-gap, 0))?;
    }
    pa.draw(
        &Label::new(t.x_desc, (0.5 * (x.lo + x.hi), y.lo), label)
            .anchor(HPos::Center, VPos::Top)
            .offset(0, gap + tick.ceil() as i32 + 6),
    )?;
    pa.draw(
        &Label::new(t.y_desc, (x.lo, 0.5 * (y.lo + y.hi)), label)
            .anchor(HPos::Center, VPos::Bottom)
            .vertical()
            .offset(-(gap + wmax.ceil() as i32 + 10), 0),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Legend placement

/// Where a legend box goes inside a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

impl Corner {
    /// Whether the corner is on the left, and on the top.
    pub(crate) fn sides(self) -> (bool, bool) {
        match self {
            Corner::UpperRight => (false, true),
            Corner::UpperLeft => (true, true),
            Corner::LowerRight => (false, false),
            Corner::LowerLeft => (true, false),
        }
    }
}

/// Choose a legend corner for curves (points in data coordinates, polylines) inside the ranges
/// `xr`, `yr`, for a legend box taking fractions `(fw, fh)` of the plot. Returns the corner and
/// possibly a raised `yr.1` that leaves the top free for the legend when every corner has data.
pub(crate) fn place_legend(
    curves: &[Vec<(f64, f64)>],
    xr: (f64, f64),
    yr: (f64, f64),
    (fw, fh): (f64, f64),
) -> (Corner, f64) {
    let fw = fw.clamp(0.05, 0.95);
    let fh = fh.clamp(0.05, 0.9);
    let (sx, sy) = (xr.1 - xr.0, yr.1 - yr.0);
    let mut counts = [0usize; 4];
    let corners = [Corner::UpperRight, Corner::UpperLeft, Corner::LowerRight, Corner::LowerLeft];
    let inside = |c: Corner, u: f64, v: f64| {
        let (left, top) = c.sides();
        // a small gap around the box
        let ux = if left { u <= fw + 0.03 } else { u >= 1.0 - fw - 0.03 };
        let vy = if top { v >= 1.0 - fh - 0.03 } else { v <= fh + 0.03 };
        ux && vy
    };
    for c in curves {
        for win in c.windows(2).chain(c.iter().take(1).map(std::slice::from_ref)) {
            let (a, b) = (win[0], *win.last().unwrap_or(&win[0]));
            for k in 0..=8 {
                let f = k as f64 / 8.0;
                let u = (a.0 + (b.0 - a.0) * f - xr.0) / sx;
                let v = (a.1 + (b.1 - a.1) * f - yr.0) / sy;
                if !(u.is_finite() && v.is_finite()) {
                    continue;
                }
                for (i, &cn) in corners.iter().enumerate() {
                    if inside(cn, u, v) {
                        counts[i] += 1;
                    }
                }
            }
        }
    }
    let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
    if counts[best] == 0 {
        return (corners[best], yr.1);
    }
    // raise the top so the legend sits above the data
    let raised = yr.1 + sy * (fh + 0.04) / (1.0 - fh - 0.04);
    (Corner::UpperRight, raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_formats() {
        let (t, s) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(s, 0.2);
        assert_eq!(t.len(), 6);
        assert_eq!(fmt_tick(0.2, 0.2), "0.2");
        assert_eq!(fmt_tick(0.25, 0.25), "0.25");
        assert_eq!(fmt_tick(1500.0, 500.0), "1500");
        assert_eq!(fmt_sci(0.001), "1e-3");
        assert_eq!(fmt_sci(2.5e-7), "2.5e-7");
        assert_eq!(fmt_pow10(-2.0), "0.01");
        assert_eq!(fmt_pow10(-5.0), "1e-5");
        assert_eq!(fmt_num(0.123456), "0.123");
        assert_eq!(fmt_num(12.0), "12");
        assert_eq!(fmt_num(1234.6), "1235");
        assert_eq!(pad_range(Some((2.0, 2.0)), 0.05), (1.8, 2.2));
        assert_eq!(pad_range(Some((0.0, 0.0)), 0.05), (-1.0, 1.0));
        assert_eq!(pad_range(None, 0.05), (0.0, 1.0));
        let ax = log10_axis(-2.3, -1.9);
        assert!(ax.ticks.len() >= 2);
    }
}
