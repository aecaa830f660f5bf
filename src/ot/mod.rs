//! # Unbalanced optimal transport (SPEC §3)
//!
//! Entropic unbalanced OT between `α = Σ a_i δ_{x_i}` and `β = Σ b_j δ_{y_j}`:
//!
//! ```text
//! OT_ε(α, β) = min_{π ≥ 0} ⟨C, π⟩ + ε KL(π | a⊗b) + D_a(π1 | a) + D_b(πᵀ1 | b)
//! KL(p | q) = Σ p log(p/q) − Σ p + Σ q                      (generalised KL)
//! ```
//!
//! with cost `C_ij = c |x_i − y_j|²` (`c = 1`: [`Cost::SqEuclidean`], POT's `ot.dist`; `c = ½`:
//! [`Cost::HalfSqEuclidean`], GeomLoss's `p = 2`) and, per side, a marginal penalty
//! ([`Marginal`]): `τ KL(p|q)` (soft), `τ |p − q|₁` (total variation, hard cut) or none (`τ = ∞`,
//! the marginal is a constraint). The dual, maximised by the solver, is
//!
//! ```text
//! D(f, g) = Σ_i a_i φ_a(f_i) + Σ_j b_j φ_b(g_j) − ε Σ_ij a_i b_j (exp((f_i + g_j − C_ij)/ε) − 1)
//! φ(f) = −τ (e^{−f/τ} − 1)  (KL),   φ(f) = f, |f| ≤ τ  (TV),   φ(f) = f  (τ = ∞)
//! π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)
//! ```
//!
//! and its alternate maximisation is the log-domain Sinkhorn iteration
//!
//! ```text
//! f̂_i = −ε LSE_j(log b_j + (g_j − C_ij)/ε),   f_i = aprox_a(f̂_i)
//! ĝ_j = −ε LSE_i(log a_i + (f_i − C_ij)/ε),   g_j = aprox_b(ĝ_j)
//! aprox(p) = κ p, κ = τ/(τ + ε)  (KL);   clamp(p, −τ, τ)  (TV);   p  (τ = ∞)
//! ```
//!
//! (scaling form `u = (a / K v)^κ`, Chizat–Peyré–Schmitzer–Vialard 2018; Séjourné et al. 2019
//! for the `aprox` operators). Every reduction is streamed in tiles (`ot::pass`, built on
//! [`crate::kernel::for_each_tile`]): memory is O(n + m); no n×m matrix exists unless asked for
//! ([`Coupling::dense`]).
//!
//! Modules: [`sinkhorn`] (solver, options, report), [`plan`] (plan access from the potentials),
//! [`divergence`] (debiased Sinkhorn divergence, potentials extended to any point), [`partial`]
//! (partial transport of a given mass), [`exact`] (exact balanced OT, network simplex), [`export`]
//! (the CLI entry point and plan files).

pub mod divergence;
pub mod exact;
pub mod export;
pub mod partial;
pub(crate) mod pass;
pub mod plan;
pub mod sinkhorn;

pub use divergence::{
    extend_potential, sinkhorn_divergence, solve_symmetric, DivergenceOptions, DivergenceWarm,
    SinkhornDivergence,
};
pub use export::{uot_clouds, write_solution, write_solution_with_ids, PlanExport};
pub use partial::{solve_partial, PartialSolution};
pub use plan::{Coupling, PlanEntry};
pub(crate) use sinkhorn::solve;
pub use sinkhorn::{
    sinkhorn_step, EpsScaling, Potentials, Relaxation, SinkhornOptions, UotReport, UotSolution,
};

use crate::error::SimError;
use crate::particles::Cloud;
use serde::{Deserialize, Serialize};

