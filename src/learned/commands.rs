//! The learned-dynamics commands (SPEC §6, §8): `advreact fit`, `advreact field` and
//! `advreact forward --model`, and the one simulation of a fitted model ([`simulate`]).
//!
//! - `fit DATA.csv --model uot_fm|var_ruot …` fits a model to the training snapshots (all times
//!   but the `--holdout` ones) and writes, through [`crate::output::Target`], `model.json`
//!   ([`ModelFile`]: model, settings, provenance — path, sha256, training and held-out times,
//!   cells), `fit.json` (seconds, warnings; for UOT-FM the coupling reports per interval and the
//!   ridge residuals per target; for Var-RUOT the loss terms per iteration), `fit.png` and
//!   `trajectories.png` (simulated paths over the training snapshots, particle size by weight,
//!   colour by growth or, with `--colour time`, by time). The fit of each model kind is chosen in
//!   ONE place, [`fit_model`].
//! - `field MODEL POINTS.csv [--time T] [--out F.csv]` writes `[id,]u1..ud,g[,lambda]` at the
//!   points (a `time` column in POINTS overrides `--time` row by row).
//! - `forward DATA.csv --model DIR/model.json` simulates from the first snapshot with the
//!   engine's time loop and writes `prediction.csv` (`time,x1..xd,w` at every data time, each
//!   data cell of mass 1), `forward.json` (W1, W2, MMD and mass error per time, held-out times
//!   marked) and `forward.png` (prediction over truth per time).
//!
//! [`simulate`] is the engine's own loop ([`Simulation::run_until`]): Euler–Maruyama
//! `X⁺ = X + u dt + σ√dt ξ` and `w⁺ = w e^{g dt}` (reaction `weights`), one simulation per
//! interval between consecutive output times with `dt_k = Δ_k / ⌈Δ_k/dt⌉` so every output time is
//! landed on exactly, the field evaluated at the model time ([`TimeShifted`]), the noise of
//! interval `k` from the seed `mix(seed + k)`.

use super::model::{Model, ModelFile, Provenance};
use super::psi::Psi;
use super::uot_fm::{self, TimeChoice, UotFmParams};
use super::var_ruot;
use crate::data::{read_snapshot_with, ColumnSpec};
use crate::dist::Exec;
use crate::error::{ConfigError, DataError, Error, SimError};
use crate::field::learned::{JetSink, LearnedField, TimeShifted};
use crate::infer::{self, Series};
use crate::observe::Phase;
use crate::output::{check_file, write_folder, Kind, Target};
use crate::particles::{Cloud, Particles};
use crate::plot::{plot_curves, plot_scatter, Colour, Layer, Panel};
use crate::reaction::{Reaction, ReactionKind};
use crate::rng;
use crate::stepper::{Simulation, StepView, StopReason, StopRule, TimeCfg, Warning};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Default step `dt` of a Var-RUOT fit (and of its model's simulations): on three_gene_2d the
/// loss path of dt = 0.05 matches dt = 0.01's to 2 % over the first 10 iterations at a fifth of
/// the cost (results/learned_dynamics.md, "Var-RUOT fit").
pub const VAR_RUOT_DT: f64 = 0.05;
/// Default feature count of a Var-RUOT fit (see [`VAR_RUOT_DT`]).
pub const VAR_RUOT_FEATURES: usize = 300;
/// Default L-BFGS iteration cap of a Var-RUOT fit (see [`VAR_RUOT_DT`]).
pub const VAR_RUOT_ITERS: usize = 40;
/// Default Sinkhorn tolerance of a Var-RUOT fit (see [`VAR_RUOT_DT`]).
pub const VAR_RUOT_SINKHORN_TOL: f64 = 1e-7;

/// Default time step of simulations of a learned model (model time units).
pub const DEFAULT_DT: f64 = 0.01;

/// A simulation of a model through a list of times.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// The output times (the first is the start).
    pub times: Vec<f64>,
    /// The particles at each output time (weights in the start cloud's units).
    pub clouds: Vec<Cloud>,
    /// Paths of the traced particles: `paths[i]` = positions (d each) at every step.
    pub paths: Vec<Vec<f64>>,
    /// Steps taken.
    pub steps: usize,
    /// Guard interventions (growth clipping, ...).
    pub warnings: Vec<Warning>,
}

/// Records the positions of some particles after every step (never stops the run).
struct Trace<'a> {
    ids: &'a [usize],
    paths: &'a mut Vec<Vec<f64>>,
}

impl StopRule for Trace<'_> {
    fn start(&mut self, s: &StepView) -> Result<(), SimError> {
        self.record(s);
        Ok(())
    }
    fn stop(&mut self, s: &StepView) -> Result<bool, SimError> {
        self.record(s);
        Ok(false)
    }
}

impl Trace<'_> {
    fn record(&mut self, s: &StepView) {
        for (p, &i) in self.paths.iter_mut().zip(self.ids) {
            if i < s.particles.len() {
                p.extend_from_slice(s.particles.point(i));
            }
        }
    }
}

