//! A transport map as a field (SPEC §7, `[field] type = "map"`): the constant-speed displacement
//! interpolation of a fitted map `T` ([`crate::maps::MapModel`], `advreact map`'s `map.json`, or
//! fitted from the scenario's source to its target when the scenario is built).
//!
//! Every particle travels the straight line from where it starts, at constant speed over the
//! duration `D`:
//!
//! ```text
//! x_i(t) = x_i(0) + min(t/D, 1) Δ_i,   Δ_i = T(x_i(0)) − x_i(0),
//! u_i(t) = Δ_i / D  for t < D,   u_i = 0 after,   g = 0.
//! ```
//!
//! The field is Lagrangian: `Δ_i` is computed once, at the first step, from the positions the
//! particles have then, and particle `i` keeps it (with noise `σ > 0` the particles diffuse
//! around their lines). An Eulerian form `u(x, t) = Δ(x₀)/D` with `x = x₀ + s Δ(x₀)` needs the
//! pre-image `x₀`, which for a map with a steep region (a cloud split between two modes) is
//! ill-conditioned as `s → 1`; following the particles avoids it and is exact: without noise,
//! after `D/dt` steps (`D` a multiple of `dt`, checked when the scenario is built) every particle
//! sits at `T(x_i(0))` up to rounding, whatever `dt`. A population that changes size
//! (birth–death) is refused at the step it happens, naming it: the map moves the particles it
//! started with. A checkpoint saves the `Δ_i` ([`super::state::FieldState::Map`]).

use super::state::FieldState;
use super::{foreign_state, EvalCtx, Field};
use crate::error::SimError;
use crate::format::Diag;
use crate::maps::{default_delta, Displacement, MapModel};
use crate::particles::Cloud;

/// A map driving the particles along its displacement interpolation.
#[derive(Debug, Clone)]
pub struct MapField {
    /// The map `T`.
    pub model: MapModel,
    /// The duration `D > 0` of the interpolation.
    pub duration: f64,
    /// `Δ_i` of the particles at the first step (particle-contiguous), once computed.
    displacement: Option<Vec<f64>>,
    /// The mean displacement dimensionality of the `Δ_i` at the threshold `δ` (SPEC §7,
    /// [`crate::maps::default_delta`] of the first positions), and `δ`.
    dims: Option<(f64, f64)>,
}

impl MapField {
    /// A field from a map and a duration `D` (finite, `> 0`).
    pub fn new(model: MapModel, duration: f64) -> Result<Self, SimError> {
        if !(duration.is_finite() && duration > 0.0) {
            return Err(SimError::Invalid(format!(
                "map field: duration must be finite and > 0, got {duration}"
            )));
        }
        Ok(Self { model, duration, displacement: None, dims: None })
    }
}

impl Field for MapField {
    fn name(&self) -> String {
        "map".into()
    }

    /// At the first step: `Δ_i = T(x_i) − x_i`.
    fn prepare(&mut self, ctx: &EvalCtx) -> Result<(), SimError> {
        if self.displacement.is_some() {
            return Ok(());
        }
        let d = ctx.dim;
        if d != self.model.dim() {
            return Err(SimError::Invalid(format!(
                "map field: the map is {}-dimensional, the particles {d}-dimensional",
                self.model.dim()
            )));
        }
        let t = self.model.apply(ctx.x, ctx.exec)?;
        let delta: Vec<f64> = t.iter().zip(ctx.x).map(|(t, x)| t - x).collect();
        if let Some(i) = delta.iter().position(|v| !v.is_finite()) {
            return Err(SimError::NonFinite {
                step: ctx.step,
                quantity: "map displacement".into(),
                particle: i / d.max(1),
                value: delta[i],
            });
        }
        let cloud = Cloud::uniform(d, ctx.x.to_vec(), 1.0)
            .map_err(|e| SimError::Invalid(format!("map field: {e}")))?;
        let delta_thr = default_delta(&cloud);
        self.dims = Some((Displacement::of(d, ctx.x, &t, delta_thr).mean_dims(), delta_thr));
        self.displacement = Some(delta);
        Ok(())
    }

    /// `map_mean_dims`: the mean number of coordinates a particle's displacement moves by more
    /// than `map_delta` (SPEC §7).
    fn diagnostics(&self) -> Vec<(String, Diag)> {
        self.dims.map_or_else(Vec::new, |(m, delta)| {
            vec![("map_mean_dims".into(), Diag::from(m)), ("map_delta".into(), Diag::from(delta))]
        })
    }

    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], _growth: &mut [f64]) -> Result<(), SimError> {
        if ctx.t >= self.duration {
            return Ok(());
        }
        let delta = self
            .displacement
            .as_ref()
            .ok_or_else(|| SimError::Invalid("map field: evaluated before its first prepare".into()))?;
        if delta.len() != ctx.x.len() {
            return Err(SimError::Invalid(format!(
                "map field: step {}: the population changed from {} to {} particles; a map moves the \
                 particles it started with (use reaction type none or weights)",
                ctx.step,
                delta.len() / ctx.dim.max(1),
                ctx.n()
            )));
        }
        let inv = 1.0 / self.duration;
        velocity.iter_mut().zip(delta).for_each(|(u, d)| *u += d * inv);
        Ok(())
    }

    fn save_state(&self) -> FieldState {
        self.displacement.clone().map_or(FieldState::None, FieldState::Map)
    }

    fn restore_state(&mut self, state: FieldState) -> Result<(), SimError> {
        match state {
            FieldState::None => {
                self.displacement = None;
                Ok(())
            }
            FieldState::Map(v) => {
                self.displacement = Some(v);
                Ok(())
            }
            other => Err(foreign_state(&self.name(), &other)),
        }
    }
}
