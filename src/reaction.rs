//! Reaction step (SPEC §1.2): how growth rates `g_i` change the weights or the population over one
//! step `dt`.
//!
//! - `None`: nothing.
//! - `Weights` — the exact solution of `dw = g w dt`: `log w_i ← log w_i + g_i dt` (free mass);
//!   conserving: `log w_i ← log w_i + (g_i − ḡ) dt` with `ḡ = Σ w g / M`, then a shift of all
//!   log-weights so that `M` is unchanged. Optional systematic resampling when the effective sample
//!   size `(Σw)²/Σw²` falls below a fraction of `n`.
//! - `BirthDeath` — branching: particle `i` becomes `K_i = ⌊e^{g_i dt}⌋ + Bernoulli(frac(e^{g_i dt}))`
//!   copies (`E K_i = e^{g_i dt}`, least variance); copies keep position and weight, get new ids
//!   and record their parent. Conserving: one systematic resampling of `n` particles with
//!   probabilities `∝ w_i e^{g_i dt}`, all of weight `M/n` (same law as branch-then-resample, less
//!   noise, bounded memory).
//!
//! Guards: `|g dt|` is clipped to `max_growth_step` (counted, with the log total mass the clipping
//! removed: `log Σ w e^{g dt} − log Σ w e^{clip(g dt)}` over the weights before the step); the
//! population is capped at `max_particles` (a clear error, never an allocation of 10^15 clones).

use crate::dist::Par;
use crate::error::SimError;
use crate::particles::{log_sum_exp, Particles};
use crate::rng::{self, Purpose, CHUNK};
use rand::Rng;
use rayon::prelude::*;

/// Which reaction (the scenario's `reaction.type`: `none`, `weights`, `birth_death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    /// No reaction.
    #[default]
    None,
    /// Exact weight update `log w ← log w + g dt`.
    Weights,
    /// Branching: copies and deaths.
    BirthDeath,
}

/// A reaction step with its guards.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    /// Which reaction.
    pub kind: ReactionKind,
    /// Keep the total mass (and, for birth–death, the count) fixed.
    pub conserve: bool,
    /// Bound on `|g_i dt|` per step.
    pub max_growth_step: f64,
    /// Population cap for birth–death.
    pub max_particles: usize,
    /// For `Weights`: resample (systematic) when `ESS < resample_ess · n`; 0 disables.
    pub resample_ess: f64,
}

impl Default for Reaction {
    fn default() -> Self {
        Self {
            kind: ReactionKind::None,
            conserve: false,
            max_growth_step: 1.0,
            max_particles: 10_000_000,
            resample_ess: 0.0,
        }
    }
}

/// What one reaction step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReactionEvents {
    /// Particles whose `|g dt|` was clipped.
    pub clipped: usize,
    /// `log Σ w e^{g dt} − log Σ w e^{clip(g dt)}`: the log total mass clipping removed (0 when
    /// nothing was clipped).
    pub clipped_log_mass: f64,
    /// Whether a resampling happened.
    pub resampled: bool,
    /// `(child id, parent id)` of every particle created.
    pub births: Vec<(u64, u64)>,
    /// Ids of every particle removed.
    pub deaths: Vec<u64>,
}

