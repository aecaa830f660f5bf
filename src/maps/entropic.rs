//! # Entropic map estimator for elastic costs (SPEC §7; Cuturi, Klein and Ablin 2023)
//!
//! Let `(f, g)` be the balanced entropic potentials (SPEC §3) between `μ = Σ a_i δ_{x_i}` and
//! `ν = Σ b_j δ_{y_j}` for the elastic cost `C(x, y) = h(x − y)`, `h(z) = ½|z|² + γ τ(z)`. The
//! potential `f` extends to any point `x` by its soft-min (the Sinkhorn update),
//!
//! ```text
//! f(x) = −ε log Σ_j b_j exp((g_j − h(x − y_j))/ε),
//! ∇f(x) = Σ_j p_j(x) ∇h(x − y_j),   p_j(x) = b_j exp((g_j − h(x − y_j))/ε) / Σ_k (same)
//! ```
//!
//! For a cost `h(x − y)` with `h` strictly convex the Monge map of the unregularised problem is
//! `T(x) = x − ∇h*(∇f(x))` (Gangbo–McCann; for `h = ½|·|²`, Brenier's `x − ∇f(x)`), and the
//! entropic estimator plugs in the entropic `∇f`:
//!
//! ```text
//! T(x) = x − ∇h*( w(x) ),   w(x) = Σ_j p_j(x) ∇h(x − y_j)
//! ```
//!
//! (`∇h*` is the inverse of `∇h`: `∇h*(w) = argmax_z ⟨w, z⟩ − h(z)`). Everything separates over
//! the coordinates, `∇h(z)_k = z_k + γ τ₁'(z_k)`:
//!
//! - **ℓ1** (`τ₁ = |·|`): `∇h*(w)_k = ST_γ(w_k) = sign(w_k) max(|w_k| − γ, 0)` (soft-thresholding),
//!   so every coordinate with `|w_k| ≤ γ` is displaced by exactly `0.0`. At `γ = 0`,
//!   `w = x − Σ_j p_j y_j` and `T(x) = Σ_j p_j(x) y_j`: the barycentric map
//!   ([`crate::ot::Coupling::barycentric_map`]) of the `½|x − y|²` plan.
//! - **smoothed ℓ0** (`τ₁(t) = 1 − exp(−t²/(2σ²))`): `φ(t) = t + γ τ₁'(t)` has `φ' = h₁'' ≥
//!   1 − 2γ e^{−3/2}/σ²` (the minimum of `τ₁''` is at `t² = 3σ²`), so `h` is strictly convex iff
//!   `γ < σ² e^{3/2}/2`; then `∇h*(w)_k` is the unique root of `φ(t) = w_k`, found by bisection
//!   on `[w_k − B, w_k + B]`, `B = γ e^{−1/2}/σ ≥ γ max|τ₁'|`, until the bracket holds two
//!   adjacent doubles (machine precision; at most ~1100 halvings, in practice ~60). For larger
//!   `γ` the conjugate's gradient is not the inverse of `∇h` (it jumps): refused with an error;
//!   use the parametric map instead (`maps::sparse`).
//!
//! `w(x)` is one streamed weighted soft-max pass over the targets (`ot::pass`'s
//! gradient pass on the elastic cost's tiles: O(n + m) memory, no n×m matrix, the same bits
//! whatever the thread count), so `T` applies to any new `x` (out of sample).

use crate::dist::Exec;
use crate::error::SimError;
use crate::ot::pass::Reduction;
use crate::ot::{uot_clouds, Cost, Penalty, SinkhornOptions, UotReport};
use crate::particles::Cloud;
use serde::{Deserialize, Serialize};

/// A fitted entropic map: what `T(x)` needs — the targets, their weights and potential `g`, `ε`
/// and the cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropicMap {
    /// Dimension `d`.
    pub dim: usize,
    /// The elastic cost `h`.
    pub cost: Cost,
    /// Regularisation `ε` of the potentials.
    pub eps: f64,
    /// Targets `y_j`, point-contiguous (`m·d`).
    pub y: Vec<f64>,
    /// Target weights `b_j` (the balanced problem's; rescaled ones for an unbalanced map).
    pub b: Vec<f64>,
    /// Target potential `g_j` (cost units).
    pub g: Vec<f64>,
}

impl EntropicMap {
    /// Solve the balanced problem between `source` and `target` with `opts` (its marginals are
    /// forced exact; the cost must be elastic) and keep what the map needs. The masses must be
    /// equal (see [`crate::ot::sinkhorn`]). Returns the map and the solve's report.
    pub fn fit(
        source: &Cloud,
        target: &Cloud,
        opts: &SinkhornOptions,
    ) -> Result<(Self, UotReport), SimError> {
        if opts.cost.elastic().is_none() {
            return Err(SimError::Invalid(
                "entropic map: the cost must be elastic (γ = 0 for the plain ½|x − y|² map)".into(),
            ));
        }
        let mut o = opts.clone();
        o.marginal_a = crate::ot::Marginal::Exact;
        o.marginal_b = crate::ot::Marginal::Exact;
        let sol = uot_clouds(source, target, &o)?;
        let map = Self::from_potentials(target, &sol.potentials.g, o.eps, o.cost)?;
        Ok((map, sol.report))
    }

    /// The map of a solved target side: targets and weights of `target`, its potential `g`.
    pub fn from_potentials(target: &Cloud, g: &[f64], eps: f64, cost: Cost) -> Result<Self, SimError> {
        if g.len() != target.len() {
            return Err(SimError::Invalid(format!(
                "entropic map: potential of size {} for {} targets",
                g.len(),
                target.len()
            )));
        }
        let m = Self { dim: target.dim, cost, eps, y: target.x.clone(), b: target.w.clone(), g: g.to_vec() };
        m.validate()?;
        Ok(m)
    }

