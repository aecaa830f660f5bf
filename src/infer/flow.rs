//! Flow-based interpolation (SPEC §5): run a field from `X0` toward `X1` and stop part of the way.
//!
//! Weights are divided by `M0` (the source has mass 1, the target `M1/M0`) and restored at the
//! end; particles carry their mass in their weights (exact weight ODE, free mass). With
//! `D_k(q) = MMD(q, X_k)` (unnormalised, Gaussian kernel of bandwidth `h` = median distance of
//! `X0 ∪ X1`), the descent is at fraction `φ(q) = D_0(q) / (D_0(q) + D_1(q))` of the way: 0 at
//! the start, 1 at the target. Interpolation at `s` stops at the first step with `φ ≥ s` (for
//! `s = ½`: `MMD to X1 ≤ MMD to X0`, the USD paper's midpoint) and blends positions and
//! log-weights linearly between the two steps around the crossing. Forward prediction runs until
//! `D_1` stops improving (less than `plateau_rel` relative gain over `plateau_window` steps).
//!
//! Fields and their defaults, all relative to the data scale `h`:
//!
//! | method | field | parameters | `dt` |
//! |---|---|---|---|
//! | `usd` | Sobolev–Fisher critic, free mass | `s = 0.5 h`, 256 features, `α = 10⁻³/h²`, ridge `1e-3·M` | 0.2, displacement cap `0.25 s` |
//! | `wfr_mmd` | WFR flow of ½MMD², free | `s = 0.5 h`, `α = 1/s²` | `0.1 s² / max(1, M1/M0)`, cap `0.25 s` |
//! | `wfr_sinkhorn` | WFR flow of the unbalanced Sinkhorn divergence, free | blur `0.1 h` (`ε = 0.01 h²`), reach `h` (`ρ = h²`), `α = 1/ρ` | 0.05 |
//!
//! USD's `α` is small on purpose: with `α h² = 1` the Fisher term teleports mass (the source
//! shrinks while mass appears at the target), so the "midpoint" is a mixture of the two snapshots
//! (W1 0.47 on a translating Gaussian where WOT gets 0.03); `10⁻³` gave the lowest W1 of
//! `{1, 0.1, 0.05, 0.01, 10⁻³}` there and on three_gene t = 2. Even so the critic's gradient is
//! largest at the front of the cloud, which spreads along the path: the USD midpoint is not a
//! displacement interpolant (W1 ≈ 0.25 on the translation test).
//!
//! Guards are reported, never silent: a segment that ends on the step cap (`max_steps`) without
//! reaching its fraction (interpolation) or its plateau (forward), and the displacement cap and
//! growth clipping of the flow's steps (counted by the simulation), become
//! [`Warning`]s in the [`PredictInfo`].
//!
//! The explicit MMD step is stable for `dt ≲ 2 s²/M` (SPEC §2.2); the Sinkhorn flow's velocity is
//! about `x − T(x)` (the barycentric target), so `dt = 0.05` moves 5% of the way per step.

use super::PredictInfo;
use super::{pooled, Method, Warning};
use crate::error::SimError;
use crate::field::sobolev_fisher::{SobolevFisher, SobolevFisherCfg};
use crate::field::wfr::{Energy, Growth, WfrField};
use crate::field::Field;
use crate::metrics::mmd;
use crate::particles::{Cloud, Particles};
use crate::reaction::{Reaction, ReactionKind};
use crate::scenario::median_distance;
use crate::stepper::{Simulation, TimeCfg};
use serde::Serialize;

/// Flow parameters (module doc); lengths relative to the median distance `h`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowParams {
    /// Kernel bandwidth `s / h` (usd, wfr_mmd).
    pub bandwidth_rel: f64,
    /// USD random features.
    pub features: usize,
    /// USD `α h²`.
    pub usd_alpha_rel: f64,
    pub usd_dt: f64,
    /// WFR-MMD `α s²`.
    pub mmd_alpha_rel: f64,
    /// WFR-MMD `dt · max(1, M1/M0) / s²`.
    pub mmd_dt_rel: f64,
    /// WFR-Sinkhorn blur / h and reach / h.
    pub blur_rel: f64,
    pub reach_rel: f64,
    /// WFR-Sinkhorn `α ρ`.
    pub sinkhorn_alpha_rel: f64,
    pub sinkhorn_dt: f64,
    /// Step cap of one segment.
    pub max_steps: usize,
    /// Forward prediction: stop when `MMD to X1` gained less than `plateau_rel` (relative) over
    /// the last `plateau_window` steps.
    pub plateau_window: usize,
    pub plateau_rel: f64,
}

