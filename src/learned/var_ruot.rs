//! The Var-RUOT fit (SPEC §6): one potential `λ(x, t) = Σ_i θ_i f_i(x, t)` (a
//! [`Potential`]), `u = ∇λ`, `αψ'(g) = λ` ([`Psi::growth`]), fitted to every training snapshot by
//! L-BFGS on a loss whose gradient is the exact discrete adjoint of the particle steps.
//!
//! **Steps.** Particles start at the first snapshot `X_0` with log-weights `ℓ_0 = log b_i` (0 for
//! cells of mass 1). The grid puts `n_k = ⌈(t_{k+1} − t_k)/dt⌉` equal steps `h_k` in every
//! interval, so steps land exactly on every data time; step `n` starts at `t_n = t_k + j h_k`:
//!
//! `X_{n+1} = X_n + h ∇λ(X_n, t_n) + σ√h ξ_n`,   `ℓ_{n+1} = ℓ_n + h g(λ(X_n, t_n))`.
//!
//! These are the engine's own steps (SPEC §1, `weights` reaction, free mass), run by its one time
//! loop: the rollout is [`simulate_with`] (one `Simulation::run_until` per interval, the model as
//! a learned field, a stop rule recording every state), the same simulation as
//! `advreact forward --model`. The noise `ξ_n` comes from the engine's streams keyed by the fit's
//! seed, so it is the same at every evaluation (common random numbers) and the loss is a
//! deterministic function of `θ`. The engine *clips* `|g h|` to its guard `max_growth_step`; an
//! exact gradient must never see a silent clip, so a rollout with any clipped step is an error
//! (the line search treats it as a rejected trial). The test
//! `the_fit_trajectory_is_the_forward_simulation_to_the_bit` checks that a fitted model forwarded
//! with its fit settings lands on the fitted states bit for bit.
//!
//! **Loss.** With `w = e^ℓ`, `M_0` the first snapshot's mass and `M_k` the mass of snapshot `k`
//! (cells of mass 1: the cell count),
//!
//! `L = Σ_{k ≥ 1, not held out} [ γ_S S_ε(μ̂_k, ν_k) + γ_M (M̂_k/M_k − 1)² ] + γ_A A + γ_H H`,
//!
//! (`γ_S = 1` in the SPEC; it is a setting so tests can check the other terms alone), where
//! - `μ̂_k = Σ_i (w_i/M_0) δ_{X_i}` at the step landing on `t_k`, `ν_k = Σ_j (b_j/M_0) δ_{y_j}`:
//!   both measures are expressed in units of the initial mass, so `μ̂_0 = ν_0` has mass 1, the
//!   relative masses of the data are kept (the unbalanced divergence sees the growth), and `S_ε` has
//!   the same scale whatever the cell counts;
//! - `S_ε` is the debiased unbalanced Sinkhorn divergence (`ot::divergence`, cost `½|x − y|²`,
//!   entropy `ε`, reach `ρ`), warm-started from the previous evaluation. By the envelope theorem
//!   `∂S/∂a_i = φ(x_i)`, `∂S/∂x_i = a_i ∇φ(x_i)`, so `∂S/∂ℓ_i = a_i φ(x_i)` (`a_i = w_i/M_0`);
//!   this gradient is exact only at the solver's fixed point (its accuracy follows the Sinkhorn
//!   tolerance);
//! - the action per unit of initial mass `A = Σ_n Σ_i w_i (½|∇λ|² + αψ(g)) h / M_0`; reported
//!   beside it (not in the loss), the action per unit of current mass
//!   `A_w̄ = Σ_n Σ_i w̄_i (½|∇λ|² + αψ(g)) h`, `w̄ = w/Σw` (the two agree when the mass is constant);
//! - the HJB residual `H = Σ_n Σ_i w̄_i R_i² h`, `w̄ = w/Σw`,
//!   `R = ∂_tλ + ½|∇λ|² + ½σ²Δλ + λg − αψ(g)`.
//!
//! **Adjoint.** With `p_X = ∂L/∂X_{n+1}`, `p_ℓ = ∂L/∂ℓ_{n+1}` and the jet `J = (λ, ∇λ, ∂_tλ, Δλ)`
//! at `(X_n, t_n)`, the step and the running terms at `n` are functions of `J` and `ℓ_n`; their
//! cotangent on `J` is
//!
//! `a = h p_ℓ g' + γ_A (w/M_0) h αψ'(g) g' + 2γ_H w̄ h R (g + λg' − αψ'(g) g')`,
//! `b = h p_X + γ_A (w/M_0) h ∇λ + 2γ_H w̄ h R ∇λ`,  `c = 2γ_H w̄ h R`,  `e = 2γ_H w̄ h R · ½σ²`,
//!
//! and then (one pass over the features, [`Features::vjp`])
//! `p_X ← p_X + ∇_x[aλ + bᵀ∇λ + c∂_tλ + eΔλ]` ([`Features::vjp_x`]: the Hessian only
//! appears as `∇²λ b`, never formed), `∂L/∂θ += ∂_θ[aλ + bᵀ∇λ + c∂_tλ + eΔλ]`
//! ([`Features::vjp_theta`]), `p_ℓ ← p_ℓ + γ_A w E h/M_0 + γ_H h w̄ (R² − Σ_j w̄_j R_j²)`
//! (`E = ½|∇λ|² + αψ(g)`), and the observation terms at `n` are added last
//! (`a_i ∇φ`, `a_i φ + 2γ_M (M̂_k/M_k − 1) w_i/M_k`). This is SPEC §6's recursion,
//! `p_X,n = p_X,n+1 + h(∇²λ p_X,n+1 + p_ℓ,n+1 ∇g) + ∂(terms at n)/∂X_n`, written as one
//! vector–Jacobian product. Particles are independent given the observation gradients and one
//! per-step scalar (`Σ w̄ R²`), so both passes run over fixed blocks of [`BLOCK`] particles and the
//! partial sums are reduced in block order: the bits do not depend on the thread count.
//!
//! **Time basis.** The features' time basis is a setting of the feature map (`--time-basis`,
//! [`super::uot_fm::TimeChoice`]). With `constant` (a hat basis with one knot) the potential is
//! autonomous, `λ(x)`: `∂_tλ = 0`, and `u = ∇λ(x)`, `g = (ψ')⁻¹(λ(x)/α)` are the same at every
//! time, the model of a time-homogeneous SDE `dX = ∇λ(X) dt + σ dW` with state-dependent growth
//! `g(X)` (the three-gene system of the papers is one), and a forecast past the last snapshot
//! continues that same field.
//!
//! **Space-uniform time functions** (`--time-functions R`, [`Features::with_time_functions`]):
//! `λ = Σ θ f(x, t) + Σ_r θ'_r h_r(t)`. They have `∇h = 0` and `Δh = 0`, so they move no particle
//! and enter the steps only through `g = (ψ')⁻¹(λ/α)` (for ψ₁, `g += Σ θ'_r h_r/α`, the same for
//! every cell) and the HJB residual through `∂_tλ` and `λ`; in the adjoint they receive only the
//! cotangents `a` and `c` above ([`Features::vjp_theta`]: `a h_r + c ∂_t h_r`), and `vjp_x` gets
//! nothing from them. In the ridge start (the joint regression of `∇λ` on the velocity targets and
//! `λ/α` on the growth targets) their gradient rows are zero: they are fitted by the growth targets
//! alone, i.e. they take the part of the growth that is uniform in space and varies in time.
//!
//! **Optimiser.** L-BFGS (the private module `lbfgs`) with a backtracking Armijo line search;
//! each iteration is recorded ([`IterRecord`]).

