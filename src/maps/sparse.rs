//! Parametric displacement-sparse maps (SPEC §7): `T(x) = x + Δ(x)`, `Δ(x) = Θᵀφ(x)`, fitted by
//!
//! ```text
//! min_Θ  L(Θ) = S_ε(T#μ, ν) + γ Σ_i ā_i τ(Δ(x_i)),     ā_i = a_i / Σ_l a_l,
//! τ_ℓ0,σ(z) = Σ_k (1 − exp(−z_k²/(2σ²))),               τ_ℓ1(z) = Σ_k |z_k|  (Huber-smoothed, below),
//! ```
//!
//! where `μ = Σ a_i δ_{x_i}` is the source (its weights are respected, so an unbalanced-rescaled
//! source `(X, ã)` works) and `S_ε` the balanced debiased Sinkhorn divergence with cost `½|x − y|²`
//! ([`crate::ot::divergence`]) between the unit-mass normalisations of `T#μ` and `ν`.
//!
//! **Features.** `φ(x) = [RFF(z), 1, z]`, `z = (x − c)/s` (`c` the source's weighted mean, `s` its
//! median per-coordinate standard deviation): the random Fourier features of
//! [`crate::learned::features`] (an autonomous map: one hat knot, polynomial degree 1), `p = m + 1 + d`
//! functions. `Θ` is `p × d`; `Δ_k ≡ 0` exactly when column `k` of `Θ` is zero.
//!
//! **Gradient.** With `y_i = T(x_i)` and `∂S/∂y_i = ā_i ∇φ_S(y_i)` (the first variation of the
//! divergence, envelope theorem), the chain rule through the linear model gives
//! `∂L/∂Θ = Φᵀ R`, `R_i = ā_i (∇φ_S(y_i) + γ ∇τ(Δ_i))`, `Φ` the `n × p` design matrix.
//!
//! **Optimiser** (one loop for both penalties): a column-scaled Gauss–Newton / majorise–minimise
//! step with Armijo backtracking. For `½|·|²` the position Hessian of `S_ε` is close to `ā_i I`,
//! so `Θ`'s is close to `M ⊗ I`, `M = ΦᵀĀΦ + λI` (`λ = 10⁻⁸ tr(M)/p`). `τ` is majorised per
//! coordinate by a quadratic of curvature `w(z)` (`τ_ℓ0,σ` is concave in `z²`: `w = e^{−z²/2σ²}/σ²`;
//! the Huber function: `w = 1/max(|z|, h)`), and column `k` takes the step
//! `D_k = −M⁻¹(ΦᵀR)_k / (1 + γ c_k)`, `c_k = Σ_i ā_i w(Δ_ik)`. This is a descent direction (a
//! positive-definite preconditioner); the step `t` is the first of `t₀, t₀/2, t₀/4, …` with
//! `L(Θ + tD) ≤ L(Θ) + 10⁻⁴ t ⟨∇L, D⟩` (Armijo). Only the accepted trial's gradient is computed,
//! from the potentials its loss evaluation solved (no second solve at the accepted point), and
//! every solve is warm-started from the last accepted point's potentials. The target's
//! self-term `OT_ε(ν, ν)` does not depend on `Θ`: it is solved once per fit (at the first
//! evaluation, cold) and reused by every later evaluation
//! ([`crate::ot::divergence::sinkhorn_divergence_given_bb`]; the loss is bit for bit the one
//! of the full divergence whose `ν` solve is that one). `t₀ = 1` at the start of a round, then twice the
//! last step if it was accepted at its first trial (up to 64: the debiased divergence's curvature
//! falls below `ā_i` as `ε` grows, so the Gauss–Newton step is often short), else the last step. A fit stops when the loss falls by less than
//! `tol · |L|` in one step, when no step decreases it (the Sinkhorn tolerance's noise floor), or
//! at the iteration cap (a warning).
//!
//! **ℓ1.** Exact zeros in `Δ(x)` are not reachable through `Θ` with a proximal step: the prox of
//! `Σ_i |Θ_kᵀφ(x_i)|` in `Θ_k` has no closed form, and a per-point prox would leave the model.
//! So `|z|` is Huber-smoothed, `h_η(z) = z²/(2η)` for `|z| ≤ η`, `|z| − η/2` beyond, with
//! `η = δ/2`: a coordinate held in the quadratic zone moves by less than `δ` and counts as at rest.
//! The large displacements are shrunk by about `γ` (the ℓ1 bias), which smoothed ℓ0 avoids: its
//! gradient vanishes for `|z| ≫ σ`.
//!
//! **Displacement dimensionality** of a point: `#{k : |Δ_k(x)| > δ}`, `δ = 10⁻² s` (`s` as above);
//! the fit reports its `ā`-weighted mean and the per-coordinate frequency.
//!
//! **Non-convexity and warm starts.** At `Δ = 0` the smoothed-ℓ0 gradient is zero and its
//! curvature `γ/σ²` can exceed the divergence's, so a fit started from `Θ = 0` could keep every
//! coordinate at rest. Every fit therefore starts with the `γ = 0` fit (the unpenalised map) and
//! continues from it at the requested `γ`. When a penalised fit follows, that `γ = 0` round is
//! only a warm start and stops after at most 10 steps (no warning): at `γ = 0` the fit keeps
//! matching the sampling noise of every coordinate for many more steps at little gain (in the
//! d = 50 test, `S_ε` 0.127 after 10 steps, 0.120 after 50), which the penalty then undoes. Conversely, a displacement far beyond `σ` feels no
//! force (`τ` is flat there), so a coordinate the `γ = 0` map moves by much more than `σ` would
//! never be released. Smoothed ℓ0 at `γ > 0` is therefore fitted by graduated non-convexity:
//! after a round at the target `σ` (from the warm start) come rounds at `σ_j = 2^j σ` for
//! `j = J, J − 1, …, 0`, `J = ⌈log₂(r/σ)⌉` (at most 10), `r` the median over coordinates of the
//! `ā`-weighted RMS of a column of `Δ` after the first round (the typical coordinate's
//! displacement: the few large ones are the signal): at `σ ≳ r` the penalty reaches the typical
//! coordinate and shrinks it, and as `σ` halves the coordinates left near zero are pinned there
//! while the large displacements are released.
//!
//! **γ for a target dimensionality** ([`GammaChoice::TargetDims`]): bisection on `log γ`, not
//! annealing: the mean dimensionality is (up to noise) non-increasing in `γ`, so a bracket
//! `[γ_lo, γ_hi]` (dims above `K + ½` at `γ_lo`, below `K − ½` at `γ_hi`) halves in `log γ` each
//! round, and deterministic rounds keep the result reproducible. From `γ = 0`, `γ₁` (ℓ0: `10σ²`;
//! ℓ1: `10δ`) is multiplied (no upper end yet) or divided (no positive lower end yet) by 10. Each
//! round warm-starts from the lower end's `Θ` (a map with more moving coordinates: a coordinate
//! the penalty collapsed is not revived). It stops when the dimensionality is within
//! `K ± max(½, K/50)` ([`dims_tolerance`]: a fit's dimensionality is a noisy function of `γ`, and
//! at `K = 50` in `d = 100` neighbouring `γ` gave 49.1 and 54.4 — the last rounds of a ±½ search
//! refined noise), when the bracket is narrower than `γ_hi/γ_lo = 1.02` (the dimensionality jumps
//! across it; a warning), or after `rounds` rounds with a warning, keeping the round closest to `K`.