/// Simulate `model` from `start` at `times[0]` through `times` (module doc); `trace` particles
/// (evenly spread over the indices) have their paths recorded.
#[allow(clippy::too_many_arguments)]
pub fn simulate(
    model: &Model,
    start: &Cloud,
    times: &[f64],
    dt: f64,
    sigma: f64,
    seed: u64,
    exec: &Exec,
    trace: usize,
) -> Result<Simulated, SimError> {
    if !(dt.is_finite() && dt > 0.0) {
        return Err(SimError::Invalid(format!("simulate: dt must be finite and > 0, got {dt}")));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(SimError::Invalid(format!("simulate: sigma must be finite and ≥ 0, got {sigma}")));
    }
    if start.dim != model.dim() {
        return Err(SimError::Invalid(format!(
            "simulate: the model is {}-dimensional, the start cloud {}-dimensional",
            model.dim(),
            start.dim
        )));
    }
    if times.is_empty() || times.windows(2).any(|w| w[1].is_nan() || w[1] <= w[0]) {
        return Err(SimError::Invalid("simulate: times must be strictly increasing, at least one".into()));
    }
    let n = start.len();
    let ids: Vec<usize> = if trace == 0 || n == 0 {
        vec![]
    } else {
        let k = trace.min(n);
        (0..k).map(|j| j * n / k).collect()
    };
    let mut paths: Vec<Vec<f64>> = vec![Vec::new(); ids.len()];
    let mut rule = Trace { ids: &ids, paths: &mut paths };
    let growth_guard = Reaction::default().max_growth_step;
    let (clouds, steps, warnings) =
        simulate_with(model, start, times, dt, sigma, seed, exec, growth_guard, &mut rule, None)?;
    Ok(Simulated { times: times.to_vec(), clouds, paths, steps, warnings })
}

/// The loop of [`simulate`] with any per-step rule (`rule.start` at the start of every interval,
/// `rule.stop` after every step; a rule that stops early is an error) and the reaction's growth
/// guard `max_growth_step`: one `Simulation::run_until` per interval. Returns the clouds at
/// `times`, the steps taken and the guards' warnings. Inputs are checked by [`simulate`]'s
/// callers ([`simulate`] itself, the Var-RUOT rollout). With `jets`, a Var-RUOT model's jets at
/// every particle and step are appended there ([`LearnedField::recording`]).
#[allow(clippy::too_many_arguments)]
pub fn simulate_with(
    model: &Model,
    start: &Cloud,
    times: &[f64],
    dt: f64,
    sigma: f64,
    seed: u64,
    exec: &Exec,
    max_growth_step: f64,
    rule: &mut dyn StopRule,
    jets: Option<&JetSink>,
) -> Result<(Vec<Cloud>, usize, Vec<Warning>), SimError> {
    let mut particles = Particles::from_cloud(start);
    let mut clouds = vec![start.clone()];
    let mut warnings = Vec::new();
    let mut steps = 0;
    for (k, w) in times.windows(2).enumerate() {
        let delta = w[1] - w[0];
        let nsteps = ((delta / dt) * (1.0 - 1e-12)).ceil().max(1.0) as usize;
        let inner = LearnedField::new(model.clone())?.recording(jets.cloned());
        let field = TimeShifted { inner, t0: w[0] };
        let reaction = Reaction { kind: ReactionKind::Weights, max_growth_step, ..Reaction::default() };
        let time = TimeCfg { dt: delta / nsteps as f64, steps: nsteps, noise: sigma, max_displacement: None };
        let empty = Cloud::new_unchecked(start.dim, vec![], vec![]);
        let mut sim = Simulation::new(
            particles,
            empty,
            Box::new(field),
            reaction,
            time,
            rng::mix(seed.wrapping_add(k as u64)),
        );
        sim.exec = exec.clone();
        let summary = sim.run_until(&mut [], rule).map_err(|e| SimError::Invalid(e.to_string()))?;
        if let Some(e) = summary.error {
            return Err(e);
        }
        if !matches!(summary.stop_reason, StopReason::Completed) {
            return Err(SimError::Numerical {
                step: summary.steps,
                what: format!("simulate: t = {} → {}: the run stopped: {}", w[0], w[1], summary.stop_reason),
            });
        }
        for wn in summary.warnings {
            warnings.push(Warning { message: format!("t = {} → {}: {}", w[0], w[1], wn.message), ..wn });
        }
        steps += summary.steps;
        particles = sim.particles;
        clouds.push(particles.to_cloud());
    }
    Ok((clouds, steps, warnings))
}

/// Which model `fit` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum FitKind {
    /// UOT flow matching (closed form).
    UotFm,
    /// Var-RUOT (helper V's fit).
    VarRuot,
}

/// `fit --colour`: what colours the simulated particles of `trajectories.png`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ParticleColour {
    /// The fitted growth rate g(x, t) at the particle (purple lowest, green highest).
    Growth,
    /// The snapshot time, on the data points' time colours.
    Time,
}

/// `--psi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum PsiChoice {
    /// `ψ₁ = g²/2`.
    Quadratic,
    /// `ψ₂ = g^{2/15}` (extended).
    Power,
}