mod lbfgs;

use super::commands::simulate_with;
use super::features::{Features, Jet, JetCot};
use super::model::{Model, Potential};
use super::psi::Psi;
use crate::dist::{Exec, Par};
use crate::error::SimError;
use crate::field::learned::JetSink;
use crate::infer::Series;
use crate::ot::divergence::{sinkhorn_divergence, DivergenceOptions, DivergenceWarm};
use crate::ot::Cost;
use crate::particles::Cloud;
use crate::stepper::{StepView, StopRule};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Particles per work block of the forward and backward passes (fixed: the partial sums are
/// reduced in block order, so the result does not depend on the thread count).
pub const BLOCK: usize = 32;

/// Settings of the fit. [`VarRuotParams::check`] validates them (one-line errors naming the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarRuotParams {
    /// The growth penalty `ψ` (written into the fitted [`Potential`]).
    pub psi: Psi,
    /// Its weight `α > 0`.
    pub alpha: f64,
    /// Noise amplitude `σ ≥ 0` of `dX = ∇λ dt + σ dW`.
    pub sigma: f64,
    /// Largest step `dt`; each interval gets `⌈Δ/dt⌉` equal steps.
    pub dt: f64,
    /// Entropic regularisation `ε` of `S_ε` (cost `½|x − y|²`, raw units).
    pub eps: f64,
    /// Reach `ρ` of the KL marginal penalties of `S_ε` (`None`: balanced, which needs equal masses).
    pub rho: Option<f64>,
    /// Weight `γ_S` of the divergences (1 in the SPEC's loss; 0 drops them and skips the solves,
    /// for tests of the other terms).
    pub gamma_s: f64,
    /// Weight `γ_M` of the relative mass errors.
    pub gamma_m: f64,
    /// Weight `γ_A` of the action.
    pub gamma_a: f64,
    /// Weight `γ_H` of the HJB residual.
    pub gamma_h: f64,
    /// L-BFGS iteration cap.
    pub max_iter: usize,
    /// Stop (converged) when `max_i |∂L/∂θ_i| ≤ tol`.
    pub tol: f64,
    /// Early stopping: stop when the loss fell by less than `min_decrease·|L|` over the last
    /// `patience` iterations (0: off).
    pub patience: usize,
    /// See `patience`.
    pub min_decrease: f64,
    /// Seed of the noise (drawn once per fit).
    pub seed: u64,
    /// Snapshot indices (into `series.times`, ≥ 1) left out of the loss.
    pub holdout: Vec<usize>,
    /// Tolerance of each Sinkhorn solve (relative L1 marginal error).
    pub sinkhorn_tol: f64,
    /// Iteration cap of each Sinkhorn solve.
    pub sinkhorn_max_iter: usize,
    /// The engine's growth guard: a step with `|g h|` above it is an error (never clipped).
    pub max_growth_step: f64,
    /// L-BFGS memory (pairs kept).
    pub memory: usize,
}

