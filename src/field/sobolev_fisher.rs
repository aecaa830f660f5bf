//! The kernel Sobolev–Fisher critic of Unbalanced Sobolev Descent (Mroueh & Rigotti, NeurIPS 2020;
//! SPEC §2.1), with random Fourier features `Φ(x) = √(2/m) cos(Wᵀx + c)` ([`crate::kernel::rff`]):
//!
//! ```text
//! f(x) = ⟨β, Φ(x)⟩,         β = (D + α C + λ_M I)⁻¹ (μ_ν − μ_q),
//! μ_q = Σ_i w_i Φ(x_i),      μ_ν = Σ_j b_j Φ(y_j),
//! D = Σ_i w_i J_i J_iᵀ = (2/m) (Σ_i w_i s_i s_iᵀ) ∘ (WᵀW),   s_i = sin(Wᵀx_i + c),   J_i = ∂Φ/∂x(x_i),
//! C = Σ_i w_i Φ_i Φ_iᵀ,
//! u(x) = ∇f(x) = J(x)ᵀβ = −√(2/m) Σ_k β_k sin(w_kᵀx + c_k) w_k,
//! g(x) = α f(x)                                  (free mass),
//! g(x) = α (f(x) − Σ_i w_i f(x_i) / M)           (conserving).
//! ```
//!
//! - Free mass: raw weights, ridge `λ_M = λ·M` (`M = Σ w_i`), so the critic depends only on the
//!   shape of the measures (`D`, `C` and `μ_ν − μ_q` all scale with mass).
//! - Conserving: weights normalised to probabilities on both sides (`w/M`, `b/M_ν`), `C` centred
//!   (`C − μ_q μ_qᵀ`), ridge `λ` (the mass is 1).
//! - `α = 0` is plain Sobolev descent (no growth; `C` is not assembled).
//! - Sign: `f` is large where the target has more mass than the particles; particles climb `∇f`
//!   and gain mass where `f > 0`.
//! - Large `λ`: `β → (μ_ν − μ_q)/λ_M`, so `λ_M f → −φ̂`, with `φ̂(x) = Σ w_i k̂(x, x_i) −
//!   Σ b_j k̂(x, y_j)` the MMD witness (first variation, SPEC §2.2) of the RFF kernel
//!   `k̂ = ΦᵀΦ`: USD becomes the WFR–MMD flow with time rescaled.
//!
//! The Gramians are assembled by [`Rff::moments`] (streamed, blocked, O(N m²), bitwise identical
//! for any thread count); `β` is found by a blocked right-looking Cholesky factorisation (panel
//! triangular solve, trailing update as parallel GEMMs; fixed operation order, so deterministic
//! too). The critic is re-solved every `resolve_every` steps and kept in between. Wall-clock time
//! per phase (features, Gramians, solve, evaluation) is kept in [`PhaseTimings`].
//!
//! Distributed runs ([`crate::dist`]): the Gramians and `μ_q` are summed over blocks of points
//! split over the ranks (canonical block tree), the m×m solve is repeated on every rank, and the
//! evaluation of `u` and `f` at the particles is split by rows and all-gathered; the result is
//! bitwise that of one process.

use super::state::{FieldState, SobolevFisherState};
use super::{foreign_state, EvalCtx, Field};
use crate::dist::{Exec, Par};
use crate::error::SimError;
use crate::kernel::rff::{dot, sincos_into_generic, Rff};
use crate::param::{self, ParamError};
use crate::particles::Cloud;
use crate::simd::{multiversion, Isa};
use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// The validated parameters of the Sobolev–Fisher critic, as the field runs with them (built by
/// [`SobolevFisherParams::check`]; [`SobolevFisher::new`] checks one given directly). Defaults are
/// the known-good values of SPEC §2.1 (Gaussian N(0, 0.1²I) → ring of 8 Gaussians of radius 0.75).
#[derive(Debug, Clone, PartialEq)]
pub struct SobolevFisherCfg {
    /// Number of random Fourier features `m`.
    pub features: usize,
    /// Kernel bandwidth `s` (frequencies `~ N(0, s⁻² I)`).
    pub bandwidth: f64,
    /// Fisher weight `α` (units 1/length²); `0` is plain Sobolev descent.
    pub alpha: f64,
    /// Ridge `λ`, relative to the mass: the system uses `λ·M` (free) or `λ` (conserving).
    pub ridge: f64,
    /// Conserve the total mass (normalised weights, centred `C`, growth of zero weighted mean).
    pub conserve: bool,
    /// Re-solve the critic every `resolve_every` steps (`β` kept in between); ≥ 1.
    pub resolve_every: usize,
}

