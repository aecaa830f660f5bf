//! UOT flow matching (SPEC §6): one velocity `u(x, t)` and growth `g(x, t)`, linear in space–time
//! features ([`Features`]), regressed in closed form on pairs drawn from the unbalanced couplings
//! of consecutive snapshots.
//!
//! Per interval `[t_k, t_{k+1}]`, `Δ = t_{k+1} − t_k`, with the snapshot weights `a_i` (a data cell
//! has mass 1, so `M_k = Σ a_i` is the cell count):
//! 1. the unbalanced coupling (SPEC §3, the existing solver [`crate::ot::uot_clouds`]) of
//!    `α = Σ a_i δ_{x_i}` and `β = Σ b_j δ_{y_j}` (both divided by `M_k`), squared Euclidean cost
//!    `C_ij = |x_i − y_j|²`, `ε = eps_rel · C̄`, KL penalties `τ = tau_rel · C̄` on both sides
//!    (`C̄` the mean cost under the normalised product measure; `tau_rel = ∞` is balanced, with
//!    `β` rescaled to the mass of `α`);
//! 2. the rescaled marginals `ã = π1`, `b̃ = πᵀ1` (Prop. 3.1);
//! 3. `n` pairs `(i, j) ∝ π_ij` by systematic sampling, streamed: the rows by one systematic
//!    draw over `ã`, then inside each drawn row the columns by a systematic draw over that row of
//!    `π` (computed on the fly from the potentials; memory `O(N + M)`, never the N×M plan);
//! 4. `s ~ U[0, 1]`, the point `x_s = (1 − s) x_i + s y_j (+ σ √(s(1 − s) Δ) ξ`, Brownian bridge)
//!    at `t = t_k + sΔ`, the velocity target `(y_j − x_i)/Δ` and the growth target
//!    `g_i = log( (ã_i / a_i) · M_{k+1} / Σã ) / Δ` (`Σã` in cells), so that
//!    `Σ_i a_i e^{g_i Δ} = M_{k+1}`. A target with `g_i Δ < −max_log_ratio` (a cell the coupling
//!    all but destroys) is raised to that bound and counted in a warning.
//!
//! The fit ([`fit_flow`]) is one ridge regression with `d + 1` right-hand sides,
//! `(ΦᵀΦ/n + ρ I) Θ = ΦᵀY/n`, `Φ` the n×p feature matrix at the sampled `(x_s, t)`, `Y = [v | g]`,
//! solved by one Cholesky factorisation. An ill-conditioned system (Cholesky failure, or a
//! condition number estimated from the factor's diagonal above [`MAX_CONDITION`]) is refused
//! with the number and the remedy (a larger ridge).
//!
//! The same targets fit a potential `λ` jointly ([`fit_potential`]): rows `∇λ(x_s) ≈ v`
//! (d per sample) and `λ(x_s)/α ≈ ψ'(g_s)` (for ψ₁: `≈ g_s`), `(AᵀA/n + ρI)θ = AᵀY/n` — the
//! starting point of Var-RUOT.
//!
//! Standardisation (centre, isotropic scale, time centre and scale) comes from the training data
//! only ([`fit`]). Every random draw comes from `rng::stream(seed, Analysis, ·, ·)` keyed by
//! interval and row, and every sum over samples is reduced in a fixed order, so the same seed
//! gives the same bits for any thread count.