impl Default for VarRuotParams {
    fn default() -> Self {
        Self {
            psi: Psi::Quadratic,
            alpha: 1.0,
            sigma: 0.0,
            dt: 0.02,
            eps: 0.01,
            rho: Some(1.0),
            gamma_s: 1.0,
            gamma_m: 1.0,
            gamma_a: 0.01,
            gamma_h: 0.0,
            max_iter: 200,
            tol: 1e-7,
            patience: 0,
            min_decrease: 1e-4,
            seed: 0,
            holdout: Vec::new(),
            sinkhorn_tol: 1e-7,
            sinkhorn_max_iter: 20_000,
            max_growth_step: 1.0,
            memory: 10,
        }
    }
}

impl VarRuotParams {
    /// Check every setting; the error names the key and the value.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |key: &str, why: &str, v: f64| {
            Err(SimError::Invalid(format!("var_ruot: key `{key}` must be {why}, got {v}")))
        };
        let pos =
            |key: &str, v: f64| if v.is_finite() && v > 0.0 { Ok(()) } else { bad(key, "finite and > 0", v) };
        let nonneg = |key: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                bad(key, "finite and ≥ 0", v)
            }
        };
        self.psi.check().map_err(|e| SimError::Invalid(format!("var_ruot: key `psi`: {e}")))?;
        pos("alpha", self.alpha)?;
        nonneg("sigma", self.sigma)?;
        pos("dt", self.dt)?;
        pos("eps", self.eps)?;
        if let Some(r) = self.rho {
            pos("rho", r)?;
        }
        nonneg("gamma_s", self.gamma_s)?;
        nonneg("gamma_m", self.gamma_m)?;
        nonneg("gamma_a", self.gamma_a)?;
        nonneg("gamma_h", self.gamma_h)?;
        nonneg("tol", self.tol)?;
        nonneg("min_decrease", self.min_decrease)?;
        pos("sinkhorn_tol", self.sinkhorn_tol)?;
        pos("max_growth_step", self.max_growth_step)?;
        if self.sinkhorn_max_iter == 0 {
            return bad("sinkhorn_max_iter", "≥ 1", 0.0);
        }
        if self.memory == 0 {
            return bad("memory", "≥ 1", 0.0);
        }
        Ok(())
    }
}

/// One observed snapshot in the loss.
#[derive(Debug, Clone)]
struct Obs {
    /// Its index in the series.
    k: usize,
    /// The step index whose state is at `t_k`.
    n: usize,
    /// `ν_k` with weights `b/M_0`.
    target: Cloud,
    /// `M_k / M_0`.
    mass: f64,
}

/// The fit's fixed data: the grid, the first snapshot, the targets and the noise. Owns the warm
/// starts of the Sinkhorn solves (updated by every evaluation).
#[derive(Debug, Clone)]
pub struct Problem {
    features: Features,
    psi: Psi,
    alpha: f64,
    sigma: f64,
    gammas: (f64, f64, f64),
    gamma_s: f64,
    cap: f64,
    dim: usize,
    n: usize,
    x0: Vec<f64>,
    l0: Vec<f64>,
    m0: f64,
    /// Start time `t_n` and length `h_n` of each step.
    t: Vec<f64>,
    h: Vec<f64>,
    /// Step index of every data time.
    data_steps: Vec<usize>,
    obs: Vec<Obs>,
    /// The first snapshot (the start of every rollout), the data times, the step bound and the
    /// noise seed of [`simulate_with`].
    first: Cloud,
    times: Vec<f64>,
    dt: f64,
    seed: u64,
    /// `(ε, ρ, tolerance, iteration cap)` of the Sinkhorn solves.
    div: (f64, Option<f64>, f64, usize),
    warm: Vec<Option<DivergenceWarm>>,
}

/// The loss, its parts and (when asked) its gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossEval {
    /// `L`.
    pub loss: f64,
    /// `S_ε(μ̂_k, ν_k)` per observed snapshot (in `observed` order).
    pub divergence: Vec<f64>,
    /// `M̂_k/M_k − 1` per observed snapshot.
    pub mass_error: Vec<f64>,
    /// The observed snapshot indices.
    pub observed: Vec<usize>,
    /// `A` (per unit of initial mass).
    pub action: f64,
    /// `A_w̄` (per unit of current mass; module doc): reported, not in the loss.
    #[serde(default)]
    pub action_per_mass: f64,
    /// `H`.
    pub hjb: f64,
    /// `M̂_k/M_0` at every data time.
    pub masses: Vec<f64>,
    /// All Sinkhorn solves met their tolerance.
    pub sinkhorn_converged: bool,
    /// `∂L/∂θ` (empty when not asked for).
    pub grad: Vec<f64>,
}