/// `advreact fit`.
#[derive(clap::Args, Debug, Clone)]
pub struct FitArgs {
    /// Snapshot CSV: columns time, x1..xd and optionally w.
    pub data: PathBuf,
    /// The model to fit.
    #[arg(long, value_enum)]
    pub model: FitKind,
    /// A time left out of the fit (repeatable); not the first time.
    #[arg(long)]
    pub holdout: Vec<f64>,
    /// Var-RUOT: the growth penalty ψ.
    #[arg(long, value_enum, default_value_t = PsiChoice::Quadratic)]
    pub psi: PsiChoice,
    /// Var-RUOT: the growth weight α.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Var-RUOT with `--psi power`: the growth rate g₀ above which ψ₂ is continued by its
    /// quadratic Taylor polynomial (src/learned/psi.rs).
    #[arg(long, default_value_t = 2.0)]
    pub g0: f64,
    /// Var-RUOT: L-BFGS iteration cap (default [`VAR_RUOT_ITERS`]).
    #[arg(long, default_value_t = VAR_RUOT_ITERS)]
    pub iters: usize,
    /// Var-RUOT: entropy ε of the Sinkhorn divergences (cost ½|x − y|², data units).
    #[arg(long, default_value_t = 0.01)]
    pub eps: f64,
    /// Var-RUOT: weight γ_A of the action.
    #[arg(long, default_value_t = 0.01)]
    pub gamma_a: f64,
    /// Var-RUOT: weight γ_H of the HJB residual `R = ∂ₜλ + ½|∇λ|² + ½σ²Δλ + λg − αψ(g)` along the
    /// particles (SPEC §6; 0: off).
    #[arg(long, default_value_t = 0.0)]
    pub gamma_h: f64,
    /// Var-RUOT: weight γ_M of the relative mass errors `(M̂_k/M_k − 1)²`.
    #[arg(long, default_value_t = 1.0)]
    pub gamma_m: f64,
    /// Var-RUOT: tolerance of each Sinkhorn solve (relative L1 marginal error).
    #[arg(long, default_value_t = VAR_RUOT_SINKHORN_TOL)]
    pub sinkhorn_tol: f64,
    /// Var-RUOT: early stopping — stop when the loss fell by less than `--min-decrease` (relative)
    /// over this many iterations (0: off).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Var-RUOT: see `--patience`.
    #[arg(long, default_value_t = 1e-3)]
    pub min_decrease: f64,
    /// Noise σ: Var-RUOT's SDE noise (fit and simulations); UOT-FM's Brownian-bridge interpolants
    /// (its simulations are ODEs).
    #[arg(long, default_value_t = 0.0)]
    pub sigma: f64,
    /// Random Fourier features m (default: 600 for uot_fm, [`VAR_RUOT_FEATURES`] for var_ruot).
    #[arg(long)]
    pub features: Option<usize>,
    /// Seed of the features, pairs and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// UOT-FM: pairs drawn per interval.
    #[arg(long, default_value_t = 4000)]
    pub pairs: usize,
    /// Ridge ρ (relative to the per-sample Gram matrix).
    #[arg(long, default_value_t = 1e-6)]
    pub ridge: f64,
    /// UOT-FM: ε relative to the mean cost of each pair of snapshots.
    #[arg(long, default_value_t = 0.05)]
    pub eps_rel: f64,
    /// UOT-FM: τ relative to the mean cost (`inf`: balanced).
    #[arg(long, default_value_t = 10.0)]
    pub tau_rel: f64,
    /// Time basis of the features: `cosine` (space–time phases, no extrapolation past the last
    /// snapshot), `hat` (knots at the training times), `linear` (space × {1, t}) or `constant`
    /// (an autonomous field λ(x): u(x), g(x) the same at every time, so it extrapolates).
    #[arg(long, value_enum, default_value_t = TimeChoice::Cosine)]
    pub time_basis: TimeChoice,
    /// Var-RUOT: R space-uniform time functions cos(ν_r τ + b_r), ν_r ~ N(0, 1/ℓ_t²), added to the
    /// potential λ (features.rs): a growth rate uniform in space that varies in time, no velocity
    /// (0: none, the fit is unchanged).
    #[arg(long, default_value_t = 0)]
    pub time_functions: usize,
    /// Space length scale of the features (standardised units).
    #[arg(long, default_value_t = 0.7)]
    pub ell_x: f64,
    /// Time length scale of the cosine features (standardised units).
    #[arg(long, default_value_t = 1.5)]
    pub ell_t: f64,
    /// Polynomial degree of the space terms (0, 1, 2).
    #[arg(long, default_value_t = 1)]
    pub poly: u8,
    /// Time step of the simulations (stored in the model's settings, used by `forward`); for
    /// var_ruot also the fit's step (default: [`DEFAULT_DT`] for uot_fm, [`VAR_RUOT_DT`] for var_ruot).
    #[arg(long)]
    pub dt: Option<f64>,
    /// Keep at most N cells per time point (0: all; kept cells carry the snapshot's mass).
    #[arg(long, default_value_t = 0)]
    pub subsample: usize,
    /// trajectories.png: colour the simulated particles (sized by weight) by their growth rate or
    /// by time.
    #[arg(long, value_enum, default_value_t = ParticleColour::Growth)]
    pub colour: ParticleColour,
    /// Output folder (default output/fit/DATA_MODEL).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an output folder holding foreign files.
    #[arg(long)]
    pub force: bool,
    /// Worker threads.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `advreact field`.
#[derive(clap::Args, Debug, Clone)]
pub struct FieldArgs {
    /// A model file (`advreact fit`'s model.json).
    pub model: PathBuf,
    /// Points CSV: x1..xd, optional `time` (overrides --time per row) and `id` columns.
    pub points: PathBuf,
    /// The time at which to evaluate (needed unless POINTS has a time column).
    #[arg(long)]
    pub time: Option<f64>,
    /// Output CSV (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn cli_err(key: &str, msg: impl Into<String>) -> Error {
    ConfigError::new("<cli>", key, msg).into()
}

/// A training series: the data minus the held-out times, and the held-out times found.
fn training(series: &Series, holdout: &[f64]) -> Result<(Series, Vec<f64>), Error> {
    let mut drop = Vec::new();
    for &t in holdout {
        let k = series.index_of(t)?;
        if k == 0 {
            return Err(cli_err(
                "--holdout",
                format!(
                    "{t} is the first time of {}; simulations start there, it cannot be held out",
                    series.file.display()
                ),
            ));
        }
        drop.push(k);
    }
    let mut s = series.clone();
    let keep: Vec<usize> = (0..series.times.len()).filter(|k| !drop.contains(k)).collect();
    if keep.len() < 2 {
        return Err(cli_err("--holdout", "leaves fewer than two training times"));
    }
    s.times = keep.iter().map(|&k| series.times[k]).collect();
    s.clouds = keep.iter().map(|&k| series.clouds[k].clone()).collect();
    s.growth = None;
    s.labels = None;
    s.ids = None;
    let held = drop.iter().map(|&k| series.times[k]).collect();
    Ok((s, held))
}

/// The sha256 of a file (hex).
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(sha256_hex(&bytes))
}

