//! The only time loop (SPEC §1, Lie splitting): [`Simulation::run_until`] (simulations, flows, forward prediction and the Var-RUOT fit's rollouts all run on it). Per step `dt`, with
//! `u_i = u(x_i, t)` and `g_i = g(x_i, t)` evaluated at the start of the step:
//!
//! 1. advection (Euler–Maruyama): `x_i ← x_i + u_i dt + σ √dt ξ_i`, `ξ_i ~ N(0, I_d)`;
//! 2. reaction (see [`crate::reaction`]);
//! 3. `t ← t + dt`; guard (no NaN/Inf in positions, weights or field output); observe; stop.
//!
//! Stopping is owned by one check after each step (argmin's `terminate`): the step cap
//! `time.steps`, extinction, the guards, an interrupt, and a [`StopRule`] — the caller's own
//! criterion, which sees the step, time, particles and weights and keeps its own state; it ends
//! the run with [`StopReason::Converged`]. [`Simulation::run`] uses [`AllSteps`] (every step).
//! The flows of [`crate::infer`] (interpolation to a fraction of the way, forward prediction to a
//! plateau) are stop rules on this loop. The one other caller of a step is a benchmark timing
//! single steps (`benches/core.rs` calls [`Simulation::step`]).
//!
//! Guards that change the dynamics — growth clipping (`reaction.max_growth_step`), the
//! displacement cap (`time.max_displacement`), the population cap (`reaction.max_particles`) —
//! are counted in [`GuardCounts`] (kept in the simulation, so [`Simulation::step`] counts too)
//! with their effect, and reported as [`Warning`]s in the [`Summary`]. With
//! [`Simulation::strict`] the first step in which a guard intervenes is the last one: the run
//! stops with [`StopReason::Guard`]. The population cap is checked before a step moves anything,
//! so a run it stops holds the whole state of its last step. Whatever the stop, the final metrics are taken at the stop
//! step (and reported to the observers, so `metrics.csv` has that row), except after an
//! interrupt (the resumed run reports them) or when the state is not finite.
//!
//! The stepper knows no concrete field, metric or observer: they are trait objects. Noise for
//! particle chunk `c` at step `k` comes from stream `(seed, Noise, k, c)`, so a run gives the same
//! numbers for any thread count.

use crate::dist::Exec;
use crate::error::{Error, SimError};
use crate::field::{EvalCtx, Field};
use crate::metrics::{Metric, MetricCtx};
use crate::observe::{Observer, StepRecord};
use crate::particles::{Cloud, Particles};
use crate::reaction::{Reaction, ReactionEvents};
use crate::rng::{self, Purpose, CHUNK};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Time stepping parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeCfg {
    /// Step `dt`.
    pub dt: f64,
    /// Step cap.
    pub steps: usize,
    /// Noise amplitude `σ` of `dX = u dt + σ dW`.
    pub noise: f64,
    /// Optional cap on `|u dt|` per step (reported when active).
    pub max_displacement: Option<f64>,
}

/// Why a run stopped. Displayed as in JSON (`non_finite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All steps done.
    Completed,
    /// No particle left, or a total mass below the smallest double.
    Extinct,
    /// A NaN or infinity appeared (the error names step, quantity and particle).
    NonFinite,
    /// A guard limit was hit (population cap, ...).
    Limit,
    /// Strict mode: a guard (growth clipping, displacement cap) changed the dynamics.
    Guard,
    /// A numerical routine failed (e.g. a factorisation).
    Numerical,
    /// Stopped from outside (Ctrl-C).
    Interrupted,
    /// The run's [`StopRule`] stopped it before the step cap.
    Converged,
}

impl StopReason {
    /// The reason a run stopped with this error.
    fn of(e: &SimError) -> Self {
        match e {
            SimError::NonFinite { .. } => StopReason::NonFinite,
            SimError::Limit { .. } => StopReason::Limit,
            _ => StopReason::Numerical,
        }
    }
}

