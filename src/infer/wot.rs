//! Waddington-OT interpolation (Schiebinger et al., Cell 2019; SPEC §5).
//!
//! Between `X0 = Σ w_i δ_{x_i}` (time `t0`) and `X1 = Σ b_j δ_{y_j}` (time `t1`, `Δt = t1 − t0`):
//!
//! ```text
//! a_i^(0) = w_i e^{g_i Δt}          prior growth g_i (a column, or uniform g = log(M1/M0)/Δt)
//! π^(k)   = argmin ⟨C, π⟩ + ε KL(π | a^(k)⊗b) + τ KL(π1 | a^(k)) + τ KL(πᵀ1 | b),  C = |x − y|²
//! a^(k+1) = π^(k) 1                 growth re-estimated from the row marginal (WOT's growth_iters)
//! ```
//!
//! with `ε = eps_rel · C̄`, `τ = tau_rel · C̄` (or `ε`, `τ` given in cost units: `eps`, `tau`) and `C̄ = Σ_ij a_i b_j C_ij / (Σa Σb)` the mean cost
//! (WOT's habit of costs relative to their mean). The row mass `r_i = Σ_j π_ij` is the mass of
//! cell `i`'s descendants at `t1`, so along lineage `i` the mass grows as `w_i (r_i / w_i)^s`.
//! Displacement interpolation at `s = (t½ − t0)/Δt` samples pairs systematically (one seeded
//! uniform) with probabilities `∝ v_ij = π_ij (w_i / r_i)^{1−s}` (the plan rescaled so that
//! `Σ π_ij = M1`, the observed mass: the soft penalties destroy part of it) (lineage weighting; `π_ij`
//! without it), places them at `(1 − s) x_i + s y_j`, and gives the cloud the total mass
//! `Σ v_ij = Σ_i w_i^{1−s} r_i^s`.
//!
//! Defaults: `eps_rel = 0.05` (WOT's usual), `tau_rel = 10` (SPEC §5: WOT's usual `τ = 1` kept
//! only 75–80% of the mass on three_gene; `τ ≈ 10` did better), 3 outer solves.

use super::{PredictInfo, Warning};
use crate::dist::Exec;
use crate::error::SimError;
use crate::ot::{uot_clouds, Cost, EpsScaling, SinkhornOptions, UotSolution};
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use rand::Rng;
use serde::Serialize;

/// WOT parameters (module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WotParams {
    /// `ε / C̄` (exactly one of `eps_rel` and `eps` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps_rel: Option<f64>,
    /// `ε` in cost units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// `τ / C̄` on both marginals (exactly one of `tau_rel` and `tau` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau_rel: Option<f64>,
    /// `τ` in cost units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    /// Outer solves (≥ 1): the source weights of solve `k + 1` are the row masses of solve `k`.
    pub growth_iters: usize,
    /// Weight pairs by their lineage's mass at the interpolation time.
    pub lineage_weighting: bool,
    /// Points in the predicted cloud (0: `max(n0, n1)`).
    pub samples: usize,
    /// Sinkhorn iteration cap and tolerance (relative L1 marginal error).
    pub max_iter: usize,
    /// Sinkhorn tolerance (relative L1 marginal error).
    pub tol: f64,
    /// Plans with more entries than this are sampled from each row's 64 largest entries.
    pub dense_limit: usize,
}

impl Default for WotParams {
    fn default() -> Self {
        Self {
            eps_rel: Some(0.05),
            eps: None,
            tau_rel: Some(10.0),
            tau: None,
            growth_iters: 3,
            lineage_weighting: true,
            samples: 0,
            max_iter: 5000,
            tol: 1e-6,
            dense_limit: 16_000_000,
        }
    }
}

