//! `metrics.png` and the panel drawing shared with [`super::plot_curves`]: curves against a common
//! `x`, linear or log `y` (non-positive values skipped), a legend placed where it covers no data.

use super::canvas::{
    draw_axes, draw_title, ellipsize, finite_range, fmt_pow10, fmt_tick, linear_axis, log10_axis, nice_ticks,
    pad_range, place_legend, render, series_color, text_width, x_label_room, y_label_room, Axis, AxisText,
    Chart, DResult, LABEL_SIZE, LEGEND_SIZE,
};
use super::read::{read_metrics, Metrics};
use super::text::Label;
use super::{PlotError, FIGURE_SIZE};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// A named curve; `runs` are its pieces between missing values.
pub(crate) struct Curve {
    pub name: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub runs: Vec<Vec<(f64, f64)>>,
}

impl Curve {
    /// Split `(x, y)` points into runs of drawable points (finite; positive when `log_y`), in
    /// the plotted coordinates (`log10 y` when `log_y`).
    pub fn new(name: &str, color: RGBColor, pts: &[(f64, f64)], log_y: bool) -> Self {
        let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
        for &(x, y) in pts {
            let ok = x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
            if ok {
                let y = if log_y { y.log10() } else { y };
                runs.last_mut().expect("runs is not empty").push((x, y));
            } else if !runs.last().expect("runs is not empty").is_empty() {
                runs.push(vec![]);
            }
        }
        runs.retain(|r| !r.is_empty());
        Self { name: name.to_string(), color, dashed: false, runs }
    }
    fn points(&self) -> impl Iterator<Item = &(f64, f64)> + Clone {
        self.runs.iter().flatten()
    }
    fn len(&self) -> usize {
        self.runs.iter().map(Vec::len).sum()
    }
}

/// One plot: curves, axis names, log or linear `y`.
pub(crate) struct PanelSpec<'a> {
    pub caption: Option<&'a str>,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub log_y: bool,
    pub curves: &'a [Curve],
    /// The `x` range to show (shared between panels); from the data when `None`.
    pub x_range: Option<(f64, f64)>,
    /// Font scale (1 for a full figure, smaller for small panels).
    pub scale: f64,
}

