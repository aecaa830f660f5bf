//! The only time loop (SPEC §1, Lie splitting). Per step `dt`, with `u_i = u(x_i, t)` and
//! `g_i = g(x_i, t)` evaluated at the start of the step:
//!
//! 1. advection (Euler–Maruyama): `x_i ← x_i + u_i dt + σ √dt ξ_i`, `ξ_i ~ N(0, I_d)`;
//! 2. reaction (see [`crate::reaction`]);
//! 3. `t ← t + dt`; guard (no NaN/Inf in positions, weights or field output); observe; stop.
//!
//! The stepper knows no concrete field, metric or observer: they are trait objects. Noise for
//! particle chunk `c` at step `k` comes from stream `(seed, Noise, k, c)`, so a run gives the same
//! numbers for any thread count.

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
    pub dt: f64,
    pub steps: usize,
    /// Noise amplitude `σ` of `dX = u dt + σ dW`.
    pub noise: f64,
    /// Optional cap on `|u dt|` per step (reported when active).
    pub max_displacement: Option<f64>,
}

/// Why a run stopped.
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
    /// A numerical routine failed (e.g. a factorisation).
    Numerical,
    /// Stopped from outside (Ctrl-C).
    Interrupted,
}

/// Wall-clock seconds per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub field: f64,
    pub advect: f64,
    pub react: f64,
    pub observe: f64,
    pub total: f64,
}

/// Counts of guard activations over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct GuardCounts {
    /// Particle-steps whose `|g dt|` was clipped.
    pub growth_clipped: u64,
    /// Particle-steps whose displacement was capped.
    pub displacement_capped: u64,
    /// Resampling events.
    pub resamplings: u64,
    /// Particles born and dead over the run.
    pub births: u64,
    pub deaths: u64,
}

/// What a run returns.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub steps: usize,
    pub t: f64,
    pub stop_reason: StopReason,
    /// The error that stopped the run, if any.
    pub error: Option<String>,
    pub n: usize,
    pub mass: f64,
    /// The last reported metrics (name, value).
    pub final_metrics: Vec<(String, f64)>,
    pub guards: GuardCounts,
    pub timings: Timings,
}

