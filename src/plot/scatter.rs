//! [`plot_scatter`]: panels of weighted point clouds (first two coordinates), each a list of
//! layers drawn in order: points with their own colour and radius, and optional polylines
//! (paths).

use super::canvas::{draw_title, ellipsize, finite_range, pad_range, render, series_color, time_color};
use super::text::Label;
use super::PlotError;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// How a layer's points are coloured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Colour {
    /// The `i`-th colour of the qualitative palette.
    Series(usize),
    /// A light grey (context, e.g. the data under a prediction).
    Grey,
    /// Per point, from a value in `[0, 1]` (the time colour map, dark purple to green).
    Scale,
}

/// One layer of a panel: points `(x, y)` with a radius in pixels and (for [`Colour::Scale`]) a
/// value in `[0, 1]` each, and paths drawn as polylines.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// Name in the panel's legend (empty: none).
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Radii in pixels (one per point; missing ones are 2).
    pub radius: Vec<f64>,
    /// Colour values in `[0, 1]` for [`Colour::Scale`].
    pub value: Vec<f64>,
    /// Paths.
    pub paths: Vec<Vec<(f64, f64)>>,
    /// The colour.
    pub colour: Option<Colour>,
}

/// A titled panel of layers.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Caption.
    pub caption: String,
    /// Layers, drawn in order.
    pub layers: Vec<Layer>,
}

fn colour_of(c: Option<Colour>, v: f64) -> RGBColor {
    match c.unwrap_or(Colour::Series(0)) {
        Colour::Series(i) => series_color(i),
        Colour::Grey => RGBColor(190, 190, 190),
        Colour::Scale => time_color(v),
    }
}

/// Draw `panels` in a grid (up to 3 columns) with one shared range and write a PNG to `path`
/// (`size` pixels). Non-finite points are left out; empty panels get empty axes.
pub fn plot_scatter(path: &Path, title: &str, size: (u32, u32), panels: &[Panel]) -> Result<(), PlotError> {
    let all = || {
        panels
            .iter()
            .flat_map(|p| p.layers.iter())
            .flat_map(|l| l.points.iter().chain(l.paths.iter().flatten()))
    };
    let xr = pad_range(finite_range(all().map(|p| p.0)), 0.04);
    let yr = pad_range(finite_range(all().map(|p| p.1)), 0.04);
    let title = ellipsize(title, 80);
    let n = panels.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    render(path, size, |root| {
        draw_title(root, &title)?;
        let (_, body) = root.split_vertically(56);
        let areas = body.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(areas) {
            let (top, rest) = area.split_vertically(30);
            let (w, _) = top.dim_in_pixel();
            top.draw(
                &Label::new(ellipsize(&panel.caption, 40), (w as i32 / 2, 16), 20.0)
                    .anchor(HPos::Center, VPos::Center),
            )?;
            let mut chart = ChartBuilder::on(&rest)
                .margin(8)
                .x_label_area_size(0)
                .y_label_area_size(0)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_y_mesh()
                .x_labels(0)
                .y_labels(0)
                .axis_style(RGBColor(150, 150, 150))
                .draw()?;
            let ok = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
            let mut legend = Vec::new();
            for layer in &panel.layers {
                for path in &layer.paths {
                    let pts: Vec<(f64, f64)> = path.iter().copied().filter(ok).collect();
                    let c = colour_of(layer.colour, 0.5).mix(0.35);
                    chart.draw_series(std::iter::once(PathElement::new(pts, c.stroke_width(1))))?;
                }
                let pts = layer.points.iter().enumerate().filter(|(_, p)| ok(p)).map(|(i, &p)| {
                    let r = layer.radius.get(i).copied().unwrap_or(2.0).clamp(0.5, 30.0);
                    let c = colour_of(layer.colour, layer.value.get(i).copied().unwrap_or(0.5));
                    Circle::new(p, r, c.mix(0.7).filled())
                });
                chart.draw_series(pts)?;
                if !layer.name.is_empty() {
                    legend.push((layer.name.clone(), colour_of(layer.colour, 0.5)));
                }
            }
            let pa = chart.plotting_area();
            for (k, (name, c)) in legend.iter().enumerate() {
                let y = yr.1 - (yr.1 - yr.0) * (0.04 + 0.07 * k as f64);
                let x = xr.0 + (xr.1 - xr.0) * 0.03;
                pa.draw(&Circle::new((x, y), 5, c.filled()))?;
                pa.draw(
                    &Label::new(name.as_str(), (x, y), 16.0).anchor(HPos::Left, VPos::Center).offset(10, 0),
                )?;
            }
        }
        Ok(())
    })
}