/// Ground cost `C(x, y)`: `c |x − y|²`, or the elastic cost `h(x − y)` (SPEC §7).
///
/// Serialised as `"sqeuclidean"`, `"half_sqeuclidean"` or
/// `{"elastic": {"gamma": γ, "penalty": {"type": "l1"}}}` (`{"type": "smoothed_l0", "sigma": σ}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cost {
    /// `|x − y|²` (POT's `ot.dist` default).
    #[default]
    #[serde(rename = "sqeuclidean")]
    SqEuclidean,
    /// `½ |x − y|²` (GeomLoss, `p = 2`; SPEC §2.2).
    #[serde(rename = "half_sqeuclidean")]
    HalfSqEuclidean,
    /// The elastic cost `h(z) = ½|z|² + γ τ(z)`, `z = x − y` (displacement-sparse OT, SPEC §7).
    #[serde(rename = "elastic")]
    Elastic {
        /// Strength `γ ≥ 0` of the penalty.
        gamma: f64,
        /// The penalty `τ`.
        penalty: Penalty,
    },
}

/// The separable penalty `τ(z) = Σ_k τ₁(z_k)` of an elastic cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Penalty {
    /// `τ₁(t) = |t|` (its prox is soft-thresholding: exact zeros).
    L1,
    /// `τ₁(t) = 1 − exp(−t²/(2σ²))`, a smoothed count of the moved coordinates.
    SmoothedL0 {
        /// Width `σ > 0` below which a displacement is not counted.
        sigma: f64,
    },
}

impl Penalty {
    /// `τ₁(t)`.
    #[inline(always)]
    pub fn value(self, t: f64) -> f64 {
        match self {
            Penalty::L1 => t.abs(),
            Penalty::SmoothedL0 { sigma } => -(-(t * t) / (2.0 * sigma * sigma)).exp_m1(),
        }
    }
    /// `τ₁'(t)` (`0` at `t = 0` for ℓ1: the subgradient of least norm).
    #[inline(always)]
    pub fn derivative(self, t: f64) -> f64 {
        match self {
            Penalty::L1 => {
                if t > 0.0 {
                    1.0
                } else if t < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            Penalty::SmoothedL0 { sigma } => {
                let s2 = sigma * sigma;
                t / s2 * (-(t * t) / (2.0 * s2)).exp()
            }
        }
    }
}

/// The CLI names of the ground costs (`--cost`), turned into a [`Cost`] by [`CostKind::build`]
/// with the elastic parameters `--gamma` and `--sigma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CostKind {
    /// `|x − y|²` (POT's default).
    #[value(name = "sqeuclidean")]
    SqEuclidean,
    /// `½ |x − y|²` (GeomLoss `p = 2`).
    #[value(name = "half_sqeuclidean")]
    HalfSqEuclidean,
    /// `½|z|² + γ Σ_k |z_k|`.
    #[value(name = "elastic-l1")]
    ElasticL1,
    /// `½|z|² + γ Σ_k (1 − exp(−z_k²/(2σ²)))`.
    #[value(name = "elastic-l0")]
    ElasticL0,
}

impl CostKind {
    /// The cost, with `gamma` (required for the elastic costs, not allowed otherwise) and `sigma`
    /// (elastic-l0 only; default 1). Errors name the offending flag.
    pub fn build(self, gamma: Option<f64>, sigma: Option<f64>) -> Result<Cost, (&'static str, String)> {
        let elastic = matches!(self, CostKind::ElasticL1 | CostKind::ElasticL0);
        if !elastic && gamma.is_some() {
            return Err(("--gamma", "is only for --cost elastic-l1 or elastic-l0".into()));
        }
        if self != CostKind::ElasticL0 && sigma.is_some() {
            return Err(("--sigma", "is only for --cost elastic-l0".into()));
        }
        let cost = match self {
            CostKind::SqEuclidean => Cost::SqEuclidean,
            CostKind::HalfSqEuclidean => Cost::HalfSqEuclidean,
            CostKind::ElasticL1 | CostKind::ElasticL0 => {
                let gamma = gamma.ok_or(("--gamma", "is required for an elastic cost".to_string()))?;
                let penalty = match self {
                    CostKind::ElasticL1 => Penalty::L1,
                    _ => Penalty::SmoothedL0 { sigma: sigma.unwrap_or(1.0) },
                };
                Cost::Elastic { gamma, penalty }
            }
        };
        cost.validate().map_err(|m| if m.contains("sigma") { ("--sigma", m) } else { ("--gamma", m) })?;
        Ok(cost)
    }
}

