//! [`plot_heatmap`]: a labelled matrix with a colour scale and the values in the cells.

use super::canvas::{
    draw_title, ellipsize, fmt_num, fmt_tick, heat_color, nice_ticks, render, text_width, DResult,
    LABEL_SIZE, TEXT, TICK_SIZE,
};
use super::metrics::render_message;
use super::text::Label;
use super::{PlotError, FIGURE_SIZE};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

const MISSING: RGBColor = RGBColor(205, 205, 205);

/// Draw a heatmap of the `rows × cols` matrix `values` (row-major, `row_labels.len()` rows and
/// `col_labels.len()` columns) and write a PNG to `path` (1000×800).
///
/// Row 0 is at the top, column 0 at the left; each cell shows its value (3 significant digits)
/// when the cells are large enough to hold it. Colours run from near-white at `min(0, min)` to
/// dark blue at the maximum, explained by a colour bar. Non-finite values are grey, marked
/// `n/a`. For a fate matrix: rows = source clusters `i`, columns = target clusters `j`, values =
/// mass flowing from `i` to `j`.
///
/// Errors when `values.len() != rows × cols` (naming `path`) or the file cannot be written.
pub fn plot_heatmap<R: AsRef<str>, C: AsRef<str>>(
    path: &Path,
    row_labels: &[R],
    col_labels: &[C],
    values: &[f64],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<(), PlotError> {
    let (nr, nc) = (row_labels.len(), col_labels.len());
    if values.len() != nr * nc {
        return Err(PlotError::Invalid {
            file: path.to_path_buf(),
            msg: format!(
                "heatmap: {} values for {nr} rows × {nc} columns (expected {})",
                values.len(),
                nr * nc
            ),
        });
    }
    let title = ellipsize(title, 70);
    if nr == 0 || nc == 0 {
        return render_message(path, &title, "empty matrix: nothing to show");
    }
    let rows: Vec<String> = row_labels.iter().map(|s| ellipsize(s.as_ref(), 24)).collect();
    let cols: Vec<String> = col_labels.iter().map(|s| s.as_ref().to_string()).collect();
    let lo = values.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::min);
    let hi = values.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max).max(lo);
    let shade = |v: f64| -> f64 {
        if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else if v != 0.0 {
            0.6
        } else {
            0.0
        }
    };

    render(path, FIGURE_SIZE, |root| -> DResult {
        let (fw, fh) = (FIGURE_SIZE.0 as i32, FIGURE_SIZE.1 as i32);
        draw_title(root, &title)?;
        // layout
        let tick = TICK_SIZE;
        let row_w = rows.iter().map(|s| text_width(s, tick)).fold(0.0, f64::max).clamp(20.0, 240.0) as i32;
        let left = 16 + 28 + row_w + 10; // y title, row labels
        let right = fw - 130; // colour bar beyond
        let top = 64;
        let avail_w = right - left;
        let cell_w0 = avail_w as f64 / nc as f64;
        // column labels: horizontal when they fit, else vertical
        let col_max = cols.iter().map(|s| text_width(s, tick)).fold(0.0, f64::max);
        let vertical = col_max > cell_w0 - 6.0 && cell_w0 < 3.0 * tick;
        let col_band = if vertical { (col_max.min(190.0) + 12.0) as i32 } else { (tick + 14.0) as i32 };
        let bottom = fh - (col_band + 44);
        let avail_h = bottom - top;
        let cell_w = cell_w0.min(160.0);
        let cell_h = (avail_h as f64 / nr as f64).min(120.0);
        let gw = cell_w * nc as f64;
        let gh = cell_h * nr as f64;
        let gx = left as f64 + (avail_w as f64 - gw) / 2.0;
        let gy = top as f64 + (avail_h as f64 - gh) / 2.0;
        let px = |j: usize| (gx + cell_w * j as f64).round() as i32;
        let py = |i: usize| (gy + cell_h * i as f64).round() as i32;

        // cells and numbers
        let longest = values.iter().map(|v| fmt_num(*v).chars().count()).max().unwrap_or(1).max(1) as f64;
        let num_size = (cell_h * 0.38).min(cell_w / (longest * 0.62 + 0.6)).min(20.0);
        for i in 0..nr {
            for j in 0..nc {
                let v = values[i * nc + j];
                let (c, s) = if v.is_finite() {
                    let s = shade(v);
                    (heat_color(s), s)
                } else {
                    (MISSING, 0.3)
                };
                root.draw(&Rectangle::new([(px(j), py(i)), (px(j + 1), py(i + 1))], c.filled()))?;
                if num_size >= 9.0 {
                    let tc = if s > 0.55 { WHITE } else { TEXT };
                    root.draw(
                        &Label::new(fmt_num(v), ((px(j) + px(j + 1)) / 2, (py(i) + py(i + 1)) / 2), num_size)
                            .color(tc)
                            .anchor(HPos::Center, VPos::Center),
                    )?;
                }
            }
        }
        // thin white grid lines when cells are large enough, then a frame
        if cell_w >= 8.0 && cell_h >= 8.0 {
            for j in 1..nc {
                root.draw(&PathElement::new(vec![(px(j), py(0)), (px(j), py(nr))], WHITE.stroke_width(1)))?;
            }
            for i in 1..nr {
                root.draw(&PathElement::new(vec![(px(0), py(i)), (px(nc), py(i))], WHITE.stroke_width(1)))?;
            }
        }
        root.draw(&Rectangle::new(
            [(px(0), py(0)), (px(nc), py(nr))],
            RGBColor(120, 120, 120).stroke_width(1),
        ))?;

        // row labels (skip some when the rows are too thin)
        let row_every = ((tick + 2.0) / cell_h).ceil().max(1.0) as usize;
        for (i, s) in rows.iter().enumerate().step_by(row_every) {
            root.draw(
                &Label::new(s.clone(), (px(0) - 8, (py(i) + py(i + 1)) / 2), tick)
                    .anchor(HPos::Right, VPos::Center),
            )?;
        }
        // column labels
        if vertical {
            let col_every = ((tick + 2.0) / cell_w).ceil().max(1.0) as usize;
            let max_chars = ((col_band - 12) as f64 / (tick * 0.6)).floor().max(3.0) as usize;
            for (j, s) in cols.iter().enumerate().step_by(col_every) {
                root.draw(
                    &Label::new(ellipsize(s, max_chars), ((px(j) + px(j + 1)) / 2, py(nr) + 8), tick)
                        .vertical()
                        .anchor(HPos::Right, VPos::Center),
                )?;
            }
        } else {
            let max_chars = ((cell_w - 6.0) / (tick * 0.6)).floor().max(3.0) as usize;
            for (j, s) in cols.iter().enumerate() {
                root.draw(
                    &Label::new(ellipsize(s, max_chars), ((px(j) + px(j + 1)) / 2, py(nr) + 8), tick)
                        .anchor(HPos::Center, VPos::Top),
                )?;
            }
        }
        // axis titles
        root.draw(
            &Label::new(x_label, ((px(0) + px(nc)) / 2, py(nr) + col_band + 18), LABEL_SIZE)
                .anchor(HPos::Center, VPos::Center),
        )?;
        root.draw(
            &Label::new(y_label, (20, (py(0) + py(nr)) / 2), LABEL_SIZE)
                .vertical()
                .anchor(HPos::Center, VPos::Center),
        )?;

        // colour bar
        let (bx, bw) = (right + 26, 22);
        let (by, bh) = (py(0).max(top), (py(nr) - py(0)).clamp(120, 420));
        for k in 0..bh {
            let u = 1.0 - k as f64 / (bh - 1).max(1) as f64;
            root.draw(&Rectangle::new([(bx, by + k), (bx + bw, by + k + 1)], heat_color(u).filled()))?;
        }
        root.draw(&Rectangle::new([(bx, by), (bx + bw, by + bh)], RGBColor(120, 120, 120).stroke_width(1)))?;
        let (blo, bhi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
        let (ticks, step) = nice_ticks(blo, bhi, 5);
        for v in ticks {
            let u = (v - blo) / (bhi - blo);
            let y = by + ((1.0 - u) * (bh - 1) as f64).round() as i32;
            root.draw(&PathElement::new(vec![(bx + bw, y), (bx + bw + 5, y)], TEXT.stroke_width(1)))?;
            root.draw(
                &Label::new(fmt_tick(v, step), (bx + bw + 8, y), tick - 1.0).anchor(HPos::Left, VPos::Center),
            )?;
        }
        if values.iter().any(|v| !v.is_finite()) {
            root.draw(&Rectangle::new([(bx, by + bh + 16), (bx + bw, by + bh + 32)], MISSING.filled()))?;
            root.draw(
                &Label::new("n/a", (bx + bw + 8, by + bh + 24), tick - 1.0).anchor(HPos::Left, VPos::Center),
            )?;
        }
        Ok(())
    })
}