/// The rollout's states after every step (a [`StopRule`] that never stops the run).
struct Record {
    x: Vec<f64>,
    l: Vec<f64>,
}

impl StopRule for Record {
    fn stop(&mut self, s: &StepView) -> Result<bool, SimError> {
        self.x.extend_from_slice(&s.particles.x);
        self.l.extend_from_slice(&s.particles.logw);
        Ok(false)
    }
}

/// A rollout's positions, log-weights and jets ([`Problem::rollout`]'s layout).
type Rollout = (Vec<f64>, Vec<f64>, Vec<f64>);

/// One block's stored trajectory.
struct Block {
    start: usize,
    len: usize,
    /// `x[(n·len + j)·d + k]`, `n = 0..=S`.
    x: Vec<f64>,
    /// `ℓ[n·len + j]`.
    l: Vec<f64>,
    /// Per step: `(Σ w, Σ w E h, Σ w R² h)`.
    sums: Vec<[f64; 3]>,
    /// The jets `(λ, ∇λ, ∂_tλ, Δλ)` at `(X_n, t_n)`, `n = 0..S`, stride `d + 3` (reused by the
    /// backward pass, which then only needs the phases and the two vector–Jacobian products).
    jets: Vec<f64>,
}

/// Jet and growth at one particle and step.
struct Local {
    g: f64,
    gp: f64,
    /// `αψ(g)`, `αψ'(g)`.
    apsi: f64,
    adpsi: f64,
    /// `½|∇λ|²`.
    kin: f64,
    r: f64,
}

impl Problem {
    /// Set up the fit of `series` with the feature map `features`: the step grid, the targets in
    /// units of the first snapshot's mass, and the noise (drawn here, once).
    pub fn new(series: &Series, features: Features, params: &VarRuotParams) -> Result<Self, SimError> {
        params.check()?;
        features.check().map_err(SimError::Invalid)?;
        let kk = series.times.len();
        if kk < 2 || series.clouds.len() != kk {
            return Err(SimError::Invalid("var_ruot: the series needs at least two snapshots".into()));
        }
        let d = series.clouds[0].dim;
        if features.dim() != d {
            return Err(SimError::Invalid(format!(
                "var_ruot: the features are {}-dimensional, the data {d}-dimensional",
                features.dim()
            )));
        }
        for &k in &params.holdout {
            if k == 0 || k >= kk {
                return Err(SimError::Invalid(format!(
                    "var_ruot: key `holdout`: snapshot index {k} must be in 1..{} (the first snapshot is the start)",
                    kk - 1
                )));
            }
        }
        let first = &series.clouds[0];
        let n = first.len();
        let m0 = first.mass();
        if n == 0 || m0 <= 0.0 || !m0.is_finite() {
            return Err(SimError::Invalid("var_ruot: the first snapshot has no mass".into()));
        }
        let (mut t, mut h, mut data_steps) = (Vec::new(), Vec::new(), vec![0]);
        for k in 0..kk - 1 {
            let (a, b) = (series.times[k], series.times[k + 1]);
            let span = b - a;
            if !(span > 0.0 && span.is_finite()) {
                return Err(SimError::Invalid(format!("var_ruot: times must increase ({a} then {b})")));
            }
            let steps = ((span / params.dt) * (1.0 - 1e-12)).ceil().max(1.0) as usize;
            let hk = span / steps as f64;
            for j in 0..steps {
                t.push(a + j as f64 * hk);
                h.push(hk);
            }
            data_steps.push(t.len());
        }
        let mut obs = Vec::new();
        for (k, (c, &n)) in series.clouds.iter().zip(&data_steps).enumerate().skip(1) {
            if params.holdout.contains(&k) {
                continue;
            }
            let target = Cloud::new(d, c.x.clone(), c.w.iter().map(|b| b / m0).collect())
                .map_err(|e| SimError::Invalid(format!("var_ruot: snapshot {k}: {e}")))?;
            obs.push(Obs { k, n, mass: c.mass() / m0, target });
        }
        if obs.is_empty() {
            return Err(SimError::Invalid(
                "var_ruot: every later snapshot is held out: nothing to fit".into(),
            ));
        }
        let div = (params.eps, params.rho, params.sinkhorn_tol, params.sinkhorn_max_iter);
        let nobs = obs.len();
        Ok(Self {
            features,
            psi: params.psi,
            alpha: params.alpha,
            sigma: params.sigma,
            gammas: (params.gamma_m, params.gamma_a, params.gamma_h),
            gamma_s: params.gamma_s,
            cap: params.max_growth_step,
            dim: d,
            n,
            x0: first.x.clone(),
            l0: first.w.iter().map(|w| w.ln()).collect(),
            m0,
            t,
            h,
            data_steps,
            obs,
            first: first.clone(),
            times: series.times.clone(),
            dt: params.dt,
            seed: params.seed,
            div,
            warm: vec![None; nobs],
        })
    }