impl Cost {
    /// The factor `c` of `C = c q(x, y)`, `q` the value the reduction's tiles hold: `|x − y|²`
    /// for the squared-Euclidean costs, `h(x − y)` itself (`c = 1`) for the elastic one.
    pub fn scale(self) -> f64 {
        match self {
            Cost::SqEuclidean => 1.0,
            Cost::HalfSqEuclidean => 0.5,
            Cost::Elastic { .. } => 1.0,
        }
    }
    /// The elastic parameters `(γ, τ)`, `None` for the squared-Euclidean costs.
    pub fn elastic(self) -> Option<(f64, Penalty)> {
        match self {
            Cost::Elastic { gamma, penalty } => Some((gamma, penalty)),
            _ => None,
        }
    }
    /// `C(x, y)`.
    pub fn eval(self, x: &[f64], y: &[f64]) -> f64 {
        match self {
            Cost::Elastic { gamma, penalty } => {
                let (mut sq, mut pen) = (0.0, 0.0);
                for (a, b) in x.iter().zip(y) {
                    let t = a - b;
                    sq = t.mul_add(t, sq);
                    pen += penalty.value(t);
                }
                elastic_combine(sq, pen, gamma)
            }
            _ => self.scale() * x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum::<f64>(),
        }
    }
    /// `γ ≥ 0` finite and `σ > 0` finite for the elastic cost; the others are always valid.
    pub fn validate(self) -> Result<(), String> {
        if let Cost::Elastic { gamma, penalty } = self {
            if !(gamma.is_finite() && gamma >= 0.0) {
                return Err(format!("elastic cost: gamma must be finite and ≥ 0, got {gamma}"));
            }
            if let Penalty::SmoothedL0 { sigma } = penalty {
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err(format!("elastic cost: sigma must be finite and > 0, got {sigma}"));
                }
            }
        }
        Ok(())
    }
}

/// `h = ½ Σ t² + γ Σ τ₁(t)` from the two sums (one formula for every caller: same bits).
#[inline(always)]
pub(crate) fn elastic_combine(sq: f64, pen: f64, gamma: f64) -> f64 {
    gamma.mul_add(pen, 0.5 * sq)
}

impl std::str::FromStr for Cost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqeuclidean" => Ok(Cost::SqEuclidean),
            "half_sqeuclidean" => Ok(Cost::HalfSqEuclidean),
            _ => Err(format!(
                "unknown cost '{s}' (expected sqeuclidean or half_sqeuclidean; the elastic costs need \
                 their parameters: --cost elastic-l1 --gamma G)"
            )),
        }
    }
}

/// The penalty on one marginal of the plan, `D(p | q)` with `p` the plan's marginal and `q` the
/// input weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Marginal {
    /// `τ = ∞`: the marginal is a constraint `p = q` (balanced side).
    Exact,
    /// `τ KL(p | q)` (generalised KL): soft; far mass is destroyed gradually.
    Kl {
        /// Strength `τ > 0` of the penalty.
        tau: f64,
    },
    /// `τ |p − q|₁`: hard cut; a unit moves only if its cost is below `τ_a + τ_b`.
    Tv {
        /// Strength `τ > 0`: the price of destroying or creating a unit of mass.
        tau: f64,
    },
}