impl Default for SobolevFisherCfg {
    fn default() -> Self {
        Self { features: 512, bandwidth: 0.1, alpha: 1.0, ridge: 1e-3, conserve: true, resolve_every: 1 }
    }
}

impl SobolevFisherCfg {
    /// The one check of the parameters (a scenario's `[field]` table uses it too): the key and
    /// the offending value. `ridge = 0` is allowed (a singular system is reported when met).
    pub fn check(&self) -> Result<(), ParamError> {
        param::count("features", self.features)?;
        param::positive("bandwidth", self.bandwidth)?;
        param::non_negative("alpha", self.alpha)?;
        param::non_negative("ridge", self.ridge)?;
        param::count("resolve_every", self.resolve_every)
    }

    /// [`SobolevFisherCfg::check`] as a [`SimError`] (`sobolev_fisher: bandwidth: must be > 0,
    /// got -1`).
    pub fn validate(&self) -> Result<(), SimError> {
        self.check().map_err(param::invalid("sobolev_fisher"))
    }
}

/// The parameters of the critic as a scenario's `[field]` table (`type = "sobolev_fisher"`) or
/// code gives them (linfa's params): a key the file may omit has its default here, and
/// `conserve` absent means "as the caller's default" (a scenario's `reaction.conserve`).
/// [`SobolevFisherParams::check`] is the one place that resolves the defaults and validates,
/// giving the [`SobolevFisherCfg`] the field runs with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SobolevFisherParams {
    /// Random Fourier features `m` (default 512).
    #[serde(default = "features_default")]
    pub features: usize,
    /// Kernel bandwidth `s` (required in a file).
    pub bandwidth: f64,
    /// Fisher (reaction) weight `α`; 0 = plain Sobolev descent (default 1).
    #[serde(default = "alpha_default")]
    pub alpha: f64,
    /// Ridge `λ` (times the mass; default 10⁻³).
    #[serde(default = "ridge_default")]
    pub ridge: f64,
    /// Conserving critic (normalised weights, centred C); `None`: the default given to `check`.
    #[serde(default)]
    pub conserve: Option<bool>,
    /// Re-solve the critic every this many steps (default 1).
    #[serde(default = "resolve_every_default")]
    pub resolve_every: usize,
}

fn features_default() -> usize {
    SobolevFisherCfg::default().features
}
fn alpha_default() -> f64 {
    SobolevFisherCfg::default().alpha
}
fn ridge_default() -> f64 {
    SobolevFisherCfg::default().ridge
}
fn resolve_every_default() -> usize {
    SobolevFisherCfg::default().resolve_every
}

impl Default for SobolevFisherParams {
    /// The defaults of [`SobolevFisherCfg::default`], `conserve` left to the caller.
    fn default() -> Self {
        let c = SobolevFisherCfg::default();
        Self {
            features: c.features,
            bandwidth: c.bandwidth,
            alpha: c.alpha,
            ridge: c.ridge,
            conserve: None,
            resolve_every: c.resolve_every,
        }
    }
}

