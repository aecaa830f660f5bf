//! Fields: the velocity `u(x, t)` and growth rate `g(x, t)` that drive the particles
//! (SPEC §1–2): `dX = u dt + σ dW`, `dw = g w dt`.
//!
//! A field is anything implementing [`Field`]; the stepper only knows this trait. A sum of fields
//! is a field ([`SumField`]): velocities and growth rates add.

pub mod analytic;
pub mod learned;
pub mod map;
pub mod sobolev_fisher;
pub mod state;
pub mod wfr;

pub use state::FieldState;

use crate::dist::Exec;
use crate::error::SimError;
use crate::format::Diag;
use crate::particles::Cloud;
use rayon::prelude::*;

/// What a field sees when it is fitted and evaluated: the current particles and the target.
#[derive(Debug, Clone, Copy)]
pub struct EvalCtx<'a> {
    /// Step index (0 for the first step).
    pub step: usize,
    /// Time at the start of the step.
    pub t: f64,
    /// Dimension `d`.
    pub dim: usize,
    /// Particle positions, particle-contiguous (n·d).
    pub x: &'a [f64],
    /// Particle weights `w_i` (not normalised).
    pub w: &'a [f64],
    /// Total mass `Σ w_i`.
    pub mass: f64,
    /// The target measure `ν = Σ b_j δ_{y_j}` (empty when the scenario has none).
    pub target: &'a Cloud,
    /// Where the field's row passes run (ranks, parallelism): the simulation's context, to be
    /// handed to every kernel sum or solve the field makes. Every rank evaluates the same field.
    pub exec: &'a Exec,
}

impl EvalCtx<'_> {
    /// Number of particles.
    pub fn n(&self) -> usize {
        self.w.len()
    }
}

/// A velocity and growth field.
pub trait Field: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> String;
    /// Once per step, before [`Field::eval`]: fit to the current particles (e.g. solve a critic).
    fn prepare(&mut self, _ctx: &EvalCtx) -> Result<(), SimError> {
        Ok(())
    }
    /// Add `u(x_i, t)` into `velocity` (n·d) and `g(x_i, t)` into `growth` (n).
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError>;
    /// Per-field diagnostics for the last prepare (name, value), reported in metrics.
    fn diagnostics(&self) -> Vec<(String, Diag)> {
        Vec::new()
    }
    /// State carried from step to step that a checkpoint must save (warm starts, cached
    /// critics): restoring it with [`Field::restore_state`] must reproduce the run exactly.
    fn save_state(&self) -> FieldState {
        FieldState::None
    }
    /// Restore what [`Field::save_state`] returned; a state of another field type is an error.
    fn restore_state(&mut self, state: FieldState) -> Result<(), SimError> {
        match state {
            FieldState::None => Ok(()),
            other => Err(foreign_state(&self.name(), &other)),
        }
    }
}

/// The error of restoring a state saved by another kind of field.
pub(crate) fn foreign_state(field: &str, state: &FieldState) -> SimError {
    SimError::Invalid(format!("field {field} cannot restore a saved {} state", state.kind()))
}

/// `Σ_k F_k`: velocities and growth rates add.
pub struct SumField {
    /// The fields summed.
    pub terms: Vec<Box<dyn Field>>,
}

impl Field for SumField {
    fn name(&self) -> String {
        let names: Vec<String> = self.terms.iter().map(|f| f.name()).collect();
        format!("sum({})", names.join(" + "))
    }
    fn prepare(&mut self, ctx: &EvalCtx) -> Result<(), SimError> {
        self.terms.iter_mut().try_for_each(|f| f.prepare(ctx))
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        self.terms.iter().try_for_each(|f| f.eval(ctx, velocity, growth))
    }
    fn diagnostics(&self) -> Vec<(String, Diag)> {
        self.terms.iter().flat_map(|f| f.diagnostics()).collect()
    }
    /// The terms' states, in order.
    fn save_state(&self) -> FieldState {
        FieldState::Sum(state::SumState(self.terms.iter().map(|f| f.save_state()).collect()))
    }
    /// Each term's state ([`FieldState::None`]: every term's is none).
    fn restore_state(&mut self, state: FieldState) -> Result<(), SimError> {
        let states = match state {
            FieldState::None => vec![FieldState::None; self.terms.len()],
            FieldState::Sum(s) if s.0.len() == self.terms.len() => s.0,
            FieldState::Sum(s) => {
                return Err(SimError::Invalid(format!(
                    "sum field: saved state has {} terms, the field {}",
                    s.0.len(),
                    self.terms.len()
                )))
            }
            other => return Err(foreign_state(&self.name(), &other)),
        };
        self.terms.iter_mut().zip(states).try_for_each(|(f, s)| f.restore_state(s))
    }
}

/// Evaluate a pointwise field: `f(x_i, u_i, g_i)` adds into the particle's velocity slice and
/// growth rate, chunks of particles run with the context's parallelism (`ctx.exec.par`).
pub fn eval_pointwise(
    ctx: &EvalCtx,
    velocity: &mut [f64],
    growth: &mut [f64],
    f: impl Fn(&[f64], &mut [f64], &mut f64) + Sync,
) {
    let d = ctx.dim;
    ctx.exec.par.for_each(
        velocity.par_chunks_mut(d * 256).zip(growth.par_chunks_mut(256)).zip(ctx.x.par_chunks(d * 256)),
        |((u, g), x)| {
            for ((ui, gi), xi) in u.chunks_exact_mut(d).zip(g.iter_mut()).zip(x.chunks_exact(d)) {
                f(xi, ui, gi);
            }
        },
    );
}