use crate::dist::Exec;
use crate::error::{ConfigError, Error, SimError};
use crate::learned::features::{FeatureSpec, Features, TimeBasis};
use crate::ot::divergence::sinkhorn_divergence_given_bb;
use crate::ot::sinkhorn::UotReport;
use crate::ot::{DivergenceOptions, DivergenceWarm, EpsScaling, SinkhornDivergence};
use crate::particles::Cloud;
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The sparsity penalty `τ` of the displacement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SparsePenalty {
    /// `τ = Σ_k |z_k|`, Huber-smoothed at `η = δ/2` (module doc).
    L1,
    /// `τ = Σ_k (1 − exp(−z_k²/(2σ²)))`.
    SmoothedL0 {
        /// Width `σ > 0`, in the data's units.
        sigma: f64,
    },
}

impl SparsePenalty {
    /// `(τ(z), τ'(z), w(z))` of one coordinate: value, derivative, majoriser curvature.
    fn eval(self, z: f64, huber: f64) -> (f64, f64, f64) {
        match self {
            SparsePenalty::L1 => {
                let a = z.abs();
                if a <= huber {
                    (z * z / (2.0 * huber), z / huber, 1.0 / huber)
                } else {
                    (a - 0.5 * huber, z.signum(), 1.0 / a)
                }
            }
            SparsePenalty::SmoothedL0 { sigma } => {
                let s2 = sigma * sigma;
                let e = (-z * z / (2.0 * s2)).exp();
                (1.0 - e, z * e / s2, e / s2)
            }
        }
    }
}

/// How the penalty strength `γ` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum GammaChoice {
    /// This `γ ≥ 0`.
    Fixed(f64),
    /// Bisection on `log γ` to this mean displacement dimensionality `K` (module doc).
    TargetDims(f64),
}

/// Settings of [`fit_sparse_map`], checked once by [`SparseMapParams::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseMapParams {
    /// The penalty `τ`.
    pub penalty: SparsePenalty,
    /// How `γ` is chosen.
    pub gamma: GammaChoice,
    /// Entropic regularisation `ε > 0` of `S_ε`, in cost units (cost `½|x − y|²`).
    pub eps: f64,
    /// Number of random Fourier features `m`.
    pub features: usize,
    /// Length scale `ℓ` of the features in standardised units; `None`: `√d`.
    pub bandwidth: Option<f64>,
    /// Seed of the drawn features.
    pub seed: u64,
    /// Iteration cap of one fit (per value of `γ`).
    pub iters: usize,
    /// Relative loss decrease below which a fit stops.
    pub tol: f64,
    /// Rounds of the `γ` search ([`GammaChoice::TargetDims`]).
    pub rounds: usize,
    /// Tolerance of each Sinkhorn solve of `S_ε`.
    pub sinkhorn_tol: f64,
    /// Iteration cap of each Sinkhorn solve.
    pub sinkhorn_max_iter: usize,
}