impl WotParams {
    fn validate(&self) -> Result<(), SimError> {
        for (name, rel, abs) in [("eps", self.eps_rel, self.eps), ("tau", self.tau_rel, self.tau)] {
            let (key, v) = match (rel, abs) {
                (Some(v), None) => (format!("{name}_rel"), v),
                (None, Some(v)) => (name.to_string(), v),
                _ => {
                    let why = format!("wot: exactly one of {name}_rel and {name} must be set");
                    return Err(SimError::Invalid(why));
                }
            };
            if !(v > 0.0 && v.is_finite()) {
                return Err(SimError::Invalid(format!("wot: {key} must be finite and > 0, got {v}")));
            }
        }
        if self.growth_iters == 0 {
            return Err(SimError::Invalid("wot: growth_iters must be ≥ 1".into()));
        }
        Ok(())
    }
}

/// Mean of `|x − y|²` under the normalised product measure.
pub fn mean_sq_cost(a: &Cloud, b: &Cloud) -> f64 {
    let (ma, mb) = (a.mean(), b.mean());
    let second = |c: &Cloud| -> f64 {
        let m = c.mass();
        c.x.chunks_exact(c.dim).zip(&c.w).map(|(p, w)| w * p.iter().map(|v| v * v).sum::<f64>()).sum::<f64>()
            / m
    };
    let cross: f64 = ma.iter().zip(&mb).map(|(p, q)| p * q).sum();
    (second(a) + second(b) - 2.0 * cross).max(0.0)
}

/// A fitted WOT coupling. Weights are divided by `M0` for the solve (`scale = 1/M0`); `row_mass`
/// and `growth` are in the original units.
#[derive(Debug, Clone)]
pub struct WotFit {
    /// `X0` with the final source weights `a` (scaled).
    pub source: Cloud,
    /// `X1` (scaled).
    pub target: Cloud,
    /// The last solve.
    pub sol: UotSolution,
    /// `1/M0`: the factor the weights were scaled by for the solve.
    pub scale: f64,
    /// Plan entries times `to_cells` are in cells, with total `M1` (the solve's own total
    /// `Σ π_ij` falls short of `M1` by what the soft penalties destroy).
    pub to_cells: f64,
    /// `ε`, `τ` in cost units.
    pub eps: f64,
    /// `τ` in cost units.
    pub tau: f64,
    /// `r_i`, original units: the mass of cell `i`'s descendants at `t1`.
    pub row_mass: Vec<f64>,
    /// `r_i / w_i`: the growth factor of cell `i` over `Δt`.
    pub growth: Vec<f64>,
    /// Sinkhorn iterations summed over the outer solves; last solve converged.
    pub iterations: usize,
    /// The last solve converged.
    pub converged: bool,
}

impl WotFit {
    /// Iterations and convergence, with a warning when the last solve missed its tolerance.
    fn info(&self) -> PredictInfo {
        let mut info = PredictInfo::default();
        info.diag([("sinkhorn_iterations", self.iterations as f64)]);
        info.diag([("converged", self.converged)]);
        if !self.converged {
            info.warnings.push(Warning::new(
                "not_converged",
                1,
                None,
                "wot: the last Sinkhorn solve did not reach its tolerance",
            ));
        }
        info
    }
}