use super::features::{FeatureSpec, Features, TimeBasis};
use super::model::{FlowModel, Model, Potential};
use super::psi::Psi;
use crate::dist::Exec;
use crate::error::SimError;
use crate::infer::wot::{mean_sq_cost, systematic};
use crate::infer::Series;
use crate::ot::{uot_clouds, Cost, EpsScaling, SinkhornOptions};
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use crate::stepper::Warning;
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Largest accepted condition number of a ridge system (estimated as the squared ratio of the
/// largest to the smallest diagonal entry of its Cholesky factor).
pub const MAX_CONDITION: f64 = 1e13;

/// Samples per block of the Gram accumulation (a fixed order, whatever the thread count).
const BLOCK: usize = 256;

/// Blocks summed per group (groups run in parallel and are added in order).
const GROUP: usize = 8;

/// How time enters the features of a fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum TimeChoice {
    /// Space–time Fourier phases (SPEC §6; no extrapolation past the last snapshot).
    Cosine,
    /// Hat functions with a knot at every training time, extended linearly.
    Hat,
    /// Space features × `{1, t}` (two knots: the first and last training times).
    Linear,
    /// Space features only: one hat knot at the first training time, an autonomous
    /// (time-independent) field.
    Constant,
}

/// The settings of a UOT flow-matching fit (module doc), validated by [`UotFmParams::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UotFmParams {
    /// `ε / C̄`.
    pub eps_rel: f64,
    /// `τ / C̄` on both marginals (`f64::INFINITY`: balanced; written `"inf"` in JSON).
    #[serde(with = "inf_as_text")]
    pub tau_rel: f64,
    /// Pairs drawn per interval.
    pub pairs: usize,
    /// Brownian-bridge `σ` of the interpolants (0: straight). Not the model's noise: the
    /// bridge's spread is already in the regression data, so a UOT-FM model is simulated as an
    /// ODE (σ = 0; simulating it with noise σ added the spread twice: W1 0.32 against 0.21
    /// without on tests/learned_recovery.rs's problem, measured at stop 21).
    pub sigma: f64,
    /// Ridge `ρ` (relative to the per-sample Gram `ΦᵀΦ/n`).
    pub ridge: f64,
    /// Random Fourier features `m`.
    pub features: usize,
    /// Space length scale `ℓ_x` (standardised units).
    pub ell_x: f64,
    /// Time length scale `ℓ_t` (standardised units; cosine basis).
    pub ell_t: f64,
    /// Polynomial degree of the space terms (0, 1, 2).
    pub poly: u8,
    /// The time basis.
    pub time: TimeChoice,
    /// Bound on `−g_i Δ` of a growth target.
    pub max_log_ratio: f64,
    /// Sinkhorn iteration cap.
    pub max_iter: usize,
    /// Sinkhorn tolerance (relative L1 marginal error).
    pub tol: f64,
    /// Seed of the features, the pairs and the interpolants.
    pub seed: u64,
}

impl Default for UotFmParams {
    /// Fixed a priori (not tuned on any scored snapshot): SPEC §6's prototype sizes (600
    /// space–time features, cosine basis), `ℓ_x = 0.7` and `ℓ_t = 1.5` standardised units as in
    /// its Var-RUOT prototype, WOT's `ε = 0.05 C̄` and SPEC §5's `τ = 10 C̄`, polynomial degree 1
    /// (an OU drift is affine), ridge `1e-6`. A leave-one-out check on three_gene_2d's training
    /// times (time basis × ridge ∈ {cosine, hat, linear} × {1e-6, 1e-4, 1e-3}, mean held-out W1)
    /// ranked these defaults first (0.251; the next 0.266).
    fn default() -> Self {
        Self {
            eps_rel: 0.05,
            tau_rel: 10.0,
            pairs: 4000,
            sigma: 0.0,
            ridge: 1e-6,
            features: 600,
            ell_x: 0.7,
            ell_t: 1.5,
            poly: 1,
            time: TimeChoice::Cosine,
            max_log_ratio: 10.0,
            max_iter: 5000,
            tol: 1e-6,
            seed: 0,
        }
    }
}

