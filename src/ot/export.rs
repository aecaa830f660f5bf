//! The `uot A.csv B.csv` entry point: solve the entropic UOT problem of [`crate::ot`]
//! (`min_π ⟨C,π⟩ + ε KL(π|a⊗b) + D_a(π1|a) + D_b(πᵀ1|b)`) between two clouds and write the
//! result.
//!
//! Files written into a directory (all CSV with a header, numbers in shortest round-trip form):
//!
//! - `report.json` — the [`UotReport`] (iterations, marginal errors, objective terms, masses);
//! - `source.csv` — `i, w, row_mass, kept, f`: `row_mass = Σ_j π_ij`, `kept = row_mass / w`,
//!   the ratio of the mass leaving point `i` in the plan to its input mass: below 1 the point's
//!   mass is partly destroyed, above 1 (possible with KL penalties) it is inflated (created);
//! - `target.csv` — `j, w, col_mass, reached, g` (`reached = col_mass / w`, the same ratio);
//! - `barycentric.csv` — `i, t1..td`: `T(x_i) = Σ_j π_ij y_j / Σ_j π_ij` (optional);
//! - `plan.csv` — `i, j, pi` triples: top-k per row or all entries above a threshold (optional);
//! - `plan_dense.csv` — the full `n × m` matrix, one row per source point (optional,
//!   size-checked).
//!
//! With ids ([`write_solution_with_ids`], the inputs' `id` columns) `source.csv` / `target.csv`
//! / `barycentric.csv` get an `id` column after `i` / `j`, and `plan.csv` gets `id_a, id_b` after
//! `i, j`. A
//! threshold that leaves the plan empty is an error naming the largest entry.

use super::plan::PlanEntry;
use super::sinkhorn::{solve, SinkhornOptions, UotReport, UotSolution};
use super::MeasureRef;
use crate::data::{id_field, id_head};
use crate::error::{ConfigError, Error, SimError};
use crate::format::{num, nums};
use crate::particles::Cloud;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which plan files to write besides the report and the marginals.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanExport {
    /// Write `barycentric.csv`.
    pub barycentric: bool,
    /// Write the `k` largest entries of each row to `plan.csv`.
    pub top_k: Option<usize>,
    /// Write every entry `≥ threshold` to `plan.csv` (instead of `top_k`).
    pub threshold: Option<f64>,
    /// Limit on the number of entries of a threshold export or of the dense matrix.
    pub max_entries: usize,
    /// Write `plan_dense.csv` (refused above `max_entries`).
    pub dense: bool,
}

/// Solve the entropic UOT problem between two clouds (source `a`, target `b`).
/// The public way to solve (the plan: [`UotSolution::coupling`] of the same clouds).
///
/// Errors: invalid inputs (`SimError::Invalid`), balanced with unequal masses, or a non-finite
/// potential or report value (`SimError::NonFinite`, naming the iteration and quantity).
pub fn uot_clouds(a: &Cloud, b: &Cloud, opts: &SinkhornOptions) -> Result<UotSolution, SimError> {
    solve(MeasureRef::from(a), MeasureRef::from(b), opts, None)
}

fn create(dir: &Path, name: &str) -> Result<(PathBuf, std::io::BufWriter<std::fs::File>), Error> {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
    Ok((p, std::io::BufWriter::new(f)))
}

/// Write the files listed in the module doc into `dir` (created if missing); returns their paths.
pub fn write_solution(
    dir: &Path,
    a: &Cloud,
    b: &Cloud,
    sol: &UotSolution,
    export: &PlanExport,
) -> Result<Vec<PathBuf>, Error> {
    write_solution_with_ids(dir, a, b, sol, export, (None, None))
}