impl Reaction {
    /// Apply one reaction step with growth rates `g` (one per particle); the per-chunk draws of
    /// free branching run with `par` (same bits either way).
    pub fn apply(
        &self,
        par: Par,
        p: &mut Particles,
        g: &[f64],
        dt: f64,
        seed: u64,
        step: usize,
    ) -> Result<ReactionEvents, SimError> {
        let mut ev = ReactionEvents::default();
        if self.kind == ReactionKind::None || p.is_empty() {
            return Ok(ev);
        }
        let cap = self.max_growth_step;
        let gdt = self.clipped_steps(g, dt);
        ev.clipped = g.iter().filter(|&&gi| (gi * dt).abs() > cap).count();
        if ev.clipped > 0 {
            let with = |v: &[f64]| log_sum_exp(&p.logw.iter().zip(v).map(|(l, v)| l + v).collect::<Vec<_>>());
            let raw: Vec<f64> = g.iter().map(|gi| gi * dt).collect();
            ev.clipped_log_mass = with(&raw) - with(&gdt);
        }
        match (self.kind, self.conserve) {
            (ReactionKind::None, _) => {}
            (ReactionKind::Weights, false) => {
                p.logw.iter_mut().zip(&gdt).for_each(|(l, v)| *l += v);
            }
            (ReactionKind::Weights, true) => {
                let lm = p.log_mass();
                let w = p.weights();
                let gbar = w.iter().zip(&gdt).map(|(a, b)| a * b).sum::<f64>() / lm.exp();
                let gbar = if gbar.is_finite() { gbar } else { 0.0 };
                p.logw.iter_mut().zip(&gdt).for_each(|(l, v)| *l += v - gbar);
                let shift = lm - p.log_mass();
                p.logw.iter_mut().for_each(|l| *l += shift);
            }
            (ReactionKind::BirthDeath, false) => self.branch(par, p, &gdt, seed, step, &mut ev)?,
            (ReactionKind::BirthDeath, true) => {
                let lp: Vec<f64> = p.logw.iter().zip(&gdt).map(|(l, v)| l + v).collect();
                let n = p.len();
                let lm = p.log_mass();
                systematic_resample(p, &lp, n, lm, seed, step, &mut ev);
                ev.resampled = true;
            }
        }
        if self.kind == ReactionKind::Weights && self.resample_ess > 0.0 {
            let n = p.len();
            if p.ess() < self.resample_ess * n as f64 {
                let lp = p.logw.clone();
                let lm = p.log_mass();
                systematic_resample(p, &lp, n, lm, seed, step, &mut ev);
                ev.resampled = true;
            }
        }
        Ok(ev)
    }

    /// `g dt`, clipped to `±max_growth_step`.
    fn clipped_steps(&self, g: &[f64], dt: f64) -> Vec<f64> {
        let cap = self.max_growth_step;
        g.iter()
            .map(|&gi| {
                let v = gi * dt;
                if v.abs() > cap {
                    v.signum() * cap
                } else {
                    v
                }
            })
            .collect()
    }

    /// The population cap, checked before the step moves anything (the stepper calls it before
    /// advection): the error the free birth–death reaction of this step would stop with, so a run
    /// stopped by the cap stands whole at the previous step. Same draws as [`Reaction::apply`]
    /// (run with `par`).
    pub fn check_population(
        &self,
        par: Par,
        n: usize,
        g: &[f64],
        dt: f64,
        seed: u64,
        step: usize,
    ) -> Result<(), SimError> {
        if self.kind == ReactionKind::BirthDeath && !self.conserve && n > 0 {
            self.branch_counts(par, &self.clipped_steps(g, dt), seed, step)?;
        }
        Ok(())
    }

    /// `K_i` for free branching; an error if their total exceeds `max_particles`.
    fn branch_counts(&self, par: Par, gdt: &[f64], seed: u64, step: usize) -> Result<Vec<u32>, SimError> {
        let chunks = par.collect(gdt.par_chunks(CHUNK).enumerate().map(|(c, chunk)| {
            let mut r = rng::stream(seed, Purpose::Branching, step as u64, c as u64);
            chunk
                .iter()
                .map(|v| {
                    let e = v.exp();
                    let k = e.floor();
                    let u: f64 = r.random();
                    (k as u32) + u32::from(u < e - k)
                })
                .collect::<Vec<_>>()
        }));
        let counts: Vec<u32> = chunks.concat();
        let total: usize = counts.iter().map(|&k| k as usize).sum();
        if total > self.max_particles {
            return Err(SimError::Limit {
                step,
                what: format!(
                    "birth_death: population would grow to {total} particles, above reaction.max_particles = {}",
                    self.max_particles
                ),
            });
        }
        Ok(counts)
    }