impl UotFmParams {
    /// Check every setting; the error names the setting and the value.
    pub fn check(&self) -> Result<(), SimError> {
        let bad = |k: &str, why: String| Err(SimError::Invalid(format!("uot_fm: {k} {why}")));
        let pos = |k: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                bad(k, format!("must be finite and > 0, got {v}"))
            }
        };
        pos("eps_rel", self.eps_rel)?;
        if self.tau_rel.is_nan() || self.tau_rel <= 0.0 {
            return bad("tau_rel", format!("must be > 0 (inf: balanced), got {}", self.tau_rel));
        }
        if self.pairs < 2 {
            return bad("pairs", format!("must be ≥ 2, got {}", self.pairs));
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.0) {
            return bad("sigma", format!("must be finite and ≥ 0, got {}", self.sigma));
        }
        pos("ridge", self.ridge)?;
        pos("ell_x", self.ell_x)?;
        pos("ell_t", self.ell_t)?;
        pos("max_log_ratio", self.max_log_ratio)?;
        if self.poly > 2 {
            return bad("poly", format!("must be 0, 1 or 2, got {}", self.poly));
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be ≥ 1".into());
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad("tol", format!("must be finite and > 0, got {}", self.tol));
        }
        Ok(())
    }
}

/// What the coupling of one interval did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CouplingReport {
    /// Start of the interval.
    pub t0: f64,
    /// End of the interval.
    pub t1: f64,
    /// Source cells.
    pub n: usize,
    /// Target cells.
    pub m: usize,
    /// `ε` (cost units).
    pub eps: f64,
    /// `τ` (cost units; infinite when balanced).
    pub tau: f64,
    /// Sinkhorn iterations.
    pub iterations: usize,
    /// The solve met its tolerance.
    pub converged: bool,
    /// `Σ π / Σ a` (source units).
    pub transported_fraction: f64,
    /// Relative L1 marginal errors of the solve.
    pub marginal_error: [f64; 2],
    /// Growth targets raised to `−max_log_ratio / Δ`.
    pub growth_clipped: usize,
    /// Range of the growth targets `g_i` over the source cells.
    pub growth_range: [f64; 2],
}

/// Regression targets: `n` samples of position `x` (n·d), time `t`, velocity `v` (n·d) and
/// growth `g` (n), with the couplings they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Dimension `d`.
    pub dim: usize,
    /// Sample positions `x_s` (n·d, particle-contiguous).
    pub x: Vec<f64>,
    /// Sample times.
    pub t: Vec<f64>,
    /// Velocity targets `(y_j − x_i)/Δ` (n·d).
    pub v: Vec<f64>,
    /// Growth targets `g_i`.
    pub g: Vec<f64>,
    /// One report per interval.
    pub couplings: Vec<CouplingReport>,
    /// Clipped growth targets and unconverged solves.
    pub warnings: Vec<Warning>,
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
}

/// The targets of all consecutive pairs of snapshots of `series` (module doc).
pub fn targets(series: &Series, params: &UotFmParams, exec: &Exec) -> Result<Targets, SimError> {
    params.check()?;
    if series.clouds.len() < 2 {
        return Err(SimError::Invalid("uot_fm: needs at least two snapshots".into()));
    }
    let d = series.clouds[0].dim;
    let mut out = Targets {
        dim: d,
        x: Vec::new(),
        t: Vec::new(),
        v: Vec::new(),
        g: Vec::new(),
        couplings: Vec::new(),
        warnings: Vec::new(),
    };
    for k in 0..series.clouds.len() - 1 {
        let (t0, t1) = (series.times[k], series.times[k + 1]);
        interval(&series.clouds[k], &series.clouds[k + 1], t0, t1, k as u64, params, exec, &mut out)?;
    }
    Ok(out)
}

