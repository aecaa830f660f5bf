//! A learned field (SPEC §6): the velocity and growth of a fitted model
//! ([`crate::learned::model::Model`]), evaluated pointwise at the particles:
//! `u_i = u(x_i, t)`, `g_i = g(x_i, t)` (for Var-RUOT `u = ∇λ`, `αψ'(g) = λ`).
//!
//! A Var-RUOT field can record the jets `(λ, ∇λ, ∂_tλ, Δλ)` it evaluates ([`LearnedField::recording`]):
//! the fit's rollout keeps them for its adjoint instead of evaluating the potential again.

use super::{EvalCtx, Field};
use crate::error::SimError;
use crate::learned::model::Model;
use rayon::prelude::*;

/// Particles per workspace (one workspace per chunk of particles).
const CHUNK: usize = 256;

/// Where a recording [`LearnedField`] appends, at every evaluation, the jet of every particle in
/// order: `λ, ∇λ (d), ∂_tλ, Δλ` (stride `d + 3`).
pub type JetSink = std::sync::Arc<std::sync::Mutex<Vec<f64>>>;

/// A fitted model driving the particles.
#[derive(Debug, Clone)]
pub struct LearnedField {
    /// The model.
    pub model: Model,
    /// The jet record (Var-RUOT models only).
    jets: Option<JetSink>,
}

impl LearnedField {
    /// A field from a checked model.
    pub fn new(model: Model) -> Result<Self, SimError> {
        model.check().map_err(SimError::Invalid)?;
        Ok(Self { model, jets: None })
    }

    /// Record the jets of every evaluation into `sink` (module doc; ignored for a UOT-FM model,
    /// which has no potential).
    pub fn recording(mut self, sink: Option<JetSink>) -> Self {
        self.jets = sink.filter(|_| matches!(self.model, Model::VarRuot(_)));
        self
    }
}

impl Field for LearnedField {
    fn name(&self) -> String {
        format!("learned({})", self.model.kind())
    }

    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        let d = ctx.dim;
        if d != self.model.dim() {
            return Err(SimError::Invalid(format!(
                "learned field: the model is {}-dimensional, the particles {d}-dimensional",
                self.model.dim()
            )));
        }
        let t = ctx.t;
        let record = self.jets.is_some();
        let chunks = velocity
            .par_chunks_mut(CHUNK * d)
            .zip(growth.par_chunks_mut(CHUNK))
            .zip(ctx.x.par_chunks(CHUNK * d));
        let parts = ctx.exec.par.collect(chunks.map(|((u, g), x)| {
            let mut ws = self.model.workspace();
            let mut ui = vec![0.0; d];
            let mut bad = 0usize;
            let mut jets = Vec::with_capacity(if record { g.len() * (d + 3) } else { 0 });
            for ((uo, go), xi) in u.chunks_exact_mut(d).zip(g.iter_mut()).zip(x.chunks_exact(d)) {
                let (gi, _) = self.model.eval(xi, t, &mut ws, &mut ui);
                if !gi.is_finite() || ui.iter().any(|v| !v.is_finite()) {
                    bad += 1;
                }
                uo.iter_mut().zip(&ui).for_each(|(a, b)| *a += b);
                *go += gi;
                if record {
                    let j = ws.jet();
                    jets.push(j.value);
                    jets.extend_from_slice(&j.grad);
                    jets.push(j.dt);
                    jets.push(j.lap);
                }
            }
            (bad, jets)
        }));
        if let Some(sink) = &self.jets {
            let mut all = sink.lock().map_err(|_| {
                SimError::Invalid("learned field: the jet record was poisoned by a failed thread".into())
            })?;
            for (_, j) in &parts {
                all.extend_from_slice(j);
            }
        }
        let bad = parts.iter().map(|(b, _)| b).sum::<usize>();
        if bad > 0 {
            return Err(SimError::Invalid(format!(
                "learned field: step {} (t = {}): non-finite velocity or growth at {bad} particles",
                ctx.step, ctx.t
            )));
        }
        Ok(())
    }
}

/// A field evaluated at a shifted time: `u(x, t₀ + t)`, `g(x, t₀ + t)` where `t` is the
/// simulation's own time (which starts at 0). Runs that start at a snapshot time `t₀ ≠ 0` of a
/// learned model (a scenario's `start_time`, each interval of `advreact forward --model`) use it.
pub struct TimeShifted<F: Field> {
    /// The field.
    pub inner: F,
    /// The model time of the simulation's `t = 0`.
    pub t0: f64,
}

impl<F: Field> Field for TimeShifted<F> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn prepare(&mut self, ctx: &EvalCtx) -> Result<(), SimError> {
        let ctx = EvalCtx { t: ctx.t + self.t0, ..*ctx };
        self.inner.prepare(&ctx)
    }

    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        let ctx = EvalCtx { t: ctx.t + self.t0, ..*ctx };
        self.inner.eval(&ctx, velocity, growth)
    }

    fn diagnostics(&self) -> Vec<(String, crate::format::Diag)> {
        self.inner.diagnostics()
    }
}
