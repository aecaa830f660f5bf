//! Fates from a WOT coupling `π` between `X_{t0}` and `X_{t1}` ([`super::wot`]), with clusters
//! `A` of the source cells and `B` of the target cells (k-means or a label column):
//!
//! ```text
//! F_AB            = Σ_{i∈A, j∈B} π_ij                (mass flowing from A to B, cell units)
//! desc_i(B)       = Σ_{j∈B} π_ij / Σ_j π_ij          (where cell i's descendants are)
//! growth_i        = Σ_j π_ij / w_i                   (its descendants' mass over its own)
//! anc_j(A)        = Σ_{i∈A} π_ij / Σ_i π_ij          (where cell j's ancestors were)
//! ```
//!
//! Files ([`write_fates`]): `fates.csv` (`source_cluster,target_cluster,mass,fraction_of_source,
//! fraction_of_target`), `fates.png` (heatmap: rows = source clusters, columns = target clusters,
//! mass in the cells), `clusters.csv` (time, cluster, cells, mass, centre), `descendants.csv`
//! (one row per source cell: cluster, position, growth, `desc_i(B)` per target cluster) and
//! `ancestors.csv` (one row per target cell: cluster, position, `anc_j(A)` per source cluster).
//! When the data has an `id` column, the per-cell files carry it beside `cell` (the row index
//! within the snapshot), so results can be joined back to the input cells. [`redraw`]
//! (`advreact plot DIR`) draws `fates.png` again from `fates.csv` and `clusters.csv`.

use super::kmeans::Clusters;
use super::wot::{fit, plan_entries, WotParams};
use crate::data::{csv_field, id_field, id_head, CsvReader};
use crate::dist::Exec;
use crate::error::{Error, SimError};
use crate::format::{num, nums};
use crate::particles::Cloud;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fate analysis.
#[derive(Debug, Clone)]
pub struct Fates {
    /// Time of the source snapshot.
    pub t0: f64,
    /// Time of the target snapshot.
    pub t1: f64,
    /// The clusters of the source cells.
    pub source: Clusters,
    /// The clusters of the target cells.
    pub target: Clusters,
    /// Cluster names (`c1`, ... or the label values).
    pub source_names: Vec<String>,
    /// Target cluster names.
    pub target_names: Vec<String>,
    /// `F_AB`, row-major `k0 × k1`, cell units.
    pub matrix: Vec<f64>,
    /// Per source cell: `growth_i` and `desc_i(·)` (`k1` values).
    pub growth: Vec<f64>,
    /// Per source cell: `desc_i(B)` for each target cluster `B` (`k1` values).
    pub descendants: Vec<Vec<f64>>,
    /// Per target cell: `anc_j(·)` (`k0` values).
    pub ancestors: Vec<Vec<f64>>,
}

/// Fit the coupling and aggregate it over the clusters.
#[allow(clippy::too_many_arguments)]
pub fn fates(
    x0: &Cloud,
    x1: &Cloud,
    t0: f64,
    t1: f64,
    source: Clusters,
    target: Clusters,
    names: (Vec<String>, Vec<String>),
    p: &WotParams,
) -> Result<Fates, SimError> {
    let f = fit(x0, x1, t1 - t0, None, p, &Exec::default())?;
    let entries = plan_entries(&f, p.dense_limit)?;
    let (k0, k1) = (source.k, target.k);
    let mut matrix = vec![0.0; k0 * k1];
    let mut desc = vec![vec![0.0; k1]; x0.len()];
    let mut anc = vec![vec![0.0; k0]; x1.len()];
    for &(i, j, v) in &entries {
        let v = v * f.to_cells;
        let (a, b) = (source.labels[i], target.labels[j]);
        matrix[a * k1 + b] += v;
        desc[i][b] += v;
        anc[j][a] += v;
    }
    for row in desc.iter_mut().chain(anc.iter_mut()) {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
    Ok(Fates {
        t0,
        t1,
        source,
        target,
        source_names: names.0,
        target_names: names.1,
        matrix,
        growth: f.growth,
        descendants: desc,
        ancestors: anc,
    })
}

fn io<'a>(p: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::io(p, e)
}