impl Default for FlowParams {
    fn default() -> Self {
        Self {
            bandwidth_rel: 0.5,
            features: 256,
            usd_alpha_rel: 1e-3,
            usd_dt: 0.2,
            mmd_alpha_rel: 1.0,
            mmd_dt_rel: 0.1,
            blur_rel: 0.1,
            reach_rel: 1.0,
            sinkhorn_alpha_rel: 1.0,
            sinkhorn_dt: 0.05,
            max_steps: 1500,
            plateau_window: 20,
            plateau_rel: 0.005,
        }
    }
}

/// A simulation from `x0` toward `x1`, weights divided by `M0`; also the criterion bandwidth.
fn build(
    method: Method,
    x0: &Cloud,
    x1: &Cloud,
    p: &FlowParams,
    seed: u64,
) -> Result<(Simulation, f64), SimError> {
    if x0.dim != x1.dim {
        return Err(SimError::Invalid(format!("flow: dimensions differ ({} vs {})", x0.dim, x1.dim)));
    }
    let m0 = x0.mass();
    let src = x0.clone().with_mass(1.0);
    let tgt = x1.clone().with_mass(x1.mass() / m0);
    let h = median_distance(&pooled(x0, x1));
    let mmax = tgt.mass().max(1.0);
    let s = p.bandwidth_rel * h;
    let (field, dt, cap): (Box<dyn Field>, f64, Option<f64>) = match method {
        Method::Usd => {
            let cfg = SobolevFisherCfg {
                features: p.features,
                bandwidth: s,
                alpha: p.usd_alpha_rel / (h * h),
                ridge: 1e-3,
                conserve: false,
                resolve_every: 1,
            };
            (Box::new(SobolevFisher::new(cfg, x0.dim, &tgt, seed)?), p.usd_dt, Some(0.25 * s))
        }
        Method::WfrMmd => (
            Box::new(WfrField::new(Energy::Mmd { bandwidth: s }, Growth::Free, p.mmd_alpha_rel / (s * s))?),
            p.mmd_dt_rel * s * s / mmax,
            Some(0.25 * s),
        ),
        Method::WfrSinkhorn => {
            let eps = (p.blur_rel * h).powi(2);
            let rho = (p.reach_rel * h).powi(2);
            (
                Box::new(WfrField::new(
                    Energy::Sinkhorn { eps, rho: Some(rho) },
                    Growth::Free,
                    p.sinkhorn_alpha_rel / rho,
                )?),
                p.sinkhorn_dt,
                None,
            )
        }
        Method::Wot => return Err(SimError::Invalid("flow: wot is not a flow".into())),
    };
    let reaction = Reaction { kind: ReactionKind::Weights, conserve: false, ..Reaction::default() };
    let time = TimeCfg { dt, steps: p.max_steps, noise: 0.0, max_displacement: cap };
    Ok((Simulation::new(Particles::from_cloud(&src), tgt, field, reaction, time, seed), h))
}

fn mmd_to(q: &Particles, w: &[f64], c: &Cloud, h: f64) -> f64 {
    mmd(q.dim, &q.x, w, &c.x, &c.w, h)
}