    /// The feature map.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.t.len()
    }

    /// The jet-derived quantities at one particle (the jet already computed).
    fn local(&self, jet: &Jet) -> Local {
        let (g, gp) = self.psi.growth(jet.value, self.alpha);
        let apsi = self.alpha * self.psi.psi(g);
        let adpsi = self.alpha * self.psi.dpsi(g);
        let kin = 0.5 * jet.grad.iter().map(|v| v * v).sum::<f64>();
        let r = jet.dt + kin + 0.5 * self.sigma * self.sigma * jet.lap + jet.value * g - apsi;
        Local { g, gp, apsi, adpsi, kin, r }
    }

    /// The blocks `[start, start+len)`.
    fn blocks(&self) -> Vec<(usize, usize)> {
        (0..self.n.div_ceil(BLOCK)).map(|b| (b * BLOCK, BLOCK.min(self.n - b * BLOCK))).collect()
    }

    /// Run `f` over the blocks in `exec`'s parallelism, results in block order.
    fn over_blocks<T: Send>(
        &self,
        exec: &Exec,
        f: impl Fn(usize, usize) -> Result<T, SimError> + Sync,
    ) -> Result<Vec<T>, SimError> {
        let blocks = self.blocks();
        match exec.par {
            Par::Seq => blocks.iter().map(|&(s, l)| f(s, l)).collect(),
            Par::Rayon => blocks.par_iter().map(|&(s, l)| f(s, l)).collect(),
        }
    }

    /// The forward pass of one block.
    /// The states of every particle after every step, through the engine's one time loop
    /// ([`simulate_with`]: the same steps as `advreact forward --model`): `(x, ℓ, J)` with
    /// `x[(n·N + i)·d + k]`, `ℓ[n·N + i]`, `n = 0..=S`, and the jets the steps evaluated,
    /// `J[(n·N + i)·(d + 3)..]` = `(λ, ∇λ, ∂_tλ, Δλ)` at `(X_n, t_n)`, `n < S` (recorded by the
    /// learned field: the potential is evaluated once per particle and step in the forward pass). A step whose growth the engine's guard
    /// clips (`|g h| > max_growth_step`) is an error: a fit must never see a silent clip.
    fn rollout(&self, theta: &[f64], exec: &Exec) -> Result<Rollout, SimError> {
        let model = Model::VarRuot(Potential {
            features: self.features.clone(),
            theta: theta.to_vec(),
            psi: self.psi,
            alpha: self.alpha,
        });
        let mut rec = Record { x: self.x0.clone(), l: self.l0.clone() };
        let (n, d) = (self.n, self.dim);
        let sink: JetSink = Arc::new(Mutex::new(Vec::with_capacity(self.steps() * n * (d + 3))));
        let (_, steps, warnings) = simulate_with(
            &model,
            &self.first,
            &self.times,
            self.dt,
            self.sigma,
            self.seed,
            exec,
            self.cap,
            &mut rec,
            Some(&sink),
        )?;
        if let Some(w) = warnings.iter().find(|w| w.guard == "growth_clipped") {
            return Err(SimError::Limit {
                step: steps,
                what: format!(
                    "var_ruot forward: |g dt| exceeded the growth guard {} in {} particle-steps (never clipped in a fit)",
                    self.cap, w.count
                ),
            });
        }
        let jets = std::mem::take(&mut *sink.lock().map_err(|_| SimError::Numerical {
            step: steps,
            what: "var_ruot forward: the jet record was poisoned".into(),
        })?);
        if steps != self.steps()
            || rec.x.len() != (steps + 1) * n * d
            || rec.l.len() != (steps + 1) * n
            || jets.len() != steps * n * (d + 3)
        {
            return Err(SimError::Numerical {
                step: steps,
                what: format!(
                    "var_ruot forward: the rollout took {steps} steps, the fit's grid {}",
                    self.steps()
                ),
            });
        }
        Ok((rec.x, rec.l, jets))
    }

    /// One block's stored trajectory (from the rollout's states), jets, running sums and checks.
    fn forward_block(
        &self,
        (xs, ls, js_all): (&[f64], &[f64], &[f64]),
        start: usize,
        len: usize,
    ) -> Result<Block, SimError> {
        let (d, steps, nn) = (self.dim, self.steps(), self.n);
        let mut x = vec![0.0; (steps + 1) * len * d];
        let mut l = vec![0.0; (steps + 1) * len];
        for n in 0..=steps {
            x[n * len * d..(n + 1) * len * d]
                .copy_from_slice(&xs[(n * nn + start) * d..(n * nn + start + len) * d]);
            l[n * len..(n + 1) * len].copy_from_slice(&ls[n * nn + start..n * nn + start + len]);
        }
        let mut sums = vec![[0.0; 3]; steps];
        let js = d + 3;
        let mut jets = vec![0.0; steps * len * js];
        for n in 0..steps {
            jets[n * len * js..(n + 1) * len * js]
                .copy_from_slice(&js_all[(n * nn + start) * js..(n * nn + start + len) * js]);
        }
        let mut jet = Jet::default();
        for n in 0..steps {
            let h = self.h[n];
            for j in 0..len {
                jet.set(&jets[(n * len + j) * js..(n * len + j + 1) * js]);
                let lo = self.local(&jet);
                if !(lo.g.is_finite() && lo.r.is_finite() && jet.grad.iter().all(|v| v.is_finite())) {
                    return Err(SimError::NonFinite {
                        step: n,
                        quantity: "var_ruot forward: velocity, growth or HJB residual".into(),
                        particle: start + j,
                        value: lo.g,
                    });
                }
                let w = l[n * len + j].exp();
                let s = &mut sums[n];
                s[0] += w;
                s[1] += w * (lo.kin + lo.apsi) * h;
                s[2] += w * lo.r * lo.r * h;
            }
        }
        Ok(Block { start, len, x, l, sums, jets })
    }

    /// The forward pass: every block, in order.
    fn forward(&self, theta: &[f64], exec: &Exec) -> Result<Vec<Block>, SimError> {
        if theta.len() != self.features.len() {
            return Err(SimError::Invalid(format!(
                "var_ruot: θ has {} coefficients, the features {}",
                theta.len(),
                self.features.len()
            )));
        }
        let (xs, ls, jets) = self.rollout(theta, exec)?;
        self.over_blocks(exec, |s, l| self.forward_block((&xs, &ls, &jets), s, l))
    }

    /// Positions and log-weights of every particle at step `n`.
    fn gather(&self, blocks: &[Block], n: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.dim;
        let (mut x, mut l) = (Vec::with_capacity(self.n * d), Vec::with_capacity(self.n));
        for b in blocks {
            x.extend_from_slice(&b.x[n * b.len * d..(n + 1) * b.len * d]);
            l.extend_from_slice(&b.l[n * b.len..(n + 1) * b.len]);
        }
        (x, l)
    }

    /// The predicted clouds (weights `w = e^ℓ`, the data's mass units) at every data time.
    pub fn predict(&self, theta: &[f64], exec: &Exec) -> Result<Vec<Cloud>, SimError> {
        let blocks = self.forward(theta, exec)?;
        self.data_steps
            .iter()
            .map(|&n| {
                let (x, l) = self.gather(&blocks, n);
                Cloud::new(self.dim, x, l.iter().map(|v| v.exp()).collect())
                    .map_err(|e| SimError::Invalid(format!("var_ruot: predicted cloud at step {n}: {e}")))
            })
            .collect()
    }

    /// Time and total mass `M(t_n)/M_0` at every step boundary `n = 0..=S`.
    pub fn mass_path(&self, theta: &[f64], exec: &Exec) -> Result<Vec<(f64, f64)>, SimError> {
        let blocks = self.forward(theta, exec)?;
        let steps = self.steps();
        Ok((0..=steps)
            .map(|n| {
                let t = if n < steps { self.t[n] } else { self.t[n - 1] + self.h[n - 1] };
                let m: f64 =
                    blocks.iter().flat_map(|b| &b.l[n * b.len..(n + 1) * b.len]).map(|l| l.exp()).sum();
                (t, m / self.m0)
            })
            .collect())
    }

    /// The loss (module doc) at `θ`, and its gradient when `grad` is set. Updates the Sinkhorn
    /// warm starts.
    pub fn loss_and_grad(&mut self, theta: &[f64], grad: bool, exec: &Exec) -> Result<LossEval, SimError> {
        let blocks = self.forward(theta, exec)?;
        let (d, steps) = (self.dim, self.steps());
        let (gm, ga, gh) = self.gammas;
        // per-step reductions in block order
        let mut sums = vec![[0.0; 3]; steps];
        for b in &blocks {
            for (s, bs) in sums.iter_mut().zip(&b.sums) {
                for q in 0..3 {
                    s[q] += bs[q];
                }
            }
        }
        let action = sums.iter().map(|s| s[1]).sum::<f64>() / self.m0;
        let action_per_mass = sums.iter().map(|s| s[1] / s[0]).sum::<f64>();
        let hjb = sums.iter().map(|s| s[2] / s[0]).sum::<f64>();
        let masses: Vec<f64> = self
            .data_steps
            .iter()
            .map(|&n| {
                let (_, l) = self.gather(&blocks, n);
                l.iter().map(|v| v.exp()).sum::<f64>() / self.m0
            })
            .collect();
        let div_opts = DivergenceOptions {
            eps: self.div.0,
            rho: self.div.1,
            cost: Cost::HalfSqEuclidean,
            tol: self.div.2,
            max_iter: self.div.3,
            exec: exec.clone(),
            ..DivergenceOptions::default()
        };
        let mut ev = LossEval {
            loss: ga * action + gh * hjb,
            divergence: Vec::new(),
            mass_error: Vec::new(),
            observed: Vec::new(),
            action,
            action_per_mass,
            hjb,
            masses,
            sinkhorn_converged: true,
            grad: Vec::new(),
        };
        // observation gradients: (step, ∂L/∂x, ∂L/∂ℓ) over all particles
        let mut og: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
        for oi in 0..self.obs.len() {
            let o = &self.obs[oi];
            let (x, l) = self.gather(&blocks, o.n);
            let a: Vec<f64> = l.iter().map(|v| v.exp() / self.m0).collect();
            let mhat: f64 = a.iter().sum();
            let mu = Cloud::new(d, x, a)
                .map_err(|e| SimError::Invalid(format!("var_ruot: predicted cloud at t_{}: {e}", o.k)))?;
            let rel = mhat / o.mass - 1.0;
            let gs = self.gamma_s;
            let (mut gx, mut gl) = (vec![0.0; mu.x.len()], vec![0.0; mu.w.len()]);
            let mut value = 0.0;
            if gs > 0.0 {
                let s =
                    sinkhorn_divergence(&mu, &o.target, &div_opts, self.warm[oi].as_ref()).map_err(|e| {
                        SimError::Numerical {
                            step: o.n,
                            what: format!("var_ruot: S_ε at snapshot {}: {e}", o.k),
                        }
                    })?;
                ev.sinkhorn_converged &= s.converged();
                self.warm[oi] = Some(s.warm());
                value = s.value;
                if grad {
                    (gl, gx) = s.first_variation(&mu.x, &mu, &o.target, &div_opts)?;
                }
            }
            ev.loss += gs * value + gm * rel * rel;
            ev.divergence.push(value);
            ev.mass_error.push(rel);
            ev.observed.push(o.k);
            if grad {
                for (i, ai) in mu.w.iter().enumerate() {
                    gx[i * d..(i + 1) * d].iter_mut().for_each(|v| *v *= gs * ai);
                    gl[i] = gs * ai * gl[i] + 2.0 * gm * rel * ai / o.mass;
                }
                og.push((o.n, gx, gl));
            }
        }
        if !ev.loss.is_finite() {
            return Err(SimError::NonFinite {
                step: steps,
                quantity: "var_ruot loss".into(),
                particle: 0,
                value: ev.loss,
            });
        }
        if grad {
            let parts = self.over_blocks(exec, |s, l| {
                let b = &blocks[s / BLOCK];
                debug_assert_eq!((b.start, b.len), (s, l));
                self.backward_block(theta, b, &sums, &og)
            })?;
            let mut g = vec![0.0; theta.len()];
            for part in parts {
                g.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
            }
            if let Some(i) = g.iter().position(|v| !v.is_finite()) {
                return Err(SimError::NonFinite {
                    step: 0,
                    quantity: "var_ruot gradient".into(),
                    particle: i,
                    value: g[i],
                });
            }
            ev.grad = g;
        }
        Ok(ev)
    }

    /// The backward (adjoint) pass of one block: its contribution to `∂L/∂θ`.
    fn backward_block(
        &self,
        theta: &[f64],
        b: &Block,
        sums: &[[f64; 3]],
        og: &[(usize, Vec<f64>, Vec<f64>)],
    ) -> Result<Vec<f64>, SimError> {
        let (d, steps, len) = (self.dim, self.steps(), b.len);
        let (_, ga, gh) = self.gammas;
        let f = &self.features;
        let mut gt = vec![0.0; theta.len()];
        let mut px = vec![0.0; len * d];
        let mut pl = vec![0.0; len];
        let add_obs = |n: usize, px: &mut [f64], pl: &mut [f64]| {
            for (on, gx, gl) in og {
                if *on == n {
                    px.iter_mut().zip(&gx[b.start * d..(b.start + len) * d]).for_each(|(a, v)| *a += v);
                    pl.iter_mut().zip(&gl[b.start..b.start + len]).for_each(|(a, v)| *a += v);
                }
            }
        };
        add_obs(steps, &mut px, &mut pl);
        let mut p = f.point();
        let mut jet = Jet::default();
        let mut cot = JetCot { b: vec![0.0; d], ..JetCot::default() };
        let half_s2 = 0.5 * self.sigma * self.sigma;
        for n in (0..steps).rev() {
            let (t, h) = (self.t[n], self.h[n]);
            let [mass, _, hjb_n] = sums[n];
            let mean_c = hjb_n / mass;
            for j in 0..len {
                let xi = &b.x[(n * len + j) * d..(n * len + j + 1) * d];
                let w = b.l[n * len + j].exp();
                f.load(xi, t, &mut p);
                jet.set(&b.jets[(n * len + j) * (d + 3)..(n * len + j + 1) * (d + 3)]);
                let lo = self.local(&jet);
                let wa = ga * w / self.m0 * h;
                let wbar = w / mass;
                let wh = 2.0 * gh * wbar * h * lo.r;
                let dr_dl = lo.g + jet.value * lo.gp - lo.adpsi * lo.gp;
                cot.a = h * pl[j] * lo.gp + wa * lo.adpsi * lo.gp + wh * dr_dl;
                for k in 0..d {
                    cot.b[k] = h * px[j * d + k] + (wa + wh) * jet.grad[k];
                }
                cot.c = wh;
                cot.e = wh * half_s2;
                f.vjp(theta, &mut p, &cot, &mut px[j * d..(j + 1) * d], &mut gt);
                pl[j] += wa * (lo.kin + lo.apsi) + gh * wbar * (lo.r * lo.r * h - mean_c);
            }
            if n > 0 {
                add_obs(n, &mut px, &mut pl);
            }
        }
        Ok(gt)
    }
}

