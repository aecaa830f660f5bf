//! The log-domain unbalanced Sinkhorn solver (SPEC §3; equations in [`crate::ot`]), and the one
//! Sinkhorn loop of the crate (`iterate`): `solve` (public: [`crate::ot::uot_clouds`]), the symmetric solve of
//! [`crate::ot::divergence`] and the entropic `W1`/`W2` of [`crate::metrics::wasserstein`] all run
//! it, each with its own `Scheme` (soft-min passes on prepared reductions with the ground cost,
//! marginal penalties, update, stopping error).
//!
//! One iteration, at the current `ε_k`:
//!
//! ```text
//! f̂_i = −ε_k LSE_j(log b_j + (g_j − C_ij)/ε_k)        (checks convergence, see below)
//! f_i  = (1 − ω) f_i + ω aprox_a(f̂_i)                (then clamped to [−τ_a, τ_a] for TV)
//! f_i += λ                                             (translation step, KL/exact sides only)
//! ĝ_j = −ε_k LSE_i(log a_i + (f_i − C_ij)/ε_k),  g_j = (1 − ω) g_j + ω aprox_b(ĝ_j)
//! ```
//!
//! with `ω = 1` (plain Sinkhorn) except at the target ε under [`Relaxation`].
//!
//! **ε-scaling** (optional): `ε_k = max(ε, ε_0 q^k)`, one iteration per value (GeomLoss-style
//! annealing), then iterations at the target `ε` until convergence.
//!
//! **Translation step** (Séjourné, Vialard, Peyré 2022, "translation-invariant Sinkhorn"): the
//! dual is maximised in closed form along `(f + λ, g − λ)`:
//! `λ = τ_aτ_b/(τ_a+τ_b) · log(Σ a e^{−f/τ_a} / Σ b e^{−g/τ_b})` (one side exact:
//! `λ = τ_a log(Σ a e^{−f/τ_a} / m_b)` or `λ = τ_b log(m_a / Σ b e^{−g/τ_b})`). Without it the
//! shift mode contracts only by `κ_a κ_b` per iteration, i.e. ~`1e5` iterations for `τ = 10³ ε`.
//! The fixed point is unchanged (at the optimum `λ = 0`).
//!
//! **Marginal error** (the stopping criterion and the report): with `f̂` the soft-min of the
//! current `g`, the plan's row sums are `r_i = a_i e^{(f_i − f̂_i)/ε}` and the row sums the
//! optimality fixed point asks for, given the same `g`, are `ã_i = a_i e^{(aprox(f̂_i) − f̂_i)/ε}`
//! (`a_i` when balanced, `a_i e^{−f_i/τ}` at a KL fixed point, `a_i` unless clamped for TV). The
//! source error is `Σ_i |r_i − ã_i| / max(Σ_i r_i, Σ_i ã_i)` (relative L1, in [0, 2]), the
//! target error likewise with the roles swapped. The solver stops at the first iteration whose
//! source error is `≤ tol` and whose last update was plain (`ω = 1`; after an over-relaxed one it
//! does one plain iteration more): the target error is then zero up to rounding, `g` having just
//! been set to its fixed point. `converged` in the report is true only if both errors,
//! recomputed at the returned potentials at the target `ε`, are `≤ tol`.
//!
//! **Objective** (all at the returned potentials, computed online): `⟨C, π⟩`,
//! `ε KL(π|a⊗b) = Σ_ij π_ij (f_i + g_j − C_ij) − ε m(π) + ε m(a)m(b)`, the marginal penalties
//! from `log(r_i/a_i)`, their sum, and the dual `D(f, g)`; at the optimum primal = dual.