impl SobolevFisherParams {
    /// The validated configuration: `conserve` resolved (`None` → `conserve_default`), then
    /// [`SobolevFisherCfg::check`].
    pub fn check(&self, conserve_default: bool) -> Result<SobolevFisherCfg, ParamError> {
        let cfg = SobolevFisherCfg {
            features: self.features,
            bandwidth: self.bandwidth,
            alpha: self.alpha,
            ridge: self.ridge,
            conserve: self.conserve.unwrap_or(conserve_default),
            resolve_every: self.resolve_every,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// Cumulative wall-clock seconds per phase, and call counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimings {
    /// Phases `Wᵀx + c`, sine/cosine, scaled feature rows, `μ_q`.
    pub features: f64,
    /// Gram products and the assembly of `D + αC + λI`.
    pub gram: f64,
    /// Cholesky factorisation and triangular solves.
    pub solve: f64,
    /// Evaluation of `u` and `g` at the particles.
    pub eval: f64,
    /// Calls to `prepare`.
    pub prepares: u64,
    /// Critic solves (≤ prepares when `resolve_every > 1`).
    pub solves: u64,
    /// Calls to `eval`.
    pub evals: u64,
}

/// The linear system of one critic solve: `matrix · β = rhs`.
#[derive(Debug, Clone)]
pub struct CriticSystem {
    /// `D + α C + λ_M I` (m×m, symmetric, both triangles).
    pub matrix: DMatrix<f64>,
    /// `μ_ν − μ_q` (normalised measures when conserving).
    pub rhs: Vec<f64>,
    /// `μ_q` as used (normalised when conserving).
    pub mean: Vec<f64>,
    /// The ridge actually added to the diagonal (`λ·M` or `λ`).
    pub ridge: f64,
    /// Seconds forming features and in the Gram products.
    pub features_secs: f64,
    /// Seconds in the Gram products and the assembly.
    pub gram_secs: f64,
}

/// The Unbalanced Sobolev Descent field (see the module doc).
#[derive(Debug)]
pub struct SobolevFisher {
    cfg: SobolevFisherCfg,
    rff: Rff,
    /// `Σ_j b_j Φ(y_j)` (unnormalised), computed once.
    target_mean: Vec<f64>,
    target_mass: f64,
    beta: Vec<f64>,
    /// Step of the last solve.
    solved_at: Option<usize>,
    /// `|μ_ν − μ_q|` at the last solve (the RFF-kernel MMD between the measures as used).
    rhs_norm: f64,
    timings: Mutex<PhaseTimings>,
}

/// Diagonal blocks of the blocked Cholesky factorisation.
const CHOL_BLOCK: usize = 128;
/// Particles per parallel task in evaluation.
const EVAL_CHUNK: usize = 64;
/// Particles per partial sum of `Σ w f` (fixed: part of the determinism contract).
const SUM_CHUNK: usize = 1024;

impl SobolevFisher {
    /// A critic in dimension `dim` toward `target`, features drawn from `seed`
    /// (stream `(seed, Features, 0, 0)`). `μ_ν` is computed here, once.
    pub fn new(cfg: SobolevFisherCfg, dim: usize, target: &Cloud, seed: u64) -> Result<Self, SimError> {
        cfg.validate()?;
        if dim == 0 {
            return Err(SimError::Invalid("sobolev_fisher: dimension must be ≥ 1".into()));
        }
        if target.dim != dim {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: target has dimension {}, particles {dim}",
                target.dim
            )));
        }
        if target.is_empty() {
            return Err(SimError::Invalid(
                "sobolev_fisher: the target is empty (the critic needs a target measure)".into(),
            ));
        }
        if let Some(i) = target.x.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: target point {} has a non-finite coordinate",
                i / dim
            )));
        }
        if let Some(j) = target.w.iter().position(|b| !(b.is_finite() && *b >= 0.0)) {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: target weight {j} is {} (must be finite and ≥ 0)",
                target.w[j]
            )));
        }
        let target_mass = target.mass();
        if target_mass <= 0.0 || !target_mass.is_finite() {
            return Err(SimError::Invalid(format!("sobolev_fisher: the target mass is {target_mass}")));
        }
        let rff = Rff::new(dim, cfg.features, cfg.bandwidth, seed);
        // Once per critic, on this process alone (the sum's bits do not depend on the ranks).
        let target_mean = rff.moments(&Exec::default(), &target.x, &target.w, 1.0, false, false).mean;
        Ok(Self {
            beta: vec![0.0; cfg.features],
            cfg,
            rff,
            target_mean,
            target_mass,
            solved_at: None,
            rhs_norm: 0.0,
            timings: Mutex::new(PhaseTimings::default()),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &SobolevFisherCfg {
        &self.cfg
    }

    /// The feature map.
    pub fn rff(&self) -> &Rff {
        &self.rff
    }

    /// The critic coefficients `β` (zero before the first solve).
    pub fn beta(&self) -> &[f64] {
        &self.beta
    }

    /// `μ_ν = Σ_j b_j Φ(y_j)` (unnormalised) and the target mass `M_ν`.
    pub fn target_embedding(&self) -> (&[f64], f64) {
        (&self.target_mean, self.target_mass)
    }

    /// Step of the last critic solve.
    pub fn solved_at(&self) -> Option<usize> {
        self.solved_at
    }

    /// Cumulative wall-clock seconds per phase since construction (or the last reset).
    pub fn timings(&self) -> PhaseTimings {
        *self.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Zero the phase timings.
    pub fn reset_timings(&self) {
        *self.timings.lock().unwrap_or_else(|e| e.into_inner()) = PhaseTimings::default();
    }

    /// `f(x) = ⟨β, Φ(x)⟩`.
    pub fn critic(&self, x: &[f64]) -> f64 {
        dot(&self.beta, &self.rff.features(x))
    }

    /// `f(x)`, and `∇f(x) = J(x)ᵀβ` into `grad` (length d).
    pub fn critic_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut f = [0.0];
        eval_chunk_at(crate::simd::level(), self, x, 0, grad, &mut f);
        f[0]
    }

    /// Assemble the critic system from particles `(x, w)` (see the module doc).
    pub fn assemble(&self, exec: &Exec, step: usize, x: &[f64], w: &[f64]) -> Result<CriticSystem, SimError> {
        let (m, d) = (self.rff.features, self.rff.dim);
        let mass: f64 = w.iter().sum();
        if !(mass > 0.0 && mass.is_finite()) {
            return Err(SimError::Numerical {
                step,
                what: format!("sobolev_fisher: particle mass is {mass}; cannot fit the critic"),
            });
        }
        let alpha = self.cfg.alpha;
        let (wscale, tscale, ridge) = if self.cfg.conserve {
            (1.0 / mass, 1.0 / self.target_mass, self.cfg.ridge)
        } else {
            (1.0, 1.0, self.cfg.ridge * mass)
        };
        let mo = self.rff.moments(exec, x, w, wscale, alpha != 0.0, true);
        let t0 = Instant::now();
        let mean = mo.mean;
        let mut a = mo.sin_gram.unwrap_or_else(|| DMatrix::zeros(m, m));
        let cg = mo.cos_gram;
        let rff = &self.rff;
        let conserve = self.cfg.conserve;
        // A = G_sin ∘ (WᵀW) + α (G_cos − [conserve] μ μᵀ) + ridge I, column by column.
        exec.par.for_each(a.as_mut_slice().par_chunks_mut(m).enumerate(), |(l, col)| {
            let mut wtw = vec![0.0; m];
            for j in 0..d {
                let row = rff.w_row(j);
                let wl = row[l];
                for (acc, wk) in wtw.iter_mut().zip(row) {
                    *acc += wk * wl;
                }
            }
            for (v, t) in col.iter_mut().zip(&wtw) {
                *v *= t;
            }
            if let Some(cg) = &cg {
                let ccol = cg.column(l);
                for (k, v) in col.iter_mut().enumerate() {
                    let mut c = ccol[k];
                    if conserve {
                        c -= mean[k] * mean[l];
                    }
                    *v += alpha * c;
                }
            }
            col[l] += ridge;
        });
        let rhs: Vec<f64> = self.target_mean.iter().zip(&mean).map(|(t, q)| t * tscale - q).collect();
        let gram_secs = mo.gram_secs + t0.elapsed().as_secs_f64();
        if let Some(i) = a.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Numerical {
                step,
                what: format!("sobolev_fisher: non-finite entry ({}, {}) in the critic system", i % m, i / m),
            });
        }
        if let Some(k) = rhs.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Numerical {
                step,
                what: format!("sobolev_fisher: non-finite mean embedding (feature {k})"),
            });
        }
        Ok(CriticSystem { matrix: a, rhs, mean, ridge, features_secs: mo.features_secs, gram_secs })
    }

    /// Fit the critic to the particles `(x, w)`: assemble (the Gramians' blocks split over the
    /// ranks of `exec`) and solve for `β`.
    pub fn solve(&mut self, exec: &Exec, step: usize, x: &[f64], w: &[f64]) -> Result<(), SimError> {
        let sys = self.assemble(exec, step, x, w)?;
        let t0 = Instant::now();
        let mut l = sys.matrix;
        let m = l.nrows();
        if let Err((j, v)) = cholesky_lower(exec.par, &mut l) {
            return Err(SimError::Numerical {
                step,
                what: format!(
                    "sobolev_fisher: Cholesky of the {m}×{m} critic system D + αC + λI failed at \
                     pivot {j} (value {v:e}): not positive definite; increase the ridge \
                     (λ = {} → {:e} on the diagonal)",
                    self.cfg.ridge, sys.ridge
                ),
            });
        }
        let mut beta = sys.rhs.clone();
        cholesky_solve(&l, &mut beta);
        if let Some(k) = beta.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Numerical {
                step,
                what: format!("sobolev_fisher: non-finite critic coefficient β_{k}"),
            });
        }
        self.rhs_norm = dot(&sys.rhs, &sys.rhs).sqrt();
        self.beta = beta;
        self.solved_at = Some(step);
        let solve_secs = t0.elapsed().as_secs_f64();
        let t = self.timings.get_mut().unwrap_or_else(|e| e.into_inner());
        t.features += sys.features_secs;
        t.gram += sys.gram_secs;
        t.solve += solve_secs;
        t.solves += 1;
        Ok(())
    }

    /// Add `∇f(x)` into `u` and return `f(x)` (in the copy of the level `I`, [`crate::simd`]).
    #[inline(always)]
    fn point<I: Isa>(&self, x: &[f64], s: &mut EvalScratch, u: &mut [f64]) -> f64 {
        let rff = &self.rff;
        rff.phases(x, &mut s.theta);
        sincos_into_generic::<I>(&s.theta, &mut s.sin, &mut s.cos);
        let f = rff.scale * dot(&self.beta, &s.cos);
        for (v, (b, sn)) in s.v.iter_mut().zip(self.beta.iter().zip(&s.sin)) {
            *v = b * sn;
        }
        for (j, uj) in u.iter_mut().enumerate() {
            *uj -= rff.scale * dot(rff.w_row(j), &s.v);
        }
        f
    }
}