/// Fit the coupling (module doc). `growth0`: prior rates `g_i` (per unit time).
pub fn fit(
    x0: &Cloud,
    x1: &Cloud,
    dt: f64,
    growth0: Option<&[f64]>,
    p: &WotParams,
    exec: &Exec,
) -> Result<WotFit, SimError> {
    p.validate()?;
    if x0.dim != x1.dim {
        return Err(SimError::Invalid(format!("wot: dimensions differ ({} vs {})", x0.dim, x1.dim)));
    }
    let (m0, m1) = (x0.mass(), x1.mass());
    if !(m0 > 0.0 && m1 > 0.0) {
        return Err(SimError::Invalid("wot: a snapshot has zero mass".into()));
    }
    let scale = 1.0 / m0;
    let a0: Vec<f64> = match growth0 {
        Some(g) => {
            if g.len() != x0.len() {
                return Err(SimError::Invalid(format!(
                    "wot: {} growth rates for {} cells",
                    g.len(),
                    x0.len()
                )));
            }
            x0.w.iter().zip(g).map(|(w, g)| w * scale * (g * dt).exp()).collect()
        }
        None => x0.w.iter().map(|w| w * scale * (m1 / m0)).collect(),
    };
    let target = Cloud::new_unchecked(x1.dim, x1.x.clone(), x1.w.iter().map(|b| b * scale).collect());
    let mut source = Cloud::new_unchecked(x0.dim, x0.x.clone(), a0);
    let cbar = mean_sq_cost(&source, &target).max(f64::MIN_POSITIVE);
    let scaled = |rel: Option<f64>, abs: Option<f64>| abs.unwrap_or_else(|| rel.unwrap_or(f64::NAN) * cbar);
    let (eps, tau) = (scaled(p.eps_rel, p.eps), scaled(p.tau_rel, p.tau));
    let mut opts = SinkhornOptions::kl(eps, tau, tau, Cost::SqEuclidean);
    opts.max_iter = p.max_iter;
    opts.tol = p.tol;
    opts.eps_scaling = Some(EpsScaling::default());
    opts.exec = exec.clone();
    let mut iterations = 0;
    let mut sol = uot_clouds(&source, &target, &opts)?;
    iterations += sol.report.iterations;
    for _ in 1..p.growth_iters {
        // a ← r (zero rows keep a tiny weight so the measure stays valid).
        let floor = sol.row_mass.iter().cloned().fold(0.0, f64::max) * 1e-300;
        source.w = sol.row_mass.iter().map(|r| r.max(floor)).collect();
        sol = uot_clouds(&source, &target, &opts)?;
        iterations += sol.report.iterations;
    }
    // The soft marginal penalties leave a deficit (τ = 1 × mean cost kept only 75–80% of the
    // mass on three_gene): the mass at t1 is observed, so the plan is read in units where its
    // total is M1.
    let plan_mass: f64 = sol.row_mass.iter().sum();
    let to_cells = if plan_mass > 0.0 { m1 / plan_mass } else { 1.0 / scale };
    let row_mass: Vec<f64> = sol.row_mass.iter().map(|r| r * to_cells).collect();
    let growth = row_mass.iter().zip(&x0.w).map(|(r, w)| if *w > 0.0 { r / w } else { 0.0 }).collect();
    let converged = sol.report.converged;
    Ok(WotFit { source, target, sol, scale, to_cells, eps, tau, row_mass, growth, iterations, converged })
}

/// Plan entries `(i, j, π_ij)` (scaled units): dense when small enough, else each row's 64
/// largest.
pub fn plan_entries(fit: &WotFit, dense_limit: usize) -> Result<Vec<(usize, usize, f64)>, SimError> {
    let c = fit.sol.coupling(&fit.source, &fit.target)?;
    let (n, m) = (fit.source.len(), fit.target.len());
    if n.saturating_mul(m) <= dense_limit {
        let d = c.dense(dense_limit)?;
        Ok(d.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(k, v)| (k / m, k % m, *v)).collect())
    } else {
        Ok(c.top_k(64)?.into_iter().map(|e| (e.i, e.j, e.value)).collect())
    }
}

/// Systematic sampling of `n` indices with probabilities `∝ v` (one uniform offset).
pub fn systematic(v: &[f64], n: usize, u: f64) -> Vec<usize> {
    let total: f64 = v.iter().sum();
    let mut out = Vec::with_capacity(n);
    if total.is_nan() || total <= 0.0 || n == 0 {
        return out;
    }
    let step = total / n as f64;
    let mut next = u * step;
    let mut acc = 0.0;
    for (k, &x) in v.iter().enumerate() {
        acc += x;
        while next < acc && out.len() < n {
            out.push(k);
            next += step;
        }
    }
    while out.len() < n {
        out.push(v.len() - 1);
    }
    out
}