/// One L-BFGS iteration's record (iteration 0 is the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterRecord {
    /// Iteration number.
    pub iter: usize,
    /// The loss `L`.
    pub loss: f64,
    /// `Σ_k S_ε` over the observed snapshots.
    pub divergence: f64,
    /// `Σ_k (M̂_k/M_k − 1)²` (unweighted).
    pub mass: f64,
    /// The action `A` (per unit of initial mass).
    pub action: f64,
    /// The HJB residual `H`.
    pub hjb: f64,
    /// `|∂L/∂θ|₂`.
    pub grad_norm: f64,
    /// The accepted step length of the line search (0 at the start).
    pub step: f64,
    /// Loss evaluations so far.
    pub evaluations: usize,
    /// Seconds since the fit started.
    pub seconds: f64,
}

/// What a fit did (written to `fit.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Every iteration.
    pub history: Vec<IterRecord>,
    /// The action `A` of the returned potential (per unit of initial mass:
    /// `Σ_n Σ_i w_i (½|∇λ|² + αψ(g)) dt / M_0`).
    pub action: f64,
    /// The action per unit of current mass `A_w̄` of the returned potential (module doc).
    #[serde(default)]
    pub action_per_mass: f64,
    /// The HJB residual `H` of the returned potential.
    pub hjb: f64,
    /// The final loss evaluation (terms per observed snapshot, masses).
    pub last: LossEval,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Anything that limits the result.
    pub warnings: Vec<String>,
    /// The gradient tolerance was met.
    pub converged: bool,
    /// Why the fit stopped.
    pub stop_reason: String,
}

