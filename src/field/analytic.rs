//! Analytic fields (SPEC §2.3), the ground truths of the test suite:
//!
//! - Ornstein–Uhlenbeck drift `u(x) = −θ (x − m)`;
//! - constant growth `g(x) = r`; affine growth `g(x) = r + a·x`;
//! - gradient flows `u = −∇V` of a quadratic `V(x) = ½ κ |x − c|²` and of a double well
//!   `V(x) = h ((x₁² − a²)/a²)² + ½ κ Σ_{k≥2} x_k²` (minima at `x₁ = ±a`, barrier height `h`):
//!   `−∂V/∂x₁ = −4 h x₁ (x₁² − a²)/a⁴`, `−∂V/∂x_k = −κ x_k`.

use super::{eval_pointwise, EvalCtx, Field};
use crate::error::SimError;

/// Ornstein–Uhlenbeck drift `u(x) = −θ (x − m)`.
#[derive(Debug, Clone)]
pub struct OrnsteinUhlenbeck {
    /// Rate `θ ≥ 0`.
    pub theta: f64,
    /// Mean `m`.
    pub mean: Vec<f64>,
}

impl Field for OrnsteinUhlenbeck {
    fn name(&self) -> String {
        "ou".into()
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        eval_pointwise(ctx, velocity, growth, |x, u, _| {
            for ((uk, xk), mk) in u.iter_mut().zip(x).zip(&self.mean) {
                *uk -= self.theta * (xk - mk);
            }
        });
        Ok(())
    }
}

/// Affine growth `g(x) = r + a·x` (constant growth when `a = 0`).
#[derive(Debug, Clone)]
pub struct AffineGrowth {
    /// Constant part `c`.
    pub rate: f64,
    /// Slope `a` (one per coordinate).
    pub slope: Vec<f64>,
}

impl Field for AffineGrowth {
    fn name(&self) -> String {
        if self.slope.iter().all(|&a| a == 0.0) {
            "constant_growth".into()
        } else {
            "affine_growth".into()
        }
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        eval_pointwise(ctx, velocity, growth, |x, _, g| {
            *g += self.rate + x.iter().zip(&self.slope).map(|(a, b)| a * b).sum::<f64>();
        });
        Ok(())
    }
}

/// Gradient flow `u = −∇V` of `V(x) = ½ κ |x − c|²`.
#[derive(Debug, Clone)]
pub struct QuadraticPotential {
    /// Stiffness `k ≥ 0`.
    pub stiffness: f64,
    /// Centre `c`.
    pub center: Vec<f64>,
}

impl Field for QuadraticPotential {
    fn name(&self) -> String {
        "quadratic_potential".into()
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        eval_pointwise(ctx, velocity, growth, |x, u, _| {
            for ((uk, xk), ck) in u.iter_mut().zip(x).zip(&self.center) {
                *uk -= self.stiffness * (xk - ck);
            }
        });
        Ok(())
    }
}

/// Gradient flow `u = −∇V` of the double well `V(x) = h ((x₁² − a²)/a²)² + ½ κ Σ_{k≥2} x_k²`.
#[derive(Debug, Clone)]
pub struct DoubleWell {
    /// Barrier height `h`.
    pub height: f64,
    /// Well position `a` (minima at `x₁ = ±a`).
    pub separation: f64,
    /// Confinement `κ` of the other coordinates.
    pub stiffness: f64,
}

impl DoubleWell {
    /// `V(x)`.
    pub fn potential(&self, x: &[f64]) -> f64 {
        let a2 = self.separation * self.separation;
        let q = (x[0] * x[0] - a2) / a2;
        self.height * q * q + 0.5 * self.stiffness * x[1..].iter().map(|v| v * v).sum::<f64>()
    }
}

impl Field for DoubleWell {
    fn name(&self) -> String {
        "double_well".into()
    }
    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        let a2 = self.separation * self.separation;
        eval_pointwise(ctx, velocity, growth, |x, u, _| {
            u[0] -= 4.0 * self.height * x[0] * (x[0] * x[0] - a2) / (a2 * a2);
            for (uk, xk) in u[1..].iter_mut().zip(&x[1..]) {
                *uk -= self.stiffness * xk;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::particles::Cloud;

    #[test]
    fn double_well_drift_is_minus_gradient() {
        let dw = DoubleWell { height: 1.3, separation: 0.8, stiffness: 2.0 };
        let x = vec![0.3, -0.4, 1.1];
        let w = vec![1.0];
        let target = Cloud::new_unchecked(3, vec![], vec![]);
        let ctx = EvalCtx {
            step: 0,
            t: 0.0,
            dim: 3,
            x: &x,
            w: &w,
            mass: 1.0,
            target: &target,
            exec: &Default::default(),
        };
        let mut u = vec![0.0; 3];
        let mut g = vec![0.0; 1];
        dw.eval(&ctx, &mut u, &mut g).unwrap();
        let h = 1e-6;
        for k in 0..3 {
            let mut xp = x.clone();
            let mut xm = x.clone();
            xp[k] += h;
            xm[k] -= h;
            let fd = -(dw.potential(&xp) - dw.potential(&xm)) / (2.0 * h);
            assert!((u[k] - fd).abs() < 1e-7, "k={k}: {} vs {fd}", u[k]);
        }
        assert_eq!(g[0], 0.0);
    }
}