/// Write the files of the module doc into `dir`; `ids` are the source and target cells' ids.
pub fn write_fates(
    dir: &Path,
    fa: &Fates,
    x0: &Cloud,
    x1: &Cloud,
    ids: (Option<&[String]>, Option<&[String]>),
) -> Result<(), Error> {
    let (k0, k1) = (fa.source.k, fa.target.k);
    let mass0: Vec<f64> = (0..k0).map(|a| (0..k1).map(|b| fa.matrix[a * k1 + b]).sum()).collect();
    let mass1: Vec<f64> = (0..k1).map(|b| (0..k0).map(|a| fa.matrix[a * k1 + b]).sum()).collect();
    let p = dir.join("fates.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
    (|| -> std::io::Result<()> {
        writeln!(w, "source_cluster,target_cluster,mass,fraction_of_source,fraction_of_target")?;
        #[allow(clippy::needless_range_loop)]
        for a in 0..k0 {
            for b in 0..k1 {
                let m = fa.matrix[a * k1 + b];
                let fs = if mass0[a] > 0.0 { m / mass0[a] } else { 0.0 };
                let ft = if mass1[b] > 0.0 { m / mass1[b] } else { 0.0 };
                let (na, nb) = (csv_field(&fa.source_names[a]), csv_field(&fa.target_names[b]));
                writeln!(w, "{na},{nb},{}", nums(&[m, fs, ft]))?;
            }
        }
        w.flush()
    })()
    .map_err(io(&p))?;

    let p = dir.join("clusters.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
    let d = x0.dim;
    (|| -> std::io::Result<()> {
        let xs: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
        writeln!(w, "time,cluster,cells,mass,{}", xs.join(","))?;
        for (t, cl, names, c) in
            [(fa.t0, &fa.source, &fa.source_names, x0), (fa.t1, &fa.target, &fa.target_names, x1)]
        {
            for (l, name) in names.iter().enumerate().take(cl.k) {
                let cells = cl.labels.iter().filter(|&&x| x == l).count();
                let mass: f64 = cl.labels.iter().zip(&c.w).filter(|(x, _)| **x == l).map(|(_, w)| w).sum();
                let (t, mass, ctr) = (num(t), num(mass), nums(&cl.centers[l * d..(l + 1) * d]));
                writeln!(w, "{t},{},{cells},{mass},{ctr}", csv_field(name))?;
            }
        }
        w.flush()
    })()
    .map_err(io(&p))?;

    let p = dir.join("descendants.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
    (|| -> std::io::Result<()> {
        let xs: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
        let cs: Vec<String> = fa.target_names.iter().map(|n| csv_field(&format!("to_{n}"))).collect();
        writeln!(w, "cell,{}cluster,{},growth,{}", id_head(ids.0, "id"), xs.join(","), cs.join(","))?;
        for i in 0..x0.len() {
            let (pos, pr) = (nums(x0.point(i)), nums(&fa.descendants[i]));
            let name = csv_field(&fa.source_names[fa.source.labels[i]]);
            let id = id_field(ids.0, i);
            writeln!(w, "{i},{id}{name},{pos},{},{pr}", num(fa.growth[i]))?;
        }
        w.flush()
    })()
    .map_err(io(&p))?;

    let p = dir.join("ancestors.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
    (|| -> std::io::Result<()> {
        let xs: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
        let cs: Vec<String> = fa.source_names.iter().map(|n| csv_field(&format!("from_{n}"))).collect();
        writeln!(w, "cell,{}cluster,{},{}", id_head(ids.1, "id"), xs.join(","), cs.join(","))?;
        for j in 0..x1.len() {
            let (pos, pr) = (nums(x1.point(j)), nums(&fa.ancestors[j]));
            let name = csv_field(&fa.target_names[fa.target.labels[j]]);
            let id = id_field(ids.1, j);
            writeln!(w, "{j},{id}{name},{pos},{pr}")?;
        }
        w.flush()
    })()
    .map_err(io(&p))?;

    let centres = |cl: &Clusters| (0..cl.k).map(|l| cl.centers[l * d..(l + 1) * d].to_vec()).collect();
    let cells = |cl: &Clusters| (0..cl.k).map(|l| cl.labels.iter().filter(|&&x| x == l).count()).collect();
    let rows =
        Side { names: fa.source_names.clone(), cells: cells(&fa.source), centres: centres(&fa.source) };
    draw_heatmap(dir, (fa.t0, fa.t1), &rows, &fa.target_names, &fa.matrix)
}

/// The source clusters as `fates.png` labels them.
struct Side {
    names: Vec<String>,
    cells: Vec<usize>,
    centres: Vec<Vec<f64>>,
}

/// `fates.png`: rows = source clusters (with their sizes, and centres for d ≤ 3), columns =
/// target clusters, mass in the cells.
fn draw_heatmap(
    dir: &Path,
    (t0, t1): (f64, f64),
    src: &Side,
    cols: &[String],
    matrix: &[f64],
) -> Result<(), Error> {
    let rows: Vec<String> = (0..src.names.len())
        .map(|l| {
            let (name, cells, ctr) = (&src.names[l], src.cells[l], &src.centres[l]);
            if ctr.len() <= 3 {
                let ctr: Vec<String> = ctr.iter().map(|v| format!("{v:.2}")).collect();
                format!("{name} ({cells} cells; {})", ctr.join(", "))
            } else {
                format!("{name} ({cells} cells)")
            }
        })
        .collect();
    let p = dir.join("fates.png");
    crate::plot::plot_heatmap(
        &p,
        &rows,
        cols,
        matrix,
        &format!("Fates t = {t0} → {t1}: mass (cells) from each source cluster to each target cluster"),
        &format!("cluster at t = {t1} (centres in clusters.csv)"),
        &format!("cluster at t = {t0}"),
    )
    .map_err(|e| Error::io(&p, std::io::Error::other(e.to_string())))?;
    Ok(())
}

/// `advreact plot DIR` for a `fates` folder: redraw `fates.png` from `clusters.csv` and
/// `fates.csv` (as [`write_fates`] wrote them); its path.
pub fn redraw(dir: &Path) -> Result<PathBuf, Error> {
    let table = |name: &str| -> Result<(PathBuf, Vec<Vec<String>>), Error> {
        let p = dir.join(name);
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        let rows = match CsvReader::new(&p, &text)? {
            Some(r) => r.map(|row| row.map(|r| r.fields)).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok((p, rows))
    };
    let f64_at = |p: &Path, i: usize, row: &[String], k: usize| -> Result<f64, Error> {
        let v = row.get(k).map(|s| s.as_str()).unwrap_or_default();
        v.parse().map_err(|_| bad(p, i + 2, format!("field {}: not a number: '{v}'", k + 1)))
    };
    let (pc, clusters) = table("clusters.csv")?;
    let t0 = match clusters.first() {
        Some(r) => f64_at(&pc, 0, r, 0)?,
        None => return Err(bad(&pc, 2, "no clusters".into())),
    };
    let (mut src, mut t1, mut cols) =
        (Side { names: vec![], cells: vec![], centres: vec![] }, t0, Vec::new());
    for (i, r) in clusters.iter().enumerate() {
        let t = f64_at(&pc, i, r, 0)?;
        let name = r.get(1).cloned().unwrap_or_default();
        if t == t0 {
            let cells = f64_at(&pc, i, r, 2)? as usize;
            let centre = (4..r.len()).map(|k| f64_at(&pc, i, r, k)).collect::<Result<Vec<_>, _>>()?;
            src.names.push(name);
            src.cells.push(cells);
            src.centres.push(centre);
        } else {
            t1 = t;
            cols.push(name);
        }
    }
    let (pf, fates) = table("fates.csv")?;
    if fates.len() != src.names.len() * cols.len() {
        let why =
            format!("{} rows for {} × {} clusters (clusters.csv)", fates.len(), src.names.len(), cols.len());
        return Err(bad(&pf, 1, why));
    }
    let matrix =
        fates.iter().enumerate().map(|(i, r)| f64_at(&pf, i, r, 2)).collect::<Result<Vec<_>, _>>()?;
    draw_heatmap(dir, (t0, t1), &src, &cols, &matrix)?;
    Ok(dir.join("fates.png"))
}

/// A malformed line of a fates file.
fn bad(p: &Path, line: usize, msg: String) -> Error {
    Error::Data(crate::error::DataError::Parse { file: p.to_path_buf(), line, msg })
}