/// Draw one panel into `area`.
pub(crate) fn draw_panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, p: &PanelSpec) -> DResult {
    let sc = p.scale;
    let area = if let Some(c) = p.caption {
        let (top, rest) = area.split_vertically((34.0 * sc).round() as u32);
        let (w, _) = top.dim_in_pixel();
        top.draw(
            &Label::new(c, (w as i32 / 2, (19.0 * sc) as i32), (LABEL_SIZE + 1.0) * sc)
                .anchor(HPos::Center, VPos::Center),
        )?;
        rest
    } else {
        area.clone()
    };
    let drawn: Vec<&Curve> = p.curves.iter().filter(|c| c.len() > 0).collect();
    let xr = p
        .x_range
        .unwrap_or_else(|| pad_range(finite_range(drawn.iter().flat_map(|c| c.points().map(|q| q.0))), 0.02));
    let yr_data = finite_range(drawn.iter().flat_map(|c| c.points().map(|q| q.1)));
    let mut yr = if p.log_y {
        match yr_data {
            // at least a factor 2 visible, some room around
            Some((lo, hi)) => {
                let span = (hi - lo).max(0.3);
                let mid = 0.5 * (lo + hi);
                (mid - 0.55 * span, mid + 0.55 * span)
            }
            None => (-1.0, 0.0),
        }
    } else {
        pad_range(yr_data, 0.06)
    };

    let (aw, ah) = area.dim_in_pixel();
    let n_x = if aw > 600 { 10 } else { 5 };
    let n_y = if ah > 400 { 8 } else { 5 };
    let log_y = p.log_y;
    let fx = |v: f64| fmt_tick(v, nice_ticks(xr.0, xr.1, n_x).1);
    let make_y = |yr: (f64, f64)| {
        if log_y {
            (log10_axis(yr.0, yr.1), 0.0)
        } else {
            linear_axis(yr.0, yr.1, n_y)
        }
    };
    let build = |yr: (f64, f64)| -> DResult<(Chart, Axis, Axis, f64)> {
        let (ya, ystep) = make_y(yr);
        let (xa, _) = linear_axis(xr.0, xr.1, n_x);
        let fy = |v: f64| {
            if log_y {
                fmt_pow10(v)
            } else {
                fmt_tick(v, ystep)
            }
        };
        let at = AxisText { x_desc: p.x_desc, y_desc: p.y_desc, fx: &fx, fy: &fy, scale: sc };
        let chart = ChartBuilder::on(&area)
            .margin_top((10.0 * sc) as u32)
            .margin_right((20.0 * sc) as u32)
            .margin_left((4.0 * sc) as u32)
            .margin_bottom((2.0 * sc) as u32)
            .x_label_area_size(x_label_room(&at))
            .y_label_area_size(y_label_room(&ya, &at))
            .build_cartesian_2d(xa.clone(), ya.clone())?;
        Ok((chart, xa, ya, ystep))
    };

    // the legend: its size, then a corner free of data (or room made at the top)
    let fsize = LEGEND_SIZE * sc;
    let row_h = (fsize * 1.35).round();
    let sample_w = 30.0 * sc;
    let pad = 8.0 * sc;
    let names: Vec<String> = p.curves.iter().map(legend_name).collect();
    let lw = names.iter().map(|n| text_width(n, fsize)).fold(0.0, f64::max) + sample_w + 3.0 * pad;
    let lh = names.len() as f64 * row_h + 1.5 * pad;
    let (probe, ..) = build(yr)?;
    let (pw, ph) = probe.plotting_area().dim_in_pixel();
    let (pw, ph) = (pw.max(1) as f64, ph.max(1) as f64);
    let runs: Vec<Vec<(f64, f64)>> = drawn.iter().flat_map(|c| c.runs.iter().cloned()).collect();
    let margin = 10.0 * sc;
    let (corner, top) = place_legend(&runs, xr, yr, ((lw + margin) / pw, (lh + margin) / ph));
    yr.1 = top;

    let (mut chart, xa, ya, ystep) = build(yr)?;
    let fy = |v: f64| {
        if log_y {
            fmt_pow10(v)
        } else {
            fmt_tick(v, ystep)
        }
    };
    draw_axes(
        &mut chart,
        &xa,
        &ya,
        &AxisText { x_desc: p.x_desc, y_desc: p.y_desc, fx: &fx, fy: &fy, scale: sc },
    )?;

    if drawn.is_empty() {
        let msg = if p.curves.is_empty() {
            "no data"
        } else if p.log_y {
            "no positive values to show on a log axis"
        } else {
            "no finite values"
        };
        chart.plotting_area().draw(
            &Label::new(msg, (0.5 * (xr.0 + xr.1), 0.5 * (yr.0 + yr.1)), LABEL_SIZE * sc)
                .color(RGBColor(110, 110, 110))
                .anchor(HPos::Center, VPos::Center),
        )?;
    }

    for c in p.curves {
        let style = c.color.stroke_width(2);
        for run in &c.runs {
            if c.dashed {
                chart.draw_series(DashedLineSeries::new(run.iter().copied(), 8, 5, style))?;
            } else {
                chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            }
        }
        if c.len() <= 40 {
            chart.draw_series(c.points().map(|&q| Circle::new(q, 3, c.color.filled())))?;
        }
    }

    // legend box
    if !p.curves.is_empty() {
        let pa = chart.plotting_area().strip_coord_spec();
        let (left, upper) = corner.sides();
        let x0 = if left { margin } else { pw - margin - lw };
        let y0 = if upper { margin } else { ph - margin - lh };
        let (x0, y0) = (x0.round() as i32, y0.round() as i32);
        pa.draw(&Rectangle::new(
            [(x0, y0), (x0 + lw.round() as i32, y0 + lh.round() as i32)],
            WHITE.mix(0.92).filled(),
        ))?;
        pa.draw(&Rectangle::new(
            [(x0, y0), (x0 + lw.round() as i32, y0 + lh.round() as i32)],
            RGBColor(180, 180, 180).stroke_width(1),
        ))?;
        for (k, (c, name)) in p.curves.iter().zip(&names).enumerate() {
            let yy = y0 + (0.75 * pad + row_h * (k as f64 + 0.5)).round() as i32;
            let xs = x0 + pad as i32;
            let color = if c.len() > 0 { c.color.mix(1.0) } else { c.color.mix(0.35) };
            if c.dashed {
                let seg = (sample_w / 3.0).round() as i32;
                for j in 0..2 {
                    let a = xs + j * (seg + seg / 2);
                    pa.draw(&PathElement::new(vec![(a, yy), (a + seg, yy)], color.stroke_width(2)))?;
                }
            } else {
                pa.draw(&PathElement::new(
                    vec![(xs, yy), (xs + sample_w as i32, yy)],
                    color.stroke_width(2),
                ))?;
            }
            pa.draw(
                &Label::new(name.clone(), (xs + (sample_w + pad) as i32, yy), fsize)
                    .anchor(HPos::Left, VPos::Center),
            )?;
        }
    }
    Ok(())
}

fn legend_name(c: &Curve) -> String {
    let n = ellipsize(&c.name, 40);
    if c.len() == 0 {
        format!("{n} (nothing to show)")
    } else {
        n
    }
}

/// A figure holding only a title and a message (for inputs with nothing to plot).
pub(crate) fn render_message(out: &Path, title: &str, msg: &str) -> Result<(), PlotError> {
    render(out, FIGURE_SIZE, |root| {
        let (w, h) = (FIGURE_SIZE.0 as i32, FIGURE_SIZE.1 as i32);
        draw_title(root, title)?;
        root.draw(
            &Label::new(msg, (w / 2, h / 2), LABEL_SIZE)
                .color(RGBColor(110, 110, 110))
                .anchor(HPos::Center, VPos::Center),
        )?;
        Ok(())
    })
}

