//! `trajectories.png`: particle paths coloured by time, the initial particles, the final particles
//! sized by weight and the target samples, in the plane (`d = 2`), in the first two principal
//! components (`d > 2`) or as `x` against `t` (`d = 1`). A side panel holds the legend, the time
//! colour bar and the weight key, so nothing covers the data.

use super::canvas::{
    draw_axes, draw_title, ellipsize, finite_range, fmt_num, fmt_tick, linear_axis, nice_ticks, pad_range,
    render, text_width, time_color, x_label_room, y_label_room, Axis, AxisText, Chart, DResult, LEGEND_SIZE,
    TEXT,
};
use super::read::{read_snapshots, Samples, Snapshots};
use super::text::Label;
use super::{PlotError, FIGURE_SIZE};
use nalgebra::{DMatrix, SymmetricEigen};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::collections::HashMap;
use std::path::Path;

/// At most this many particle ids get their paths drawn.
pub(crate) const MAX_PATHS: usize = 400;

const INITIAL: RGBAColor = RGBAColor(120, 120, 120, 0.45);
const TARGET: RGBAColor = RGBAColor(215, 25, 28, 0.45);
const FINAL: RGBAColor = RGBAColor(25, 25, 25, 0.40);
const FINAL_EDGE: RGBAColor = RGBAColor(0, 0, 0, 0.85);
const PATH_ALPHA: f64 = 0.55;
/// Radius of a final particle of mean weight (smaller when there are many, down to 2 pixels);
/// area ∝ weight, clamped to `[R_MIN, 3.2 × that]`.
const R_MEAN: f64 = 3.5;
const R_MIN: f64 = 1.5;

/// How positions map to the figure plane.
enum Projection {
    /// `d = 1`: `(t, x1)`.
    Time,
    /// `d = 2`: `(x1, x2)`.
    Plane,
    /// `d > 2`: the first two principal components.
    Pca { mean: Vec<f64>, pc: [Vec<f64>; 2], explained: [f64; 2] },
}

impl Projection {
    fn project(&self, t: f64, x: &[f64]) -> (f64, f64) {
        match self {
            Projection::Time => (t, x[0]),
            Projection::Plane => (x[0], x[1]),
            Projection::Pca { mean, pc, .. } => {
                let dot = |v: &[f64]| x.iter().zip(mean).zip(v).map(|((a, m), b)| (a - m) * b).sum::<f64>();
                (dot(&pc[0]), dot(&pc[1]))
            }
        }
    }
}

