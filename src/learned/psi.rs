//! The growth penalty `ψ` of Var-RUOT and the growth it implies (SPEC §6): `α ψ'(g) = λ`.
//!
//! - `ψ₁(g) = g²/2` ([`Psi::Quadratic`]): `g = λ/α`, `g'(λ) = 1/α`, `αψ₁(g) = λ²/(2α)`.
//! - `ψ₂(g) = g^p`, `p = 2/15` ([`Psi::Power`]): concave, so `ψ₂'(g) = p g^{p−1}` decreases and
//!   `g = (ψ₂')⁻¹(λ/α) = (λ/(αp))^{−1/(1−p)}` decreases in `λ`; it exists for `λ > 0` only and
//!   blows up as `λ → 0⁺`.
//!
//! **Extension of ψ₂ to all λ (our choice).** Above a growth rate `g₀ > 0` (a setting, per unit of
//! time), `ψ₂` is replaced by its second-order Taylor polynomial at `g₀`,
//! `ψ̃(g) = ψ₂(g₀) + ψ₂'(g₀)(g − g₀) + ½ψ₂''(g₀)(g − g₀)²` for `g > g₀` (and every `g ≤ 0`
//! is reached on this branch too: `ψ̃` is the concave quadratic there). `ψ̃` is C² and concave
//! everywhere it is used, `ψ̃'` is strictly decreasing on all of ℝ, so `g(λ)` is defined for every
//! `λ`, continuous with a continuous derivative, and strictly decreasing (Theorem 4.2's sign,
//! `u·∇g = g'(λ)|∇λ|² ≤ 0`, holds everywhere). With `λ₀ = αψ₂'(g₀)`:
//! - `λ ≥ λ₀`: `g = (λ/(αp))^{−1/(1−p)} ∈ (0, g₀]`, the paper's branch;
//! - `λ < λ₀`: `g = g₀ + (λ/α − ψ₂'(g₀))/ψ₂''(g₀)`, linear (growth or death without a pole).

use serde::{Deserialize, Serialize};

/// The exponent `p = 2/15` of the paper's concave penalty.
pub const POWER: f64 = 2.0 / 15.0;

/// The growth penalty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Psi {
    /// `ψ₁(g) = g²/2`.
    Quadratic,
    /// `ψ₂(g) = g^{2/15}`, extended by its quadratic Taylor polynomial above `g0` (module doc).
    Power {
        /// The switch-over growth rate `g₀ > 0`.
        g0: f64,
    },
}

impl Psi {
    /// Check the setting.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Psi::Quadratic => Ok(()),
            Psi::Power { g0 } if g0.is_finite() && *g0 > 0.0 => Ok(()),
            Psi::Power { g0 } => Err(format!("psi: g0 must be finite and > 0, got {g0}")),
        }
    }

    /// `ψ(g)` (the extended penalty).
    pub fn psi(&self, g: f64) -> f64 {
        match *self {
            Psi::Quadratic => 0.5 * g * g,
            Psi::Power { g0 } => {
                if g > 0.0 && g <= g0 {
                    g.powf(POWER)
                } else {
                    let (p0, p1, p2) = taylor(g0);
                    let h = g - g0;
                    p0 + p1 * h + 0.5 * p2 * h * h
                }
            }
        }
    }

    /// `ψ'(g)`.
    pub fn dpsi(&self, g: f64) -> f64 {
        match *self {
            Psi::Quadratic => g,
            Psi::Power { g0 } => {
                if g > 0.0 && g <= g0 {
                    POWER * g.powf(POWER - 1.0)
                } else {
                    let (_, p1, p2) = taylor(g0);
                    p1 + p2 * (g - g0)
                }
            }
        }
    }

    /// The growth `g(λ)` with `αψ'(g) = λ`, and its derivative `g'(λ)`.
    pub fn growth(&self, lambda: f64, alpha: f64) -> (f64, f64) {
        match *self {
            Psi::Quadratic => (lambda / alpha, 1.0 / alpha),
            Psi::Power { g0 } => {
                let (_, p1, p2) = taylor(g0);
                let r = lambda / alpha;
                if r >= p1 {
                    // r = p g^{p−1}  ⇒  g = (r/p)^{1/(p−1)}, dg/dr = g / ((p − 1) r)
                    let g = (r / POWER).powf(1.0 / (POWER - 1.0));
                    (g, g / ((POWER - 1.0) * r) / alpha)
                } else {
                    (g0 + (r - p1) / p2, 1.0 / (p2 * alpha))
                }
            }
        }
    }

    /// `α ψ(g(λ))`, the growth part of the action density.
    pub fn action_density(&self, lambda: f64, alpha: f64) -> f64 {
        alpha * self.psi(self.growth(lambda, alpha).0)
    }
}

/// `(ψ₂(g₀), ψ₂'(g₀), ψ₂''(g₀))`.
fn taylor(g0: f64) -> (f64, f64, f64) {
    (g0.powf(POWER), POWER * g0.powf(POWER - 1.0), POWER * (POWER - 1.0) * g0.powf(POWER - 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `αψ'(g(λ)) = λ` for all λ, g decreasing and C¹ across λ₀ for ψ₂, increasing for ψ₁;
    /// `g'` against central differences.
    #[test]
    fn growth_inverts_the_penalty_and_has_theorem_4_2_signs() {
        let alpha = 0.7;
        for psi in [Psi::Quadratic, Psi::Power { g0: 2.0 }] {
            let lambdas: Vec<f64> = (-400..=400).map(|k| k as f64 * 0.01).collect();
            let mut prev = None;
            for &l in &lambdas {
                let (g, dg) = psi.growth(l, alpha);
                assert!(g.is_finite() && dg.is_finite(), "{psi:?} at λ = {l}");
                assert!(
                    (alpha * psi.dpsi(g) - l).abs() < 1e-10 * (1.0 + l.abs()),
                    "{psi:?}: αψ'(g(λ)) ≠ λ at {l}"
                );
                let h = 1e-6;
                let fd = (psi.growth(l + h, alpha).0 - psi.growth(l - h, alpha).0) / (2.0 * h);
                assert!((fd - dg).abs() < 1e-5 * (1.0 + dg.abs()), "{psi:?}: g' at {l}: {fd} vs {dg}");
                match psi {
                    Psi::Quadratic => assert!(dg > 0.0),
                    Psi::Power { .. } => assert!(dg < 0.0),
                }
                if let Some(p) = prev {
                    match psi {
                        Psi::Quadratic => assert!(g > p),
                        Psi::Power { .. } => assert!(g < p),
                    }
                }
                prev = Some(g);
            }
        }
        // the paper's branch: λ = αψ₂'(g) for a small growth rate gives back g exactly
        let psi = Psi::Power { g0: 2.0 };
        let g: f64 = 0.3;
        let l = alpha * POWER * g.powf(POWER - 1.0);
        assert!((psi.growth(l, alpha).0 - g).abs() < 1e-12);
        assert!((psi.psi(g) - g.powf(POWER)).abs() < 1e-15);
    }
}
