//! Ground-truth recovery (issue 15, SPEC §6): snapshots of a known bifurcating system with
//! branch-dependent growth, simulated by the engine, are fitted and the fit is scored against
//! the truth.
//!
//! **The system** (d = 2, autonomous): `dX = u(X) dt + σ dW`, `dw = g(X) w dt` with
//! - `u₁ = −∂V/∂x₁` for the double well `V = h ((x₁² − a²)/a²)²` (`h = 1`, `a = 1`: the cells
//!   leave the saddle `x₁ = 0` at rate `4h/a² = 4` and settle at `x₁ = ±1`), the engine's
//!   [`DoubleWell`] with no confinement in `x₂`;
//! - `u₂ = v = 1`: a constant drift in `x₂`;
//! - `g(x) = g₀ tanh(x₁/ℓ_g)`, `g₀ = 1`, `ℓ_g = 0.3`: the right branch grows, the left one dies;
//! - `σ = 0.2`.
//!
//! Cells start at `x ~ N(0, diag(0.15², 0.2²))`; the engine (its one time loop, `weights`
//! reaction, Euler–Maruyama, `dt = 0.01`) moves a pool of particles through `t = 0, 0.5, …, 2`.
//! Each snapshot is an independent sample: the pool is cut into one disjoint slice per time and
//! snapshot `k` draws `n_k = round(n₀ M_k/M_0)` cells (`n₀ = 300`) from slice `k` with
//! probabilities ∝ weight (systematic sampling), so cell counts are proportional to mass, as in
//! the data the fits are built for. The true mass `M_k/M_0` is the pool's.
//!
//! **The fit** (Var-RUOT, started from the UOT-FM ridge potential as `advreact fit` does).
//! Settings fixed from the problem's scales, not from the scored snapshots:
//! - features: 100 random Fourier features, `ℓ_x = 0.7` standardised units (the crate default),
//!   constant and linear terms, time basis space × `{1, t}` (`TimeChoice::Linear`: it extends
//!   past the last time; the truth is autonomous, so a smooth-in-time model is the right class);
//! - UOT-FM start: 2000 pairs per interval, Brownian bridges with the truth's `σ`, ridge `1e-4`;
//! - Var-RUOT: ψ₁, `α = 1` (growth rates and speeds are both O(1)), the truth's `σ = 0.2` (the
//!   noise is taken as known), fit step `0.05` (a tenth of the snapshot spacing), `ε = 0.05`
//!   (blur `√ε ≈ 0.22`, the spread of a branch), `ρ = 1`, `γ_M = 1`, `γ_A = 0.01`, 50 L-BFGS
//!   iterations;
//! - forward simulations at `dt = 0.01` with the fit's `σ`.
//!
//! Note the model class is misspecified on purpose: ψ₁ ties `u = α∇g`, the truth does not.
//!
//! **Bars** (issue 15): a held-out interior time (`t = 0.5`) has a W1 at least 20 % below WOT
//! interpolation between its neighbours (`infer::wot`, its defaults); the last time held out has a
//! W1 at most ¼ of copying the previous snapshot; the fitted `g` (the last-time fit) has Pearson
//! correlation ≥ 0.5 with the true `g` at every data point; the predicted masses at both held-out
//! times are within 10 % of the truth's.
//!
//! Measured (seed 2026, the one in the file): interior W1 0.165 vs WOT 0.283 (ratio 0.58), last
//! 0.127 vs copying 0.565 (ratio 0.22), Pearson 0.83, masses within 1 %. Over three other data
//! seeds the interior ratio was 0.68–0.72 and the Pearson 0.79–0.81 (all pass), but the
//! extrapolation ratio was 0.21, 0.30 and 0.30: the ¼ bar is met by about half of the data draws.

use advreact::dist::Exec;
use advreact::error::SimError;
use advreact::field::analytic::DoubleWell;
use advreact::field::{eval_pointwise, EvalCtx, Field};
use advreact::infer::{split_half_floor, wot, InferParams, Series};
use advreact::learned::commands::simulate;
use advreact::learned::model::Model;
use advreact::learned::psi::Psi;
use advreact::learned::uot_fm::{self, TimeChoice, UotFmParams};
use advreact::learned::var_ruot::{self, VarRuotParams};
use advreact::metrics::wasserstein::{wasserstein, Order, WassersteinOpts};
use advreact::reaction::{Reaction, ReactionKind};
use advreact::stepper::{AllSteps, Simulation, TimeCfg};
use advreact::{Cloud, Particles};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::path::PathBuf;