/// Append the samples of one interval to `out`.
#[allow(clippy::too_many_arguments)]
fn interval(
    a: &Cloud,
    b: &Cloud,
    t0: f64,
    t1: f64,
    k: u64,
    p: &UotFmParams,
    exec: &Exec,
    out: &mut Targets,
) -> Result<(), SimError> {
    let d = a.dim;
    let delta = t1 - t0;
    if b.dim != d {
        return Err(SimError::Invalid(format!("uot_fm: snapshots of dimensions {d} and {}", b.dim)));
    }
    if delta.is_nan() || delta <= 0.0 {
        return Err(SimError::Invalid(format!("uot_fm: times must increase ({t0} then {t1})")));
    }
    let (ma, mb) = (a.mass(), b.mass());
    if !(ma > 0.0 && mb > 0.0) {
        return Err(SimError::Invalid(format!("uot_fm: a snapshot at t = {t0} or {t1} has no mass")));
    }
    let balanced = p.tau_rel.is_infinite();
    let sa = Cloud::new_unchecked(d, a.x.clone(), a.w.iter().map(|w| w / ma).collect());
    let bscale = if balanced { 1.0 / mb } else { 1.0 / ma };
    let sb = Cloud::new_unchecked(d, b.x.clone(), b.w.iter().map(|w| w * bscale).collect());
    let cbar = mean_sq_cost(&sa, &sb).max(f64::MIN_POSITIVE);
    let (eps, tau) = (p.eps_rel * cbar, p.tau_rel * cbar);
    let mut opts = SinkhornOptions::kl(eps, tau, tau, Cost::SqEuclidean);
    opts.max_iter = p.max_iter;
    opts.tol = p.tol;
    opts.eps_scaling = Some(EpsScaling::default());
    opts.exec = exec.clone();
    let sol = uot_clouds(&sa, &sb, &opts)?;
    let rep = &sol.report;
    // Growth targets: g_i = log((ã_i/a_i) · M_{k+1}/Σã)/Δ, Σã in cells (scaled units × M_k).
    let row_total: f64 = sol.row_mass.iter().sum();
    if row_total.is_nan() || row_total <= 0.0 {
        return Err(SimError::Numerical {
            step: k as usize,
            what: format!("uot_fm: the coupling of t = {t0} → {t1} transports no mass"),
        });
    }
    let log_scale = (mb / ma).ln() - row_total.ln();
    let floor = -p.max_log_ratio;
    let mut clipped = 0usize;
    let growth: Vec<f64> = sol
        .row_mass
        .iter()
        .zip(&sa.w)
        .map(|(r, w)| {
            let l = if *r > 0.0 { (r / w).ln() + log_scale } else { f64::NEG_INFINITY };
            if l < floor {
                clipped += 1;
                floor / delta
            } else {
                l / delta
            }
        })
        .collect();
    if let Some(i) = growth.iter().position(|g| !g.is_finite()) {
        return Err(SimError::NonFinite {
            step: k as usize,
            quantity: format!("uot_fm: growth target of t = {t0} → {t1}"),
            particle: i,
            value: growth[i],
        });
    }
    // Rows ∝ ã (systematic), then columns ∝ π_ij inside each drawn row (systematic, streamed).
    let u0: f64 = rng::stream(p.seed, Purpose::Analysis, 0x55F0_0000 + k, 0).random();
    let rows = systematic(&sol.row_mass, p.pairs, u0);
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (row, count)
    for &i in &rows {
        match groups.last_mut() {
            Some((r, c)) if *r == i => *c += 1,
            _ => groups.push((i, 1)),
        }
    }
    let coupling = sol.coupling(&sa, &sb)?;
    let sigma = p.sigma;
    let samples: Vec<Vec<Sample>> = groups
        .par_iter()
        .map(|&(i, count)| {
            let mut r = rng::stream(p.seed, Purpose::Analysis, 0x55F1_0000 + k, i as u64);
            let row: Vec<f64> = (0..sb.len()).map(|j| coupling.entry(i, j)).collect();
            let cols = systematic(&row, count, r.random());
            let xi = a.point(i);
            cols.into_iter()
                .map(|j| {
                    let yj = b.point(j);
                    let s: f64 = r.random();
                    let amp = sigma * (s * (1.0 - s) * delta).sqrt();
                    let x: Vec<f64> = xi
                        .iter()
                        .zip(yj)
                        .map(|(x0, y1)| {
                            let z: f64 = if sigma > 0.0 { StandardNormal.sample(&mut r) } else { 0.0 };
                            (1.0 - s) * x0 + s * y1 + amp * z
                        })
                        .collect();
                    let v = xi.iter().zip(yj).map(|(x0, y1)| (y1 - x0) / delta).collect();
                    (x, t0 + s * delta, v)
                })
                .collect()
        })
        .collect();
    for ((i, _), group) in groups.iter().zip(samples) {
        for (x, t, v) in group {
            out.x.extend(x);
            out.t.push(t);
            out.v.extend(v);
            out.g.push(growth[*i]);
        }
    }
    let (gmin, gmax) =
        growth.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
    if clipped > 0 {
        out.warnings.push(Warning::new(
            "growth_target_clipped",
            clipped as u64,
            None,
            format!(
                "uot_fm: t = {t0} → {t1}: {clipped} growth targets below log-ratio −{} (cells the coupling all but destroys) were raised to it",
                p.max_log_ratio
            ),
        ));
    }
    if !rep.converged {
        out.warnings.push(Warning::new(
            "not_converged",
            1,
            None,
            format!("uot_fm: t = {t0} → {t1}: the Sinkhorn solve did not reach its tolerance {}", p.tol),
        ));
    }
    out.couplings.push(CouplingReport {
        t0,
        t1,
        n: a.len(),
        m: b.len(),
        eps,
        tau,
        iterations: rep.iterations,
        converged: rep.converged,
        transported_fraction: rep.transported_mass / rep.mass_a,
        marginal_error: [rep.marginal_error_a, rep.marginal_error_b],
        growth_clipped: clipped,
        growth_range: [gmin, gmax],
    });
    Ok(())
}