/// Group the metric columns into panels: MMD (log), mass, particle counts, means, others.
fn panels(m: &Metrics) -> Vec<(String, String, bool, Vec<Curve>)> {
    let pts = |v: &[f64]| -> Vec<(f64, f64)> { m.t.iter().copied().zip(v.iter().copied()).collect() };
    let get = |name: &str| m.columns.iter().find(|c| c.0 == name);
    let mut out = Vec::new();

    let mut mmd = Vec::new();
    if let Some((_, v)) = get("mmd") {
        mmd.push(Curve::new("MMD", series_color(0), &pts(v), true));
    }
    if let Some((_, v)) = get("mmd_normalized") {
        let mut c = Curve::new("MMD, normalized masses", series_color(1), &pts(v), true);
        c.dashed = true;
        mmd.push(c);
    }
    if !mmd.is_empty() {
        out.push(("Distance to the target".into(), "MMD (log scale)".into(), true, mmd));
    }
    if let Some((_, v)) = get("mass") {
        out.push((
            "Total mass".into(),
            "mass".into(),
            false,
            vec![Curve::new("mass Σ w", series_color(2), &pts(v), false)],
        ));
    }
    let mut counts = Vec::new();
    if let Some((_, v)) = get("n") {
        counts.push(Curve::new("particles n", series_color(4), &pts(v), false));
    }
    if let Some((_, v)) = get("ess") {
        let mut c = Curve::new("effective sample size", series_color(5), &pts(v), false);
        c.dashed = true;
        counts.push(c);
    }
    if !counts.is_empty() {
        out.push(("Particles".into(), "count".into(), false, counts));
    }
    let is_mean = |n: &str| n.strip_prefix("mean_").is_some_and(|k| k.parse::<usize>().is_ok());
    let means: Vec<Curve> = m
        .columns
        .iter()
        .filter(|c| is_mean(&c.0))
        .take(10)
        .enumerate()
        .map(|(i, (n, v))| Curve::new(n, series_color(i), &pts(v), false))
        .collect();
    if !means.is_empty() {
        let n_means = m.columns.iter().filter(|c| is_mean(&c.0)).count();
        let title = if n_means > means.len() {
            format!("Weighted mean (first {} of {n_means} coordinates)", means.len())
        } else {
            "Weighted mean position".to_string()
        };
        out.push((title, "mean coordinate".into(), false, means));
    }
    let known = ["mmd", "mmd_normalized", "mass", "n", "ess"];
    let others: Vec<Curve> = m
        .columns
        .iter()
        .filter(|c| !known.contains(&c.0.as_str()) && !is_mean(&c.0))
        .take(10)
        .enumerate()
        .map(|(i, (n, v))| Curve::new(n, series_color(i + 3), &pts(v), false))
        .collect();
    if !others.is_empty() {
        out.push(("Other metrics".into(), "value".into(), false, others));
    }
    out
}

/// Draw `metrics.png` from `metrics.csv`.
pub(crate) fn draw(path: &Path, run: &str, out: &Path) -> Result<(), PlotError> {
    let m = read_metrics(path)?;
    let title = format!("Metrics — {}", ellipsize(run, 60));
    if m.t.is_empty() {
        return render_message(out, &title, "metrics.csv has no rows");
    }
    let ps = panels(&m);
    if ps.is_empty() {
        return render_message(out, &title, "metrics.csv has no metric columns");
    }
    let x_desc = m.t_name.clone();
    let xr = pad_range(finite_range(m.t.iter().copied()), 0.02);
    render(out, FIGURE_SIZE, |root| {
        draw_title(root, &title)?;
        let (_, body) = root.split_vertically(56);
        let body = body.margin(0, 8, 8, 8);
        let n = ps.len();
        let areas: Vec<DrawingArea<BitMapBackend<'_>, Shift>> = if n <= 2 {
            body.split_evenly((n, 1))
        } else {
            let (_, h) = body.dim_in_pixel();
            let (upper, lower) = body.split_vertically((h as f64 * 0.5) as u32);
            let rest = n - 1;
            let (rows, cols) = if rest <= 3 { (1, rest) } else { (2, rest.div_ceil(2)) };
            let mut v = vec![upper];
            v.extend(lower.split_evenly((rows, cols)).into_iter().take(rest));
            v
        };
        for ((caption, y_desc, log_y, curves), area) in ps.iter().zip(&areas) {
            let (w, _) = area.dim_in_pixel();
            let scale = if w < 400 {
                0.85
            } else if w < 600 {
                0.92
            } else {
                1.0
            };
            draw_panel(
                area,
                &PanelSpec {
                    caption: Some(caption),
                    x_desc: &x_desc,
                    y_desc,
                    log_y: *log_y,
                    curves,
                    x_range: Some(xr),
                    scale,
                },
            )?;
        }
        Ok(())
    })
}