use super::pass::{Ground, Reduction};
use super::{cost_scale_bound_in, positive, Cost, Marginal, MeasureRef};
use crate::dist::Exec;
use crate::error::SimError;
use crate::particles::Cloud;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Geometric ε-annealing: `ε_k = max(ε, ε_0 q^k)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpsScaling {
    /// `ε_0`; `None`: the cost diameter bound `c·|bbox diagonal|²` of both clouds.
    pub start: Option<f64>,
    /// `q ∈ (0, 1)`.
    pub factor: f64,
}

impl Default for EpsScaling {
    fn default() -> Self {
        Self { start: None, factor: 0.5 }
    }
}

/// Solver parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkhornOptions {
    /// Entropic regularisation `ε > 0` (POT's `reg`).
    pub eps: f64,
    /// Ground cost `C(x, y)`.
    pub cost: Cost,
    /// Penalty on the source marginal `π1` vs `a`.
    pub marginal_a: Marginal,
    /// Penalty on the target marginal `πᵀ1` vs `b`.
    pub marginal_b: Marginal,
    /// Maximum number of iterations (each one `f` and one `g` update), ε-scaling included.
    pub max_iter: usize,
    /// Tolerance on the relative L1 marginal errors (see the module doc).
    pub tol: f64,
    /// ε-scaling (annealing from a large ε) for cold starts; `None`: solve at `eps` from the start.
    pub eps_scaling: Option<EpsScaling>,
    /// Closed-form translation of the potentials after each `f` update (KL / exact sides).
    pub translation_invariant: bool,
    /// Over-relaxation of the updates at the target ε.
    pub relaxation: Relaxation,
    /// Where the row passes run: ranks and parallelism (not serialised; default one process on
    /// the rayon pool). Every rank of `exec.comm` must make the same solve.
    #[serde(skip)]
    pub exec: Exec,
}

/// Over-relaxation at the target ε: `f ← (1 − ω) f + ω aprox(f̂)`, `g ← (1 − ω) g + ω aprox(ĝ)`
/// (Thibault et al. 2021; Lehmann et al. 2022). Near the optimum plain Sinkhorn contracts at a
/// rate `λ` that tends to 1 as `ε/τ → 0` (every cluster of nearly decoupled points has its own
/// slow translation mode, contracting by `κ_a κ_b`); the SOR choice `ω = 2/(1 + √(1 − λ))` turns
/// `λ = 1 − 2e-4` into about `0.97` per iteration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Relaxation {
    /// `ω = 1`: plain Sinkhorn.
    Off,
    /// A fixed `ω ∈ (0, 2)` (no safeguard).
    Fixed {
        /// The factor `ω`.
        omega: f64,
    },
    /// `ω = 1` until the marginal error decreases linearly at a stable rate `μ ∈ [0.5, 1)` (ten
    /// consecutive ratios within 1% of their mean), then `ω = min(2/(1 + √(1 − λ)), max_omega)`
    /// with `λ = (μ + ω − 1)²/(μ ω²)` the plain rate implied by the rate `μ` observed at the
    /// current `ω` (Young's SOR relation), re-estimated in the same way while `ω` can grow.
    /// Safeguard: if the error grows above 100× its best value, the best potentials are restored,
    /// `ω` returns to 1 and the cap's excess `max_omega − 1` is halved.
    Adaptive {
        /// Largest `ω` the adaptive rule may use.
        max_omega: f64,
    },
}

impl Default for Relaxation {
    fn default() -> Self {
        Relaxation::Adaptive { max_omega: 1.95 }
    }
}

/// The state of [`Relaxation`] along a run of the loop ([`iterate`]).
pub(crate) struct RelaxCtl {
    mode: Relaxation,
    pub(crate) omega: f64,
    cap: f64,
    best_err: f64,
    best: Option<(Vec<f64>, Vec<f64>)>,
    hist: Vec<f64>,
    restarts: usize,
}

impl RelaxCtl {
    const WINDOW: usize = 10;

    pub(crate) fn new(mode: Relaxation) -> Self {
        let (omega, cap) = match mode {
            Relaxation::Off => (1.0, 1.0),
            Relaxation::Fixed { omega } => (omega, omega),
            Relaxation::Adaptive { max_omega } => (1.0, max_omega),
        };
        Self { mode, omega, cap, best_err: f64::INFINITY, best: None, hist: Vec::new(), restarts: 0 }
    }

    /// See the error of the current potentials; returns true if it restored the best ones.
    pub(crate) fn observe(&mut self, err: f64, f: &mut [f64], g: &mut [f64]) -> bool {
        if !matches!(self.mode, Relaxation::Adaptive { .. }) {
            return false;
        }
        if err < self.best_err {
            self.best_err = err;
            match &mut self.best {
                Some((bf, bg)) => {
                    bf.copy_from_slice(f);
                    bg.copy_from_slice(g);
                }
                None => self.best = Some((f.to_vec(), g.to_vec())),
            }
        }
        // Diverging (or NaN): restore.
        if self.omega > 1.0 && err.partial_cmp(&(100.0 * self.best_err)) != Some(Ordering::Less) {
            if let Some((bf, bg)) = &self.best {
                f.copy_from_slice(bf);
                g.copy_from_slice(bg);
            }
            self.omega = 1.0;
            self.cap = 1.0 + 0.5 * (self.cap - 1.0);
            self.hist.clear();
            self.restarts += 1;
            return true;
        }
        self.hist.push(err);
        if self.hist.len() > Self::WINDOW + 1 {
            self.hist.remove(0);
        }
        if self.hist.len() == Self::WINDOW + 1 && self.omega < self.cap {
            let ratios: Vec<f64> = self.hist.windows(2).map(|w| w[1] / w[0]).collect();
            let mu = ratios.iter().sum::<f64>() / ratios.len() as f64;
            let stable = ratios.iter().all(|r| (r - mu).abs() <= 0.01 * mu);
            if stable && (0.5..1.0).contains(&mu) {
                // Observed rate μ at ω → plain Gauss–Seidel rate λ = (μ + ω − 1)²/(μ ω²)
                // (Young's relation; λ = μ at ω = 1), then the SOR-optimal ω for λ.
                let w = self.omega;
                let lam = (mu + w - 1.0) * (mu + w - 1.0) / (mu * w * w);
                if lam < 1.0 {
                    let opt = (2.0 / (1.0 + (1.0 - lam).sqrt())).min(self.cap);
                    if opt > w {
                        self.omega = opt;
                        self.hist.clear();
                    }
                }
            }
        }
        false
    }
}

impl Default for SinkhornOptions {
    fn default() -> Self {
        Self {
            eps: 0.05,
            cost: Cost::SqEuclidean,
            marginal_a: Marginal::Kl { tau: 1.0 },
            marginal_b: Marginal::Kl { tau: 1.0 },
            max_iter: 10_000,
            tol: 1e-9,
            eps_scaling: None,
            translation_invariant: true,
            relaxation: Relaxation::default(),
            exec: Exec::default(),
        }
    }
}

impl SinkhornOptions {
    /// KL penalties `τ_a`, `τ_b` (`f64::INFINITY` for an exact side), cost and `ε`.
    pub fn kl(eps: f64, tau_a: f64, tau_b: f64, cost: Cost) -> Self {
        Self {
            eps,
            cost,
            marginal_a: Marginal::kl(tau_a),
            marginal_b: Marginal::kl(tau_b),
            ..Self::default()
        }
    }
    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(SimError::Invalid(format!("sinkhorn: eps must be finite and > 0, got {}", self.eps)));
        }
        self.marginal_a.validate("sinkhorn: marginal_a")?;
        self.marginal_b.validate("sinkhorn: marginal_b")?;
        self.cost.validate().map_err(|m| SimError::Invalid(format!("sinkhorn: {m}")))?;
        if self.tol.is_nan() || self.tol < 0.0 {
            return Err(SimError::Invalid(format!("sinkhorn: tol must be ≥ 0, got {}", self.tol)));
        }
        match self.relaxation {
            Relaxation::Fixed { omega } if !(positive(omega) && omega < 2.0) => {
                return Err(SimError::Invalid(format!(
                    "sinkhorn: relaxation omega must be in (0, 2), got {omega}"
                )));
            }
            Relaxation::Adaptive { max_omega } if !(1.0..2.0).contains(&max_omega) => {
                return Err(SimError::Invalid(format!(
                    "sinkhorn: relaxation max_omega must be in [1, 2), got {max_omega}"
                )));
            }
            _ => {}
        }
        if let Some(s) = self.eps_scaling {
            if !(s.factor > 0.0 && s.factor < 1.0) {
                return Err(SimError::Invalid(format!(
                    "sinkhorn: eps_scaling.factor must be in (0, 1), got {}",
                    s.factor
                )));
            }
            if let Some(e0) = s.start {
                if !(e0 > 0.0 && e0.is_finite()) {
                    return Err(SimError::Invalid(format!(
                        "sinkhorn: eps_scaling.start must be finite and > 0, got {e0}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Dual potentials: `f` on the source points, `g` on the target points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Potentials {
    /// Source potential `f_i`, in cost units.
    pub f: Vec<f64>,
    /// Target potential `g_j`, in cost units.
    pub g: Vec<f64>,
}

/// What a solve reports. Every number is at the returned potentials and `eps_reached`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UotReport {
    /// Number of source points `n`.
    pub n: usize,
    /// Number of target points `m`.
    pub m: usize,
    /// Dimension `d`.
    pub dim: usize,
    /// Target regularisation `ε`.
    pub eps: f64,
    /// Ground cost.
    pub cost: Cost,
    /// Penalty on the source marginal.
    pub marginal_a: Marginal,
    /// Penalty on the target marginal.
    pub marginal_b: Marginal,
    /// Iterations done (ε-scaling ones included).
    pub iterations: usize,
    /// Of which at `ε_k > ε` (annealing).
    pub annealing_iterations: usize,
    /// Tolerance the solve was asked for.
    pub tol: f64,
    /// The ε every number below is evaluated at: the target `eps`, unless `max_iter` stopped
    /// the ε-scaling before reaching it (then the last `ε_k`, and `converged` is false).
    pub eps_reached: f64,
    /// Largest over-relaxation `ω` reached (1: plain Sinkhorn throughout). The last iteration
    /// of a converged solve is always plain, so the target error is checked at a fixed point.
    pub omega: f64,
    /// Times the adaptive over-relaxation restored the best potentials and fell back to `ω = 1`.
    pub relaxation_restarts: usize,
    /// Both marginal errors `≤ tol` at the returned potentials and the target ε.
    pub converged: bool,
    /// `Σ_i |r_i − ã_i| / max(Σ r, Σ ã)`, `r = π1`, `ã` the fixed-point row sums (module doc).
    pub marginal_error_a: f64,
    /// `Σ_j |c_j − b̃_j| / max(Σ c, Σ b̃)`, `c = πᵀ1`.
    pub marginal_error_b: f64,
    /// `⟨C, π⟩`.
    pub transport_cost: f64,
    /// `ε KL(π | a⊗b)` (generalised KL).
    pub entropy_term: f64,
    /// `D_a(π1 | a)` (`τ_a KL`, `τ_a TV`, or 0 when exact).
    pub marginal_term_a: f64,
    /// `D_b(πᵀ1 | b)`.
    pub marginal_term_b: f64,
    /// Sum of the four terms above.
    pub primal_objective: f64,
    /// `D(f, g)`.
    pub dual_objective: f64,
    /// `m(a) = Σ a_i`.
    pub mass_a: f64,
    /// `m(b) = Σ b_j`.
    pub mass_b: f64,
    /// `m(π) = Σ_ij π_ij`.
    pub transported_mass: f64,
    /// `Σ_i (a_i − r_i)₊`: source mass destroyed.
    pub destroyed_mass_a: f64,
    /// `Σ_i (r_i − a_i)₊`: source mass created.
    pub created_mass_a: f64,
    /// `Σ_j (b_j − c_j)₊`: target mass destroyed.
    pub destroyed_mass_b: f64,
    /// `Σ_j (c_j − b_j)₊`: target mass created.
    pub created_mass_b: f64,
}

/// A solve's result: potentials, report and the plan's marginals `π1`, `πᵀ1`.
#[derive(Debug, Clone)]
pub struct UotSolution {
    /// Dual potentials `(f, g)`.
    pub potentials: Potentials,
    /// What the solve reports.
    pub report: UotReport,
    /// `r_i = Σ_j π_ij`: how much of source point `i` is transported (`r_i/a_i` survives).
    pub row_mass: Vec<f64>,
    /// `c_j = Σ_i π_ij`.
    pub col_mass: Vec<f64>,
}

impl UotSolution {
    /// Access to the plan between the solved clouds `a` (source) and `b` (target), online from
    /// the potentials; an error if their sizes are not those of the solve.
    pub fn coupling<'a>(&'a self, a: &'a Cloud, b: &'a Cloud) -> Result<super::Coupling<'a>, SimError> {
        super::Coupling::new(a.view(), b.view(), &self.potentials, self.report.eps, self.report.cost)
    }
}

pub(crate) fn non_finite(iter: usize, what: &str, idx: usize, value: f64) -> SimError {
    SimError::NonFinite {
        step: iter,
        quantity: format!("sinkhorn iteration {iter}: {what}"),
        particle: idx,
        value,
    }
}

pub(crate) fn check_finite(v: &[f64], iter: usize, what: &str) -> Result<(), SimError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(non_finite(iter, what, i, v[i])),
        None => Ok(()),
    }
}

/// `ε_k` of iteration `k`.
pub(crate) fn eps_at(k: usize, eps: f64, e0: Option<f64>, q: f64) -> f64 {
    match e0 {
        Some(e0) if e0 > eps => (e0 * q.powi(k.min(i32::MAX as usize) as i32)).max(eps),
        _ => eps,
    }
}

/// The relative marginal error `Σ_i |r_i − ã_i| / max(Σ_i r_i, Σ_i ã_i)` (0 when both sums
/// are 0), from logs (no `inf − inf`): row `i` has plan mass `r_i = exp(la_i + (f_i − f̂_i)/ε)`
/// and fixed-point mass `ã_i = exp(la_i + (aprox(f̂_i) − f̂_i)/ε)`.
pub(crate) fn marginal_error(la: &[f64], f: &[f64], fhat: &[f64], eps: f64, marg: Marginal) -> f64 {
    let (mut err, mut sr, mut st) = (0.0, 0.0, 0.0);
    for ((l, fi), fh) in la.iter().zip(f).zip(fhat) {
        if *l == f64::NEG_INFINITY {
            continue;
        }
        let lr = l + (fi - fh) / eps;
        let lt = l + (marg.aprox(*fh, eps) - fh) / eps;
        sr += lr.exp();
        st += lt.exp();
        let gap = (lr - lt).abs();
        if gap > 0.0 {
            err += lr.max(lt).exp() * -(-gap).exp_m1();
        }
    }
    let den = sr.max(st);
    if den > 0.0 {
        err / den
    } else {
        0.0
    }
}

/// Translation `λ` maximising the dual along `(f + λ, g − λ)` (see module doc); 0 when both sides
/// are exact or a side is TV.
#[allow(clippy::too_many_arguments)]
fn translation(
    la: &[f64],
    lb: &[f64],
    f: &[f64],
    g: &[f64],
    ma: f64,
    mb: f64,
    ta: Marginal,
    tb: Marginal,
) -> f64 {
    let lse = |l: &[f64], p: &[f64], tau: f64| -> f64 {
        let v: Vec<f64> = l.iter().zip(p).map(|(l, p)| l - p / tau).collect();
        crate::particles::log_sum_exp(&v)
    };
    match (ta, tb) {
        (Marginal::Kl { tau: a }, Marginal::Kl { tau: b }) => {
            a * b / (a + b) * (lse(la, f, a) - lse(lb, g, b))
        }
        (Marginal::Kl { tau: a }, Marginal::Exact) => a * (lse(la, f, a) - mb.ln()),
        (Marginal::Exact, Marginal::Kl { tau: b }) => b * (ma.ln() - lse(lb, g, b)),
        _ => 0.0,
    }
}

/// The one Sinkhorn loop ([`iterate`]) drives a `Scheme`: the potentials, the soft-min passes
/// that update them (prepared [`Reduction`]s: the injected reduction, any ground cost) and the
/// stopping error. [`Pair`] is the two-sided iteration (UOT, balanced `W1` and `W2` as the
/// choice of exact marginals and ground cost); [`Symmetric`] is the averaged `f = g` iteration
/// of `OT_ε(α, α)` (`ot::divergence`).
pub(crate) trait Scheme {
    /// `f̂ = soft-min of the current g` at `ε_k` (iteration `it`, for error messages).
    fn soft_min(&mut self, ek: f64, it: usize) -> Result<(), SimError>;
    /// The stopping error of the current potentials at the target `ε`, from the last `f̂`.
    fn error(&self, eps: f64) -> f64;
    /// The rest of an iteration at `ε_k` with over-relaxation `ω`: `f` from `f̂`, then `g`.
    fn update(&mut self, ek: f64, omega: f64, it: usize) -> Result<(), SimError>;
    /// `(f, g)`, for the over-relaxation safeguard (`g` empty when there is only `f`).
    fn potentials(&mut self) -> (&mut [f64], &mut [f64]);
}

/// The schedule of [`iterate`]: target `ε`, annealing `ε_k = max(ε, ε_0 q^k)` (none when `e0`
/// is `None`), iteration cap, tolerance on [`Scheme::error`], over-relaxation, and whether a
/// converged relaxed iteration is followed by one plain one (`polish`, see the module doc).
pub(crate) struct Schedule {
    pub eps: f64,
    pub e0: Option<f64>,
    pub q: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub relaxation: Relaxation,
    pub polish: bool,
}

/// Why [`iterate`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The error reached the tolerance.
    Tol,
    /// The caller's hook asked to stop.
    Hook,
    /// `max_iter` iterations were done.
    MaxIter,
}

/// How a loop ran.
pub(crate) struct LoopEnd {
    pub stop: Stop,
    pub iterations: usize,
    pub annealing: usize,
    pub eps_reached: f64,
    pub omega: f64,
    pub restarts: usize,
}

/// The one Sinkhorn loop of the crate (GeomLoss's structure: the loop is generic over the
/// reduction and the update, which the [`Scheme`] injects). Iteration `k` at `ε_k`:
/// `f̂ = softmin(g)`; at the target `ε`, the error `e` is computed, `hook(k_target, e, scheme)`
/// is called (progress, early stops; `Ok(true)` stops), `e ≤ tol` stops (after one plain
/// iteration if the last one was relaxed and `polish`), and the adaptive relaxation sees `e`;
/// then the update with `ω` (1 while annealing).
pub(crate) fn iterate<S: Scheme>(
    s: &mut S,
    sch: &Schedule,
    mut hook: impl FnMut(usize, f64, &S) -> Result<bool, SimError>,
) -> Result<LoopEnd, SimError> {
    let eps = sch.eps;
    let mut relax = RelaxCtl::new(sch.relaxation);
    let (mut polish, mut last_omega, mut omega_max) = (false, 1.0, 1.0f64);
    let (mut it, mut annealing) = (0usize, 0usize);
    // The ε of the last update (the potentials are near its fixed point).
    let mut eps_last = eps_at(0, eps, sch.e0, sch.q);
    let stop = loop {
        let ek = eps_at(it, eps, sch.e0, sch.q);
        s.soft_min(ek, it)?;
        if ek == eps {
            let err = s.error(eps);
            let asked = hook(it - annealing, err, s)?;
            if err <= sch.tol {
                if last_omega == 1.0 || !sch.polish {
                    eps_last = eps;
                    break Stop::Tol;
                }
                // A relaxed g is not at its fixed point: finish with one plain iteration, so the
                // target error is ~0 when the source error is checked again.
                polish = true;
            } else if asked {
                eps_last = eps;
                break Stop::Hook;
            } else {
                let (f, g) = s.potentials();
                if relax.observe(err, f, g) {
                    // Restored the best potentials: recompute the soft-min before updating.
                    continue;
                }
            }
        }
        if it >= sch.max_iter {
            break Stop::MaxIter;
        }
        let omega = if ek == eps && !polish { relax.omega } else { 1.0 };
        polish = false;
        last_omega = omega;
        omega_max = omega_max.max(omega);
        s.update(ek, omega, it)?;
        if ek > eps {
            annealing += 1;
        }
        eps_last = ek;
        it += 1;
    };
    Ok(LoopEnd {
        stop,
        iterations: it,
        annealing,
        eps_reached: eps_last,
        omega: omega_max,
        restarts: relax.restarts,
    })
}

/// The stopping error of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The relative L1 source marginal error of the module doc ([`marginal_error`]).
    Relative,
    /// `Σ_i a_i |e^{(f_i − f̂_i)/ε} − 1|`: the absolute L1 row-marginal error of a balanced plan
    /// (`metrics::wasserstein`'s `W1`).
    Absolute,
}

/// The two-sided Sinkhorn iteration between `a` and `b` (module doc): prepared reductions both
/// ways, log-weights, penalties, potentials and soft-mins.
pub(crate) struct Pair<'a> {
    pub ab: Reduction<'a>,
    pub ba: Reduction<'a>,
    pub la: Vec<f64>,
    pub lb: Vec<f64>,
    wa: &'a [f64],
    c: f64,
    ta: Marginal,
    tb: Marginal,
    masses: (f64, f64),
    translation: bool,
    pub error: ErrorKind,
    pub f: Vec<f64>,
    pub g: Vec<f64>,
    pub fhat: Vec<f64>,
    ghat: Vec<f64>,
}

impl<'a> Pair<'a> {
    /// The iteration for the cost `c · ground(|x − y|²)`, penalties `(τ_a, τ_b)`, translation
    /// step on or off, starting potentials `(f, g)`; error [`ErrorKind::Relative`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        exec: &Exec,
        a: MeasureRef<'a>,
        b: MeasureRef<'a>,
        ground: Ground,
        c: f64,
        (ta, tb): (Marginal, Marginal),
        translation: bool,
        (f, g): (Vec<f64>, Vec<f64>),
    ) -> Self {
        let d = a.dim;
        Self {
            ab: Reduction::new(exec, d, a.x, b.x, ground),
            ba: Reduction::new(exec, d, b.x, a.x, ground),
            la: a.log_weights(),
            lb: b.log_weights(),
            wa: a.w,
            c,
            ta,
            tb,
            masses: (a.mass(), b.mass()),
            translation,
            error: ErrorKind::Relative,
            fhat: vec![0.0; a.len()],
            ghat: vec![0.0; b.len()],
            f,
            g,
        }
    }
}

impl Pair<'_> {
    /// Both reductions on the tiles of `cost` (the elastic cost's own tile path; a no-op for the
    /// squared-Euclidean costs).
    pub(crate) fn set_cost(&mut self, cost: Cost) {
        self.ab.set_elastic(cost.elastic());
        self.ba.set_elastic(cost.elastic());
    }
}

impl Scheme for Pair<'_> {
    fn soft_min(&mut self, ek: f64, it: usize) -> Result<(), SimError> {
        self.ab.soft_min(&self.lb, &self.g, ek, self.c, &mut self.fhat);
        check_finite(&self.fhat, it, "source soft-min f̂ (is a target weight > 0?)")
    }
    fn error(&self, eps: f64) -> f64 {
        match self.error {
            ErrorKind::Relative => marginal_error(&self.la, &self.f, &self.fhat, eps, self.ta),
            ErrorKind::Absolute => (0..self.f.len())
                .map(|i| self.wa[i] * (((self.f[i] - self.fhat[i]) / eps).exp() - 1.0).abs())
                .sum(),
        }
    }
    fn update(&mut self, ek: f64, omega: f64, it: usize) -> Result<(), SimError> {
        let (ta, tb) = (self.ta, self.tb);
        for (fi, fh) in self.f.iter_mut().zip(&self.fhat) {
            *fi = ta.project((1.0 - omega) * *fi + omega * ta.aprox(*fh, ek));
        }
        if self.translation {
            let (ma, mb) = self.masses;
            let lam = translation(&self.la, &self.lb, &self.f, &self.g, ma, mb, ta, tb);
            if !lam.is_finite() {
                return Err(non_finite(it, "translation of the potentials", 0, lam));
            }
            self.f.iter_mut().for_each(|v| *v += lam);
        }
        self.ba.soft_min(&self.la, &self.f, ek, self.c, &mut self.ghat);
        for (gj, gh) in self.g.iter_mut().zip(&self.ghat) {
            *gj = tb.project((1.0 - omega) * *gj + omega * tb.aprox(*gh, ek));
        }
        check_finite(&self.g, it, "target potential g (is a source weight > 0?)")
    }
    fn potentials(&mut self) -> (&mut [f64], &mut [f64]) {
        (&mut self.f, &mut self.g)
    }
}

/// Solve the entropic UOT problem between `a` (source) and `b` (target). The crate's entry for
/// borrowed slices; the public one is [`uot_clouds`](super::uot_clouds).
///
/// `warm`: starting potentials (sizes n and m); the first update recomputes `f` from `warm.g`.
/// Errors: invalid inputs (`SimError::Invalid`), balanced with unequal masses, or a non-finite
/// potential or report value (`SimError::NonFinite`, naming the iteration and quantity).
pub(crate) fn solve(
    a: MeasureRef,
    b: MeasureRef,
    opts: &SinkhornOptions,
    warm: Option<&Potentials>,
) -> Result<UotSolution, SimError> {
    opts.validate()?;
    a.validate("source")?;
    b.validate("target")?;
    if a.dim != b.dim {
        return Err(SimError::Invalid(format!("source has dimension {}, target {}", a.dim, b.dim)));
    }
    let (n, m, d) = (a.len(), b.len(), a.dim);
    let (ma, mb) = (a.mass(), b.mass());
    let (ta, tb) = (opts.marginal_a, opts.marginal_b);
    if ta == Marginal::Exact && tb == Marginal::Exact && (ma - mb).abs() > 1e-9 * ma.max(mb) {
        return Err(SimError::Invalid(format!(
            "balanced transport (both marginals exact) needs equal masses, got {ma} and {mb}: \
             scale the weights to equal masses, or use finite marginal penalties"
        )));
    }
    let (f, g) = match warm {
        Some(p) => {
            if p.f.len() != n || p.g.len() != m {
                return Err(SimError::Invalid(format!(
                    "warm start potentials have sizes {} and {}, expected {n} and {m}",
                    p.f.len(),
                    p.g.len()
                )));
            }
            check_finite(&p.f, 0, "warm-start source potential f")?;
            check_finite(&p.g, 0, "warm-start target potential g")?;
            (p.f.iter().map(|&v| ta.project(v)).collect(), p.g.iter().map(|&v| tb.project(v)).collect())
        }
        None => (vec![0.0; n], vec![0.0; m]),
    };
    let (e0, q) = annealing_schedule(opts, a, b);
    let mut p = Pair::new(
        &opts.exec,
        a,
        b,
        Ground::SqDist,
        opts.cost.scale(),
        (ta, tb),
        opts.translation_invariant,
        (f, g),
    );
    let sched = Schedule {
        eps: opts.eps,
        e0,
        q,
        max_iter: opts.max_iter,
        tol: opts.tol,
        relaxation: opts.relaxation,
        polish: true,
    };
    p.set_cost(opts.cost);
    let end = iterate(&mut p, &sched, |_, _, _| Ok(false))?;
    let (it, eps_last, eps) = (end.iterations, end.eps_reached, opts.eps);
    let (la, lb, f, g) = (&p.la, &p.lb, &p.f, &p.g);
    let mut eval_opts = opts.clone();
    eval_opts.eps = eps_last;
    let ev = evaluate((&p.ab, Some(&p.ba)), a, b, (la, lb), (f, g), &eval_opts, it)?;
    let run = RunStats {
        iterations: it,
        annealing: end.annealing,
        eps_reached: eps_last,
        omega: end.omega,
        restarts: end.restarts,
    };
    let converged = eps_last == eps && ev.err_a <= opts.tol && ev.err_b <= opts.tol;
    let report = build_report((n, m, d), opts, (ta, tb), (ma, mb), run, &ev, converged);
    check_report(&report, it)?;
    Ok(UotSolution {
        potentials: Potentials { f: p.f, g: p.g },
        report,
        row_mass: ev.row_mass,
        col_mass: ev.col_mass,
    })
}

/// The ε-annealing `(ε₀, q)` of a solve between `a` and `b` (`ε₀ = None`: no annealing); the
/// default `ε₀` is the cost diameter bound of both clouds.
pub(crate) fn annealing_schedule(opts: &SinkhornOptions, a: MeasureRef, b: MeasureRef) -> (Option<f64>, f64) {
    match opts.eps_scaling {
        Some(s) => (Some(s.start.unwrap_or_else(|| cost_scale_bound_in(a, b, opts.cost))), s.factor),
        None => (None, 1.0),
    }
}

/// How a solve ran (for its report).
pub(crate) struct RunStats {
    pub iterations: usize,
    pub annealing: usize,
    pub eps_reached: f64,
    pub omega: f64,
    pub restarts: usize,
}

/// The report of a solve of sizes `(n, m, d)` with penalties `(ta, tb)` and masses `(ma, mb)`,
/// from its run statistics and the evaluation at the final potentials.
pub(crate) fn build_report(
    (n, m, dim): (usize, usize, usize),
    opts: &SinkhornOptions,
    (ta, tb): (Marginal, Marginal),
    (ma, mb): (f64, f64),
    run: RunStats,
    ev: &Eval,
    converged: bool,
) -> UotReport {
    UotReport {
        n,
        m,
        dim,
        eps: opts.eps,
        cost: opts.cost,
        marginal_a: ta,
        marginal_b: tb,
        iterations: run.iterations,
        annealing_iterations: run.annealing,
        tol: opts.tol,
        eps_reached: run.eps_reached,
        omega: run.omega,
        relaxation_restarts: run.restarts,
        converged,
        marginal_error_a: ev.err_a,
        marginal_error_b: ev.err_b,
        transport_cost: ev.transport,
        entropy_term: ev.entropy,
        marginal_term_a: ev.pen_a,
        marginal_term_b: ev.pen_b,
        primal_objective: ev.transport + ev.entropy + ev.pen_a + ev.pen_b,
        dual_objective: ev.dual,
        mass_a: ma,
        mass_b: mb,
        transported_mass: ev.mass,
        destroyed_mass_a: ev.destroyed_a,
        created_mass_a: ev.created_a,
        destroyed_mass_b: ev.destroyed_b,
        created_mass_b: ev.created_b,
    }
}

/// One plain Sinkhorn iteration at `opts.eps`, in place: `f ← aprox_a(f̂(g))`, then
/// `g ← aprox_b(ĝ(f))` (no translation step, no relaxation, no report). Two streamed passes over
/// the `n·m` pairs; for benchmarks and callers that drive the loop themselves. `pot` holds `f` on
/// `a`'s points and `g` on `b`'s.
pub fn sinkhorn_step(
    a: &Cloud,
    b: &Cloud,
    opts: &SinkhornOptions,
    pot: &mut Potentials,
) -> Result<(), SimError> {
    opts.validate()?;
    let (a, b) = (a.view(), b.view());
    if pot.f.len() != a.len() || pot.g.len() != b.len() || a.dim != b.dim {
        return Err(SimError::Invalid(format!(
            "sinkhorn_step: potentials of sizes {} and {} for {} and {} points",
            pot.f.len(),
            pot.g.len(),
            a.len(),
            b.len()
        )));
    }
    // One plain iteration of the loop's two-sided scheme (ω = 1, no translation step).
    let (ta, tb) = (opts.marginal_a, opts.marginal_b);
    let start = (std::mem::take(&mut pot.f), std::mem::take(&mut pot.g));
    let mut p = Pair::new(&opts.exec, a, b, Ground::SqDist, opts.cost.scale(), (ta, tb), false, start);
    p.set_cost(opts.cost);
    let step = p.soft_min(opts.eps, 0).and_then(|()| p.update(opts.eps, 1.0, 0));
    (pot.f, pot.g) = (p.f, p.g);
    step
}

pub(crate) fn check_report(r: &UotReport, it: usize) -> Result<(), SimError> {
    let fields = [
        ("marginal_error_a", r.marginal_error_a),
        ("marginal_error_b", r.marginal_error_b),
        ("transport_cost", r.transport_cost),
        ("entropy_term", r.entropy_term),
        ("marginal_term_a", r.marginal_term_a),
        ("marginal_term_b", r.marginal_term_b),
        ("primal_objective", r.primal_objective),
        ("dual_objective", r.dual_objective),
        ("transported_mass", r.transported_mass),
    ];
    for (name, v) in fields {
        if !v.is_finite() {
            return Err(non_finite(it, &format!("report {name}"), 0, v));
        }
    }
    Ok(())
}

/// Everything the report needs, from one pass over rows and one over columns.
pub(crate) struct Eval {
    pub row_mass: Vec<f64>,
    pub col_mass: Vec<f64>,
    pub err_a: f64,
    pub err_b: f64,
    pub transport: f64,
    pub entropy: f64,
    pub pen_a: f64,
    pub pen_b: f64,
    pub dual: f64,
    pub mass: f64,
    pub destroyed_a: f64,
    pub created_a: f64,
    pub destroyed_b: f64,
    pub created_b: f64,
}

/// One side's sums: masses, error, penalty, dual term, `Σ_i r_i (f_i + Σ_j p_ij (g_j − C_ij))`
/// and `Σ_i r_i Σ_j p_ij C_ij`.
struct Side {
    mass: Vec<f64>,
    err: f64,
    pen: f64,
    dual: f64,
    cross: f64,
    transport: f64,
    destroyed: f64,
    created: f64,
}

#[allow(clippy::too_many_arguments)]
fn side(
    red: &Reduction,
    lx: &[f64],
    ly: &[f64],
    wx: &[f64],
    fx: &[f64],
    gy: &[f64],
    eps: f64,
    c: f64,
    marg: Marginal,
    it: usize,
    name: &str,
) -> Result<Side, SimError> {
    let n = fx.len();
    let h: Vec<f64> = ly.iter().zip(gy).map(|(l, gj)| l + gj / eps).collect();
    let (mut lse, mut md2, mut mpot) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    red.lse_stats(&h, c / eps, gy, &mut lse, &mut md2, &mut mpot);
    let fhat: Vec<f64> = lse.iter().map(|l| -eps * l).collect();
    check_finite(&fhat, it, &format!("{name} soft-min in the final evaluation"))?;
    let mut s = Side {
        mass: vec![0.0; n],
        err: marginal_error(lx, fx, &fhat, eps, marg),
        pen: 0.0,
        dual: 0.0,
        cross: 0.0,
        transport: 0.0,
        destroyed: 0.0,
        created: 0.0,
    };
    for i in 0..n {
        s.dual += wx[i] * marg.dual(fx[i]);
        if lx[i] == f64::NEG_INFINITY {
            continue;
        }
        let delta = (fx[i] - fhat[i]) / eps; // log(r_i / a_i)
        let r = (lx[i] + delta).exp();
        s.mass[i] = r;
        s.pen += marg.penalty(wx[i], delta);
        s.transport += r * c * md2[i];
        s.cross += r * (fx[i] + mpot[i] - c * md2[i]);
        if r < wx[i] {
            s.destroyed += wx[i] - r;
        } else {
            s.created += r - wx[i];
        }
    }
    check_finite(&s.mass, it, &format!("{name} plan marginal"))?;
    Ok(s)
}

/// Report quantities at potentials `(f, g)` and regularisation `eps`, from the solve's prepared
/// reductions `(a → b, b → a)`. Without the second (symmetric: b = a, g = f) the column pass is
/// the row pass.
pub(crate) fn evaluate(
    (ab, ba): (&Reduction, Option<&Reduction>),
    a: MeasureRef,
    b: MeasureRef,
    (la, lb): (&[f64], &[f64]),
    (f, g): (&[f64], &[f64]),
    opts: &SinkhornOptions,
    it: usize,
) -> Result<Eval, SimError> {
    let (c, eps) = (opts.cost.scale(), opts.eps);
    let ra = side(ab, la, lb, a.w, f, g, eps, c, opts.marginal_a, it, "source")?;
    let rb = match ba {
        None => None,
        Some(ba) => Some(side(ba, lb, la, b.w, g, f, eps, c, opts.marginal_b, it, "target")?),
    };
    let rb_ref = rb.as_ref().unwrap_or(&ra);
    let mass: f64 = ra.mass.iter().sum();
    let (ma, mb) = (a.mass(), b.mass());
    // ε Σ π log(π/ab) = Σ_ij π_ij (f_i + g_j − C_ij), summed over rows.
    let entropy = ra.cross - eps * mass + eps * ma * mb;
    let dual = ra.dual + rb_ref.dual - eps * (mass - ma * mb);
    let out = Eval {
        err_a: ra.err,
        err_b: rb_ref.err,
        transport: ra.transport,
        entropy,
        pen_a: ra.pen,
        pen_b: rb_ref.pen,
        dual,
        mass,
        destroyed_a: ra.destroyed,
        created_a: ra.created,
        destroyed_b: rb_ref.destroyed,
        created_b: rb_ref.created,
        col_mass: rb.as_ref().map_or_else(|| ra.mass.clone(), |s| s.mass.clone()),
        row_mass: ra.mass,
    };
    Ok(out)
}