const SIGMA: f64 = 0.2;
const DRIFT: f64 = 1.0;
const G0: f64 = 1.0;
const ELL_G: f64 = 0.3;
const TIMES: [f64; 5] = [0.0, 0.5, 1.0, 1.5, 2.0];
const N0: usize = 300;
/// Step of the truth's simulation and of the fitted models' forward simulations.
const SIM_DT: f64 = 0.01;
/// The interior snapshot held out.
const HELD_INTERIOR: usize = 1;
/// Fit settings (module doc).
const FEATURES: usize = 100;
const ALPHA: f64 = 1.0;
const FIT_DT: f64 = 0.05;
const EPS: f64 = 0.05;
const ITERS: usize = 50;

fn true_growth(x: &[f64]) -> f64 {
    G0 * (x[0] / ELL_G).tanh()
}

/// The true field: the double well in `x₁`, the drift `v` in `x₂`, the growth `g(x)`.
struct Truth {
    well: DoubleWell,
}

impl Field for Truth {
    fn name(&self) -> String {
        "recovery_truth".into()
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        self.well.eval(ctx, velocity, growth)?;
        eval_pointwise(ctx, velocity, growth, |x, u, g| {
            u[1] += DRIFT;
            *g += true_growth(x);
        });
        Ok(())
    }
}

/// The snapshots (cells of mass 1) and the true masses `M_k/M_0`.
fn truth() -> (Series, Vec<f64>) {
    let d = 2;
    let slice = 3000;
    let pool = slice * TIMES.len();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let x: Vec<f64> = (0..pool * d)
        .map(|i| {
            let z: f64 = StandardNormal.sample(&mut r);
            z * if i % d == 0 { 0.15 } else { 0.2 }
        })
        .collect();
    let mut particles = Particles::from_cloud(&Cloud::new(d, x, vec![1.0; pool]).unwrap());
    let mut states = vec![particles.to_cloud()];
    for (k, w) in TIMES.windows(2).enumerate() {
        let steps = ((w[1] - w[0]) / SIM_DT).round() as usize;
        let field = Truth { well: DoubleWell { height: 1.0, separation: 1.0, stiffness: 0.0 } };
        let reaction = Reaction { kind: ReactionKind::Weights, ..Reaction::default() };
        let time = TimeCfg { dt: (w[1] - w[0]) / steps as f64, steps, noise: SIGMA, max_displacement: None };
        let mut sim = Simulation::new(
            particles,
            Cloud::new(d, vec![], vec![]).unwrap(),
            Box::new(field),
            reaction,
            time,
            100 + k as u64,
        );
        let summary = sim.run_until(&mut [], &mut AllSteps).unwrap();
        assert!(summary.error.is_none() && summary.warnings.is_empty(), "{:?}", summary.warnings);
        particles = sim.particles;
        states.push(particles.to_cloud());
    }
    let m0 = states[0].mass();
    let masses: Vec<f64> = states.iter().map(|c| c.mass() / m0).collect();
    let mut clouds = Vec::new();
    for (k, c) in states.iter().enumerate() {
        let (a, b) = (k * slice, (k + 1) * slice);
        let w = &c.w[a..b];
        let n = (N0 as f64 * masses[k]).round() as usize;
        let picks = wot::systematic(w, n, r.random::<f64>());
        let xs: Vec<f64> = picks.iter().flat_map(|&i| c.point(a + i).to_vec()).collect();
        clouds.push(Cloud::new(d, xs, vec![1.0; n]).unwrap());
    }
    let s = Series {
        file: PathBuf::from("<truth>"),
        times: TIMES.to_vec(),
        clouds,
        growth: None,
        labels: None,
        ids: None,
    };
    (s, masses)
}

fn w1(a: &Cloud, b: &Cloud) -> f64 {
    wasserstein(a, b, Order::W1, &WassersteinOpts::default()).unwrap().value
}