/// The state a [`StopRule`] sees: before the first step ([`StopRule::start`]) and after each
/// step ([`StopRule::stop`]).
#[derive(Clone, Copy)]
pub struct StepView<'a> {
    /// Steps done (1 after the first step).
    pub step: usize,
    /// Time reached, `step · dt`.
    pub t: f64,
    /// The particles.
    pub particles: &'a Particles,
    /// Their weights `w_i = exp(log w_i)`.
    pub weights: &'a [f64],
    /// The target measure (empty when there is none).
    pub target: &'a Cloud,
    /// The field (for its diagnostics).
    pub field: &'a dyn Field,
    /// Guard counts so far.
    pub guards: &'a GuardCounts,
}

/// When a run stops before its step cap (argmin's `terminate`): a convergence test, a plateau,
/// a crossing. It may keep state between steps (the previous state, a history).
pub trait StopRule {
    /// Called once before the first step of [`Simulation::run_until`] with the state it starts
    /// from (after a resume, the resumed state).
    fn start(&mut self, _state: &StepView) -> Result<(), SimError> {
        Ok(())
    }
    /// Called after every step that leaves particles with a positive total mass (not after a
    /// step a guard stops); `true` ends the run with [`StopReason::Converged`]. An error ends it
    /// like a failed step (stop reason from the error, the error in the summary).
    fn stop(&mut self, state: &StepView) -> Result<bool, SimError>;
}

/// The default rule: never stop early, run all `time.steps` steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllSteps;

impl StopRule for AllSteps {
    fn stop(&mut self, _state: &StepView) -> Result<bool, SimError> {
        Ok(false)
    }
}

/// A closure `|state| -> bool` is a stop rule (no start hook, never fails).
impl<F: FnMut(&StepView) -> bool> StopRule for F {
    fn stop(&mut self, state: &StepView) -> Result<bool, SimError> {
        Ok(self(state))
    }
}

impl std::fmt::Display for StopReason {
    /// The serde name (`non_finite`), so the console reads like `summary.json`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// Wall-clock seconds per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// In the field (prepare and evaluate).
    pub field: f64,
    /// In advection.
    pub advect: f64,
    /// In the reaction.
    pub react: f64,
    /// In metrics and observers.
    pub observe: f64,
    /// The whole run.
    pub total: f64,
}

/// Counts of guard activations over the run, with their effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct GuardCounts {
    /// Particle-steps whose `|g dt|` was clipped.
    pub growth_clipped: u64,
    /// Log total mass removed by growth clipping: the sum over steps of
    /// `log Σ w e^{g dt} − log Σ w e^{clip(g dt)}` (weights before the step's reaction), i.e. the
    /// log of the factor by which clipping shrank the total mass (negative: it added mass). Exact
    /// for the free `weights` reaction (the run's log total mass without clipping minus with);
    /// for birth–death it is the expected change; with `conserve` the mass is renormalised
    /// afterwards and this is the growth the clipping removed before that.
    pub growth_log_mass_removed: f64,
    /// Particle-steps whose displacement was capped.
    pub displacement_capped: u64,
    /// Total length of advection removed by the cap: `Σ (|u dt| − cap)` over capped
    /// particle-steps.
    pub displacement_removed: f64,
    /// Resampling events.
    pub resamplings: u64,
    /// Particles born and dead over the run.
    pub births: u64,
    /// Particles dead over the run.
    pub deaths: u64,
}

/// A guard that changed a result: which guard, how often, by how much.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// `growth_clipped`, `displacement_capped`, `population_cap`, `max_steps`, `not_converged`, ...
    pub guard: String,
    /// Interventions (particle-steps, steps or events).
    pub count: u64,
    /// The effect in the unit the message names (log-mass removed for growth clipping, length
    /// removed for the displacement cap), if it is measured.
    pub effect: Option<f64>,
    /// One line saying what happened and what it changed.
    pub message: String,
}

impl Warning {
    /// A warning of `guard` with `count` interventions, `effect` and its message.
    pub fn new(guard: &str, count: u64, effect: Option<f64>, message: impl Into<String>) -> Self {
        Self { guard: guard.into(), count, effect, message: message.into() }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.guard, self.message)
    }
}