    /// Free-mass branching: `K_i = ⌊e^{g dt}⌋ + Bernoulli(frac)` copies of particle `i`.
    fn branch(
        &self,
        par: Par,
        p: &mut Particles,
        gdt: &[f64],
        seed: u64,
        step: usize,
        ev: &mut ReactionEvents,
    ) -> Result<(), SimError> {
        let counts = self.branch_counts(par, gdt, seed, step)?;
        let total: usize = counts.iter().map(|&k| k as usize).sum();
        let mut src = Vec::with_capacity(total);
        for (i, &k) in counts.iter().enumerate() {
            if k == 0 {
                ev.deaths.push(p.id[i]);
            }
            src.extend(std::iter::repeat_n(i, k as usize));
        }
        let logw: Vec<f64> = src.iter().map(|&i| p.logw[i]).collect();
        let first_new = p.next_id;
        p.resample_from(&src, logw);
        ev.births
            .extend(p.id.iter().zip(&p.parent).filter(|(id, _)| **id >= first_new).map(|(a, b)| (*a, *b)));
        Ok(())
    }
}

/// Systematic resampling of `n` particles with probabilities `∝ exp(lp_i)`; every survivor gets
/// weight `exp(log_mass)/n`. One uniform draw from stream `(seed, Branching, step, 0)`.
pub fn systematic_resample(
    p: &mut Particles,
    lp: &[f64],
    n: usize,
    log_mass: f64,
    seed: u64,
    step: usize,
    ev: &mut ReactionEvents,
) {
    let lz = log_sum_exp(lp);
    let mut r = rng::stream(seed, Purpose::Branching, step as u64, u64::MAX);
    let u0: f64 = r.random();
    let mut src = Vec::with_capacity(n);
    let mut cum = 0.0;
    let mut i = 0;
    let m = lp.len();
    for k in 0..n {
        let target = (u0 + k as f64) / n as f64;
        while i < m {
            let next = cum + (lp[i] - lz).exp();
            if target < next || i == m - 1 {
                break;
            }
            cum = next;
            i += 1;
        }
        src.push(i);
    }
    let mut kept = vec![false; m];
    src.iter().for_each(|&i| kept[i] = true);
    ev.deaths.extend((0..m).filter(|&i| !kept[i]).map(|i| p.id[i]));
    let first_new = p.next_id;
    let lw = log_mass - (n as f64).ln();
    p.resample_from(&src, vec![lw; n]);
    ev.births.extend(p.id.iter().zip(&p.parent).filter(|(id, _)| **id >= first_new).map(|(a, b)| (*a, *b)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::particles::Cloud;

    fn cloud(n: usize) -> Particles {
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        Particles::from_cloud(&Cloud::uniform_unchecked(1, x, 1.0))
    }

    #[test]
    fn systematic_resampling_keeps_count_and_mass() {
        let mut p = cloud(100);
        let g: Vec<f64> = (0..100).map(|i| (i as f64 / 30.0).sin()).collect();
        let r = Reaction { kind: ReactionKind::BirthDeath, conserve: true, ..Default::default() };
        let ev = r.apply(Par::Rayon, &mut p, &g, 0.5, 3, 0).unwrap();
        assert_eq!(p.len(), 100);
        assert!((p.mass() - 1.0).abs() < 1e-13);
        assert_eq!(ev.births.len(), ev.deaths.len());
    }

    #[test]
    fn clipping_is_counted() {
        let mut p = cloud(4);
        let r = Reaction { kind: ReactionKind::Weights, max_growth_step: 0.5, ..Default::default() };
        let ev = r.apply(Par::Rayon, &mut p, &[10.0, -10.0, 0.1, 0.0], 1.0, 0, 0).unwrap();
        assert_eq!(ev.clipped, 2);
        assert!((p.logw[0] - (0.25f64.ln() + 0.5)).abs() < 1e-15);
        assert!((p.logw[1] - (0.25f64.ln() - 0.5)).abs() < 1e-15);
    }
}