/// SHA-256 (FIPS 180-4) of `data`, lower-case hex (the `sha2` crate).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// fit.png's content: x-axis title, y-axis title, named curves `(name, [(x, y)])`.
pub type FitCurves = (String, String, Vec<(String, Vec<(f64, f64)>)>);

/// A fitted model with what its fit reports.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The model.
    pub model: Model,
    /// The settings stored in the model file.
    pub settings: Value,
    /// The body of fit.json (the fit's own record).
    pub record: Value,
    /// Curves for fit.png: `(name, [(x, y)])`, with the axis titles.
    pub curves: FitCurves,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

/// The UOT-FM settings of a `fit` command line.
pub fn uot_fm_params(a: &FitArgs) -> UotFmParams {
    UotFmParams {
        eps_rel: a.eps_rel,
        tau_rel: a.tau_rel,
        pairs: a.pairs,
        sigma: a.sigma,
        ridge: a.ridge,
        features: a.features.unwrap_or(match a.model {
            FitKind::UotFm => UotFmParams::default().features,
            FitKind::VarRuot => VAR_RUOT_FEATURES,
        }),
        ell_x: a.ell_x,
        ell_t: a.ell_t,
        time: a.time_basis,
        poly: a.poly,
        seed: a.seed,
        ..UotFmParams::default()
    }
}

/// The Var-RUOT settings of a `fit` command line (the rest at their documented defaults).
pub fn var_ruot_params(a: &FitArgs) -> var_ruot::VarRuotParams {
    var_ruot::VarRuotParams {
        psi: match a.psi {
            PsiChoice::Quadratic => Psi::Quadratic,
            PsiChoice::Power => Psi::Power { g0: a.g0 },
        },
        alpha: a.alpha,
        sigma: a.sigma,
        dt: fit_dt(a),
        eps: a.eps,
        gamma_a: a.gamma_a,
        gamma_h: a.gamma_h,
        gamma_m: a.gamma_m,
        sinkhorn_tol: a.sinkhorn_tol,
        patience: a.patience,
        min_decrease: a.min_decrease,
        max_iter: a.iters,
        seed: a.seed,
        ..var_ruot::VarRuotParams::default()
    }
}

/// The noise of the simulations of a fitted model: `--sigma` for Var-RUOT (its SDE), 0 for
/// UOT-FM (an ODE: `--sigma` is its Brownian bridge's, whose spread is already in the regressed
/// velocity's data; [`UotFmParams::sigma`]).
pub fn sim_sigma(a: &FitArgs) -> f64 {
    match a.model {
        FitKind::UotFm => 0.0,
        FitKind::VarRuot => a.sigma,
    }
}

/// The simulation step of a `fit` command line (`--dt`, or the model's default).
pub fn fit_dt(a: &FitArgs) -> f64 {
    a.dt.unwrap_or(match a.model {
        FitKind::UotFm => DEFAULT_DT,
        FitKind::VarRuot => VAR_RUOT_DT,
    })
}