impl Marginal {
    /// `τ KL`, or [`Marginal::Exact`] when `tau` is `+∞`.
    pub fn kl(tau: f64) -> Self {
        if tau == f64::INFINITY {
            Marginal::Exact
        } else {
            Marginal::Kl { tau }
        }
    }
    /// `τ TV`, or [`Marginal::Exact`] when `tau` is `+∞`.
    pub fn tv(tau: f64) -> Self {
        if tau == f64::INFINITY {
            Marginal::Exact
        } else {
            Marginal::Tv { tau }
        }
    }
    /// `τ` (`+∞` for [`Marginal::Exact`]).
    pub fn tau(self) -> f64 {
        match self {
            Marginal::Exact => f64::INFINITY,
            Marginal::Kl { tau } | Marginal::Tv { tau } => tau,
        }
    }
    /// `κ = τ/(τ + ε)` for KL, 1 otherwise.
    pub fn kappa(self, eps: f64) -> f64 {
        match self {
            Marginal::Kl { tau } => tau / (tau + eps),
            _ => 1.0,
        }
    }
    /// The proximal step `aprox(p)` turning the balanced soft-min `p = f̂` into the potential.
    #[inline]
    pub fn aprox(self, p: f64, eps: f64) -> f64 {
        match self {
            Marginal::Exact => p,
            Marginal::Kl { tau } => p * (tau / (tau + eps)),
            Marginal::Tv { tau } => p.clamp(-tau, tau),
        }
    }
    /// Projection onto the dual domain: `[−τ, τ]` for TV (an over-relaxed step may leave it),
    /// identity otherwise.
    #[inline]
    pub fn project(self, f: f64) -> f64 {
        match self {
            Marginal::Tv { tau } => f.clamp(-tau, tau),
            _ => f,
        }
    }
    /// The dual term per unit of reference mass, `φ(f) = −D*(−f)`.
    pub fn dual(self, f: f64) -> f64 {
        match self {
            Marginal::Exact => f,
            Marginal::Kl { tau } => -tau * (-f / tau).exp_m1(),
            Marginal::Tv { tau } => {
                if f < -tau {
                    f64::NEG_INFINITY
                } else {
                    f.min(tau)
                }
            }
        }
    }
    /// The penalty of one entry, `D(p | q)` with `p = q e^δ` given as `(q, δ = log(p/q))`.
    pub fn penalty(self, q: f64, delta: f64) -> f64 {
        match self {
            Marginal::Exact => 0.0,
            Marginal::Kl { tau } => tau * q * kl_unit(delta),
            Marginal::Tv { tau } => tau * q * delta.exp_m1().abs(),
        }
    }
    pub(crate) fn validate(self, what: &str) -> Result<(), SimError> {
        let t = self.tau();
        if !positive(t) {
            return Err(SimError::Invalid(format!("{what}: marginal penalty tau must be > 0, got {t}")));
        }
        Ok(())
    }
}

/// `x > 0`, false for NaN.
pub(crate) fn positive(x: f64) -> bool {
    x > 0.0
}

/// `e^δ δ − e^δ + 1 = KL(q e^δ | q)/q ≥ 0`, with a series near 0 (no cancellation).
fn kl_unit(delta: f64) -> f64 {
    if delta.abs() < 1e-2 {
        let d = delta;
        // Σ_{k≥2} (k−1) δ^k / k!
        d * d * (0.5 + d * (1.0 / 3.0 + d * (1.0 / 8.0 + d * (1.0 / 30.0 + d / 144.0))))
    } else if delta == f64::NEG_INFINITY {
        1.0
    } else {
        let e = delta.exp();
        e * delta - delta.exp_m1()
    }
}

/// A borrowed weighted point set `Σ w_i δ_{x_i}` (positions particle-contiguous).
#[derive(Debug, Clone, Copy)]
pub struct MeasureRef<'a> {
    /// Dimension `d`.
    pub dim: usize,
    /// Positions, point-contiguous (`len · d` values).
    pub x: &'a [f64],
    /// Weights `w_i ≥ 0`.
    pub w: &'a [f64],
}

impl<'a> MeasureRef<'a> {
    /// A view of `dim`-dimensional points `x` with weights `w` (no check; see `validate`).
    pub(crate) fn new(dim: usize, x: &'a [f64], w: &'a [f64]) -> Self {
        Self { dim, x, w }
    }
    /// Number of points.
    pub fn len(&self) -> usize {
        self.w.len()
    }
    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
    /// Position of point `i`.
    pub fn point(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// `Σ w_i`.
    pub fn mass(&self) -> f64 {
        self.w.iter().sum()
    }
    /// `log w_i` (`−∞` for zero weights).
    pub(crate) fn log_weights(&self) -> Vec<f64> {
        self.w.iter().map(|w| w.ln()).collect()
    }
    /// Shapes, finiteness, non-negative weights, positive mass.
    pub(crate) fn validate(&self, name: &str) -> Result<(), SimError> {
        if self.dim == 0 {
            return Err(SimError::Invalid(format!("{name}: dimension must be ≥ 1")));
        }
        if self.x.len() != self.dim * self.w.len() {
            return Err(SimError::Invalid(format!(
                "{name}: {} coordinates for {} points of dimension {}",
                self.x.len(),
                self.w.len(),
                self.dim
            )));
        }
        if self.w.is_empty() {
            return Err(SimError::Invalid(format!("{name}: no points")));
        }
        if let Some(i) = self.w.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(SimError::Invalid(format!(
                "{name}: weight {i} is {} (must be finite and ≥ 0)",
                self.w[i]
            )));
        }
        if let Some(k) = self.x.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Invalid(format!(
                "{name}: coordinate {} of point {} is {}",
                k % self.dim,
                k / self.dim,
                self.x[k]
            )));
        }
        if !positive(self.mass()) {
            return Err(SimError::Invalid(format!("{name}: total mass is 0")));
        }
        Ok(())
    }
}