/// `f(x_i)` into `f` and `∇f(x_i)` added into `u` (particle-contiguous) for the particles
/// `i0 ..` of `x`.
#[inline(always)]
fn eval_chunk<I: Isa>(sf: &SobolevFisher, x: &[f64], i0: usize, u: &mut [f64], f: &mut [f64]) {
    let d = sf.rff.dim;
    let mut s = EvalScratch::new(sf.rff.features);
    for (r, (ui, fi)) in u.chunks_exact_mut(d).zip(f.iter_mut()).enumerate() {
        let i = i0 + r;
        *fi = sf.point::<I>(&x[i * d..(i + 1) * d], &mut s, ui);
    }
}

multiversion!(eval_chunk_at => eval_chunk, eval_chunk_512, eval_chunk_256(
    sf: &SobolevFisher, x: &[f64], i0: usize, u: &mut [f64], f: &mut [f64]
));

struct EvalScratch {
    theta: Vec<f64>,
    sin: Vec<f64>,
    cos: Vec<f64>,
    v: Vec<f64>,
}

impl EvalScratch {
    fn new(m: usize) -> Self {
        Self { theta: vec![0.0; m], sin: vec![0.0; m], cos: vec![0.0; m], v: vec![0.0; m] }
    }
}

impl Field for SobolevFisher {
    fn name(&self) -> String {
        "sobolev_fisher".into()
    }