/// Fit the model `a.model` to the training series: the ONE place where a model kind meets its
/// fit (Var-RUOT plugs in here).
pub fn fit_model(a: &FitArgs, train: &Series, exec: &Exec) -> Result<Fitted, Error> {
    match a.model {
        FitKind::UotFm => {
            if a.time_functions > 0 {
                return Err(cli_err("--time-functions", "applies to --model var_ruot only"));
            }
            let p = uot_fm_params(a);
            let (model, info) = uot_fm::fit(train, &p, exec)?;
            let settings = json!({
                "model": "uot_fm", "params": p, "sigma": sim_sigma(a), "bridge_sigma": a.sigma,
                "dt": fit_dt(a), "subsample": a.subsample,
            });
            let r = &info.ridge;
            let rms: Vec<(f64, f64)> =
                r.rms_residual.iter().enumerate().map(|(k, v)| (k as f64 + 1.0, *v)).collect();
            let r2: Vec<(f64, f64)> =
                r.r2.iter().enumerate().map(|(k, v)| (k as f64 + 1.0, 1.0 - v)).collect();
            let x_desc = format!("target ({})", r.targets.join(", "));
            let curves = vec![("RMS residual".to_string(), rms), ("1 − R²".to_string(), r2)];
            let record = json!({
                "model": "uot_fm", "seconds": info.seconds, "seconds_targets": info.seconds_targets,
                "samples": info.samples, "couplings": info.couplings, "ridge": info.ridge, "loss": [],
            });
            Ok(Fitted {
                model,
                settings,
                record,
                curves: (x_desc, "residual".into(), curves),
                warnings: info.warnings,
            })
        }
        FitKind::VarRuot => {
            let p = var_ruot_params(a);
            p.check()?;
            // Start (SPEC §6): the UOT-FM targets projected onto gradient fields — one joint
            // ridge regression of ∇λ on the velocity targets and λ/α on the growth targets (exact
            // for ψ₁; for ψ₂ the same λ is the starting point and the fit takes it from there).
            let fm = uot_fm_params(a);
            let features = uot_fm::feature_map(train, &fm)?
                .with_time_functions(a.time_functions)
                .map_err(|e| cli_err("--time-functions", e))?;
            let targets = uot_fm::targets(train, &fm, exec)?;
            let (mut start, ridge) = uot_fm::fit_potential(&targets, features, fm.ridge, p.alpha, p.psi)?;
            // A start whose growth breaks the step guard (|g dt| > max_growth_step) cannot be
            // differentiated, and a start worse than θ = 0 (no motion, no growth: the ridge's
            // growth extrapolated across a held-out time can put the mass off by orders of
            // magnitude) is no start: shrink it toward θ = 0 until its forward pass is admissible
            // and its loss is at most θ = 0's, and say so. When no scaling down to 2^-30 is (the
            // ridge start points uphill), the fit starts from θ = 0 itself, whose loss is the bar.
            let mut probe = var_ruot::Problem::new(train, start.features.clone(), &p)?;
            let zero_loss = probe.loss_and_grad(&vec![0.0; start.theta.len()], false, exec)?.loss;
            // why the ridge start was not admissible, and why its 2^-30 scaling still was not
            let (mut first_why, mut gave_up) = (None, None);
            let mut halvings = 0;
            loop {
                let why = match probe.loss_and_grad(&start.theta, false, exec) {
                    Err(e) => e.to_string(),
                    Ok(ev) if ev.loss > zero_loss => {
                        format!("its loss {:.3e} is above θ = 0's {zero_loss:.3e}", ev.loss)
                    }
                    Ok(_) => break,
                };
                if halvings == 30 {
                    start.theta.iter_mut().for_each(|v| *v = 0.0);
                    gave_up = Some(why);
                    break;
                }
                first_why.get_or_insert(why);
                start.theta.iter_mut().for_each(|v| *v *= 0.5);
                halvings += 1;
            }
            let start_warnings: Vec<Warning> = first_why
                .map(|why| {
                    let how = match gave_up {
                        Some(w) => format!(" by 2^-30 and still not admissible ({w}): the fit starts from θ = 0"),
                        None => format!(" by 2^-{halvings}"),
                    };
                    Warning::new(
                        "start_shrunk",
                        halvings,
                        None,
                        format!("var_ruot: the UOT-FM ridge start is not admissible ({why}); it was scaled toward 0{how}"),
                    )
                })
                .into_iter()
                .collect();
            drop(probe);
            let progress = Phase::start(format!("var_ruot: L-BFGS, at most {} iterations", p.max_iter));
            let (pot, report) = var_ruot::fit(train, start, &p, exec, &mut |r| {
                progress.message(format!("iteration {} loss {:.6e} ({:.1} s)", r.iter, r.loss, r.seconds))
            })?;
            progress.finish(&format!("{} iterations", report.history.len().saturating_sub(1)));
            // model.json holds what determines the model, so the same seed gives the same bytes
            // whatever the thread count or load: the ridge start's wall seconds go to fit.json only
            let mut ridge_settings = json!(ridge);
            if let Some(o) = ridge_settings.as_object_mut() {
                o.remove("seconds");
            }
            let mut settings = json!({
                "model": "var_ruot", "params": p, "start": {"uot_fm": fm, "ridge": ridge_settings},
                "sigma": sim_sigma(a), "dt": fit_dt(a), "subsample": a.subsample,
            });
            if a.time_functions > 0 {
                // written only when used: a default fit's model.json is byte for byte as before
                settings["time_functions"] = json!(a.time_functions);
            }
            let h = &report.history;
            let curve = |name: &str, v: fn(&var_ruot::IterRecord) -> f64| {
                (name.to_string(), h.iter().map(|r| (r.iter as f64, v(r).max(1e-300))).collect::<Vec<_>>())
            };
            let curves = vec![
                curve("loss", |r| r.loss),
                curve("divergence", |r| r.divergence),
                curve("mass", |r| r.mass),
                curve("action", |r| r.action),
                curve("HJB residual", |r| r.hjb),
            ];
            let warnings = start_warnings
                .into_iter()
                .chain(report.warnings.iter().map(|w| Warning::new("var_ruot", 1, None, w.clone())))
                .chain((!report.converged).then(|| {
                    Warning::new(
                        "not_converged",
                        h.len() as u64,
                        None,
                        format!(
                            "var_ruot: stopped without meeting the gradient tolerance ({})",
                            report.stop_reason
                        ),
                    )
                }))
                .collect();
            let record = json!({
                "model": "var_ruot", "seconds": report.seconds, "action": report.action,
                "action_normalisation": "A = Σ_n Σ_i w_i (½|∇λ|² + αψ(g)) dt / M_0 (per unit of initial mass)",
                "action_per_mass": report.action_per_mass,
                "action_per_mass_normalisation": "Σ_n Σ_i (w_i / Σ_j w_j) (½|∇λ|² + αψ(g)) dt (per unit of current mass)",
                "hjb": report.hjb, "converged": report.converged, "stop_reason": report.stop_reason,
                "loss": report.history, "start_ridge": ridge,
            });
            Ok(Fitted {
                model: Model::VarRuot(pot),
                settings,
                record,
                curves: ("iteration".into(), "value".into(), curves),
                warnings,
            })
        }
    }
}

/// The default `fit` output folder.
pub fn fit_out(a: &FitArgs) -> PathBuf {
    a.out.clone().unwrap_or_else(|| {
        let m = match a.model {
            FitKind::UotFm => "uot_fm",
            FitKind::VarRuot => "var_ruot",
        };
        Path::new("output/fit").join(format!("{}_{m}", infer::data_name(&a.data)))
    })
}