impl<'a> From<&'a Cloud> for MeasureRef<'a> {
    fn from(c: &'a Cloud) -> Self {
        Self { dim: c.dim, x: &c.x, w: &c.w }
    }
}

/// `max_ij C(x_i, y_j)` bounded above cheaply: `c · |bbox diagonal|²` of both clouds (the
/// default start of ε-scaling). Invalid clouds or different dimensions are errors.
pub fn cost_scale_bound(a: &Cloud, b: &Cloud, cost: Cost) -> Result<f64, SimError> {
    let (a, b) = (a.view(), b.view());
    validate_pair(a, b, "cost_scale_bound")?;
    Ok(cost_scale_bound_in(a, b, cost))
}

/// Both measures valid (see [`MeasureRef::validate`]) and of one dimension; `what` names the
/// caller in the error.
pub(crate) fn validate_pair(a: MeasureRef, b: MeasureRef, what: &str) -> Result<(), SimError> {
    a.validate(&format!("{what}: first cloud"))?;
    b.validate(&format!("{what}: second cloud"))?;
    if a.dim != b.dim {
        return Err(SimError::Invalid(format!("{what}: dimensions differ ({} vs {})", a.dim, b.dim)));
    }
    Ok(())
}

/// [`cost_scale_bound`] on borrowed measures of one dimension `≥ 1` (not checked).
pub(crate) fn cost_scale_bound_in(a: MeasureRef, b: MeasureRef, cost: Cost) -> f64 {
    let d = a.dim;
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for p in a.x.chunks_exact(d).chain(b.x.chunks_exact(d)) {
        for k in 0..d {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    match cost {
        // `h` is separable and increasing in every `|z_k|`: its largest value on the box is at
        // the box's extents.
        Cost::Elastic { .. } => {
            let ext: Vec<f64> = (0..d).map(|k| hi[k] - lo[k]).collect();
            cost.eval(&ext, &vec![0.0; d])
        }
        _ => cost.scale() * (0..d).map(|k| (hi[k] - lo[k]).powi(2)).sum::<f64>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_unit_is_smooth_across_the_series_switch() {
        for &d in &[-0.5f64, -0.0101, -0.0099, -1e-5, 0.0, 1e-5, 0.0099, 0.0101, 0.7] {
            let direct = d.exp() * d - d.exp() + 1.0;
            let v = kl_unit(d);
            assert!((v - direct).abs() <= 1e-12 * (1.0 + direct.abs()), "{d}");
        }
        assert_eq!(kl_unit(f64::NEG_INFINITY), 1.0);
    }

    #[test]
    fn aprox_and_dual_match_the_penalties() {
        let eps = 0.3;
        let kl = Marginal::kl(2.0);
        assert!((kl.aprox(1.0, eps) - 2.0 / 2.3).abs() < 1e-15);
        assert_eq!(Marginal::kl(f64::INFINITY), Marginal::Exact);
        let tv = Marginal::tv(0.5);
        assert_eq!(tv.aprox(3.0, eps), 0.5);
        assert_eq!(tv.aprox(-3.0, eps), -0.5);
        assert_eq!(tv.dual(0.7), 0.5);
        // Fenchel–Young for KL: D(p|q) + q D*(−f) ≥ −f p, equality at p = q e^{−f/τ}.
        let (q, f): (f64, f64) = (1.3, 0.4);
        let delta = -f / 2.0;
        let p = q * delta.exp();
        let lhs = kl.penalty(q, delta) - q * kl.dual(f);
        assert!((lhs + f * p).abs() < 1e-14);
    }
}