/// A configured simulation: particles, target, field, reaction, time, metrics.
pub struct Simulation {
    pub particles: Particles,
    pub target: Cloud,
    pub field: Box<dyn Field>,
    pub reaction: Reaction,
    pub time: TimeCfg,
    pub seed: u64,
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
        }
    }

    /// Column names of the metrics, in order.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().flat_map(|m| m.names(self.particles.dim)).collect()
    }

    fn compute_metrics(&self, w: &[f64]) -> Result<Vec<(String, f64)>, SimError> {
        let p = &self.particles;
        let ctx =
            MetricCtx { dim: p.dim, x: &p.x, w, mass: w.iter().sum(), ess: p.ess(), target: &self.target };
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

    /// Advect: `x ← x + u dt (capped) + σ √dt ξ`. Returns the number of capped displacements.
    fn advect(&mut self, velocity: &[f64]) -> u64 {
        let d = self.particles.dim;
        let dt = self.time.dt;
        let amp = self.time.noise * dt.sqrt();
        let cap = self.time.max_displacement;
        let (seed, step) = (self.seed, self.step as u64);
        self.particles
            .x
            .par_chunks_mut(CHUNK * d)
            .zip(velocity.par_chunks(CHUNK * d))
            .enumerate()
            .map(|(c, (x, u))| {
                let mut r = rng::stream(seed, Purpose::Noise, step, c as u64);
                let mut capped = 0u64;
                for (xi, ui) in x.chunks_exact_mut(d).zip(u.chunks_exact(d)) {
                    let mut scale = dt;
                    if let Some(cap) = cap {
                        let norm = ui.iter().map(|v| v * v).sum::<f64>().sqrt() * dt;
                        if norm > cap {
                            scale = dt * cap / norm;
                            capped += 1;
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
                capped
            })
            .sum()
    }

    /// Run to the end (or to a stop), feeding the observers. Observer I/O errors abort the run
    /// (returned as `Err`); numerical stops are reported in the summary's `stop_reason`/`error`.
    /// A simulation resumed at `step > 0` continues without re-reporting the earlier steps.
    pub fn run(&mut self, observers: &mut [Box<dyn Observer>]) -> Result<Summary, Error> {
        let start = Instant::now();
        let mut timings = Timings::default();
        let mut guards = std::mem::take(&mut self.guards);
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
                    let rec = self.record(true, false, false, &events, &guards);
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
        let mut velocity = vec![0.0; self.particles.x.len()];
        let mut growth = vec![0.0; self.particles.len()];
        while error.is_none() && self.step < self.time.steps {
            if self.interrupt.load(Ordering::SeqCst) {
                stop = StopReason::Interrupted;
                break;
            }
            match self.one_step(&mut w, &mut velocity, &mut growth, &mut timings, &mut guards) {
                Ok(ev) => events = ev,
                Err(e) => {
                    stop = match e {
                        SimError::NonFinite { .. } => StopReason::NonFinite,
                        SimError::Limit { .. } => StopReason::Limit,
                        _ => StopReason::Numerical,
                    };
                    error = Some(e);
                    break;
                }
            }
            // Extinct: no particle, or a total mass that underflows f64 (no field can use it).
            let extinct = self.particles.is_empty() || w.iter().sum::<f64>() == 0.0;
            let report = !extinct
                && (self.step.is_multiple_of(self.report_every.max(1)) || self.step == self.time.steps);
            let t0 = Instant::now();
            if report {
                match self.compute_metrics(&w) {
                    Ok(m) => self.last_metrics = m,
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
            let rec = self.record(report, checkpoint, false, &events, &guards);
            for o in observers.iter_mut() {
                o.on_step(&rec)?;
            }
            timings.observe += t0.elapsed().as_secs_f64();
            if extinct {
                stop = StopReason::Extinct;
                break;
            }
        }
        if stop == StopReason::Interrupted {
            // Leave a checkpoint to resume from.
            let rec = self.record(false, true, true, &events, &guards);
            for o in observers.iter_mut() {
                o.on_step(&rec)?;
            }
        }
        timings.total = start.elapsed().as_secs_f64();
        let summary = Summary {
            steps: self.step,
            t: self.step as f64 * self.time.dt,
            stop_reason: stop,
            error: error.map(|e| e.to_string()),
            n: self.particles.len(),
            mass: self.particles.mass(),
            final_metrics: self.last_metrics.clone(),
            guards: guards.clone(),
            timings,
        };
        self.guards = guards;
        for o in observers.iter_mut() {
            o.on_finish(&summary, &self.particles)?;
        }
        Ok(summary)
    }

    fn record<'a>(
        &'a self,
        reported: bool,
        checkpoint: bool,
        stale: bool,
        events: &'a ReactionEvents,
        guards: &'a GuardCounts,
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
            guards,
            field: self.field.as_ref(),
        }
    }

    /// Advance one step outside [`Simulation::run`] (benchmarks, embedding in another loop):
    /// field, advection, reaction and guards, without observers or metrics.
    pub fn step(&mut self) -> Result<ReactionEvents, SimError> {
        let mut w = self.particles.weights();
        let (mut velocity, mut growth) = (Vec::new(), Vec::new());
        let (mut timings, mut guards) = (Timings::default(), GuardCounts::default());
        self.one_step(&mut w, &mut velocity, &mut growth, &mut timings, &mut guards)
    }

    /// One step: field, advection, reaction, guards. `w` holds the weights on entry and exit.
    fn one_step(
        &mut self,
        w: &mut Vec<f64>,
        velocity: &mut Vec<f64>,
        growth: &mut Vec<f64>,
        timings: &mut Timings,
        guards: &mut GuardCounts,
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
            };
            self.field.prepare(&ctx)?;
            self.field.eval(&ctx, velocity, growth)?;
        }
        guard(step, "velocity", velocity, d)?;
        guard(step, "growth", growth, 1)?;
        timings.field += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        guards.displacement_capped += self.advect(velocity);
        guard(step, "position", &self.particles.x, d)?;
        timings.advect += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let ev = self.reaction.apply(&mut self.particles, growth, self.time.dt, self.seed, step)?;
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
        guards.growth_clipped += ev.clipped as u64;
        guards.resamplings += u64::from(ev.resampled);
        guards.births += ev.births.len() as u64;
        guards.deaths += ev.deaths.len() as u64;
        timings.react += t0.elapsed().as_secs_f64();
        self.step += 1;
        Ok(ev)
    }
}