/// Principal components of the initial and final particles, each snapshot weighted to total 1/2
/// (uniform weights when a snapshot has zero total weight).
fn pca(s: &Snapshots) -> Projection {
    let d = s.dim;
    let frames: Vec<_> = match (s.frames.first(), s.frames.last()) {
        (Some(a), Some(b)) if s.frames.len() > 1 => vec![a, b],
        (Some(a), _) => vec![a],
        _ => vec![],
    };
    let mut pts: Vec<(&[f64], f64)> = Vec::new();
    for fr in &frames {
        let total: f64 = fr.w.iter().sum();
        let n = fr.len().max(1) as f64;
        let share = 1.0 / frames.len() as f64;
        for (j, &w) in fr.w.iter().enumerate() {
            let wj = if total > 0.0 { w / total } else { 1.0 / n };
            pts.push((&fr.x[j * d..(j + 1) * d], wj * share));
        }
    }
    let wsum: f64 = pts.iter().map(|p| p.1).sum::<f64>().max(f64::MIN_POSITIVE);
    let mut mean = vec![0.0; d];
    for (x, w) in &pts {
        for k in 0..d {
            mean[k] += w * x[k] / wsum;
        }
    }
    // centred rows scaled by √w: cov = XᵀX
    let n = pts.len();
    let mut xm = DMatrix::<f64>::zeros(n, d);
    for (i, (x, w)) in pts.iter().enumerate() {
        let sw = (w / wsum).sqrt();
        for k in 0..d {
            xm[(i, k)] = sw * (x[k] - mean[k]);
        }
    }
    let trace: f64 = xm.iter().map(|v| v * v).sum();
    let (eig_values, eig_vectors) = top_eigen(&xm);
    let comp = |i: usize| -> Vec<f64> {
        let mut v: Vec<f64> = if i < eig_vectors.ncols() {
            eig_vectors.column(i).iter().copied().collect()
        } else {
            vec![0.0; d]
        };
        // deterministic sign: the largest entry positive
        let big = v.iter().copied().fold(0.0f64, |m, a| if a.abs() > m.abs() { a } else { m });
        if big < 0.0 {
            v.iter_mut().for_each(|a| *a = -*a);
        }
        if !v.iter().all(|a| a.is_finite()) || v.iter().all(|a| *a == 0.0) {
            v = (0..d).map(|k| if k == i { 1.0 } else { 0.0 }).collect();
        }
        v
    };
    let frac = |i: usize| {
        if trace > 0.0 && i < eig_values.len() {
            (eig_values[i].max(0.0) / trace * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        }
    };
    Projection::Pca { mean, pc: [comp(0), comp(1)], explained: [frac(0), frac(1)] }
}

/// Dimension above which the principal components come from subspace iteration instead of a
/// full eigendecomposition of the `d × d` covariance.
const PCA_EXACT_MAX_DIM: usize = 200;

/// The top eigenvalues (descending) and eigenvectors (columns) of `XᵀX`: all of them for small
/// `d`, the first two (from a subspace iteration on a few vectors) for large `d`.
fn top_eigen(xm: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let d = xm.ncols();
    let sort = |vals: Vec<f64>, vecs: DMatrix<f64>| {
        let mut order: Vec<usize> = (0..vals.len()).collect();
        order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]));
        let v = order.iter().map(|&i| vals[i]).collect();
        let cols: Vec<_> = order.iter().map(|&i| vecs.column(i).into_owned()).collect();
        (v, DMatrix::from_columns(&cols))
    };
    if d <= PCA_EXACT_MAX_DIM || xm.nrows() == 0 {
        let cov = xm.transpose() * xm;
        let eig = SymmetricEigen::new(cov);
        return sort(eig.eigenvalues.iter().copied().collect(), eig.eigenvectors);
    }
    // subspace iteration with a few extra vectors, then Rayleigh–Ritz
    let k = 6.min(d);
    let mut q = DMatrix::<f64>::from_fn(d, k, |i, j| {
        let h = splitmix((i as u64) << 8 | j as u64);
        (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    });
    for _ in 0..60 {
        let z = xm.transpose() * (xm * &q);
        q = z.qr().q();
    }
    let xq = xm * &q;
    let b = xq.transpose() * &xq;
    let eig = SymmetricEigen::new(b);
    let vecs = &q * eig.eigenvectors;
    sort(eig.eigenvalues.iter().copied().collect(), vecs)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A path piece: from, to, and the time at its middle.
struct Segment {
    a: (f64, f64),
    b: (f64, f64),
    t_mid: f64,
}

/// Segments between consecutive appearances of the chosen ids (at most [`MAX_PATHS`] of them,
/// chosen by a hash of the id); a clone's first appearance joins to the last recorded position
/// of its nearest recorded ancestor. Returns the segments, the ids drawn and the ids in total.
fn segments(s: &Snapshots, pos: &[Vec<(f64, f64)>]) -> (Vec<Segment>, usize, usize) {
    let mut all: Vec<u64> = s.frames.iter().flat_map(|f| f.id.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let total = all.len();
    if !s.has_ids {
        return (vec![], 0, total);
    }
    let chosen: std::collections::HashSet<u64> = if all.len() > MAX_PATHS {
        let mut h: Vec<(u64, u64)> = all.iter().map(|&i| (splitmix(i), i)).collect();
        h.sort_unstable();
        h.into_iter().take(MAX_PATHS).map(|p| p.1).collect()
    } else {
        all.iter().copied().collect()
    };
    let mut last: HashMap<u64, ((f64, f64), f64)> = HashMap::new();
    let mut out = Vec::new();
    for (k, fr) in s.frames.iter().enumerate() {
        for (j, id) in fr.id.iter().enumerate() {
            if !chosen.contains(id) {
                continue;
            }
            let here = pos[k][j];
            let from = last.get(id).copied().or_else(|| {
                // a clone born since: join to its nearest recorded ancestor
                let mut a = *id;
                for _ in 0..64 {
                    let p = *s.parent.get(&a)?;
                    if p == a {
                        return None;
                    }
                    if let Some(v) = last.get(&p) {
                        return Some(*v);
                    }
                    a = p;
                }
                None
            });
            if let Some((a, ta)) = from {
                out.push(Segment { a, b: here, t_mid: 0.5 * (ta + fr.t) });
            }
        }
        for (j, id) in fr.id.iter().enumerate() {
            last.insert(*id, (pos[k][j], fr.t));
        }
    }
    (out, chosen.len(), total)
}

/// The whole population at a snapshot: its count (if known) and its total mass.
pub(crate) type Total = (Option<f64>, f64);

/// The whole population at time `t` of a run folder (snapshots may hold a subsample): from the
/// row of `metrics.csv` at `t` when it reports `mass` (and `n`), else from `summary.json` when `t`
/// is the stop time, else from `source.csv` (the full initial cloud) when `t = 0`.
pub(crate) fn population_at(dir: &Path, t: f64) -> Option<Total> {
    let from_metrics = || {
        let m = super::read::read_metrics(&dir.join("metrics.csv")).ok()?;
        let row = m.t.iter().position(|&x| x == t && m.t_name == "t")?;
        let col = |k: &str| m.columns.iter().find(|(n, _)| n == k).map(|(_, v)| v[row]);
        let mass = col("mass").filter(|v| v.is_finite())?;
        Some((col("n").filter(|v| v.is_finite()), mass))
    };
    let from_summary = || {
        let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v.get("t")?.as_f64()? == t).then_some(())?;
        Some((v.get("n")?.as_f64(), v.get("mass")?.as_f64()?))
    };
    let from_source = || {
        let s = super::read::read_samples(&dir.join("source.csv")).ok()??;
        (t == 0.0).then(|| (Some(s.len() as f64), s.w.iter().sum()))
    };
    from_metrics().or_else(from_summary).or_else(from_source)
}

/// Legend lines for the population at one snapshot: the whole population's count and true total
/// mass when known (with how many are drawn), otherwise the drawn rows, said to be only those.
pub(crate) fn population_label(
    when: &str,
    drawn: usize,
    drawn_mass: f64,
    total: Option<Total>,
) -> Vec<String> {
    match total {
        Some((Some(n), m)) if (n - drawn as f64).abs() > 0.5 => {
            vec![format!("{when}: {n} particles, mass {}", fmt_num(m)), format!("    ({drawn} drawn)")]
        }
        Some((Some(n), m)) => vec![format!("{when}: {n} particles, mass {}", fmt_num(m))],
        Some((None, m)) => vec![format!("{when}: mass {}", fmt_num(m)), format!("    ({drawn} drawn)")],
        None => vec![format!(
            "{when}: {drawn} drawn (whole population unknown), their mass {}",
            fmt_num(drawn_mass)
        )],
    }
}

/// Draw `trajectories.png` from `snapshots.csv` (and the target samples, if any).
pub(crate) fn draw(
    snap_path: &Path,
    target: Option<&Samples>,
    target_path: &Path,
    run: &str,
    out: &Path,
) -> Result<(), PlotError> {
    let s = read_snapshots(snap_path)?;
    let title = format!("Particle trajectories — {}", ellipsize(run, 50));
    if s.frames.is_empty() {
        let msg = if s.skipped > 0 {
            format!("snapshots.csv: all {} rows have non-finite values", s.skipped)
        } else {
            "snapshots.csv has no rows".to_string()
        };
        return super::metrics::render_message(out, &title, &msg);
    }
    let d = s.dim;
    let mut notes: Vec<String> = Vec::new();
    let target = match target {
        Some(tg) if tg.dim != d => {
            notes.push(format!(
                "{}: d = {} ≠ {d}, not shown",
                target_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                tg.dim
            ));
            None
        }
        t => t,
    };
    if s.skipped > 0 {
        notes.push(format!("{} non-finite rows skipped", s.skipped));
    }
    let proj = match d {
        1 => Projection::Time,
        2 => Projection::Plane,
        _ => pca(&s),
    };
    let pos: Vec<Vec<(f64, f64)>> = s
        .frames
        .iter()
        .map(|fr| (0..fr.len()).map(|j| proj.project(fr.t, &fr.x[j * d..(j + 1) * d])).collect())
        .collect();
    let t0 = s.frames[0].t;
    let t1 = s.frames[s.frames.len() - 1].t;
    let t_span = if t1 > t0 { t1 - t0 } else { 1.0 };
    let time_axis = matches!(proj, Projection::Time);
    let tgt_pos: Vec<(f64, f64)> = target
        .map(|tg| {
            (0..tg.len())
                .map(|j| {
                    let t = tg.time.as_ref().map_or(t1, |tt| tt[j]);
                    let (a, b) = proj.project(t, &tg.x[j * d..(j + 1) * d]);
                    if time_axis {
                        // x against t: spread the samples in a thin band just after their
                        // time, so they do not hide under the final particles
                        let u = (splitmix(j as u64) >> 11) as f64 / (1u64 << 53) as f64;
                        (a + t_span * (0.02 + 0.04 * u), b)
                    } else {
                        (a, b)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let (segs, shown, total_ids) = segments(&s, &pos);

    let (x_desc, y_desc) = match &proj {
        Projection::Time => ("t".to_string(), s.coords[0].clone()),
        Projection::Plane => (s.coords[0].clone(), s.coords[1].clone()),
        Projection::Pca { explained, .. } => {
            let pct = |v: f64| {
                if v >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            };
            (format!("PC1 ({}% var)", pct(explained[0])), format!("PC2 ({}% var)", pct(explained[1])))
        }
    };

    let all_pts = pos.iter().flatten().chain(tgt_pos.iter());
    let xr = pad_range(finite_range(all_pts.clone().map(|p| p.0)), 0.04);
    let yr = pad_range(finite_range(all_pts.map(|p| p.1)), 0.04);

    let last = s.frames.last().expect("frames is not empty");
    let first = &s.frames[0];
    let mean_w = if last.len() > 0 { last.w.iter().sum::<f64>() / last.len() as f64 } else { 0.0 };
    let r_mean = (R_MEAN * (500.0 / last.len().max(1) as f64).sqrt()).clamp(2.0, R_MEAN);
    let r_max = 3.2 * r_mean;
    let radius = |w: f64| -> i32 {
        let r = if mean_w > 0.0 { r_mean * (w / mean_w).sqrt() } else { r_mean };
        r.clamp(R_MIN, r_max).round() as i32
    };
    // thin outlines for many small dots
    let final_edge = if r_mean < 3.0 { FINAL_EDGE.mix(0.6) } else { FINAL_EDGE };
    let t_color = |t: f64| {
        let u = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
        time_color(u)
    };
    let equal_aspect = !matches!(proj, Projection::Time);
    let dim_note = match &proj {
        Projection::Time => "d = 1: x against t".to_string(),
        Projection::Plane => "d = 2".to_string(),
        Projection::Pca { .. } => format!("d = {d}: PCA projection"),
    };

    render(out, FIGURE_SIZE, |root| {
        draw_title(root, &title)?;
        let (_, body) = root.split_vertically(56);
        let (left, side) = body.split_horizontally(FIGURE_SIZE.0 - 270);

        let fx_of = |xr: (f64, f64)| nice_ticks(xr.0, xr.1, 8).1;
        let room = |xr: (f64, f64), yr: (f64, f64)| {
            let (ya, ystep) = linear_axis(yr.0, yr.1, 8);
            let (xstep, fy) = (fx_of(xr), move |v: f64| fmt_tick(v, ystep));
            let fx = move |v: f64| fmt_tick(v, xstep);
            let at = AxisText { x_desc: &x_desc, y_desc: &y_desc, fx: &fx, fy: &fy, scale: 1.0 };
            (x_label_room(&at), y_label_room(&ya, &at) + 10)
        };
        let (x_room, y_room) = room(xr, yr);
        let build = |xr: (f64, f64), yr: (f64, f64)| -> DResult<(Chart, Axis, Axis)> {
            let (xa, _) = linear_axis(xr.0, xr.1, 8);
            let (ya, _) = linear_axis(yr.0, yr.1, 8);
            let chart = ChartBuilder::on(&left)
                .margin_top(10)
                .margin_bottom(6)
                .margin_left(6)
                .margin_right(16)
                .x_label_area_size(x_room)
                .y_label_area_size(y_room)
                .build_cartesian_2d(xa.clone(), ya.clone())?;
            Ok((chart, xa, ya))
        };
        let (mut xr, mut yr) = (xr, yr);
        if equal_aspect {
            let (probe, ..) = build(xr, yr)?;
            let (w, h) = probe.plotting_area().dim_in_pixel();
            let (w, h) = (w.max(1) as f64, h.max(1) as f64);
            let per_px = ((xr.1 - xr.0) / w).max((yr.1 - yr.0) / h);
            let (cx, cy) = (0.5 * (xr.0 + xr.1), 0.5 * (yr.0 + yr.1));
            xr = (cx - 0.5 * per_px * w, cx + 0.5 * per_px * w);
            yr = (cy - 0.5 * per_px * h, cy + 0.5 * per_px * h);
        }
        let (mut chart, xa, ya) = build(xr, yr)?;
        let (xstep, ystep) = (fx_of(xr), nice_ticks(yr.0, yr.1, 8).1);
        draw_axes(
            &mut chart,
            &xa,
            &ya,
            &AxisText {
                x_desc: &x_desc,
                y_desc: &y_desc,
                fx: &|v| fmt_tick(v, xstep),
                fy: &|v| fmt_tick(v, ystep),
                scale: 1.0,
            },
        )?;

        // initial particles, faint
        chart.draw_series(pos[0].iter().map(|&p| Circle::new(p, 2, INITIAL.filled())))?;
        // paths, early segments first
        let mut order: Vec<usize> = (0..segs.len()).collect();
        order.sort_by(|&a, &b| segs[a].t_mid.total_cmp(&segs[b].t_mid));
        chart.draw_series(order.iter().map(|&i| {
            let sg = &segs[i];
            PathElement::new(vec![sg.a, sg.b], t_color(sg.t_mid).mix(PATH_ALPHA).stroke_width(1))
        }))?;
        // target samples
        chart.draw_series(tgt_pos.iter().map(|&p| Cross::new(p, 4, TARGET.stroke_width(2))))?;
        // final particles, area ∝ weight
        let mut fin: Vec<usize> = (0..last.len()).collect();
        fin.sort_by(|&a, &b| last.w[b].total_cmp(&last.w[a])); // big ones below small ones
        let last_pos = &pos[pos.len() - 1];
        // Particles left with under 1% of the mean weight (mass destroyed) are drawn hollow.
        let faint = |j: usize| mean_w > 0.0 && last.w[j] < 0.01 * mean_w;
        let (gone, kept): (Vec<usize>, Vec<usize>) = fin.iter().partition(|&&j| faint(j));
        chart
            .draw_series(kept.iter().map(|&j| Circle::new(last_pos[j], radius(last.w[j]), FINAL.filled())))?;
        chart.draw_series(
            kept.iter().map(|&j| Circle::new(last_pos[j], radius(last.w[j]), final_edge.stroke_width(1))),
        )?;
        chart.draw_series(gone.iter().map(|&j| {
            Circle::new(last_pos[j], R_MIN.round() as i32 + 1, final_edge.mix(0.5).stroke_width(1))
        }))?;
        if !gone.is_empty() {
            notes.push(format!("{} hollow: < 1% of mean weight", gone.len()));
        }

        // ---- side panel: legend, colour bar, weight key, facts
        let panel = Panel::new(&side, 14);
        let mut y = 20;
        panel.heading(y, "Legend")?;
        y += 32;
        panel.entry(y, Symbol::Dot(INITIAL, 3, None), &format!("initial particles (t = {})", fmt_num(t0)))?;
        y += 26;
        panel.entry(y, Symbol::Paths, "particle paths")?;
        y += 20;
        panel.note(
            y,
            &if !s.has_ids {
                "no id column: no paths".to_string()
            } else if s.frames.len() < 2 {
                "none: a single snapshot".to_string()
            } else if shown < total_ids {
                format!("{shown} of {total_ids} ids drawn")
            } else {
                format!("{shown} ids, coloured by time")
            },
        )?;
        y += 26;
        panel.entry(
            y,
            Symbol::Dot(FINAL, 5, Some(FINAL_EDGE)),
            &format!("final particles (t = {})", fmt_num(t1)),
        )?;
        y += 20;
        panel.note(y, "dot area ∝ weight")?;
        y += 26;
        if target.is_some() {
            panel.entry(y, Symbol::Cross(TARGET), "target samples")?;
            y += 26;
            if time_axis {
                y -= 6;
                panel.note(y, "spread just right of their time")?;
                y += 26;
            }
        }
        y += 14;

        // colour bar
        if !segs.is_empty() {
            panel.heading(y, "Path colour: time t")?;
            y += 22;
            let bar_h = 180;
            panel.colour_bar(y, bar_h, t0, t1)?;
            y += bar_h + 30;
        }

        // weight key
        if mean_w > 0.0 {
            panel.heading(y, "Weight ÷ mean weight")?;
            y += 30;
            let mut x = 24;
            for m in [0.25, 1.0, 4.0] {
                let r = radius(m * mean_w);
                side.draw(&Circle::new((x, y), r, FINAL.filled()))?;
                side.draw(&Circle::new((x, y), r, FINAL_EDGE.stroke_width(1)))?;
                let label = format!("{}×", fmt_num(m));
                side.draw(
                    &Label::new(label.clone(), (x + r + 5, y), LEGEND_SIZE).anchor(HPos::Left, VPos::Center),
                )?;
                x += r + 5 + text_width(&label, LEGEND_SIZE) as i32 + 22 + radius(4.0 * m * mean_w);
            }
            y += 34;
        }

        // facts
        // Whole-population counts and masses come from metrics.csv when it has them (snapshots may
        // hold a subsample); otherwise the snapshot rows are described as what is shown.
        let dir = snap_path.parent().unwrap_or(Path::new("."));
        let describe = |when: &str, f: &super::read::Frame| {
            population_label(when, f.len(), f.w.iter().sum(), population_at(dir, f.t))
        };
        let mut facts = vec![
            dim_note.clone(),
            match s.frames.len() {
                1 => "1 snapshot".to_string(),
                k => format!("{k} snapshots"),
            },
        ];
        facts.extend(describe("initial", first));
        facts.extend(describe("final", last));
        if let Some(tg) = target {
            facts.push(format!("target: {} samples, mass {}", tg.len(), fmt_num(tg.w.iter().sum())));
        }
        facts.extend(notes.iter().cloned());
        for f in facts {
            panel.note(y, &f)?;
            y += 20;
        }
        Ok(())
    })
}

/// Legend symbols.
enum Symbol {
    Dot(RGBAColor, i32, Option<RGBAColor>),
    Cross(RGBAColor),
    Paths,
}

/// The side panel of the trajectories figure.
struct Panel<'a, 'b> {
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    x0: i32,
}

impl<'a, 'b> Panel<'a, 'b> {
    fn new(area: &'a DrawingArea<BitMapBackend<'b>, Shift>, x0: i32) -> Self {
        Self { area, x0 }
    }

    fn heading(&self, y: i32, s: &str) -> DResult {
        self.area
            .draw(&Label::new(s, (self.x0, y), LEGEND_SIZE + 1.0).bold().anchor(HPos::Left, VPos::Center))?;
        Ok(())
    }

    fn note(&self, y: i32, s: &str) -> DResult {
        self.area.draw(
            &Label::new(ellipsize(s, 34), (self.x0 + 34, y), LEGEND_SIZE - 2.0)
                .color(RGBColor(80, 80, 80))
                .anchor(HPos::Left, VPos::Center),
        )?;
        Ok(())
    }

    fn entry(&self, y: i32, sym: Symbol, s: &str) -> DResult {
        let cx = self.x0 + 13;
        match sym {
            Symbol::Dot(c, r, edge) => {
                self.area.draw(&Circle::new((cx, y), r, c.filled()))?;
                if let Some(e) = edge {
                    self.area.draw(&Circle::new((cx, y), r, e.stroke_width(1)))?;
                }
            }
            Symbol::Cross(c) => {
                self.area.draw(&Cross::new((cx, y), 5, c.stroke_width(2)))?;
            }
            Symbol::Paths => {
                for k in 0..24 {
                    let u = k as f64 / 23.0;
                    let x = cx - 12 + k;
                    let yy = y + 6 - (12.0 * u) as i32;
                    self.area.draw(&Circle::new((x, yy), 1, time_color(u).filled()))?;
                }
            }
        }
        self.area.draw(
            &Label::new(ellipsize(s, 30), (self.x0 + 34, y), LEGEND_SIZE).anchor(HPos::Left, VPos::Center),
        )?;
        Ok(())
    }

    /// A vertical colour bar, early at the top, with time ticks on its right.
    fn colour_bar(&self, y: i32, h: i32, t0: f64, t1: f64) -> DResult {
        let (x, w) = (self.x0 + 4, 22);
        for k in 0..h {
            let u = k as f64 / (h - 1).max(1) as f64;
            self.area.draw(&Rectangle::new([(x, y + k), (x + w, y + k + 1)], time_color(u).filled()))?;
        }
        self.area.draw(&Rectangle::new([(x, y), (x + w, y + h)], TEXT.stroke_width(1)))?;
        let (lo, hi) = if t1 > t0 { (t0, t1) } else { (t0 - 0.5, t0 + 0.5) };
        let (mut ticks, step) = nice_ticks(lo, hi, 5);
        if t1 <= t0 {
            ticks = vec![t0];
        }
        for v in ticks {
            let u = if t1 > t0 { (v - t0) / (t1 - t0) } else { 0.5 };
            let yy = y + (u * (h - 1) as f64).round() as i32;
            self.area.draw(&PathElement::new(vec![(x + w, yy), (x + w + 5, yy)], TEXT.stroke_width(1)))?;
            self.area.draw(
                &Label::new(fmt_tick(v, step), (x + w + 9, yy), LEGEND_SIZE - 1.0)
                    .anchor(HPos::Left, VPos::Center),
            )?;
        }
        self.area.draw(
            &Label::new("early", (x + w + 80, y + 8), LEGEND_SIZE - 2.0)
                .color(RGBColor(80, 80, 80))
                .anchor(HPos::Left, VPos::Center),
        )?;
        self.area.draw(
            &Label::new("late", (x + w + 80, y + h - 8), LEGEND_SIZE - 2.0)
                .color(RGBColor(80, 80, 80))
                .anchor(HPos::Left, VPos::Center),
        )?;
        Ok(())
    }
}

/// For tests: the first principal component and its explained variance (%).
#[cfg(test)]
pub(crate) fn pca_for_test(s: &Snapshots) -> (Vec<f64>, f64) {
    match pca(s) {
        Projection::Pca { pc, explained, .. } => (pc[0].clone(), explained[0]),
        _ => unreachable!(),
    }
}