    /// Shapes, finite values, an elastic cost whose `∇h*` this estimator computes.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Invalid(format!("entropic map: {m}")));
        let Some((gamma, pen)) = self.cost.elastic() else {
            return bad("the cost must be elastic".into());
        };
        self.cost.validate().map_err(|m| SimError::Invalid(format!("entropic map: {m}")))?;
        if let Penalty::SmoothedL0 { sigma } = pen {
            let limit = sigma * sigma * 1.5f64.exp() / 2.0;
            if gamma >= limit {
                return bad(format!(
                    "smoothed ℓ0 with γ = {gamma} ≥ σ² e^1.5 / 2 = {limit}: h is not convex, ∇h* is not \
                     the inverse of ∇h (use the parametric sparse map)"
                ));
            }
        }
        let (d, m) = (self.dim, self.b.len());
        if d == 0 || self.y.len() != d * m || self.g.len() != m || m == 0 {
            return bad(format!(
                "{} coordinates, {m} weights, {} potentials in dimension {d}",
                self.y.len(),
                self.g.len()
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad(format!("eps must be finite and > 0, got {}", self.eps));
        }
        if self.y.iter().chain(&self.g).any(|v| !v.is_finite())
            || self.b.iter().any(|w| !(w.is_finite() && *w >= 0.0))
        {
            return bad("a target coordinate, weight or potential is not finite (or a weight is < 0)".into());
        }
        Ok(())
    }

    /// `w(x) = Σ_j p_j(x) ∇h(x − y_j)` at the points `x` (point-contiguous, `n·d`).
    pub fn mean_gradient(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        let d = self.dim;
        if !x.len().is_multiple_of(d) {
            return Err(SimError::Invalid(format!(
                "entropic map: {} coordinates are not whole points of dimension {d}",
                x.len()
            )));
        }
        if let Some(k) = x.iter().position(|v| !v.is_finite()) {
            return Err(SimError::Invalid(format!(
                "entropic map: coordinate {} of point {} is {}",
                k % d,
                k / d,
                x[k]
            )));
        }
        let n = x.len() / d;
        let h: Vec<f64> = self.b.iter().zip(&self.g).map(|(b, g)| b.ln() + g / self.eps).collect();
        let (mut l, mut w) = (vec![0.0; n], vec![0.0; n * d]);
        Reduction::for_cost(exec, d, x, &self.y, self.cost).lse_grad(&h, 1.0 / self.eps, &mut l, &mut w);
        if let Some(k) = w.iter().position(|v| !v.is_finite()) {
            return Err(SimError::NonFinite {
                step: 0,
                quantity: "entropic map: soft-max mean of ∇h (do all target weights underflow?)".into(),
                particle: k / d,
                value: w[k],
            });
        }
        Ok(w)
    }

    /// `T(x)` at the points `x` (point-contiguous, `n·d`; any points, not only the source).
    pub fn apply(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        let (gamma, pen) = self.cost.elastic().expect("validated elastic cost");
        let mut t = self.mean_gradient(x, exec)?;
        for (tk, xk) in t.iter_mut().zip(x) {
            *tk = xk - grad_conjugate(*tk, gamma, pen);
        }
        Ok(t)
    }
}

/// `∇h₁*(w)` of one coordinate (module doc): soft-thresholding for ℓ1, the root of
/// `t + γ τ₁'(t) = w` by bisection for smoothed ℓ0 (`h` convex: checked by
/// [`EntropicMap::validate`]).
pub fn grad_conjugate(w: f64, gamma: f64, pen: Penalty) -> f64 {
    match pen {
        Penalty::L1 => {
            if w > gamma {
                w - gamma
            } else if w < -gamma {
                w + gamma
            } else {
                0.0
            }
        }
        Penalty::SmoothedL0 { sigma } => {
            if gamma == 0.0 {
                return w;
            }
            let phi = |t: f64| gamma.mul_add(pen.derivative(t), t);
            let bound = gamma * (-0.5f64).exp() / sigma;
            let (mut lo, mut hi) = (w - bound, w + bound);
            // φ(lo) ≤ w ≤ φ(hi) by the bound on |τ₁'|; halve until no double lies between.
            loop {
                let mid = 0.5 * (lo + hi);
                if mid <= lo || mid >= hi {
                    break;
                }
                if phi(mid) < w {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            if (phi(hi) - w).abs() < (phi(lo) - w).abs() {
                hi
            } else {
                lo
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `∇h*` inverts `∇h`: `grad_conjugate(t + γ τ₁'(t)) = t` (ℓ1 away from 0; smoothed ℓ0 to a
    /// few ulps), and ℓ1 thresholds `|w| ≤ γ` to exactly 0.
    #[test]
    fn conjugate_gradient_inverts_the_gradient() {
        let l0 = Penalty::SmoothedL0 { sigma: 0.7 };
        for &t in &[-3.0, -0.9, -0.2, -1e-3, 0.0, 1e-4, 0.31, 0.7, 1.2, 5.0] {
            let w = 0.8f64.mul_add(l0.derivative(t), t);
            let back = grad_conjugate(w, 0.8, l0);
            assert!((back - t).abs() <= 4.0 * f64::EPSILON * (1.0 + t.abs()), "{t}: {back}");
            if t != 0.0 {
                let w1 = t + 0.5 * t.signum();
                assert!((grad_conjugate(w1, 0.5, Penalty::L1) - t).abs() <= 1e-15 * (1.0 + t.abs()));
            }
        }
        for &w in &[-0.5, -0.1, 0.0, 0.3, 0.5] {
            assert_eq!(grad_conjugate(w, 0.5, Penalty::L1), 0.0);
        }
    }
}