impl Default for SparseMapParams {
    fn default() -> Self {
        Self {
            penalty: SparsePenalty::SmoothedL0 { sigma: 0.1 },
            gamma: GammaChoice::TargetDims(1.0),
            eps: 0.5,
            features: 100,
            bandwidth: None,
            seed: 0,
            iters: 50,
            tol: 1e-4,
            rounds: 12,
            sinkhorn_tol: 1e-6,
            sinkhorn_max_iter: 2000,
        }
    }
}

impl SparseMapParams {
    /// Check every setting; the one-line error names the key (`sparse_map.<key>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| ConfigError::new("<builder>", format!("sparse_map.{key}"), msg);
        let pos = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(err(key, format!("must be finite and > 0, got {v}")))
            }
        };
        if let SparsePenalty::SmoothedL0 { sigma } = self.penalty {
            pos("penalty.sigma", sigma)?;
        }
        match self.gamma {
            GammaChoice::Fixed(g) if !(g.is_finite() && g >= 0.0) => {
                return Err(err("gamma", format!("must be finite and ≥ 0, got {g}")))
            }
            GammaChoice::TargetDims(k) if !(k.is_finite() && k >= 0.0) => {
                return Err(err("target_dims", format!("must be finite and ≥ 0, got {k}")))
            }
            _ => {}
        }
        pos("eps", self.eps)?;
        if let Some(b) = self.bandwidth {
            pos("bandwidth", b)?;
        }
        pos("tol", self.tol)?;
        pos("sinkhorn_tol", self.sinkhorn_tol)?;
        for (key, v) in
            [("iters", self.iters), ("rounds", self.rounds), ("sinkhorn_max_iter", self.sinkhorn_max_iter)]
        {
            if v == 0 {
                return Err(err(key, "must be ≥ 1, got 0".into()));
            }
        }
        Ok(())
    }

    /// The options of the divergence `S_ε` the fit minimises (balanced, cost `½|x − y|²`), for
    /// measuring feasibility the same way elsewhere.
    pub fn divergence_options(&self, exec: &Exec) -> DivergenceOptions {
        DivergenceOptions {
            eps: self.eps,
            rho: None,
            cost: crate::ot::Cost::HalfSqEuclidean,
            tol: self.sinkhorn_tol,
            max_iter: self.sinkhorn_max_iter,
            eps_scaling: Some(EpsScaling::default()),
            exec: exec.clone(),
        }
    }
}

/// A fitted map `T(x) = x + Θᵀφ(x)`: applicable to any point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseMap {
    /// The feature map `φ` (drawn frequencies stored by value).
    pub features: Features,
    /// `Θ`, `p × d` row-major (`p` = [`Features::len`]).
    pub theta: Vec<f64>,
}

impl SparseMap {
    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.features.dim()
    }

    /// Check a map read from a file: the features and the size of `Θ`.
    pub fn check(&self) -> Result<(), SimError> {
        self.features.check().map_err(|e| SimError::Invalid(format!("sparse map: {e}")))?;
        let (p, d) = (self.features.len(), self.dim());
        if self.theta.len() != p * d || self.theta.iter().any(|v| !v.is_finite()) {
            return Err(SimError::Invalid(format!(
                "sparse map: theta must hold p·d = {} finite numbers",
                p * d
            )));
        }
        Ok(())
    }

    /// `Δ(x)` at the points `x` (row-major `n × d`).
    pub fn displacement(&self, x: &[f64]) -> Result<Vec<f64>, SimError> {
        self.displacement_in(x, &Exec::default())
    }

    /// [`SparseMap::displacement`] with the feature rows computed in `exec`'s parallelism (the
    /// same bits on any thread count).
    pub fn displacement_in(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        let d = self.dim();
        if !x.len().is_multiple_of(d) {
            return Err(SimError::Invalid(format!(
                "sparse map: {} coordinates are not whole points of dimension {d}",
                x.len()
            )));
        }
        let phi = design(&self.features, x, exec);
        let delta = &phi * self.theta_matrix();
        check_finite(delta.as_slice(), 0, "displacement Δ(x)")?;
        Ok(row_major(&delta))
    }

    /// `T(x) = x + Δ(x)` at the points `x` (row-major `n × d`).
    pub fn apply(&self, x: &[f64]) -> Result<Vec<f64>, SimError> {
        self.apply_in(x, &Exec::default())
    }

    /// [`SparseMap::apply`] with the feature rows computed in `exec`'s parallelism.
    pub fn apply_in(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        let mut t = self.displacement_in(x, exec)?;
        t.iter_mut().zip(x).for_each(|(ti, xi)| *ti += xi);
        Ok(t)
    }

    fn theta_matrix(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.features.len(), self.dim(), &self.theta)
    }
}

/// One accepted step of a fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossRecord {
    /// Round of the `γ` search (0: the `γ = 0` fit).
    pub round: usize,
    /// `γ` of this round.
    pub gamma: f64,
    /// Iteration within the round (0: the starting point).
    pub iter: usize,
    /// `L = S_ε + γ · penalty`.
    pub loss: f64,
    /// `S_ε(T#μ, ν)`.
    pub divergence: f64,
    /// `Σ_i ā_i τ(Δ(x_i))`.
    pub penalty: f64,
    /// Accepted step length `t`.
    pub step: f64,
}