    fn prepare(&mut self, ctx: &EvalCtx) -> Result<(), SimError> {
        if ctx.dim != self.rff.dim {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: particles have dimension {}, the critic {}",
                ctx.dim, self.rff.dim
            )));
        }
        self.timings.get_mut().unwrap_or_else(|e| e.into_inner()).prepares += 1;
        let due = match self.solved_at {
            None => true,
            Some(s) => ctx.step.checked_sub(s).is_none_or(|gap| gap >= self.cfg.resolve_every),
        };
        if due {
            self.solve(ctx.exec, ctx.step, ctx.x, ctx.w)?;
        }
        Ok(())
    }

    /// The critic in use, `(solved_at, ‖rhs‖, β)` (none before the first solve): with
    /// `resolve_every > 1` it was solved at an earlier step and must survive a checkpoint.
    fn save_state(&self) -> FieldState {
        match self.solved_at {
            None => FieldState::None,
            Some(s) => FieldState::SobolevFisher(SobolevFisherState {
                solved_at: s as u64,
                rhs_norm: self.rhs_norm,
                beta: self.beta.clone(),
            }),
        }
    }

    fn restore_state(&mut self, state: FieldState) -> Result<(), SimError> {
        let s = match state {
            FieldState::None => {
                self.solved_at = None;
                return Ok(());
            }
            FieldState::SobolevFisher(s) => s,
            other => return Err(foreign_state(&self.name(), &other)),
        };
        if s.beta.len() != self.rff.features {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: saved critic has {} values, expected {}",
                s.beta.len(),
                self.rff.features
            )));
        }
        let solved_at = usize::try_from(s.solved_at).map_err(|_| {
            SimError::Invalid(format!("sobolev_fisher: saved step {} too large", s.solved_at))
        })?;
        self.solved_at = Some(solved_at);
        self.rhs_norm = s.rhs_norm;
        self.beta = s.beta;
        Ok(())
    }

    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        let t0 = Instant::now();
        let (d, n) = (ctx.dim, ctx.n());
        if d != self.rff.dim {
            return Err(SimError::Invalid(format!(
                "sobolev_fisher: particles have dimension {d}, the critic {}",
                self.rff.dim
            )));
        }
        let alpha = self.cfg.alpha;
        let centred = self.cfg.conserve && alpha != 0.0;
        // u_i = ∇f(x_i) and f_i = f(x_i) for every particle; rows split over the ranks of the
        // simulation's context and all-gathered (each row is the same whatever the split).
        let mut u = vec![0.0; n * d];
        let mut fvals = vec![0.0; n];
        let lvl = crate::simd::level();
        let x = ctx.x;
        crate::dist::row_pass(ctx.exec, n, EVAL_CHUNK, &mut [(&mut u, d), (&mut fvals, 1)], |i0, o| {
            let [u, f] = o else { unreachable!("two outputs") };
            eval_chunk_at(lvl, self, x, i0, u, f)
        });
        let par = ctx.exec.par;
        par.for_each(velocity.par_chunks_mut(EVAL_CHUNK * d).zip(u.par_chunks(EVAL_CHUNK * d)), |(v, u)| {
            v.iter_mut().zip(u).for_each(|(a, b)| *a += b);
        });
        if centred {
            // Conserving: f̄ = Σ w f / M, partial sums over fixed chunks added in chunk order.
            let partial: Vec<f64> = par.collect(
                fvals
                    .par_chunks(SUM_CHUNK)
                    .zip(ctx.w.par_chunks(SUM_CHUNK))
                    .map(|(f, w)| f.iter().zip(w).map(|(a, b)| a * b).sum::<f64>()),
            );
            let fbar = partial.iter().sum::<f64>() / ctx.mass;
            par.for_each(growth.par_iter_mut().zip(&fvals), |(g, f)| *g += alpha * (f - fbar));
        } else if alpha != 0.0 {
            // Free mass: g += α f. (α = 0: velocity only, the growth slice is left untouched.)
            par.for_each(growth.par_iter_mut().zip(&fvals), |(g, f)| *g += alpha * f);
        }
        let mut t = self.timings.lock().unwrap_or_else(|e| e.into_inner());
        t.eval += t0.elapsed().as_secs_f64();
        t.evals += 1;
        Ok(())
    }

    fn diagnostics(&self) -> Vec<(String, crate::format::Diag)> {
        vec![
            ("critic_norm".into(), dot(&self.beta, &self.beta).sqrt().into()),
            ("critic_rff_mmd".into(), self.rhs_norm.into()),
        ]
    }
}