fn plot_err(e: crate::plot::PlotError) -> Error {
    SimError::Invalid(e.to_string()).into()
}

/// Growth rates of `model` at the points of `c` at time `t`.
fn growth_at(model: &Model, c: &Cloud, t: f64) -> Vec<f64> {
    let mut ws = model.workspace();
    let mut u = vec![0.0; c.dim];
    c.x.chunks_exact(c.dim).map(|x| model.eval(x, t, &mut ws, &mut u).0).collect()
}

/// trajectories.png: the data snapshots (time colours), simulated paths, and the simulated
/// particles at each snapshot time sized by weight and coloured by growth or by time.
fn plot_trajectories(
    path: &Path,
    title: &str,
    model: &Model,
    data: &Series,
    sim: &Simulated,
    colour: ParticleColour,
) -> Result<(), Error> {
    let d = model.dim();
    let nt = data.times.len().max(2) as f64 - 1.0;
    let mut data_layer = Layer { colour: Some(Colour::Scale), ..Layer::default() };
    for (k, c) in data.clouds.iter().enumerate() {
        for x in c.x.chunks_exact(d) {
            data_layer.points.push((x[0], if d > 1 { x[1] } else { 0.0 }));
            data_layer.value.push(k as f64 / nt);
            data_layer.radius.push(1.5);
        }
    }
    let paths = Layer {
        name: "simulated paths".into(),
        colour: Some(Colour::Series(0)),
        paths: sim
            .paths
            .iter()
            .map(|p| p.chunks_exact(d).map(|x| (x[0], if d > 1 { x[1] } else { 0.0 })).collect())
            .collect(),
        ..Layer::default()
    };
    let by_growth = colour == ParticleColour::Growth;
    let mut parts = Layer {
        name: format!("particles (size: weight, colour: {})", if by_growth { "growth" } else { "time" }),
        colour: Some(Colour::Scale),
        ..Layer::default()
    };
    // the particles' colour values: their growth rates (rescaled to [0, 1] below) or their time
    for (k, (t, c)) in sim.times.iter().zip(&sim.clouds).enumerate() {
        let value = if by_growth { growth_at(model, c, *t) } else { vec![k as f64 / nt; c.len()] };
        let mean_w = c.mass() / c.len().max(1) as f64;
        for (i, x) in c.x.chunks_exact(d).enumerate() {
            parts.points.push((x[0], if d > 1 { x[1] } else { 0.0 }));
            parts.radius.push(2.5 * (c.w[i] / mean_w).sqrt());
        }
        parts.value.extend(value);
    }
    let caption = if by_growth {
        let (lo, hi) =
            parts.value.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), g| (a.min(*g), b.max(*g)));
        parts.value.iter_mut().for_each(|g| *g = if hi > lo { (*g - lo) / (hi - lo) } else { 0.5 });
        format!("simulated particles, growth {lo:.2} (purple) to {hi:.2} (green)")
    } else {
        "simulated particles, colour: time".to_string()
    };
    let panels = [
        Panel { caption: "data (colour: time) and simulated paths".into(), layers: vec![data_layer, paths] },
        Panel { caption, layers: vec![parts] },
    ];
    plot_scatter(path, title, (1400, 700), &panels).map_err(plot_err)
}

/// `advreact fit` (module doc); `Ok(false)` when there are warnings and nothing failed.
pub fn cmd_fit(a: &FitArgs, exec: &Exec) -> Result<bool, Error> {
    let start = Instant::now();
    let out = fit_out(a);
    Target::check_as(&out, Kind::Fit, a.force, "--out")?;
    let dt = fit_dt(a);
    if !(dt.is_finite() && dt > 0.0) {
        return Err(cli_err("--dt", format!("must be finite and > 0, got {dt}")));
    }
    if a.subsample == 1 {
        return Err(cli_err("--subsample", "must be 0 (all cells) or ≥ 2"));
    }
    let full = infer::load_series(&a.data, &ColumnSpec::default())?;
    let series = if a.subsample > 0 { full.subsample(a.subsample, a.seed) } else { full.clone() };
    let (train, held) = training(&series, &a.holdout)?;
    let phase = Phase::start(format!(
        "fit {}: {} training times, {} cells",
        match a.model {
            FitKind::UotFm => "uot_fm",
            FitKind::VarRuot => "var_ruot",
        },
        train.times.len(),
        train.clouds.iter().map(|c| c.len()).sum::<usize>()
    ));
    let fitted = fit_model(a, &train, exec)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    phase.finish(&format!("{fit_seconds:.2} s"));
    let provenance = Provenance {
        path: a.data.display().to_string(),
        sha256: sha256_file(&a.data)?,
        times: train.times.clone(),
        held_out: held.clone(),
        cells: full
            .times
            .iter()
            .zip(&full.clouds)
            .filter(|(t, _)| train.times.contains(t))
            .map(|(_, c)| c.len())
            .collect(),
    };
    let file = ModelFile::new(fitted.model.clone(), fitted.settings.clone(), provenance);
    let phase = Phase::start("simulating the fitted model over the training times");
    let sim = simulate(&fitted.model, &train.clouds[0], &train.times, dt, sim_sigma(a), a.seed, exec, 150)?;
    phase.finish(&format!("{} steps", sim.steps));
    let mut warnings = fitted.warnings.clone();
    warnings.extend(sim.warnings.iter().cloned());
    let mut record = fitted.record.clone();
    record["seconds"] = json!(fit_seconds);
    record["warnings"] = json!(warnings);
    record["mass"] = json!(train
        .times
        .iter()
        .zip(&train.clouds)
        .zip(&sim.clouds)
        .map(|((t, c), s)| json!({"t": t, "data": c.mass(), "simulated": s.mass()}))
        .collect::<Vec<_>>());
    let name = infer::data_name(&a.data);
    write_folder(&out, Kind::Fit, a.force, |dir| {
        let p = dir.join("model.json");
        std::fs::write(&p, file.to_json() + "\n").map_err(|e| Error::io(&p, e))?;
        let p = dir.join("fit.json");
        let text = serde_json::to_string_pretty(&record).unwrap_or_default();
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))?;
        let (xd, yd, curves) = &fitted.curves;
        plot_curves(
            &dir.join("fit.png"),
            &format!("{name}: {} fit", file.model.kind()),
            xd,
            yd,
            true,
            curves,
        )
        .map_err(plot_err)?;
        plot_trajectories(
            &dir.join("trajectories.png"),
            &format!("{name}: {}", file.model.kind()),
            &fitted.model,
            &train,
            &sim,
            a.colour,
        )
    })?;
    println!(
        "{}: model {}, {} training times, held out [{}], {:.2} s",
        out.display(),
        file.model.kind(),
        train.times.len(),
        held.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
        fit_seconds
    );
    for w in &warnings {
        eprintln!("warning: {}: {}", out.display(), w.message);
    }
    Ok(true)
}