/// One value of `γ` tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GammaRound {
    /// `γ`.
    pub gamma: f64,
    /// Mean displacement dimensionality at the end of the round.
    pub dims: f64,
    /// `S_ε(T#μ, ν)` at the end of the round.
    pub divergence: f64,
    /// Accepted steps.
    pub iterations: usize,
    /// Why the round stopped.
    pub stop: String,
}

/// What [`fit_sparse_map`] returns.
#[derive(Debug, Clone, Serialize)]
pub struct SparseMapFit {
    /// The fitted map.
    pub map: SparseMap,
    /// The `γ` used.
    pub gamma: f64,
    /// `S_ε(T#μ, ν)` at the end (unit-mass normalisations).
    pub divergence: f64,
    /// Every accepted step of every round.
    pub history: Vec<LossRecord>,
    /// The values of `γ` tried, in order (the first is `γ = 0`).
    pub rounds: Vec<GammaRound>,
    /// Mean (`ā`-weighted) displacement dimensionality on the source.
    pub dims: f64,
    /// Per-coordinate frequency of displacement (`ā`-weighted share of points with `|Δ_k| > δ`).
    pub dim_frequency: Vec<f64>,
    /// Threshold `δ = 10⁻² × the source's median per-coordinate standard deviation`.
    pub delta: f64,
    /// Caps, unconverged solves, an unreached target.
    pub warnings: Vec<String>,
    /// The work the fit did (divergence evaluations, Sinkhorn iterations).
    pub work: SolveWork,
}

/// The work of a fit: what its time goes into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SolveWork {
    /// Evaluations of `S_ε` (each two Sinkhorn solves, `αβ` and `αα`; `ββ` once per fit).
    pub evaluations: usize,
    /// Sinkhorn iterations of those solves, summed.
    pub sinkhorn_iterations: usize,
}