/// A number that may be `+∞`, written as the text `"inf"` in JSON (which has no infinity).
mod inf_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if *v == f64::INFINITY {
            s.serialize_str("inf")
        } else {
            s.serialize_f64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum V {
            N(f64),
            S(String),
        }
        match V::deserialize(d)? {
            V::N(x) => Ok(x),
            V::S(s) if s == "inf" => Ok(f64::INFINITY),
            V::S(s) => Err(serde::de::Error::custom(format!("expected a number or \"inf\", got \"{s}\""))),
        }
    }
}

/// One drawn sample: position, time, velocity target.
type Sample = (Vec<f64>, f64, Vec<f64>);

/// How well a ridge regression fits its targets, per right-hand side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RidgeReport {
    /// Names of the right-hand sides (`u1..ud`, `g`).
    pub targets: Vec<String>,
    /// Root-mean-square residual of each.
    pub rms_residual: Vec<f64>,
    /// `1 − SS_res/SS_tot` of each.
    pub r2: Vec<f64>,
    /// Estimated condition number of the regularised system.
    pub condition: f64,
    /// Samples and unknowns.
    pub samples: usize,
    /// Unknowns `p`.
    pub unknowns: usize,
    /// Seconds spent.
    pub seconds: f64,
}

/// The design rows of one sample: `rows × p` into `a`, the targets `rows × q` into `y`.
type RowFn<'a> = dyn Fn(usize, &mut super::features::Point, &mut [f64], &mut [f64], &mut [f64]) + Sync + 'a;