/// [`write_solution`] with the ids of the source and target points (module doc).
pub fn write_solution_with_ids(
    dir: &Path,
    a: &Cloud,
    b: &Cloud,
    sol: &UotSolution,
    export: &PlanExport,
    ids: (Option<&[String]>, Option<&[String]>),
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(p, e)
    };
    // report.json
    {
        let (p, mut w) = create(dir, "report.json")?;
        let text = report_json(&sol.report);
        w.write_all(text.as_bytes()).and_then(|_| w.flush()).map_err(io(&p))?;
        out.push(p);
    }
    // source.csv / target.csv
    {
        let (p, mut w) = create(dir, "source.csv")?;
        let mut write = || -> std::io::Result<()> {
            writeln!(w, "i,{}w,row_mass,kept,f", id_head(ids.0, "id"))?;
            for i in 0..a.len() {
                let r = sol.row_mass[i];
                let kept = if a.w[i] > 0.0 { r / a.w[i] } else { 0.0 };
                let id = id_field(ids.0, i);
                writeln!(w, "{i},{id}{}", nums(&[a.w[i], r, kept, sol.potentials.f[i]]))?;
            }
            w.flush()
        };
        write().map_err(io(&p))?;
        out.push(p);
    }
    {
        let (p, mut w) = create(dir, "target.csv")?;
        let mut write = || -> std::io::Result<()> {
            writeln!(w, "j,{}w,col_mass,reached,g", id_head(ids.1, "id"))?;
            for j in 0..b.len() {
                let c = sol.col_mass[j];
                let r = if b.w[j] > 0.0 { c / b.w[j] } else { 0.0 };
                let id = id_field(ids.1, j);
                writeln!(w, "{j},{id}{}", nums(&[b.w[j], c, r, sol.potentials.g[j]]))?;
            }
            w.flush()
        };
        write().map_err(io(&p))?;
        out.push(p);
    }
    let coupling = sol.coupling(a, b)?;
    if export.barycentric {
        let t = coupling.barycentric_map()?;
        let (p, mut w) = create(dir, "barycentric.csv")?;
        let d = a.dim;
        let mut write = || -> std::io::Result<()> {
            let cols: Vec<String> = (1..=d).map(|k| format!("t{k}")).collect();
            writeln!(w, "i,{}{}", id_head(ids.0, "id"), cols.join(","))?;
            for (i, ti) in t.chunks_exact(d).enumerate() {
                writeln!(w, "{i},{}{}", id_field(ids.0, i), nums(ti))?;
            }
            w.flush()
        };
        write().map_err(io(&p))?;
        out.push(p);
    }
    let entries: Option<Vec<PlanEntry>> = match (export.threshold, export.top_k) {
        (Some(t), _) => Some(coupling.above(t, export.max_entries)?),
        (None, Some(k)) => Some(coupling.top_k(k)?),
        (None, None) => None,
    };
    if let (Some(e), Some(t)) = (&entries, export.threshold) {
        if e.is_empty() {
            let largest = coupling.top_k(1)?.iter().map(|x| x.value).fold(0.0, f64::max);
            return Err(ConfigError::new(
                "<cli>",
                "--threshold",
                format!("no plan entry is ≥ {t}, the plan would be empty (largest entry {largest:e}); lower it or use --top-k"),
            )
            .into());
        }
    }
    if let Some(e) = entries {
        let (p, mut w) = create(dir, "plan.csv")?;
        let mut write = || -> std::io::Result<()> {
            writeln!(w, "i,j,{}{}pi", id_head(ids.0, "id_a"), id_head(ids.1, "id_b"))?;
            for x in &e {
                writeln!(
                    w,
                    "{},{},{}{}{}",
                    x.i,
                    x.j,
                    id_field(ids.0, x.i),
                    id_field(ids.1, x.j),
                    num(x.value)
                )?;
            }
            w.flush()
        };
        write().map_err(io(&p))?;
        out.push(p);
    }
    if export.dense {
        let m = b.len();
        let dense = coupling.dense(export.max_entries)?;
        let (p, mut w) = create(dir, "plan_dense.csv")?;
        let mut write = || -> std::io::Result<()> {
            let cols: Vec<String> = (0..m).map(|j| format!("j{j}")).collect();
            writeln!(w, "{}", cols.join(","))?;
            for row in dense.chunks_exact(m) {
                writeln!(w, "{}", nums(row))?;
            }
            w.flush()
        };
        write().map_err(io(&p))?;
        out.push(p);
    }
    Ok(out)
}

/// The report as pretty JSON.
pub fn report_json(r: &UotReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