/// Fit `T(x) = x + Θᵀφ(x)` from `source` to `target` (module doc). Invalid settings, clouds of
/// different dimensions, empty or zero-mass clouds, a source with no spread, and `K > d` are
/// errors; a non-finite value anywhere is an error naming the quantity.
pub fn fit_sparse_map(
    source: &Cloud,
    target: &Cloud,
    p: &SparseMapParams,
    exec: &Exec,
) -> Result<SparseMapFit, Error> {
    p.validate()?;
    let d = source.dim;
    let bad = |msg: String| Error::Sim(SimError::Invalid(format!("fit_sparse_map: {msg}")));
    if target.dim != d {
        return Err(bad(format!("source dimension {d} but target dimension {}", target.dim)));
    }
    if source.is_empty() || target.is_empty() || source.mass() <= 0.0 || target.mass() <= 0.0 {
        return Err(bad("source and target must have points and a positive mass".into()));
    }
    if let GammaChoice::TargetDims(k) = p.gamma {
        if k > d as f64 {
            return Err(Error::Config(ConfigError::new(
                "<builder>",
                "sparse_map.target_dims",
                format!("must be ≤ the dimension {d}, got {k}"),
            )));
        }
    }
    let abar: Vec<f64> = source.w.iter().map(|w| w / source.mass()).collect();
    let centre = source.mean();
    let s = median_std(source, &centre);
    if !(s > 0.0 && s.is_finite()) {
        return Err(bad(format!(
            "the source's median per-coordinate standard deviation is {s}, must be > 0"
        )));
    }
    let delta = 1e-2 * s;
    let spec = FeatureSpec {
        dim: d,
        random: p.features,
        ell_x: p.bandwidth.unwrap_or((d as f64).sqrt()),
        ell_t: 1.0,
        poly: 1,
        time: TimeBasis::Hat { knots: vec![0.0] },
        seed: p.seed,
        centre,
        scale: s,
        t_centre: 0.0,
        t_scale: 1.0,
    };
    let features = Features::new(spec).map_err(bad)?;
    let phi = design(&features, &source.x, exec);
    let np = features.len();
    // M = ΦᵀĀΦ + λI
    let mut wphi = phi.clone();
    for (i, mut row) in wphi.row_iter_mut().enumerate() {
        row *= abar[i];
    }
    let mut gram = phi.tr_mul(&wphi);
    let ridge = 1e-8 * gram.trace() / np as f64;
    for j in 0..np {
        gram[(j, j)] += ridge;
    }
    let chol = gram.cholesky().ok_or_else(|| {
        Error::Sim(SimError::Numerical {
            step: 0,
            what: "sparse map: Cholesky of the feature Gram matrix ΦᵀĀΦ failed".into(),
        })
    })?;
    let fixed = (phi, chol, p.divergence_options(exec));
    let mut prob = Problem::new(&source.x, &abar, target, fixed, p.penalty, delta);
    let mut history = Vec::new();
    let mut rounds = Vec::new();
    let mut warnings = Vec::new();
    let mut search_warnings = Vec::new();
    let mut run =
        |prob: &mut Problem, theta: &DMatrix<f64>, gamma: f64, cap: usize| -> Result<Fitted, Error> {
            let r = rounds.len();
            let mut f = prob.minimise(theta.clone(), gamma, p, cap, r, &mut history)?;
            if let (SparsePenalty::SmoothedL0 { sigma }, true) = (p.penalty, gamma > 0.0) {
                // graduated non-convexity: σ_j = 2^j σ, j = J, …, 0 (module doc)
                let mut rms = prob.column_rms(&f.theta);
                rms.sort_by(f64::total_cmp);
                let typical = rms[rms.len() / 2];
                let stages = (typical / sigma).log2().ceil().clamp(0.0, MAX_SIGMA_STAGES as f64) as i32;
                let mut iterations = f.iterations;
                for j in (0..=stages).rev() {
                    prob.penalty = SparsePenalty::SmoothedL0 { sigma: sigma * 2f64.powi(j) };
                    f = prob.minimise(f.theta, gamma, p, cap, r, &mut history)?;
                    iterations += f.iterations;
                }
                prob.penalty = p.penalty;
                f.iterations = iterations;
            }
            if f.capped && cap >= p.iters {
                warnings.push(format!("γ = {gamma:.6e}: {}", f.stop));
            }
            rounds.push(GammaRound {
                gamma,
                dims: f.dims,
                divergence: f.divergence,
                iterations: f.iterations,
                stop: f.stop.clone(),
            });
            Ok(f)
        };
    let unpenalised = p.gamma == GammaChoice::Fixed(0.0);
    let base_cap = if unpenalised { p.iters } else { WARM_START_ITERS };
    let base = run(&mut prob, &DMatrix::zeros(np, d), 0.0, base_cap)?;
    let chosen = match p.gamma {
        GammaChoice::Fixed(0.0) => base,
        GammaChoice::Fixed(g) => run(&mut prob, &base.theta, g, p.iters)?,
        GammaChoice::TargetDims(k) => {
            let tol = dims_tolerance(k);
            let within = |f: &Fitted| (f.dims - k).abs() <= tol;
            if base.dims < k - tol {
                search_warnings.push(format!(
                    "target dimensionality {k} not reached: the γ = 0 map already moves only {:.3} coordinates (δ = {delta:.3e})",
                    base.dims
                ));
            }
            let gamma1 = match p.penalty {
                SparsePenalty::SmoothedL0 { sigma } => 10.0 * sigma * sigma,
                SparsePenalty::L1 => 10.0 * delta,
            };
            let mut best = base.clone();
            let mut lo = base;
            let mut hi: Option<f64> = None;
            let mut gamma = gamma1;
            let mut done = within(&best) || best.dims < k;
            let mut narrow = false;
            for _ in 0..p.rounds {
                if done {
                    break;
                }
                let f = run(&mut prob, &lo.theta, gamma, p.iters)?;
                if (f.dims - k).abs() < (best.dims - k).abs() {
                    best = f.clone();
                }
                if within(&f) {
                    best = f;
                    done = true;
                    break;
                }
                if f.dims > k {
                    lo = f;
                } else {
                    hi = Some(gamma);
                }
                gamma = match (lo.gamma > 0.0, hi) {
                    (_, None) => gamma * 10.0,
                    (false, Some(h)) => h / 10.0,
                    (true, Some(h)) if h / lo.gamma < BRACKET_RATIO => {
                        narrow = true;
                        break;
                    }
                    (true, Some(h)) => (lo.gamma * h).sqrt(),
                };
            }
            if narrow {
                search_warnings.push(format!(
                    "target dimensionality {k} ± {tol} not reached: the γ bracket [{:.6e}, {:.6e}] is narrower than a factor {BRACKET_RATIO} (the dimensionality jumps across it); kept γ = {:.6e} with {:.3} coordinates (δ = {delta:.3e})",
                    lo.gamma, hi.unwrap_or(f64::NAN), best.gamma, best.dims
                ));
            } else if !done {
                search_warnings.push(format!(
                    "target dimensionality {k} ± {tol} not reached after {} rounds of the γ search: kept γ = {:.6e} with {:.3} coordinates (δ = {delta:.3e})",
                    p.rounds, best.gamma, best.dims
                ));
            }
            best
        }
    };
    warnings.extend(search_warnings);
    if prob.unconverged > 0 {
        warnings.push(format!(
            "{} divergence evaluations had a Sinkhorn solve short of its tolerance {} (the gradient is approximate there)",
            prob.unconverged, p.sinkhorn_tol
        ));
    }
    Ok(SparseMapFit {
        map: SparseMap { features, theta: row_major(&chosen.theta) },
        gamma: chosen.gamma,
        divergence: chosen.divergence,
        history,
        rounds,
        dims: chosen.dims,
        dim_frequency: chosen.frequency,
        delta,
        warnings,
        work: prob.work,
    })
}

/// Most halvings of `σ` in the graduated non-convexity of smoothed ℓ0.
const MAX_SIGMA_STAGES: usize = 10;

/// Tolerance of the target dimensionality: `|dims − K| ≤ max(½, K/50)`.
pub fn dims_tolerance(k: f64) -> f64 {
    (k / 50.0).max(0.5)
}

/// The `γ` search stops when its bracket is this narrow (`γ_hi / γ_lo`): below it the fits'
/// dimensionality moves by less than their noise (module doc).
const BRACKET_RATIO: f64 = 1.02;

/// The result of one round.
#[derive(Debug, Clone)]
struct Fitted {
    theta: DMatrix<f64>,
    gamma: f64,
    divergence: f64,
    dims: f64,
    frequency: Vec<f64>,
    iterations: usize,
    stop: String,
    capped: bool,
}