/// Solve `(AᵀA/n + ρI)Θ = AᵀY/n` where sample `s` contributes `r` rows built by `rows`; returns
/// `Θ` (p×q) and the report (residuals from a second pass).
fn ridge(
    features: &Features,
    n: usize,
    r: usize,
    q: usize,
    ridge: f64,
    names: Vec<String>,
    rows: &RowFn,
) -> Result<(DMatrix<f64>, RidgeReport), SimError> {
    let start = Instant::now();
    let p = features.len();
    if n == 0 {
        return Err(SimError::Invalid("ridge: no samples".into()));
    }
    let nblocks = n.div_ceil(BLOCK);
    let ngroups = nblocks.div_ceil(GROUP);
    let block = |bi: usize| -> (DMatrix<f64>, DMatrix<f64>) {
        let (lo, hi) = (bi * BLOCK, ((bi + 1) * BLOCK).min(n));
        let m = (hi - lo) * r;
        // Row-major scratch, copied into column-major nalgebra matrices.
        let mut a = vec![0.0; m * p];
        let mut y = vec![0.0; m * q];
        let mut pt = features.point();
        let mut scratch = vec![0.0; p * features.dim().max(1)];
        for s in lo..hi {
            let o = (s - lo) * r;
            rows(s, &mut pt, &mut a[o * p..(o + r) * p], &mut y[o * q..(o + r) * q], &mut scratch);
        }
        (DMatrix::from_row_slice(m, p, &a), DMatrix::from_row_slice(m, q, &y))
    };
    let partial: Vec<(DMatrix<f64>, DMatrix<f64>)> = (0..ngroups)
        .into_par_iter()
        .map(|gi| {
            let mut g = DMatrix::<f64>::zeros(p, p);
            let mut h = DMatrix::<f64>::zeros(p, q);
            for bi in gi * GROUP..((gi + 1) * GROUP).min(nblocks) {
                let (a, y) = block(bi);
                g += a.tr_mul(&a);
                h += a.tr_mul(&y);
            }
            (g, h)
        })
        .collect();
    let mut gram = DMatrix::<f64>::zeros(p, p);
    let mut rhs = DMatrix::<f64>::zeros(p, q);
    for (g, h) in partial {
        gram += g;
        rhs += h;
    }
    let inv_n = 1.0 / n as f64;
    gram *= inv_n;
    rhs *= inv_n;
    for i in 0..p {
        gram[(i, i)] += ridge;
    }
    if let Some((i, _)) = gram.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(SimError::NonFinite {
            step: 0,
            quantity: "ridge: Gram matrix entry (a non-finite target or feature)".into(),
            particle: i,
            value: gram[i],
        });
    }
    let chol = nalgebra::linalg::Cholesky::new(gram).ok_or_else(|| SimError::Numerical {
        step: 0,
        what: format!(
            "ridge: the {p}×{p} system is not positive definite (Cholesky failed); increase the ridge (now {ridge:e})"
        ),
    })?;
    let l = chol.l_dirty();
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for i in 0..p {
        lo = lo.min(l[(i, i)].abs());
        hi = hi.max(l[(i, i)].abs());
    }
    let condition = (hi / lo).powi(2);
    if condition.is_nan() || condition > MAX_CONDITION {
        return Err(SimError::Numerical {
            step: 0,
            what: format!(
                "ridge: the {p}×{p} system is ill-conditioned (condition ≈ {condition:.3e} > {MAX_CONDITION:.0e}); increase the ridge (now {ridge:e}) or use fewer features"
            ),
        });
    }
    let theta = chol.solve(&rhs);
    // Residuals, in the same fixed block order.
    let res: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..nblocks)
        .into_par_iter()
        .map(|bi| {
            let (a, y) = block(bi);
            let e = &a * &theta - &y;
            let ss: Vec<f64> = (0..q).map(|c| e.column(c).norm_squared()).collect();
            let sy: Vec<f64> = (0..q).map(|c| y.column(c).sum()).collect();
            let syy: Vec<f64> = (0..q).map(|c| y.column(c).norm_squared()).collect();
            (ss, sy, syy)
        })
        .collect();
    let mut ss = vec![0.0; q];
    let mut sy = vec![0.0; q];
    let mut syy = vec![0.0; q];
    for (a, b, c) in res {
        for k in 0..q {
            ss[k] += a[k];
            sy[k] += b[k];
            syy[k] += c[k];
        }
    }
    // Each right-hand side has n·r/q... rows: velocity columns and growth may live in different
    // rows (the potential's design); count the rows a column is non-trivially used in as all.
    let rows_total = (n * r) as f64;
    let rms_residual: Vec<f64> = ss.iter().map(|s| (s / rows_total).sqrt()).collect();
    let r2 = (0..q)
        .map(|k| {
            let tot = syy[k] - sy[k] * sy[k] / rows_total;
            if tot > 0.0 {
                1.0 - ss[k] / tot
            } else {
                f64::NAN
            }
        })
        .collect();
    let report = RidgeReport {
        targets: names,
        rms_residual,
        r2,
        condition,
        samples: n,
        unknowns: p,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((theta, report))
}