/// `advreact field` (module doc).
pub fn cmd_field(a: &FieldArgs) -> Result<bool, Error> {
    let file = ModelFile::read(&a.model)
        .map_err(|e| DataError::Invalid { file: a.model.clone(), msg: strip(&e, &a.model) })?;
    let model = &file.model;
    let d = model.dim();
    let table = read_snapshot_with(&a.points, &ColumnSpec::default())?;
    if table.dim != d {
        return Err(DataError::Invalid {
            file: a.points.clone(),
            msg: format!(
                "has {} coordinate columns ({}), the model {} is {d}-dimensional",
                table.dim,
                table.coords.join(","),
                a.model.display()
            ),
        }
        .into());
    }
    let times: Vec<f64> = match (&table.time, a.time) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if t.is_finite() => vec![t; table.len()],
        (None, Some(t)) => return Err(cli_err("--time", format!("must be finite, got {t}"))),
        (None, None) => {
            return Err(DataError::Invalid {
                file: a.points.clone(),
                msg: "has no time column; give --time".into(),
            }
            .into())
        }
    };
    let var = matches!(model, Model::VarRuot(_));
    let mut head: Vec<String> = Vec::new();
    if table.id.is_some() {
        head.push("id".into());
    }
    head.extend((1..=d).map(|k| format!("u{k}")));
    head.push("g".into());
    if var {
        head.push("lambda".into());
    }
    let header = head.join(",");
    let mut text = header.clone() + "\n";
    let mut ws = model.workspace();
    let mut u = vec![0.0; d];
    for (i, x) in table.x.chunks_exact(d).enumerate() {
        let (g, lambda) = model.eval(x, times[i], &mut ws, &mut u);
        if !g.is_finite() || u.iter().any(|v| !v.is_finite()) {
            return Err(SimError::NonFinite {
                step: 0,
                quantity: format!("field: velocity or growth at row {} of {}", i + 1, a.points.display()),
                particle: i,
                value: g,
            }
            .into());
        }
        let mut row = String::new();
        if let Some(ids) = &table.id {
            row.push_str(&crate::data::csv_field(&ids[i]));
            row.push(',');
        }
        row.push_str(&crate::format::nums(&u));
        row.push(',');
        crate::format::push_num(&mut row, g);
        if let Some(l) = lambda.filter(|_| var) {
            row.push(',');
            crate::format::push_num(&mut row, l);
        }
        text.push_str(&row);
        text.push('\n');
    }
    match &a.out {
        None => {
            let mut so = std::io::stdout().lock();
            so.write_all(text.as_bytes()).map_err(|e| Error::io(Path::new("<stdout>"), e))?;
        }
        Some(p) => {
            check_file(p, &header, "--out")?;
            let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let tmp = p.with_file_name(format!(".{name}.partial"));
            std::fs::write(&tmp, &text).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
            eprintln!("{}: {} rows", p.display(), table.len());
        }
    }
    Ok(true)
}

/// A model-file error without the file name (the caller's error names it).
fn strip(e: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    e.strip_prefix(&prefix).unwrap_or(e).to_string()
}

/// What `forward --model` reports at one time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardRow {
    /// The data time.
    pub t: f64,
    /// Held out of the model's fit (from its provenance).
    pub held_out: bool,
    /// In the model's training times.
    pub trained: bool,
    /// The metrics against the data at `t` (normalised weights; mass separately).
    pub metrics: infer::Metrics,
}

/// The inputs of `forward --model` besides the data.
#[derive(Debug, Clone)]
pub struct ForwardModelArgs {
    /// The model file.
    pub model: PathBuf,
    /// The output folder.
    pub out: PathBuf,
    /// Replace a folder with foreign files.
    pub force: bool,
    /// Keep at most N cells per time (0: all).
    pub subsample: usize,
    /// Seed of subsampling.
    pub seed: u64,
    /// Column roles of the data.
    pub columns: ColumnSpec,
}