/// In-place lower Cholesky factorisation `A = L Lᵀ` of a symmetric positive definite matrix
/// (only the lower triangle is read; the strict upper triangle is left with garbage). Blocked,
/// right-looking: factor a diagonal block, solve the panel below it, subtract the panel's outer
/// product from the trailing matrix (one GEMM per column block; the panel rows and the column
/// blocks run with `par`, [`Par::for_each`]). Every entry is
/// updated in a fixed order, so the result does not depend on the thread count. On failure
/// returns the offending pivot index and value.
pub(crate) fn cholesky_lower(par: Par, a: &mut DMatrix<f64>) -> Result<(), (usize, f64)> {
    let m = a.nrows();
    assert_eq!(m, a.ncols(), "cholesky: square matrix expected");
    let mut k0 = 0;
    while k0 < m {
        let kb = CHOL_BLOCK.min(m - k0);
        let k1 = k0 + kb;
        // 1. Diagonal block (its trailing updates from earlier panels are already applied).
        for j in k0..k1 {
            for l in k0..j {
                let f = a[(j, l)];
                for i in j..k1 {
                    a[(i, j)] -= f * a[(i, l)];
                }
            }
            let p = a[(j, j)];
            if !(p > 0.0 && p.is_finite()) {
                return Err((j, p));
            }
            let s = p.sqrt();
            a[(j, j)] = s;
            for i in j + 1..k1 {
                a[(i, j)] /= s;
            }
        }
        if k1 == m {
            break;
        }
        // 2. Panel A21 ← A21 L11⁻ᵀ, row by row (row-major copy, rows in parallel).
        let rows = m - k1;
        let l11: Vec<f64> = (0..kb * kb).map(|q| a[(k0 + q / kb, k0 + q % kb)]).collect();
        let mut panel = vec![0.0; rows * kb];
        for c in 0..kb {
            let col = a.column(k0 + c);
            for r in 0..rows {
                panel[r * kb + c] = col[k1 + r];
            }
        }
        par.for_each(panel.par_chunks_mut(kb), |p| {
            for j in 0..kb {
                let lj = &l11[j * kb..j * kb + j];
                let mut v = p[j];
                for (ljl, pl) in lj.iter().zip(&p[..j]) {
                    v -= ljl * pl;
                }
                p[j] = v / l11[j * kb + j];
            }
        });
        for c in 0..kb {
            let mut col = a.column_mut(k0 + c);
            for r in 0..rows {
                col[k1 + r] = panel[r * kb + c];
            }
        }
        // 3. Trailing update A22 −= P Pᵀ (lower part), one GEMM per column block.
        let pm = DMatrixView::from_slice_with_strides(&panel, rows, kb, kb, 1);
        par.for_each(a.as_mut_slice()[k1 * m..].par_chunks_mut(CHOL_BLOCK * m).enumerate(), |(q, cols)| {
            let c0 = q * CHOL_BLOCK;
            let nc = cols.len() / m;
            let mut view = DMatrixViewMut::from_slice(cols, m, nc);
            let mut lower = view.rows_mut(k1 + c0, rows - c0);
            let pa = pm.rows(c0, rows - c0);
            let pb = pm.rows(c0, nc);
            lower.gemm(-1.0, &pa, &pb.transpose(), 1.0);
        });
        k0 = k1;
    }
    Ok(())
}