fn check_targets(t: &Targets, features: &Features) -> Result<(), SimError> {
    let (n, d) = (t.len(), t.dim);
    if d != features.dim() {
        return Err(SimError::Invalid(format!(
            "uot_fm: targets are {d}-dimensional, the features {}-dimensional",
            features.dim()
        )));
    }
    if t.x.len() != n * d || t.v.len() != n * d || t.g.len() != n {
        return Err(SimError::Invalid("uot_fm: targets of inconsistent lengths".into()));
    }
    Ok(())
}

/// Fit the velocity and growth of a flow model by ridge regression (module doc).
pub fn fit_flow(
    t: &Targets,
    features: Features,
    ridge_rho: f64,
) -> Result<(FlowModel, RidgeReport), SimError> {
    check_targets(t, &features)?;
    let (d, p) = (t.dim, features.len());
    let mut names: Vec<String> = (1..=d).map(|k| format!("u{k}")).collect();
    names.push("g".into());
    let f = &features;
    let rows =
        move |s: usize, pt: &mut super::features::Point, a: &mut [f64], y: &mut [f64], _: &mut [f64]| {
            f.load(&t.x[s * d..(s + 1) * d], t.t[s], pt);
            f.values(pt, a);
            y[..d].copy_from_slice(&t.v[s * d..(s + 1) * d]);
            y[d] = t.g[s];
        };
    let (theta, report) = ridge(f, t.len(), 1, d + 1, ridge_rho, names, &rows)?;
    let mut velocity = vec![0.0; p * d];
    let mut growth = vec![0.0; p];
    for i in 0..p {
        for k in 0..d {
            velocity[i * d + k] = theta[(i, k)];
        }
        growth[i] = theta[(i, d)];
    }
    Ok((FlowModel { features, velocity, growth }, report))
}

/// Fit a potential jointly to the same targets (module doc): `∇λ ≈ v`, `λ/α ≈ ψ'(g)` (for ψ₁,
/// `λ/α ≈ g`). For ψ₂ the growth targets are mapped through `ψ₂'` (the extended one,
/// [`Psi::dpsi`]), so that the start's growth `g(λ) = (ψ')⁻¹(λ/α)` matches them where the ridge
/// fits: the ψ₁ potential read through ψ₂'s growth map is far off (small `λ > 0` means a huge
/// growth under ψ₂).
pub fn fit_potential(
    t: &Targets,
    features: Features,
    ridge_rho: f64,
    alpha: f64,
    psi: Psi,
) -> Result<(Potential, RidgeReport), SimError> {
    psi.check().map_err(SimError::Invalid)?;
    check_targets(t, &features)?;
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(SimError::Invalid(format!("fit_potential: alpha must be finite and > 0, got {alpha}")));
    }
    let (d, p) = (t.dim, features.len());
    let f = &features;
    let rows =
        move |s: usize, pt: &mut super::features::Point, a: &mut [f64], y: &mut [f64], gr: &mut [f64]| {
            f.load(&t.x[s * d..(s + 1) * d], t.t[s], pt);
            f.gradients(pt, gr);
            for k in 0..d {
                for i in 0..p {
                    a[k * p + i] = gr[i * d + k];
                }
                y[k] = t.v[s * d + k];
            }
            f.values(pt, &mut a[d * p..(d + 1) * p]);
            a[d * p..(d + 1) * p].iter_mut().for_each(|v| *v /= alpha);
            y[d] = psi.dpsi(t.g[s]);
        };
    let (theta, report) =
        ridge(f, t.len(), d + 1, 1, ridge_rho, vec!["grad_lambda|lambda/alpha".into()], &rows)?;
    let theta = theta.column(0).iter().copied().collect();
    Ok((Potential { features, theta, psi, alpha }, report))
}