/// Fit `start` (its features and coefficients; `ψ` and `α` come from `params`) to `series` by
/// L-BFGS on the loss of the module doc. `on_iter` sees every iteration (progress, logging).
pub fn fit(
    series: &Series,
    start: Potential,
    params: &VarRuotParams,
    exec: &Exec,
    on_iter: &mut dyn FnMut(&IterRecord),
) -> Result<(Potential, FitReport), SimError> {
    let mut problem = Problem::new(series, start.features.clone(), params)?;
    let (theta, report) = lbfgs::minimise(&mut problem, start.theta.clone(), params, exec, on_iter)?;
    let pot = Potential { features: start.features, theta, psi: params.psi, alpha: params.alpha };
    Ok((pot, report))
}

/// The loss and its exact discrete-adjoint gradient at `pot.theta`, with `pot`'s `ψ` and `α`
/// (they override `params`'), on a fresh [`Problem`] (cold Sinkhorn starts). For tests and benchmarks; a fit reuses one [`Problem`].
pub fn loss_and_grad(
    series: &Series,
    pot: &Potential,
    params: &VarRuotParams,
    exec: &Exec,
) -> Result<LossEval, SimError> {
    let mut params = params.clone();
    params.psi = pot.psi;
    params.alpha = pot.alpha;
    Problem::new(series, pot.features.clone(), &params)?.loss_and_grad(&pot.theta, true, exec)
}