impl GuardCounts {
    /// The interventions so far as warnings (empty when no guard changed the dynamics).
    pub fn warnings(&self, reaction: &Reaction, time: &TimeCfg) -> Vec<Warning> {
        let mut out = Vec::new();
        if self.growth_clipped > 0 {
            let r = self.growth_log_mass_removed;
            out.push(Warning::new(
                "growth_clipped",
                self.growth_clipped,
                Some(r),
                format!(
                    "|g dt| clipped to reaction.max_growth_step = {} in {} particle-steps; log total mass removed {} (the total mass is e^{} times the unclipped one)",
                    reaction.max_growth_step, self.growth_clipped, crate::format::num(r), crate::format::num(-r)
                ),
            ));
        }
        if self.displacement_capped > 0 {
            let cap = time.max_displacement.unwrap_or(f64::INFINITY);
            out.push(Warning::new(
                "displacement_capped",
                self.displacement_capped,
                Some(self.displacement_removed),
                format!(
                    "|u dt| capped to time.max_displacement = {cap} in {} particle-steps; advection length removed {}",
                    self.displacement_capped,
                    crate::format::num(self.displacement_removed)
                ),
            ));
        }
        out
    }
}

/// What a run returns.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Steps done.
    pub steps: usize,
    /// Time reached.
    pub t: f64,
    /// Why the run stopped.
    pub stop_reason: StopReason,
    /// The error that stopped the run, if any (its message in `summary.json`).
    #[serde(serialize_with = "error_text")]
    pub error: Option<SimError>,
    /// Particles at the end.
    pub n: usize,
    /// Total mass at the end.
    pub mass: f64,
    /// The metrics at step `metrics_step` (name → value in JSON).
    #[serde(serialize_with = "crate::format::pairs_as_map")]
    pub final_metrics: Vec<(String, f64)>,
    /// The step `final_metrics` were taken at: `steps`, unless the state at the stop could not be
    /// measured (non-finite, extinct) or the run was interrupted.
    pub metrics_step: usize,
    /// Guard counts over the run.
    pub guards: GuardCounts,
    /// Every guard that changed the dynamics (see [`Warning`]); also printed on stderr.
    pub warnings: Vec<Warning>,
    /// Seconds per phase.
    pub timings: Timings,
}

/// `summary.json` holds the error's one-line message (or `null`).
fn error_text<S: serde::Serializer>(e: &Option<SimError>, s: S) -> Result<S::Ok, S::Error> {
    e.as_ref().map(ToString::to_string).serialize(s)
}

/// A configured simulation: particles, target, field, reaction, time, metrics.
pub struct Simulation {
    /// The particles.
    pub particles: Particles,
    /// The target measure (empty when there is none).
    pub target: Cloud,
    /// The field.
    pub field: Box<dyn Field>,
    /// The reaction.
    pub reaction: Reaction,
    /// Time stepping.
    pub time: TimeCfg,
    /// Seed of every random stream.
    pub seed: u64,
    /// Metrics reported every `report_every` steps.
    pub metrics: Vec<Box<dyn Metric>>,
    /// Report metrics every `report_every` steps (and at the start and the end).
    pub report_every: usize,
    /// Ask observers to checkpoint every `checkpoint_every` steps (0: never).
    pub checkpoint_every: usize,
    /// Set from outside (Ctrl-C handler) to stop after the current step.
    pub interrupt: Arc<AtomicBool>,
    /// Steps already done (non-zero after a resume).
    pub step: usize,
    /// Guard counts so far (carried over by a resume).
    pub guards: GuardCounts,
    /// The latest reported metrics (carried over by a resume).
    pub last_metrics: Vec<(String, f64)>,
    /// The step `last_metrics` were taken at.
    pub last_metrics_step: usize,
    /// Stop with [`StopReason::Guard`] after the first step in which a guard intervened.
    pub strict: bool,
    /// Where the field's and the metrics' row passes run (ranks, parallelism): handed to them in
    /// [`EvalCtx::exec`] and [`MetricCtx::exec`]. Default one process on the rayon pool; the MPI
    /// dispatcher sets it once per run.
    pub exec: Exec,
}

/// Checks a slice for NaN/Inf; returns the first offending index and value.
fn first_non_finite(v: &[f64]) -> Option<(usize, f64)> {
    v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i]))
}

fn guard(step: usize, quantity: &str, v: &[f64], per: usize) -> Result<(), SimError> {
    match first_non_finite(v) {
        Some((i, value)) => {
            Err(SimError::NonFinite { step, quantity: quantity.to_string(), particle: i / per.max(1), value })
        }
        None => Ok(()),
    }
}