/// What a [`fit`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitInfo {
    /// The couplings, one per interval.
    pub couplings: Vec<CouplingReport>,
    /// The regression.
    pub ridge: RidgeReport,
    /// Samples drawn.
    pub samples: usize,
    /// Seconds for the targets (couplings and pairs).
    pub seconds_targets: f64,
    /// Seconds in all.
    pub seconds: f64,
    /// Everything that changed or limited the result.
    pub warnings: Vec<Warning>,
}

/// The feature map of a fit: centre = weighted mean of all training cells, scale = overall
/// standard deviation (root of the mean per-coordinate variance), time centre and scale = mean
/// and standard deviation of the training times; knots at the training times (hat) or at the
/// first and last (linear).
pub fn feature_map(series: &Series, p: &UotFmParams) -> Result<Features, SimError> {
    let d = series.clouds.first().map(|c| c.dim).unwrap_or(0);
    let (mut m, mut sum, mut sq) = (0.0, vec![0.0; d], vec![0.0; d]);
    for c in &series.clouds {
        for (x, w) in c.x.chunks_exact(d).zip(&c.w) {
            m += w;
            for k in 0..d {
                sum[k] += w * x[k];
                sq[k] += w * x[k] * x[k];
            }
        }
    }
    if m.is_nan() || m <= 0.0 {
        return Err(SimError::Invalid("uot_fm: the training data have no mass".into()));
    }
    let centre: Vec<f64> = sum.iter().map(|s| s / m).collect();
    let var = (0..d).map(|k| (sq[k] / m - centre[k] * centre[k]).max(0.0)).sum::<f64>() / d as f64;
    let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
    let nt = series.times.len() as f64;
    let t_centre = series.times.iter().sum::<f64>() / nt;
    let tv = series.times.iter().map(|t| (t - t_centre).powi(2)).sum::<f64>() / nt;
    let t_scale = if tv > 0.0 { tv.sqrt() } else { 1.0 };
    let time = match p.time {
        TimeChoice::Cosine => TimeBasis::Cosine,
        TimeChoice::Hat => TimeBasis::Hat { knots: series.times.clone() },
        TimeChoice::Linear => {
            TimeBasis::Hat { knots: vec![series.times[0], *series.times.last().unwrap_or(&series.times[0])] }
        }
        TimeChoice::Constant => TimeBasis::Hat { knots: vec![series.times[0]] },
    };
    Features::new(FeatureSpec {
        dim: d,
        random: p.features,
        ell_x: p.ell_x,
        ell_t: p.ell_t,
        poly: p.poly,
        time,
        seed: p.seed,
        centre,
        scale,
        t_centre,
        t_scale,
    })
    .map_err(|e| SimError::Invalid(format!("uot_fm: {e}")))
}

/// Fit a UOT flow-matching model to all snapshots of `series` (module doc).
pub fn fit(series: &Series, params: &UotFmParams, exec: &Exec) -> Result<(Model, FitInfo), SimError> {
    let start = Instant::now();
    params.check()?;
    let features = feature_map(series, params)?;
    let t = targets(series, params, exec)?;
    let seconds_targets = start.elapsed().as_secs_f64();
    let (flow, ridge) = fit_flow(&t, features, params.ridge)?;
    let info = FitInfo {
        couplings: t.couplings,
        ridge,
        samples: t.t.len(),
        seconds_targets,
        seconds: start.elapsed().as_secs_f64(),
        warnings: t.warnings,
    };
    Ok((Model::UotFm(flow), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Balanced settings survive a JSON round trip (`τ = ∞` is written `"inf"`).
    #[test]
    fn params_read_back_with_an_infinite_tau() {
        for tau in [f64::INFINITY, 10.0] {
            let p = UotFmParams { tau_rel: tau, ..UotFmParams::default() };
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(text.contains("\"inf\""), tau.is_infinite());
            let back: UotFmParams = serde_json::from_str(&text).unwrap();
            assert_eq!(back, p);
        }
    }
}