/// Source and target cell `(i, j)` of each predicted point.
pub type Pairs = Vec<(usize, usize)>;

/// Displacement interpolation at fraction `s` (module doc), with the pair `(i, j)` (source cell,
/// target cell) each predicted point was placed between; `params` gives the WOT settings, the
/// seed and the execution context.
pub fn interpolate(
    x0: &Cloud,
    x1: &Cloud,
    s: f64,
    dt: f64,
    growth0: Option<&[f64]>,
    params: &super::InferParams,
) -> Result<(Cloud, PredictInfo, Pairs), SimError> {
    let (p, seed) = (&params.wot, params.seed);
    let fit = fit(x0, x1, dt, growth0, p, &params.exec)?;
    let entries = plan_entries(&fit, p.dense_limit)?;
    let v: Vec<f64> = entries
        .iter()
        .map(|&(i, _, pi)| {
            let pi = pi * fit.to_cells;
            if p.lineage_weighting {
                let r = fit.row_mass[i];
                if r > 0.0 {
                    pi * (x0.w[i] / r).powf(1.0 - s)
                } else {
                    0.0
                }
            } else {
                pi
            }
        })
        .collect();
    let mass: f64 = v.iter().sum();
    let n = if p.samples > 0 { p.samples } else { x0.len().max(x1.len()) };
    let u: f64 = rng::stream(seed, Purpose::Analysis, 2, 0).random();
    let picks = systematic(&v, n, u);
    let d = x0.dim;
    let mut x = Vec::with_capacity(n * d);
    let mut pairs = Vec::with_capacity(picks.len());
    for &k in &picks {
        let (i, j, _) = entries[k];
        pairs.push((i, j));
        let (xi, yj) = (x0.point(i), x1.point(j));
        x.extend(xi.iter().zip(yj).map(|(a, b)| (1.0 - s) * a + s * b));
    }
    let cloud = Cloud::new_unchecked(d, x, vec![mass / picks.len().max(1) as f64; picks.len()]);
    let rep = &fit.sol.report;
    let mut info = fit.info();
    info.diag([
        ("eps", fit.eps),
        ("tau", fit.tau),
        ("plan_mass_fraction", rep.transported_mass / fit.scale / x1.mass()),
        ("plan_entries", entries.len() as f64),
    ]);
    Ok((cloud, info, pairs))
}

/// Forward step: each particle moves to its barycentric image `T(x_i)` and carries its row mass
/// `r_i` (uniform growth prior, no interpolation).
pub fn push_forward(
    cur: &Cloud,
    target: &Cloud,
    dt: f64,
    p: &WotParams,
    exec: &Exec,
) -> Result<(Cloud, PredictInfo), SimError> {
    let fit = fit(cur, target, dt, None, p, exec)?;
    let c = fit.sol.coupling(&fit.source, &fit.target)?;
    let t = c.barycentric_map()?;
    let cloud = Cloud::new_unchecked(cur.dim, t, fit.row_mass.clone());
    Ok((cloud, fit.info()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ε and τ are each given once: relative or in cost units, finite and > 0.
    #[test]
    fn eps_and_tau_are_given_once() {
        let ok = WotParams::default();
        assert!(ok.validate().is_ok());
        let abs = WotParams { eps: Some(0.1), eps_rel: None, tau: Some(5.0), tau_rel: None, ..ok.clone() };
        assert!(abs.validate().is_ok());
        for (p, msg) in [
            (WotParams { eps: Some(0.1), ..ok.clone() }, "exactly one of eps_rel and eps"),
            (WotParams { tau_rel: None, ..ok.clone() }, "exactly one of tau_rel and tau"),
            (WotParams { eps: Some(0.0), eps_rel: None, ..ok.clone() }, "eps must be finite and > 0, got 0"),
            (
                WotParams { tau_rel: Some(f64::INFINITY), ..ok.clone() },
                "tau_rel must be finite and > 0, got inf",
            ),
        ] {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }
}