fn without(s: &Series, k: usize) -> Series {
    let keep: Vec<usize> = (0..s.times.len()).filter(|&i| i != k).collect();
    advreact::learned::protocol::restrict(s, &keep)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// The Var-RUOT fit of `train` (settings in the test's doc), simulated from its first snapshot
/// through every data time.
fn fit_and_predict(train: &Series, exec: &Exec) -> (Model, Vec<Cloud>, f64) {
    let fm = UotFmParams {
        features: FEATURES,
        pairs: 2000,
        sigma: SIGMA,
        ridge: 1e-4,
        time: TimeChoice::Linear,
        ..UotFmParams::default()
    };
    let features = uot_fm::feature_map(train, &fm).unwrap();
    let targets = uot_fm::targets(train, &fm, exec).unwrap();
    let (start, _) = uot_fm::fit_potential(&targets, features, fm.ridge, ALPHA, Psi::Quadratic).unwrap();
    let params = VarRuotParams {
        alpha: ALPHA,
        sigma: SIGMA,
        dt: FIT_DT,
        eps: EPS,
        rho: Some(1.0),
        gamma_m: 1.0,
        gamma_a: 0.01,
        max_iter: ITERS,
        sinkhorn_tol: 1e-5,
        max_growth_step: 10.0,
        ..VarRuotParams::default()
    };
    let (pot, report) = var_ruot::fit(train, start, &params, exec, &mut |_| {}).unwrap();
    let h = &report.history;
    assert!(
        h.last().unwrap().loss < 0.5 * h[0].loss,
        "the fit must lower the loss: {} → {}",
        h[0].loss,
        h.last().unwrap().loss
    );
    let model = Model::VarRuot(pot);
    let sim = simulate(&model, &train.clouds[0], &TIMES, SIM_DT, SIGMA, 3, exec, 0).unwrap();
    assert!(sim.warnings.is_empty(), "{:?}", sim.warnings);
    (model, sim.clouds, report.seconds)
}

/// The four bars (module doc), on a Var-RUOT fit from its UOT-FM start.
#[test]
fn a_bifurcating_system_with_branch_growth_is_recovered() {
    let exec = Exec::default();
    let (s, masses) = truth();
    let floor = |c: &Cloud| split_half_floor(c, 10, 1, &WassersteinOpts::default()).unwrap();
    // 1. interior time held out: against WOT interpolation between its neighbours
    let k = HELD_INTERIOR;
    let span = TIMES[k + 1] - TIMES[k - 1];
    let frac = (TIMES[k] - TIMES[k - 1]) / span;
    let (wot_cloud, _, _) =
        wot::interpolate(&s.clouds[k - 1], &s.clouds[k + 1], frac, span, None, &InferParams::default())
            .unwrap();
    let w_wot = w1(&wot_cloud, &s.clouds[k]);
    let (_, pred, secs_a) = fit_and_predict(&without(&s, k), &exec);
    let w_in = w1(&pred[k], &s.clouds[k]);
    let mass_in = pred[k].mass() / pred[0].mass();
    // 2. last time held out (extrapolation): against copying the previous snapshot
    let kl = TIMES.len() - 1;
    let (model, pred, secs_b) = fit_and_predict(&without(&s, kl), &exec);
    let w_last = w1(&pred[kl], &s.clouds[kl]);
    let w_copy = w1(&s.clouds[kl - 1], &s.clouds[kl]);
    let mass_last = pred[kl].mass() / pred[0].mass();
    // 3. the fitted growth (last fit) at every data point against the truth
    let mut ws = model.workspace();
    let mut u = [0.0; 2];
    let (mut fitted, mut exact) = (Vec::new(), Vec::new());
    for (c, &t) in s.clouds.iter().zip(&TIMES) {
        for x in c.x.chunks_exact(2) {
            fitted.push(model.eval(x, t, &mut ws, &mut u).0);
            exact.push(true_growth(x));
        }
    }
    let r = pearson(&fitted, &exact);
    eprintln!(
        "recovery: cells {:?}, true masses {masses:.3?}; fits {secs_a:.1} s + {secs_b:.1} s\n\
         interior t = {}: W1 {w_in:.4} vs WOT {w_wot:.4} (ratio {:.3}, split-half floor {:.4}); mass {mass_in:.3} vs {:.3}\n\
         last t = {}: W1 {w_last:.4} vs copy {w_copy:.4} (ratio {:.3}, floor {:.4}); mass {mass_last:.3} vs {:.3}\n\
         Pearson(fitted g, true g) = {r:.3} over {} cells",
        s.clouds.iter().map(|c| c.len()).collect::<Vec<_>>(),
        TIMES[k],
        w_in / w_wot,
        floor(&s.clouds[k]),
        masses[k],
        TIMES[kl],
        w_last / w_copy,
        floor(&s.clouds[kl]),
        masses[kl],
        fitted.len()
    );
    assert!(w_in <= 0.8 * w_wot, "interior: W1 {w_in:.4} is not 20 % below WOT's {w_wot:.4}");
    assert!(w_last <= 0.25 * w_copy, "last: W1 {w_last:.4} is not ≤ ¼ of copying's {w_copy:.4}");
    assert!(r >= 0.5, "Pearson correlation of the growth {r:.3}");
    for (name, m, truth) in [("interior", mass_in, masses[k]), ("last", mass_last, masses[kl])] {
        assert!((m / truth - 1.0).abs() <= 0.1, "{name}: predicted mass {m:.3} vs true {truth:.3}");
    }
}