/// Simulate `pot` from `first` at time `t0` with the fit's step law (`params`' σ, dt, seed and
/// growth guard; `pot`'s ψ and α) and return the clouds at `times` (strictly increasing, after
/// `t0`), weights `e^ℓ` in the data's mass units. The grid is the fit's rule applied to
/// `[t0, times…]`: when those are the training times (or every held-out time lies on the
/// training grid, as with integer times and `dt = 1/q`) this is the fitted trajectory itself,
/// noise included; past the last time it extrapolates with the same steps.
pub fn predict_at(
    pot: &Potential,
    first: &Cloud,
    t0: f64,
    times: &[f64],
    params: &VarRuotParams,
    exec: &Exec,
) -> Result<Vec<Cloud>, SimError> {
    let mut all = vec![t0];
    all.extend_from_slice(times);
    // The forward pass never reads the targets: every snapshot slot holds the start cloud.
    let series = Series {
        file: std::path::PathBuf::from("<predict>"),
        clouds: vec![first.clone(); all.len()],
        times: all,
        growth: None,
        labels: None,
        ids: None,
    };
    let mut p = params.clone();
    p.psi = pot.psi;
    p.alpha = pot.alpha;
    p.holdout.clear();
    let mut out = Problem::new(&series, pot.features.clone(), &p)?.predict(&pot.theta, exec)?;
    out.remove(0);
    Ok(out)
}