impl Simulation {
    /// A simulation with no metrics, reporting every step, never checkpointing.
    pub fn new(
        particles: Particles,
        target: Cloud,
        field: Box<dyn Field>,
        reaction: Reaction,
        time: TimeCfg,
        seed: u64,
    ) -> Self {
        Self {
            particles,
            target,
            field,
            reaction,
            time,
            seed,
            metrics: Vec::new(),
            report_every: 1,
            checkpoint_every: 0,
            interrupt: Arc::new(AtomicBool::new(false)),
            step: 0,
            guards: GuardCounts::default(),
            last_metrics: Vec::new(),
            last_metrics_step: 0,
            strict: false,
            exec: Exec::default(),
        }
    }

    /// Column names of the metrics, in order.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().flat_map(|m| m.names(self.particles.dim)).collect()
    }

    fn compute_metrics(&self, w: &[f64]) -> Result<Vec<(String, f64)>, SimError> {
        let p = &self.particles;
        let ctx = MetricCtx {
            dim: p.dim,
            x: &p.x,
            w,
            mass: w.iter().sum(),
            ess: p.ess(),
            target: &self.target,
            exec: &self.exec,
        };
        let mut out = Vec::new();
        for m in &self.metrics {
            let names = m.names(p.dim);
            let vals = m.compute(&ctx)?;
            out.extend(names.into_iter().zip(vals));
        }
        if let Some((name, v)) = out.iter().find(|(_, v)| !v.is_finite()) {
            return Err(SimError::NonFinite {
                step: self.step,
                quantity: format!("metric {name}"),
                particle: 0,
                value: *v,
            });
        }
        Ok(out)
    }

    /// Advect: `x ← x + u dt (capped) + σ √dt ξ`. Returns the number of capped displacements and
    /// the length they lost.
    fn advect(&mut self, velocity: &[f64]) -> (u64, f64) {
        let d = self.particles.dim;
        let dt = self.time.dt;
        let amp = self.time.noise * dt.sqrt();
        let cap = self.time.max_displacement;
        let (seed, step) = (self.seed, self.step as u64);
        let chunks =
            self.particles.x.par_chunks_mut(CHUNK * d).zip(velocity.par_chunks(CHUNK * d)).enumerate();
        self.exec
            .par
            .collect(chunks.map(|(c, (x, u))| {
                let mut r = rng::stream(seed, Purpose::Noise, step, c as u64);
                let (mut capped, mut removed) = (0u64, 0.0f64);
                for (xi, ui) in x.chunks_exact_mut(d).zip(u.chunks_exact(d)) {
                    let mut scale = dt;
                    if let Some(cap) = cap {
                        let norm = ui.iter().map(|v| v * v).sum::<f64>().sqrt() * dt;
                        if norm > cap {
                            scale = dt * cap / norm;
                            capped += 1;
                            removed += norm - cap;
                        }
                    }
                    for (xk, uk) in xi.iter_mut().zip(ui) {
                        *xk += uk * scale;
                        if amp != 0.0 {
                            let xi: f64 = StandardNormal.sample(&mut r);
                            *xk += amp * xi;
                        }
                    }
                }
                (capped, removed)
            }))
            .into_iter()
            .fold((0, 0.0), |(c, r), (a, b)| (c + a, r + b))
    }

    /// Run all `time.steps` steps (or to a stop): [`Simulation::run_until`] with [`AllSteps`].
    pub fn run(&mut self, observers: &mut [Box<dyn Observer>]) -> Result<Summary, Error> {
        self.run_until(observers, &mut AllSteps)
    }

    /// The time loop: step until `time.steps` steps are done or `rule` (or a guard, extinction,
    /// an error, an interrupt) stops the run, feeding the observers. Observer I/O errors abort the
    /// run (returned as `Err`); numerical stops are reported in the summary's
    /// `stop_reason`/`error`. A simulation resumed at `step > 0` continues without re-reporting
    /// the earlier steps.
    pub fn run_until(
        &mut self,
        observers: &mut [Box<dyn Observer>],
        rule: &mut dyn StopRule,
    ) -> Result<Summary, Error> {
        let start = Instant::now();
        let mut timings = Timings::default();
        let mut w = Vec::new();
        self.particles.weights_into(&mut w);
        let names = self.metric_names();
        for o in observers.iter_mut() {
            o.on_start(&names, &self.particles)?;
        }
        let mut stop = StopReason::Completed;
        let mut error: Option<SimError> = None;
        let mut events = ReactionEvents::default();
        if self.step == 0 {
            // Report the initial state.
            let t0 = Instant::now();
            match self.compute_metrics(&w) {
                Ok(m) => {
                    self.last_metrics = m;
                    self.last_metrics_step = 0;
                    let rec = self.record(true, false, false, &events);
                    for o in observers.iter_mut() {
                        o.on_step(&rec)?;
                    }
                }
                Err(e) => {
                    stop = StopReason::NonFinite;
                    error = Some(e);
                }
            }
            timings.observe += t0.elapsed().as_secs_f64();
        }
        if error.is_none() {
            if let Err(e) = rule.start(&self.view(&w)) {
                stop = StopReason::of(&e);
                error = Some(e);
            }
        }
        let mut velocity = vec![0.0; self.particles.x.len()];
        let mut growth = vec![0.0; self.particles.len()];
        while error.is_none() && self.step < self.time.steps {
            if self.interrupt.load(Ordering::SeqCst) {
                stop = StopReason::Interrupted;
                break;
            }
            let before = (self.guards.growth_clipped, self.guards.displacement_capped);
            match self.one_step(&mut w, &mut velocity, &mut growth, &mut timings) {
                Ok(ev) => events = ev,
                Err(e) => {
                    stop = StopReason::of(&e);
                    error = Some(e);
                    break;
                }
            }
            // Extinct: no particle, or a total mass that underflows f64 (no field can use it).
            let extinct = self.particles.is_empty() || w.iter().sum::<f64>() == 0.0;
            let report = !extinct
                && (self.step.is_multiple_of(self.report_every.max(1)) || self.step == self.time.steps);
            let t0 = Instant::now();
            let strict_stop =
                self.strict && before != (self.guards.growth_clipped, self.guards.displacement_capped);
            let report = report || (strict_stop && !extinct);
            if report {
                match self.compute_metrics(&w) {
                    Ok(m) => {
                        self.last_metrics = m;
                        self.last_metrics_step = self.step;
                    }
                    Err(e) => {
                        stop = StopReason::NonFinite;
                        error = Some(e);
                        break;
                    }
                }
            }
            let checkpoint = !extinct
                && self.checkpoint_every > 0
                && self.step.is_multiple_of(self.checkpoint_every)
                && self.step < self.time.steps;
            let rec = self.record(report, checkpoint && !strict_stop, false, &events);
            for o in observers.iter_mut() {
                o.on_step(&rec)?;
            }
            timings.observe += t0.elapsed().as_secs_f64();
            if extinct {
                stop = StopReason::Extinct;
                break;
            }
            if strict_stop {
                stop = StopReason::Guard;
                let what = self.guards.warnings(&self.reaction, &self.time);
                let what: Vec<String> = what.iter().map(|w| w.to_string()).collect();
                error = Some(SimError::Limit {
                    step: self.step - 1,
                    what: format!("strict: a guard changed the dynamics: {}", what.join("; ")),
                });
                break;
            }
            match rule.stop(&self.view(&w)) {
                Ok(false) => {}
                Ok(true) => {
                    stop = StopReason::Converged;
                    break;
                }
                Err(e) => {
                    stop = StopReason::of(&e);
                    error = Some(e);
                    break;
                }
            }
        }
        let t0 = Instant::now();
        let measurable =
            !matches!(stop, StopReason::NonFinite | StopReason::Interrupted | StopReason::Extinct)
                && !self.particles.is_empty();
        if measurable && self.last_metrics_step != self.step {
            // The truth at the stop (a population cap, ...): one more metrics row, at the stop step.
            self.particles.weights_into(&mut w);
            if let Ok(m) = self.compute_metrics(&w) {
                self.last_metrics = m;
                self.last_metrics_step = self.step;
                let none = ReactionEvents::default();
                let rec = self.record(true, false, true, &none);
                for o in observers.iter_mut() {
                    o.on_step(&rec)?;
                }
            }
        }
        timings.observe += t0.elapsed().as_secs_f64();
        if stop == StopReason::Interrupted {
            // Leave a checkpoint to resume from.
            let rec = self.record(false, true, true, &events);
            for o in observers.iter_mut() {
                o.on_step(&rec)?;
            }
        }
        timings.total = start.elapsed().as_secs_f64();
        let mut warnings = self.guards.warnings(&self.reaction, &self.time);
        if let (StopReason::Limit, Some(e)) = (stop, &error) {
            warnings.push(Warning::new("population_cap", 1, None, format!("the run stopped early: {e}")));
        }
        let summary = Summary {
            steps: self.step,
            t: self.step as f64 * self.time.dt,
            stop_reason: stop,
            error,
            n: self.particles.len(),
            mass: self.particles.mass(),
            final_metrics: self.last_metrics.clone(),
            metrics_step: self.last_metrics_step,
            guards: self.guards.clone(),
            warnings,
            timings,
        };
        for o in observers.iter_mut() {
            o.on_finish(&summary, &self.particles)?;
        }
        Ok(summary)
    }

    /// What a stop rule sees now (`w`: the current weights).
    fn view<'a>(&'a self, w: &'a [f64]) -> StepView<'a> {
        StepView {
            step: self.step,
            t: self.step as f64 * self.time.dt,
            particles: &self.particles,
            weights: w,
            target: &self.target,
            field: self.field.as_ref(),
            guards: &self.guards,
        }
    }

    fn record<'a>(
        &'a self,
        reported: bool,
        checkpoint: bool,
        stale: bool,
        events: &'a ReactionEvents,
    ) -> StepRecord<'a> {
        StepRecord {
            step: self.step,
            t: self.step as f64 * self.time.dt,
            particles: &self.particles,
            metrics: &self.last_metrics,
            reported,
            checkpoint,
            stale,
            events,
            guards: &self.guards,
            field: self.field.as_ref(),
        }
    }

    /// Advance one step outside the time loop (a benchmark timing single steps):
    /// field, advection, reaction and guards, without observers or metrics. Guard counts add up
    /// in [`Simulation::guards`]; strict mode is not applied (the caller checks the counts).
    pub fn step(&mut self) -> Result<ReactionEvents, SimError> {
        let mut w = self.particles.weights();
        let (mut velocity, mut growth) = (Vec::new(), Vec::new());
        self.one_step(&mut w, &mut velocity, &mut growth, &mut Timings::default())
    }

    /// One step: field, advection, reaction, guards. `w` holds the weights on entry and exit.
    fn one_step(
        &mut self,
        w: &mut Vec<f64>,
        velocity: &mut Vec<f64>,
        growth: &mut Vec<f64>,
        timings: &mut Timings,
    ) -> Result<ReactionEvents, SimError> {
        let d = self.particles.dim;
        let n = self.particles.len();
        let step = self.step;
        let t = step as f64 * self.time.dt;
        velocity.clear();
        velocity.resize(n * d, 0.0);
        growth.clear();
        growth.resize(n, 0.0);
        let t0 = Instant::now();
        {
            let ctx = EvalCtx {
                step,
                t,
                dim: d,
                x: &self.particles.x,
                w,
                mass: w.iter().sum(),
                target: &self.target,
                exec: &self.exec,
            };
            self.field.prepare(&ctx)?;
            self.field.eval(&ctx, velocity, growth)?;
        }
        guard(step, "velocity", velocity, d)?;
        guard(step, "growth", growth, 1)?;
        self.reaction.check_population(self.exec.par, n, growth, self.time.dt, self.seed, step)?;
        timings.field += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (capped, removed) = self.advect(velocity);
        self.guards.displacement_capped += capped;
        self.guards.displacement_removed += removed;
        guard(step, "position", &self.particles.x, d)?;
        timings.advect += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let ev =
            self.reaction.apply(self.exec.par, &mut self.particles, growth, self.time.dt, self.seed, step)?;
        if let Some(i) = self.particles.logw.iter().position(|l| l.is_nan() || *l == f64::INFINITY) {
            return Err(SimError::NonFinite {
                step,
                quantity: "weight".into(),
                particle: i,
                value: self.particles.logw[i].exp(),
            });
        }
        self.particles.weights_into(w);
        if let Some((i, v)) = first_non_finite(w) {
            return Err(SimError::NonFinite { step, quantity: "weight".into(), particle: i, value: v });
        }
        let g = &mut self.guards;
        g.growth_clipped += ev.clipped as u64;
        g.growth_log_mass_removed += ev.clipped_log_mass;
        g.resamplings += u64::from(ev.resampled);
        g.births += ev.births.len() as u64;
        g.deaths += ev.deaths.len() as u64;
        timings.react += t0.elapsed().as_secs_f64();
        self.step += 1;
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::OrnsteinUhlenbeck;

    /// Ten particles at 0 pulled toward 1 by `u = −(x − 1)`, no noise, `dt = 0.1`: after `k`
    /// steps every particle is at `1 − 0.9^k`.
    fn ou_sim(steps: usize) -> Simulation {
        let field = Box::new(OrnsteinUhlenbeck { theta: 1.0, mean: vec![1.0] });
        let time = TimeCfg { dt: 0.1, steps, noise: 0.0, max_displacement: None };
        let src = Cloud::uniform_unchecked(1, vec![0.0; 10], 1.0);
        let target = Cloud::new_unchecked(1, vec![], vec![]);
        Simulation::new(Particles::from_cloud(&src), target, field, Reaction::default(), time, 3)
    }

    /// A rule with state: sees the start, then every step in order, and stops the run at the
    /// first step with `x ≥ ½`, i.e. `0.9^k ≤ ½`, `k = 7` (of a cap of 50).
    #[test]
    fn a_stop_rule_ends_the_run_converged_at_its_step() {
        struct Half {
            seen: Vec<(usize, f64)>,
        }
        impl StopRule for Half {
            fn start(&mut self, st: &StepView) -> Result<(), SimError> {
                self.seen.push((st.step, st.t));
                Ok(())
            }
            fn stop(&mut self, st: &StepView) -> Result<bool, SimError> {
                self.seen.push((st.step, st.t));
                Ok(st.particles.x[0] >= 0.5)
            }
        }
        let mut sim = ou_sim(50);
        let mut rule = Half { seen: Vec::new() };
        let s = sim.run_until(&mut [], &mut rule).unwrap();
        assert_eq!((s.stop_reason, s.steps, s.metrics_step), (StopReason::Converged, 7, 7));
        assert!(s.error.is_none());
        assert!((s.t - 0.7).abs() < 1e-12);
        let steps: Vec<usize> = rule.seen.iter().map(|p| p.0).collect();
        assert_eq!(steps, (0..=7).collect::<Vec<_>>());
        assert!((sim.particles.x[0] - (1.0 - 0.9f64.powi(7))).abs() < 1e-12);
        assert_eq!(serde_json::to_value(s.stop_reason).unwrap(), "converged");
        // The same run under the default rule goes to the cap; a closure is a rule too.
        assert_eq!(ou_sim(50).run(&mut []).unwrap().stop_reason, StopReason::Completed);
        let s = ou_sim(50).run_until(&mut [], &mut |st: &StepView| st.t >= 0.25).unwrap();
        assert_eq!((s.stop_reason, s.steps), (StopReason::Converged, 3));
        // A rule that never fires leaves the cap in charge.
        let s = ou_sim(4).run_until(&mut [], &mut |st: &StepView| st.particles.x[0] >= 0.5).unwrap();
        assert_eq!((s.stop_reason, s.steps), (StopReason::Completed, 4));
    }

    /// A rule that fails stops the run like a failed step; the summary holds the typed error, and
    /// `summary.json` its one-line message, as before the error was typed.
    #[test]
    fn a_failing_rule_is_a_typed_error_written_as_text() {
        struct Fails;
        impl StopRule for Fails {
            fn stop(&mut self, st: &StepView) -> Result<bool, SimError> {
                Err(SimError::Numerical { step: st.step, what: "no".into() })
            }
        }
        let s = ou_sim(5).run_until(&mut [], &mut Fails).unwrap();
        assert_eq!((s.stop_reason, s.steps), (StopReason::Numerical, 1));
        assert_eq!(s.error, Some(SimError::Numerical { step: 1, what: "no".into() }));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["error"], "step 1: no");
        assert_eq!(json["stop_reason"], "numerical");
        let ok = serde_json::to_value(ou_sim(1).run(&mut []).unwrap()).unwrap();
        assert!(ok["error"].is_null());
    }
}
