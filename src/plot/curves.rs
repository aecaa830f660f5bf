//! [`plot_curves`]: several named curves on one plot with a legend.

use super::canvas::{draw_title, ellipsize, render, series_color};
use super::metrics::{draw_panel, Curve, PanelSpec};
use super::{PlotError, FIGURE_SIZE};
use std::path::Path;

/// Plot named curves `(name, [(x, y)])` on one set of axes and write a PNG to `path`
/// (1000×800). With `log_y` the `y` axis is logarithmic and non-positive values are left out;
/// non-finite points are always left out (the curve is broken there). Each curve gets its own
/// colour and a legend entry, placed in a corner free of data. An empty `series` (or curves with
/// nothing to draw) gives a figure saying so.
///
/// Example: MMD against step for three algorithms,
/// `plot_curves(p, "MMD to target", "step", "MMD", true, &[("USD".into(), pts), ...])`.
pub fn plot_curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let curves: Vec<Curve> = series
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| Curve::new(name, series_color(i), pts, log_y))
        .collect();
    let title = ellipsize(title, 70);
    let y_desc = if log_y { format!("{y_label} (log scale)") } else { y_label.to_string() };
    render(path, FIGURE_SIZE, |root| {
        draw_title(root, &title)?;
        let (_, body) = root.split_vertically(56);
        let body = body.margin(0, 10, 10, 10);
        draw_panel(
            &body,
            &PanelSpec {
                caption: None,
                x_desc: x_label,
                y_desc: &y_desc,
                log_y,
                curves: &curves,
                x_range: None,
                scale: 1.0,
            },
        )
    })
}
