//! Access to the entropic plan, computed online from the potentials (SPEC §3):
//!
//! ```text
//! π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)
//! r_i  = Σ_j π_ij = a_i exp(f_i/ε + LSE_j(log b_j + (g_j − C_ij)/ε))      (row masses)
//! c_j  = Σ_i π_ij                                                        (column masses)
//! T(x_i) = Σ_j π_ij y_j / Σ_j π_ij = Σ_j softmax_j(log b_j + (g_j − C_ij)/ε) y_j
//! ```
//!
//! Row masses say how much of each source point is transported (`r_i / a_i` survives, the rest
//! is destroyed); the barycentric map `T` does not depend on `a_i` or `f_i`, so it is defined
//! even where the row mass is tiny. Sparse exports (top-k per row, entries above a threshold) and
//! the dense matrix (only on request, with a size limit) visit the entries row by row; nothing
//! here stores more than what it returns.

use super::pass::Reduction;
use super::sinkhorn::{check_finite, Potentials};
use super::{positive, Cost, MeasureRef};
use crate::dist::Exec;
use crate::error::SimError;
use serde::Serialize;

/// One plan entry `(i, j, π_ij)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanEntry {
    /// Source index `i`.
    pub i: usize,
    /// Target index `j`.
    pub j: usize,
    /// Plan mass `π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)`.
    pub value: f64,
}

/// The plan of potentials `(f, g)` between `a` and `b` at regularisation `eps`.
#[derive(Debug, Clone, Copy)]
pub struct Coupling<'a> {
    /// Source measure `α = Σ a_i δ_{x_i}`.
    pub a: MeasureRef<'a>,
    /// Target measure `β = Σ b_j δ_{y_j}`.
    pub b: MeasureRef<'a>,
    /// Source potential `f` (cost units).
    pub f: &'a [f64],
    /// Target potential `g` (cost units).
    pub g: &'a [f64],
    /// Regularisation `ε` the potentials are at.
    pub eps: f64,
    /// Ground cost `C(x, y)`.
    pub cost: Cost,
}

impl<'a> Coupling<'a> {
    /// The plan of `p` between `a` and `b`; an error if the sizes disagree or a weight is invalid.
    pub fn new(
        a: MeasureRef<'a>,
        b: MeasureRef<'a>,
        p: &'a Potentials,
        eps: f64,
        cost: Cost,
    ) -> Result<Self, SimError> {
        a.validate("source")?;
        b.validate("target")?;
        if a.dim != b.dim || p.f.len() != a.len() || p.g.len() != b.len() {
            return Err(SimError::Invalid(format!(
                "coupling: potentials of sizes {} and {} for clouds of {} and {} points \
                 (dimensions {} and {})",
                p.f.len(),
                p.g.len(),
                a.len(),
                b.len(),
                a.dim,
                b.dim
            )));
        }
        if !positive(eps) {
            return Err(SimError::Invalid(format!("coupling: eps must be > 0, got {eps}")));
        }
        Ok(Self { a, b, f: &p.f, g: &p.g, eps, cost })
    }