/// The loss at one `Θ`, with what its gradient needs.
struct Eval {
    loss: f64,
    divergence: f64,
    penalty: f64,
    delta: DMatrix<f64>,
    /// `T#μ` (the points `y_i` with weights `ā_i`) and its divergence to `ν` (potentials).
    alpha: Cloud,
    sd: SinkhornDivergence,
}

/// The fixed parts of a fit.
struct Problem<'a> {
    x: &'a [f64],
    abar: &'a [f64],
    target: Cloud,
    phi: DMatrix<f64>,
    /// `Φᵀ` (p × n), for the gradient `ΦᵀR` as one matrix product.
    phi_t: DMatrix<f64>,
    /// `M⁻¹` (p × p), from the Cholesky factor of `M`, for the preconditioner as one product.
    minv: DMatrix<f64>,
    opts: DivergenceOptions,
    penalty: SparsePenalty,
    huber: f64,
    delta: f64,
    warm: DivergenceWarm,
    /// `OT_ε(ν, ν)`'s potential and report, solved at the first evaluation (module doc).
    target_self: Option<(Vec<f64>, UotReport)>,
    unconverged: usize,
    /// Divergence evaluations and Sinkhorn iterations (the three solves summed) so far.
    work: SolveWork,
}

/// The design matrix `Φ`, the Cholesky factor of `M = ΦᵀĀΦ + λI` (inverted once: the
/// preconditioner is then one matrix product per step) and the divergence's options.
type FixedParts = (DMatrix<f64>, nalgebra::Cholesky<f64, nalgebra::Dyn>, DivergenceOptions);

impl<'a> Problem<'a> {
    /// A fit of the source points `x` (weights `abar`, unit mass) to `target` (normalised to
    /// unit mass here), at the displacement threshold `delta` (the Huber width is `delta/2`).
    fn new(
        x: &'a [f64],
        abar: &'a [f64],
        target: &Cloud,
        (phi, chol, opts): FixedParts,
        penalty: SparsePenalty,
        delta: f64,
    ) -> Self {
        Problem {
            x,
            abar,
            target: target.clone().with_mass(1.0),
            phi_t: phi.transpose(),
            phi,
            minv: chol.inverse(),
            opts,
            penalty,
            huber: 0.5 * delta,
            delta,
            warm: DivergenceWarm::default(),
            target_self: None,
            unconverged: 0,
            work: SolveWork::default(),
        }
    }

    /// `L(Θ)`, its Sinkhorn solves warm-started from the last accepted point.
    fn eval(&mut self, theta: &DMatrix<f64>, gamma: f64, step: usize) -> Result<Eval, SimError> {
        let d = theta.ncols();
        let delta = &self.phi * theta;
        check_finite(delta.as_slice(), step, "displacement Δ(x_i)")?;
        let mut y = row_major(&delta);
        y.iter_mut().zip(self.x).for_each(|(yi, xi)| *yi += xi);
        let alpha = Cloud::new_unchecked(d, y, self.abar.to_vec());
        let bb = self.target_self.as_ref().map(|(g, r)| (g.as_slice(), r));
        let sd = sinkhorn_divergence_given_bb(&alpha, &self.target, &self.opts, Some(&self.warm), bb)?;
        self.unconverged += usize::from(!sd.converged());
        self.work.evaluations += 1;
        self.work.sinkhorn_iterations += sd.report_ab.iterations + sd.report_aa.iterations;
        if self.target_self.is_none() {
            self.work.sinkhorn_iterations += sd.report_bb.iterations;
            self.target_self = Some((sd.g_bb.clone(), sd.report_bb.clone()));
        }
        let mut penalty = 0.0;
        for (i, a) in self.abar.iter().enumerate() {
            let t: f64 = (0..d).map(|k| self.penalty.eval(delta[(i, k)], self.huber).0).sum();
            penalty += a * t;
        }
        let loss = sd.value + gamma * penalty;
        if !loss.is_finite() {
            return Err(SimError::Numerical {
                step,
                what: format!("sparse map: non-finite loss (S_ε = {}, penalty = {penalty})", sd.value),
            });
        }
        Ok(Eval { loss, divergence: sd.value, penalty, delta, alpha, sd })
    }

    /// `∂L/∂Θ` (p × d) at an evaluated point and the column curvatures `c_k` of the majoriser.
    fn grad(&self, ev: &Eval, gamma: f64) -> Result<(DMatrix<f64>, Vec<f64>), SimError> {
        let (n, d) = (self.abar.len(), ev.delta.ncols());
        let (_, gpos) = ev.sd.first_variation(&ev.alpha.x, &ev.alpha, &self.target, &self.opts)?;
        let mut r = DMatrix::zeros(n, d);
        let mut c = vec![0.0; d];
        for i in 0..n {
            for k in 0..d {
                let (_, dt, w) = self.penalty.eval(ev.delta[(i, k)], self.huber);
                r[(i, k)] = self.abar[i] * (gpos[i * d + k] + gamma * dt);
                c[k] += self.abar[i] * w;
            }
        }
        Ok((&self.phi_t * r, c))
    }

