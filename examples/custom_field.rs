//! A field written by a user: a rotation `u(x) = ω (−x₂, x₁)` with a constant growth rate
//! `g(x) = r`, simulated without noise and checked against its closed form.
//!
//! - Mass: the weight ODE `dw = g w dt` is integrated exactly (`w ← w e^{g dt}`), so the total
//!   mass is `M(t) = M(0) e^{r t}` at every step.
//! - Positions: an Euler step multiplies `x` by `I + ω dt J` (`J` the rotation by 90°), which
//!   scales the radius by `√(1 + ω² dt²)` and turns by `atan(ω dt)`: after `k` steps the radius is
//!   `ρ₀ (1 + ω² dt²)^{k/2}` and the angle `θ₀ + k atan(ω dt)`.
//!
//! Exits with status 1 if either check fails. Run: `cargo run --release --example custom_field`.

use advreact::field::eval_pointwise;
use advreact::prelude::*;
use std::process::ExitCode;

/// `u(x) = ω (−x₂, x₁)`, `g(x) = r` (2-D).
struct RotationWithGrowth {
    omega: f64,
    rate: f64,
}

impl Field for RotationWithGrowth {
    fn name(&self) -> String {
        "rotation_with_growth".into()
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        if ctx.dim != 2 {
            return Err(SimError::Invalid(format!("rotation_with_growth: needs d = 2, got {}", ctx.dim)));
        }
        // A field adds its contribution (fields can be summed).
        eval_pointwise(ctx, velocity, growth, |x, u, g| {
            u[0] -= self.omega * x[1];
            u[1] += self.omega * x[0];
            *g += self.rate;
        });
        Ok(())
    }
}

fn main() -> Result<ExitCode, Error> {
    let (omega, rate, dt, steps) = (2.0, 0.3, 0.01, 200);
    // Eight points on the unit circle, total mass 1.
    let x: Vec<f64> = (0..8)
        .flat_map(|k| {
            let a = k as f64 * std::f64::consts::FRAC_PI_4;
            [a.cos(), a.sin()]
        })
        .collect();
    let source = Cloud::uniform(2, x, 1.0)?;
    let no_target = Cloud::new(2, vec![], vec![])?;
    let reaction = Reaction { kind: ReactionKind::Weights, ..Reaction::default() };
    let time = TimeCfg { dt, steps, noise: 0.0, max_displacement: None };
    let field = Box::new(RotationWithGrowth { omega, rate });
    let mut sim = Simulation::new(Particles::from_cloud(&source), no_target, field, reaction, time, 0);
    let summary = sim.run(&mut [])?;
    println!(
        "{}: stop reason {}, {} steps, t = {}",
        sim.field.name(),
        summary.stop_reason,
        summary.steps,
        summary.t
    );

    let t = dt * steps as f64;
    let mass_exact = (rate * t).exp();
    let mass_err = (summary.mass - mass_exact).abs() / mass_exact;
    println!("mass: {} (closed form e^(r t) = {mass_exact}, relative error {mass_err:.1e})", summary.mass);

    let radius = (1.0 + (omega * dt).powi(2)).powf(steps as f64 / 2.0);
    let turn = steps as f64 * (omega * dt).atan();
    let mut pos_err: f64 = 0.0;
    for (k, p) in sim.particles.x.chunks_exact(2).enumerate() {
        let a = k as f64 * std::f64::consts::FRAC_PI_4 + turn;
        pos_err = pos_err.max((p[0] - radius * a.cos()).abs()).max((p[1] - radius * a.sin()).abs());
    }
    println!("positions: largest deviation from the Euler closed form {pos_err:.1e} (radius {radius})");

    let ok = summary.stop_reason == StopReason::Completed && mass_err < 1e-12 && pos_err < 1e-10;
    println!("{}", if ok { "check passed" } else { "CHECK FAILED" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