    /// The reduction from the source points to the target points (the tiles and distance bits
    /// of the solver's passes).
    fn reduction(&self) -> Reduction<'a> {
        Reduction::for_cost(&Exec::default(), self.a.dim, self.a.x, self.b.x, self.cost)
    }

    fn lam(&self) -> f64 {
        self.cost.scale() / self.eps
    }
    /// `log b_j + g_j/ε`.
    fn h_b(&self) -> Vec<f64> {
        self.b.w.iter().zip(self.g).map(|(w, g)| w.ln() + g / self.eps).collect()
    }
    fn h_a(&self) -> Vec<f64> {
        self.a.w.iter().zip(self.f).map(|(w, f)| w.ln() + f / self.eps).collect()
    }

    /// `π_ij`.
    pub fn entry(&self, i: usize, j: usize) -> f64 {
        let c = self.cost.eval(self.a.point(i), self.b.point(j));
        self.a.w[i] * self.b.w[j] * ((self.f[i] + self.g[j] - c) / self.eps).exp()
    }

    /// Row masses `r_i = Σ_j π_ij`.
    pub fn row_masses(&self) -> Result<Vec<f64>, SimError> {
        Self::masses(self.a, self.b, &self.h_a(), &self.h_b(), self.lam(), self.cost, "plan row masses")
    }

    /// Column masses `c_j = Σ_i π_ij`.
    pub fn col_masses(&self) -> Result<Vec<f64>, SimError> {
        Self::masses(self.b, self.a, &self.h_b(), &self.h_a(), self.lam(), self.cost, "plan column masses")
    }

    /// `exp(h_own_i + LSE_j (h_other_j − λ|x_i − y_j|²))` for the points `x` of `own` against
    /// the points `y` of `other`: the plan's marginal on `own`'s side.
    fn masses(
        own: MeasureRef,
        other: MeasureRef,
        h_own: &[f64],
        h_other: &[f64],
        lam: f64,
        cost: Cost,
        what: &str,
    ) -> Result<Vec<f64>, SimError> {
        let mut l = vec![0.0; own.len()];
        Reduction::for_cost(&Exec::default(), own.dim, own.x, other.x, cost).lse(h_other, lam, &mut l);
        let r: Vec<f64> = l.iter().zip(h_own).map(|(l, h)| (h + l).exp()).collect();
        check_finite(&r, 0, what)?;
        Ok(r)
    }

    /// The barycentric map `T(x_i) = Σ_j π_ij y_j / Σ_j π_ij` (n·d, particle-contiguous).
    pub fn barycentric_map(&self) -> Result<Vec<f64>, SimError> {
        let d = self.a.dim;
        let h = self.h_b();
        let mut l = vec![0.0; self.a.len()];
        let mut t = vec![0.0; self.a.len() * d];
        self.reduction().lse_bary(&h, self.lam(), &mut l, &mut t);
        check_finite(&t, 0, "barycentric map")?;
        Ok(t)
    }

    /// `log a_i + f_i/ε` per row: `log π_ij = row_shift_i + log b_j + (g_j − C_ij)/ε`.
    fn row_shift(&self) -> Vec<f64> {
        self.h_a()
    }

    /// The dense plan, row-major `n × m`, if `n·m ≤ max_entries` (else `SimError::Limit`).
    pub fn dense(&self, max_entries: usize) -> Result<Vec<f64>, SimError> {
        let (n, m) = (self.a.len(), self.b.len());
        match n.checked_mul(m) {
            Some(nm) if nm <= max_entries => {}
            _ => {
                return Err(SimError::Limit {
                    step: 0,
                    what: format!(
                        "dense plan of {n} × {m} entries exceeds the limit of {max_entries} \
                         entries; use a sparse export"
                    ),
                })
            }
        }
        let h = self.h_b();
        let rows = self.reduction().plan_rows(
            &self.row_shift(),
            &h,
            self.lam(),
            |_, row: &mut Vec<f64>, _, lp| row.extend(lp.iter().map(|v| v.exp())),
            |_| Vec::with_capacity(m),
        );
        let mut out = Vec::with_capacity(n * m);
        for r in rows {
            out.extend_from_slice(&r);
        }
        check_finite(&out, 0, "dense plan entry")?;
        Ok(out)
    }

    /// The `k` largest entries of every row (ties: smaller `j` first), rows in order, each
    /// row's entries by decreasing value.
    pub fn top_k(&self, k: usize) -> Result<Vec<PlanEntry>, SimError> {
        let k = k.min(self.b.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let h = self.h_b();
        let rows = self.reduction().plan_rows(
            &self.row_shift(),
            &h,
            self.lam(),
            |_, best: &mut Vec<(f64, usize)>, j0, lp| {
                for (jj, &v) in lp.iter().enumerate() {
                    if best.len() == k && v <= best[k - 1].0 {
                        continue;
                    }
                    // Insert after all entries ≥ v (keeps earlier j first on ties).
                    let pos = best.partition_point(|e| e.0 >= v);
                    if best.len() == k {
                        best.pop();
                    }
                    best.insert(pos, (v, j0 + jj));
                }
            },
            |_| Vec::with_capacity(k + 1),
        );
        let mut out = Vec::with_capacity(rows.len() * k);
        for (i, r) in rows.into_iter().enumerate() {
            out.extend(r.into_iter().map(|(v, j)| PlanEntry { i, j, value: v.exp() }));
        }
        check_entries(&out)?;
        Ok(out)
    }

    /// All entries with `π_ij ≥ threshold`, in row-major order; `SimError::Limit` if there are
    /// more than `max_entries` (counted first, so nothing large is allocated).
    pub fn above(&self, threshold: f64, max_entries: usize) -> Result<Vec<PlanEntry>, SimError> {
        if !positive(threshold) {
            return Err(SimError::Invalid(format!("plan threshold must be > 0, got {threshold}")));
        }
        let lt = threshold.ln();
        let h = self.h_b();
        let shift = self.row_shift();
        let counts = self.reduction().plan_rows(
            &shift,
            &h,
            self.lam(),
            |_, cnt: &mut usize, _, lp| *cnt += lp.iter().filter(|&&v| v >= lt).count(),
            |_| 0usize,
        );
        let total: usize = counts.iter().sum();
        if total > max_entries {
            return Err(SimError::Limit {
                step: 0,
                what: format!("{total} plan entries ≥ {threshold} exceed the limit of {max_entries}"),
            });
        }
        let rows = self.reduction().plan_rows(
            &shift,
            &h,
            self.lam(),
            |i, row: &mut Vec<PlanEntry>, j0, lp| {
                for (jj, &v) in lp.iter().enumerate() {
                    if v >= lt {
                        row.push(PlanEntry { i, j: j0 + jj, value: v.exp() });
                    }
                }
            },
            |i| Vec::with_capacity(counts[i]),
        );
        let out: Vec<PlanEntry> = rows.into_iter().flatten().collect();
        check_entries(&out)?;
        Ok(out)
    }
}

fn check_entries(e: &[PlanEntry]) -> Result<(), SimError> {
    match e.iter().find(|p| !p.value.is_finite()) {
        Some(p) => Err(SimError::NonFinite {
            step: 0,
            quantity: format!("plan entry ({}, {})", p.i, p.j),
            particle: p.i,
            value: p.value,
        }),
        None => Ok(()),
    }
}