    /// The `ā`-weighted root mean square of each column of `Δ = ΦΘ`.
    fn column_rms(&self, theta: &DMatrix<f64>) -> Vec<f64> {
        let delta = &self.phi * theta;
        (0..theta.ncols())
            .map(|k| self.abar.iter().enumerate().map(|(i, a)| a * delta[(i, k)].powi(2)).sum::<f64>().sqrt())
            .collect()
    }

    /// Mean dimensionality and per-coordinate frequency of `Δ` on the source.
    fn dims(&self, delta: &DMatrix<f64>) -> (f64, Vec<f64>) {
        let d = delta.ncols();
        let mut freq = vec![0.0; d];
        for (i, a) in self.abar.iter().enumerate() {
            for (k, fk) in freq.iter_mut().enumerate() {
                if delta[(i, k)].abs() > self.delta {
                    *fk += a;
                }
            }
        }
        (freq.iter().sum(), freq)
    }

    /// The preconditioner `H₀ g`: `M⁻¹ g` with column `k` divided by `1 + γ c_k` (module doc).
    fn precondition(&self, g: &DMatrix<f64>, c: &[f64], gamma: f64) -> DMatrix<f64> {
        let mut h = &self.minv * g;
        for (k, ck) in c.iter().enumerate() {
            h.column_mut(k).scale_mut(1.0 / (1.0 + gamma * ck));
        }
        h
    }

    /// One round: minimise `L` at `γ` from `theta` (module doc: the optimiser).
    fn minimise(
        &mut self,
        mut theta: DMatrix<f64>,
        gamma: f64,
        p: &SparseMapParams,
        cap: usize,
        round: usize,
        history: &mut Vec<LossRecord>,
    ) -> Result<Fitted, SimError> {
        let mut ev = self.eval(&theta, gamma, 0)?;
        self.warm = ev.sd.warm();
        let (mut g, mut c) = self.grad(&ev, gamma)?;
        let rec = |it: usize, ev: &Eval, step: f64| LossRecord {
            round,
            gamma,
            iter: it,
            loss: ev.loss,
            divergence: ev.divergence,
            penalty: ev.penalty,
            step,
        };
        history.push(rec(0, &ev, 0.0));
        let mut stop = format!("iteration cap {} reached", p.iters.min(cap));
        let mut capped = true;
        let mut iterations = 0;
        let mut t_start = 1.0;
        for it in 1..=p.iters.min(cap) {
            let dir = -self.precondition(&g, &c, gamma);
            let slope = g.dot(&dir);
            let mut t = t_start;
            let mut accepted = None;
            for _ in 0..LINE_SEARCH_TRIALS {
                let trial = &theta + &dir * t;
                // a failed trial (non-finite values, a Sinkhorn failure) counts as too long a step
                match self.eval(&trial, gamma, it) {
                    Ok(tev) if tev.loss <= ev.loss + 1e-4 * t * slope => {
                        accepted = Some((trial, tev));
                        break;
                    }
                    _ => t *= 0.5,
                }
            }
            let Some((trial, tev)) = accepted else {
                stop = format!("no step decreased the loss at iteration {it} (Sinkhorn tolerance floor)");
                capped = false;
                break;
            };
            // the next first trial: twice an accepted first trial, else the accepted length
            t_start = if t == t_start { (2.0 * t).min(MAX_STEP) } else { t };
            let decrease = ev.loss - tev.loss;
            self.warm = tev.sd.warm();
            let (g_new, c_new) = self.grad(&tev, gamma)?;
            theta = trial;
            (ev, g, c) = (tev, g_new, c_new);
            iterations = it;
            history.push(rec(it, &ev, t));
            if decrease <= p.tol * ev.loss.abs() {
                stop = format!("relative loss decrease below {} at iteration {it}", p.tol);
                capped = false;
                break;
            }
        }
        let (dims, frequency) = self.dims(&ev.delta);
        Ok(Fitted { theta, gamma, divergence: ev.divergence, dims, frequency, iterations, stop, capped })
    }
}

/// Longest first trial, in units of the preconditioned step.
const MAX_STEP: f64 = 64.0;

/// Trials of one line search.
const LINE_SEARCH_TRIALS: usize = 40;

/// Iteration cap of the `γ = 0` round when it is only the warm start of a penalised fit.
const WARM_START_ITERS: usize = 10;

/// The design matrix `Φ` (n × p) of the points `x`, rows computed in `exec`'s parallelism
/// (independent rows: the same bits on any thread count).
fn design(features: &Features, x: &[f64], exec: &Exec) -> DMatrix<f64> {
    let (d, np) = (features.dim(), features.len());
    let n = x.len() / d;
    let mut rows = vec![0.0; n * np];
    exec.par.for_each(rows.par_chunks_mut(np).zip(x.par_chunks(d)), |(out, xi)| {
        let mut pt = features.point();
        features.load(xi, 0.0, &mut pt);
        features.values(&pt, out);
    });
    DMatrix::from_row_slice(n, np, &rows)
}

/// A matrix as row-major values.
fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().as_slice().to_vec()
}