/// Solve `L Lᵀ x = b` in place (`l` from [`cholesky_lower`]; only its lower triangle is read).
pub(crate) fn cholesky_solve(l: &DMatrix<f64>, b: &mut [f64]) {
    let m = l.nrows();
    // Forward: L y = b, column-oriented.
    for j in 0..m {
        let col = l.column(j);
        let yj = b[j] / col[j];
        b[j] = yj;
        for i in j + 1..m {
            b[i] -= col[i] * yj;
        }
    }
    // Backward: Lᵀ x = y, x_i = (y_i − Σ_{l>i} L_li x_l) / L_ii.
    for i in (0..m).rev() {
        let col = l.column(i);
        let mut v = b[i];
        for r in i + 1..m {
            v -= col[r] * b[r];
        }
        b[i] = v / col[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(m: usize) -> DMatrix<f64> {
        let b = DMatrix::from_fn(m, m + 3, |i, j| (((i * 31 + j * 17) % 23) as f64 - 11.0) / 7.0);
        &b * b.transpose() + DMatrix::identity(m, m) * 0.5
    }

    #[test]
    fn blocked_cholesky_matches_nalgebra() {
        // m = 300 crosses two block boundaries (128, 256). Entries of L are O(10); relative
        // differences from the different operation order are ~1e-14.
        for m in [1, 7, 128, 300] {
            let a = spd(m);
            let mut l = a.clone();
            cholesky_lower(Par::Rayon, &mut l).unwrap();
            let reference = nalgebra::Cholesky::new(a.clone()).unwrap().l();
            let lt = l.lower_triangle();
            assert!((&lt - &reference).amax() < 1e-11 * reference.amax(), "m = {m}");
            let b: Vec<f64> = (0..m).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut x = b.clone();
            cholesky_solve(&l, &mut x);
            let r = &a * nalgebra::DVector::from_column_slice(&x) - nalgebra::DVector::from_column_slice(&b);
            assert!(r.amax() < 1e-10, "m = {m}: residual {}", r.amax());
        }
    }

    #[test]
    fn cholesky_reports_the_failing_pivot() {
        let mut a = DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(cholesky_lower(Par::Rayon, &mut a).unwrap_err().0, 1);
    }

    /// `Exec::seq()` on a rayon pool of one thread and `Par::Rayon` on a pool of two give the
    /// same bits: `Rff::moments` (mean and both Gramians, three blocks of rows, two tiles per
    /// side) and two simulation steps of the critic (assembly, blocked Cholesky, evaluation with
    /// the centred growth, advection with noise and a displacement cap, then the weights reaction
    /// or free birth–death branching).
    #[test]
    fn seq_and_rayon_give_the_same_bits() {
        use crate::particles::Particles;
        use crate::reaction::{Reaction, ReactionKind};
        use crate::stepper::{Simulation, TimeCfg};
        let pool = |k| rayon::ThreadPoolBuilder::new().num_threads(k).build().unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Scattered points in [−0.6, 0.6)² (a fixed hash, no generator).
        let pts = |n: usize, s: f64| -> Vec<f64> {
            (0..2 * n).map(|k| (((k as f64 * 12.9898 + s).sin() * 43758.5453).fract()) * 0.6).collect()
        };
        let (d, n) = (2, 4500);
        let source = Cloud::uniform(d, pts(n, 0.1), 1.0).unwrap();
        let target = Cloud::uniform(d, pts(3000, 0.7).iter().map(|v| v + 0.2).collect(), 1.5).unwrap();

        let rff = Rff::new(d, 300, 0.3, 11);
        let mo = |e: Exec| rff.moments(&e, &source.x, &source.w, 0.5, true, true);
        let seq = pool(1).install(|| mo(Exec::seq()));
        let par = pool(2).install(|| mo(Exec::default()));
        assert!(seq.mean.iter().any(|v| *v != 0.0));
        assert_eq!(bits(&seq.mean), bits(&par.mean));
        assert_eq!(bits(seq.cos_gram.unwrap().as_slice()), bits(par.cos_gram.unwrap().as_slice()));
        assert_eq!(bits(seq.sin_gram.unwrap().as_slice()), bits(par.sin_gram.unwrap().as_slice()));

        for (conserve, kind) in [(true, ReactionKind::Weights), (false, ReactionKind::BirthDeath)] {
            let run = |exec: Exec| {
                let cfg = SobolevFisherCfg {
                    features: 300,
                    bandwidth: 0.3,
                    alpha: 1.0,
                    ridge: 1e-3,
                    conserve,
                    resolve_every: 1,
                };
                let field = SobolevFisher::new(cfg, d, &target, 7).unwrap();
                let reaction = Reaction { kind, conserve, ..Reaction::default() };
                let time = TimeCfg { dt: 0.05, steps: 2, noise: 0.01, max_displacement: Some(0.004) };
                let particles = Particles::from_cloud(&source);
                let mut sim = Simulation::new(particles, target.clone(), Box::new(field), reaction, time, 3);
                sim.exec = exec;
                for _ in 0..2 {
                    sim.step().unwrap();
                }
                (sim.particles, sim.guards.displacement_capped, sim.guards.births)
            };
            let (seq, seq_capped, seq_births) = pool(1).install(|| run(Exec::seq()));
            let (par, par_capped, par_births) = pool(2).install(|| run(Exec::default()));
            // The steps did something: particles moved, some displacements were capped, weights
            // changed (conserving) or particles were born (free mass).
            assert!(seq.x.iter().zip(&source.x).any(|(a, b)| a != b));
            assert!(seq_capped > 0, "no capped displacement");
            if conserve {
                assert!(seq.logw.iter().any(|l| *l != seq.logw[0]), "weights unchanged");
            } else {
                assert!(seq_births > 0, "no birth");
            }
            assert_eq!((seq_capped, seq_births), (par_capped, par_births), "conserve {conserve}");
            assert_eq!(bits(&seq.x), bits(&par.x), "positions, conserve {conserve}");
            assert_eq!(bits(&seq.logw), bits(&par.logw), "log-weights, conserve {conserve}");
            assert_eq!((&seq.id, &seq.parent), (&par.id, &par.parent), "ids, conserve {conserve}");
        }
    }

    #[test]
    fn cholesky_is_thread_count_independent() {
        let a = spd(333);
        let mut l2 = a.clone();
        cholesky_lower(Par::Rayon, &mut l2).unwrap();
        let mut l1 = a.clone();
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| cholesky_lower(Par::Rayon, &mut l1).unwrap());
        let mut l0 = a.clone();
        cholesky_lower(Par::Seq, &mut l0).unwrap();
        assert_eq!(l0, l2);
        assert_eq!(l1, l2);
    }
}