/// `advreact forward DATA.csv --model MODEL` (module doc).
pub fn cmd_forward_model(data: &Path, a: &ForwardModelArgs, exec: &Exec) -> Result<bool, Error> {
    let start = Instant::now();
    Target::check_as(&a.out, Kind::Forward, a.force, "--out")?;
    let file = ModelFile::read(&a.model)
        .map_err(|e| DataError::Invalid { file: a.model.clone(), msg: strip(&e, &a.model) })?;
    let full = infer::load_series(data, &a.columns)?;
    let series = if a.subsample > 0 { full.subsample(a.subsample, a.seed) } else { full };
    let d = file.model.dim();
    if series.clouds[0].dim != d {
        return Err(DataError::Invalid {
            file: data.to_path_buf(),
            msg: format!(
                "is {}-dimensional, the model {} is {d}-dimensional",
                series.clouds[0].dim,
                a.model.display()
            ),
        }
        .into());
    }
    let num = |key: &str, default: f64| -> Result<f64, Error> {
        match file.settings.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| {
                DataError::Invalid {
                    file: a.model.clone(),
                    msg: format!("key `settings.{key}`: must be a finite number ≥ 0, got {v}"),
                }
                .into()
            }),
        }
    };
    let dt = num("dt", DEFAULT_DT)?;
    let sigma = num("sigma", 0.0)?;
    if dt <= 0.0 {
        return Err(DataError::Invalid {
            file: a.model.clone(),
            msg: "key `settings.dt`: must be > 0".into(),
        }
        .into());
    }
    let seed = file.settings.get("params").and_then(|p| p.get("seed")).and_then(Value::as_u64).unwrap_or(0);
    let phase = Phase::start(format!(
        "simulating {} from t = {} through {} times",
        file.model.kind(),
        series.times[0],
        series.times.len()
    ));
    let sim = simulate(&file.model, &series.clouds[0], &series.times, dt, sigma, seed, exec, 0)?;
    phase.finish(&format!("{} steps", sim.steps));
    let mut rows = Vec::new();
    let near = |v: &[f64], t: f64| v.iter().any(|x| (x - t).abs() <= 1e-9 * x.abs().max(1.0));
    for (k, (t, truth)) in series.times.iter().zip(&series.clouds).enumerate() {
        let metrics = infer::evaluate(&sim.clouds[k], truth, None)?;
        rows.push(ForwardRow {
            t: *t,
            held_out: near(&file.data.held_out, *t),
            trained: near(&file.data.times, *t),
            metrics,
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    let name = infer::data_name(data);
    let body = json!({
        "data": data.display().to_string(),
        "model": a.model.display().to_string(),
        "kind": file.model.kind(),
        "dt": dt, "sigma": sigma, "steps": sim.steps, "seconds": seconds,
        "times": rows,
        "warnings": sim.warnings,
        "note": "W1, W2 and MMD between normalised weights; the mass error separately (cells of mass 1)",
    });
    write_folder(&a.out, Kind::Forward, a.force, |dir| {
        let p = dir.join("prediction.csv");
        let mut text = String::from("time");
        for k in 1..=d {
            text.push_str(&format!(",x{k}"));
        }
        text.push_str(",w\n");
        for (t, c) in sim.times.iter().zip(&sim.clouds) {
            for (x, w) in c.x.chunks_exact(d).zip(&c.w) {
                crate::format::push_num(&mut text, *t);
                text.push(',');
                text.push_str(&crate::format::nums(x));
                text.push(',');
                crate::format::push_num(&mut text, *w);
                text.push('\n');
            }
        }
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        let p = dir.join("forward.json");
        let t = serde_json::to_string_pretty(&body).unwrap_or_default();
        std::fs::write(&p, t + "\n").map_err(|e| Error::io(&p, e))?;
        let panels: Vec<Panel> = series
            .times
            .iter()
            .zip(&series.clouds)
            .zip(&sim.clouds)
            .zip(&rows)
            .map(|(((t, truth), pred), r)| {
                let pts = |c: &Cloud| {
                    c.x.chunks_exact(d).map(|x| (x[0], if d > 1 { x[1] } else { 0.0 })).collect::<Vec<_>>()
                };
                let mean_w = pred.mass() / pred.len().max(1) as f64;
                Panel {
                    caption: format!(
                        "t = {t}{}: W1 {:.3}",
                        if r.held_out { " (held out)" } else { "" },
                        r.metrics.w1
                    ),
                    layers: vec![
                        Layer {
                            name: "data".into(),
                            points: pts(truth),
                            colour: Some(Colour::Grey),
                            ..Layer::default()
                        },
                        Layer {
                            name: "prediction".into(),
                            points: pts(pred),
                            radius: pred.w.iter().map(|w| 2.0 * (w / mean_w).sqrt()).collect(),
                            colour: Some(Colour::Series(0)),
                            ..Layer::default()
                        },
                    ],
                }
            })
            .collect();
        let rows_n = panels.len().div_ceil(3) as u32;
        plot_scatter(
            &dir.join("forward.png"),
            &format!("{name}: {} prediction over data", file.model.kind()),
            (1200, 60 + 380 * rows_n),
            &panels,
        )
        .map_err(plot_err)
    })?;
    println!("{}: t,held_out,w1,w2,mmd,mass_pred,mass_true,mass_error", a.out.display());
    for r in &rows {
        let m = &r.metrics;
        println!(
            "{},{},{},{},{},{},{},{}",
            r.t, r.held_out, m.w1, m.w2, m.mmd, m.mass_pred, m.mass_true, m.mass_error
        );
    }
    for w in &sim.warnings {
        eprintln!("warning: {}: {}", a.out.display(), w.message);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-4 test vectors (empty, one block, two blocks).
    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }
}