/// The `ā`-weighted median over coordinates of the per-coordinate standard deviation.
fn median_std(c: &Cloud, mean: &[f64]) -> f64 {
    let d = c.dim;
    let m = c.mass();
    let mut var = vec![0.0; d];
    for (xi, w) in c.x.chunks_exact(d).zip(&c.w) {
        for k in 0..d {
            var[k] += w / m * (xi[k] - mean[k]).powi(2);
        }
    }
    let mut sd: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
    sd.sort_by(f64::total_cmp);
    if d % 2 == 1 {
        sd[d / 2]
    } else {
        0.5 * (sd[d / 2 - 1] + sd[d / 2])
    }
}

fn check_finite(v: &[f64], step: usize, quantity: &str) -> Result<(), SimError> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(SimError::NonFinite { step, quantity: quantity.into(), particle: i, value: v[i] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `τ'` matches central differences and the majoriser curvature bounds the secant: for both
    /// penalties, `τ(z) ≤ τ(z₀) + τ'(z₀)(z − z₀) + ½ w(z₀)(z − z₀)²` on a grid.
    #[test]
    fn penalty_derivative_and_majoriser() {
        for pen in [SparsePenalty::L1, SparsePenalty::SmoothedL0 { sigma: 0.3 }] {
            for i in -20..=20 {
                let z0 = 0.07 * i as f64;
                let (v0, d0, w0) = pen.eval(z0, 0.1);
                let h = 1e-6;
                let fd = (pen.eval(z0 + h, 0.1).0 - pen.eval(z0 - h, 0.1).0) / (2.0 * h);
                assert!((fd - d0).abs() < 1e-6, "{pen:?} z={z0}: fd {fd} vs {d0}");
                for j in -40..=40 {
                    let z = 0.05 * j as f64;
                    let q = v0 + d0 * (z - z0) + 0.5 * w0 * (z - z0).powi(2);
                    assert!(pen.eval(z, 0.1).0 <= q + 1e-12, "{pen:?} z0={z0} z={z}");
                }
            }
        }
    }

    /// The target's self-term is solved once and reused: a later evaluation's loss equals, bit
    /// for bit, the full divergence (all three terms solved, `ν`'s cold as at the first
    /// evaluation) plus the penalty, and the cached evaluation ran only the `α` solves.
    #[test]
    fn cached_target_self_term_gives_the_uncached_loss_bit_for_bit() {
        let (n, m, d, np) = (40, 50, 3, 1 + 3);
        let mut s = 3u64;
        let mut u = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..n * d).map(|_| u()).collect();
        let y: Vec<f64> = (0..m * d).map(|_| u() + 0.5).collect();
        let source = Cloud::new(d, x, vec![1.0 / n as f64; n]).unwrap();
        let target = Cloud::new(d, y, vec![1.0 / m as f64; m]).unwrap();
        let abar = source.w.clone();
        // constant and linear features
        let phi = DMatrix::from_fn(n, np, |i, j| if j == 0 { 1.0 } else { source.x[i * d + j - 1] });
        let chol = phi.tr_mul(&phi).cholesky().unwrap();
        let p = SparseMapParams { eps: 0.05, ..Default::default() };
        let fixed = (phi, chol, p.divergence_options(&Exec::default()));
        let pen = SparsePenalty::SmoothedL0 { sigma: 0.2 };
        let mut prob = Problem::new(&source.x, &abar, &target, fixed, pen, 0.01);
        let gamma = 0.3;
        let th1 = DMatrix::from_fn(np, d, |i, k| 0.05 * (i + k) as f64);
        let e1 = prob.eval(&th1, gamma, 0).unwrap();
        assert!(prob.target_self.is_some());
        prob.warm = e1.sd.warm();
        let before = prob.work.sinkhorn_iterations;
        let th2 = DMatrix::from_fn(np, d, |i, k| 0.08 * (i + 2 * k) as f64 + if i == 0 { 0.3 } else { 0.0 });
        let e2 = prob.eval(&th2, gamma, 1).unwrap();
        let warm = DivergenceWarm { bb: None, ..prob.warm.clone() };
        let full = crate::ot::sinkhorn_divergence(&e2.alpha, &prob.target, &prob.opts, Some(&warm)).unwrap();
        assert_eq!(full.value.to_bits(), e2.divergence.to_bits());
        assert_eq!((full.value + gamma * e2.penalty).to_bits(), e2.loss.to_bits());
        assert_eq!(full.g_bb, e2.sd.g_bb);
        assert!(e2.divergence > 1e-3, "a non-trivial divergence: {}", e2.divergence);
        // only the two α solves ran; the skipped ν solve is real work
        let ran = prob.work.sinkhorn_iterations - before;
        assert_eq!(ran, e2.sd.report_ab.iterations + e2.sd.report_aa.iterations);
        assert!(full.report_bb.iterations >= 1);
    }

    #[test]
    fn validate_names_the_key() {
        let p = SparseMapParams { eps: -1.0, ..Default::default() };
        assert!(p.validate().unwrap_err().to_string().contains("sparse_map.eps"));
        let p = SparseMapParams { penalty: SparsePenalty::SmoothedL0 { sigma: 0.0 }, ..Default::default() };
        assert!(p.validate().unwrap_err().to_string().contains("sparse_map.penalty.sigma"));
        let p = SparseMapParams { gamma: GammaChoice::TargetDims(f64::NAN), ..Default::default() };
        assert!(p.validate().unwrap_err().to_string().contains("sparse_map.target_dims"));
        assert!(SparseMapParams::default().validate().is_ok());
    }
}