/// Interpolation at fraction `s` (module doc).
pub fn interpolate(
    method: Method,
    x0: &Cloud,
    x1: &Cloud,
    s: f64,
    p: &FlowParams,
    seed: u64,
) -> Result<(Cloud, PredictInfo), SimError> {
    let (mut sim, h) = build(method, x0, x1, p, seed)?;
    let src = x0.clone().with_mass(1.0);
    let m0 = x0.mass();
    let mut prev = (sim.particles.x.clone(), sim.particles.logw.clone(), 0.0f64);
    let mut info = PredictInfo::default();
    for step in 1..=p.max_steps {
        sim.step()?;
        let w = sim.particles.weights();
        let d0 = mmd_to(&sim.particles, &w, &src, h);
        let d1 = mmd_to(&sim.particles, &w, &sim.target, h);
        let frac = if d0 + d1 > 0.0 { d0 / (d0 + d1) } else { 1.0 };
        if frac >= s {
            let theta = if frac > prev.2 { ((s - prev.2) / (frac - prev.2)).clamp(0.0, 1.0) } else { 1.0 };
            let x: Vec<f64> = prev.0.iter().zip(&sim.particles.x).map(|(a, b)| a + theta * (b - a)).collect();
            let w: Vec<f64> = prev
                .1
                .iter()
                .zip(&sim.particles.logw)
                .map(|(a, b)| (a + theta * (b - a)).exp() * m0)
                .collect();
            info.diag([
                ("steps", step as f64),
                ("crossing_fraction", theta),
                ("mmd_to_x0", d0),
                ("mmd_to_x1", d1),
            ]);
            info.diagnostics.extend(sim.field.diagnostics());
            info.warnings = guard_warnings(method, &sim);
            return Ok((Cloud::new_unchecked(x0.dim, x, w), info));
        }
        prev = (sim.particles.x.clone(), sim.particles.logw.clone(), frac);
    }
    info.warnings = guard_warnings(method, &sim);
    info.warnings.push(Warning::new(
        "max_steps",
        p.max_steps as u64,
        None,
        format!(
            "{method}: the flow did not reach fraction {s} of the way in {} steps (reached {:.3}); returning the last state",
            p.max_steps, prev.2
        ),
    ));
    info.diag([("steps", p.max_steps as f64), ("fraction_reached", prev.2)]);
    let w: Vec<f64> = sim.particles.weights().iter().map(|w| w * m0).collect();
    Ok((Cloud::new_unchecked(x0.dim, sim.particles.x.clone(), w), info))
}

/// Run from `cur` toward `target` until `MMD to target` plateaus; the final particles (mass in
/// their weights, original units).
pub fn push_forward(
    method: Method,
    cur: &Cloud,
    target: &Cloud,
    p: &FlowParams,
    seed: u64,
) -> Result<(Cloud, PredictInfo), SimError> {
    let (mut sim, h) = build(method, cur, target, p, seed)?;
    let m0 = cur.mass();
    let mut hist = Vec::new();
    let (mut steps, mut plateau) = (0, false);
    for step in 1..=p.max_steps {
        sim.step()?;
        steps = step;
        let w = sim.particles.weights();
        let d1 = mmd_to(&sim.particles, &w, &sim.target, h);
        hist.push(d1);
        let k = p.plateau_window;
        if hist.len() > k {
            let old = hist[hist.len() - 1 - k];
            if old - d1 < p.plateau_rel * old {
                plateau = true;
                break;
            }
        }
    }
    let w: Vec<f64> = sim.particles.weights().iter().map(|w| w * m0).collect();
    let mut info = PredictInfo::default();
    info.diag([("steps", steps as f64), ("mmd_to_target", hist.last().copied().unwrap_or(f64::NAN))]);
    info.diag([("plateau", plateau)]);
    info.warnings = guard_warnings(method, &sim);
    if !plateau {
        info.warnings.push(Warning::new(
            "max_steps",
            p.max_steps as u64,
            None,
            format!(
                "{method}: the MMD to the target was still improving after the cap of {} steps (--max-steps); returning the last state",
                p.max_steps
            ),
        ));
    }
    Ok((Cloud::new_unchecked(cur.dim, sim.particles.x.clone(), w), info))
}

/// The flow's guard interventions (displacement cap, growth clipping) as warnings.
fn guard_warnings(method: Method, sim: &Simulation) -> Vec<Warning> {
    let ws = sim.guards.warnings(&sim.reaction, &sim.time);
    ws.into_iter().map(|w| Warning { message: format!("{method} flow: {}", w.message), ..w }).collect()
}
