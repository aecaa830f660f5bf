//! Maximum mean discrepancy between weighted, unnormalised measures (SPEC §4):
//!
//! `MMD²(α, β) = Σ_ii' a_i a_i' k(x_i, x_i') + Σ_jj' b_j b_j' k(y_j, y_j') − 2 Σ_ij a_i b_j k(x_i, y_j)`
//!
//! with the Gaussian kernel `k_s(x, y) = exp(−|x − y|²/(2s²))` (the biased V-statistic), and
//! `MMD = sqrt(max(MMD², 0))`. The witness `φ(x) = Σ_i a_i k(x, x_i) − Σ_j b_j k(x, y_j)` is the
//! first variation: `∂MMD²/∂a_i = 2 φ(x_i)`, `∂MMD²/∂x_i = 2 a_i ∇φ(x_i)`.
//!
//! The public entries take [`Cloud`]s: [`mmd_between`](super::mmd_between) and
//! [`witness_between`]; the slice versions here are the crate's own (field code holding particle
//! slices). All sums run through the tiled kernel reductions of [`crate::kernel`]: O(n + m) memory. For
//! bitwise-identical inputs the three terms are bitwise identical, so `MMD(x, x) = 0` exactly.

use crate::dist::Exec;
use crate::error::SimError;
use crate::kernel::{gauss_sum, gauss_sum_grad};
use crate::particles::Cloud;

/// The three terms of `MMD²` and their combination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MmdTerms {
    /// `Σ_ii' a_i a_i' k(x_i, x_i')`.
    pub xx: f64,
    /// `Σ_jj' b_j b_j' k(y_j, y_j')`.
    pub yy: f64,
    /// `Σ_ij a_i b_j k(x_i, y_j)`.
    pub xy: f64,
    /// `MMD² = xx + yy − 2 xy` (may be slightly negative from rounding).
    pub mmd2: f64,
}

impl MmdTerms {
    /// `MMD = sqrt(max(MMD², 0))`.
    pub fn mmd(&self) -> f64 {
        self.mmd2.max(0.0).sqrt()
    }
}

/// `Σ_i a_i Σ_j b_j k(x_i, y_j)`, the rows of the Gaussian sum run in `exec`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cross(exec: &Exec, d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> f64 {
    let mut row = vec![0.0; a.len()];
    gauss_sum(exec, d, x, y, b, s, &mut row);
    row.iter().zip(a).map(|(r, ai)| r * ai).sum()
}

/// The terms of `MMD²` between `Σ a_i δ_{x_i}` and `Σ b_j δ_{y_j}` (dim `d`, bandwidth `s`).
/// The rows of its Gaussian sums run in `exec` (split over its ranks; same bits on every rank).
#[allow(clippy::too_many_arguments)]
pub(crate) fn mmd_terms(
    exec: &Exec,
    d: usize,
    x: &[f64],
    a: &[f64],
    y: &[f64],
    b: &[f64],
    s: f64,
) -> MmdTerms {
    let xx = cross(exec, d, x, a, x, a, s);
    let yy = cross(exec, d, y, b, y, b, s);
    let xy = cross(exec, d, x, a, y, b, s);
    MmdTerms { xx, yy, xy, mmd2: xx + yy - 2.0 * xy }
}

/// `MMD = sqrt(max(MMD², 0))`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mmd(exec: &Exec, d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> f64 {
    mmd_terms(exec, d, x, a, y, b, s).mmd()
}

/// The witness `φ(z) = Σ_i a_i k(z, x_i) − Σ_j b_j k(z, y_j)` and its gradient at the points `z`
/// (particle-contiguous), the rows of its Gaussian sums run in `exec`. Returns `(φ, ∇φ)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn witness_in(
    exec: &Exec,
    d: usize,
    z: &[f64],
    x: &[f64],
    a: &[f64],
    y: &[f64],
    b: &[f64],
    s: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = z.len() / d;
    let (mut va, mut ga) = (vec![0.0; n], vec![0.0; n * d]);
    let (mut vb, mut gb) = (vec![0.0; n], vec![0.0; n * d]);
    gauss_sum_grad(exec, d, z, x, a, s, &mut va, &mut ga);
    gauss_sum_grad(exec, d, z, y, b, s, &mut vb, &mut gb);
    va.iter_mut().zip(&vb).for_each(|(p, q)| *p -= q);
    ga.iter_mut().zip(&gb).for_each(|(p, q)| *p -= q);
    (va, ga)
}

/// Check a pair of clouds and a bandwidth for the public entries: one dimension, and `s` a
/// positive finite number whose square is a normal double (else `1/(2s²)` is 0 or ∞ and the
/// sums turn into NaN). `what` names the caller in the message.
pub(crate) fn check_pair(what: &str, a: &Cloud, b: &Cloud, s: f64) -> Result<(), SimError> {
    if a.dim != b.dim {
        return Err(SimError::Invalid(format!("{what}: clouds of dimension {} and {}", a.dim, b.dim)));
    }
    if !(s.is_finite() && s > 0.0 && (s * s).is_normal()) {
        return Err(SimError::Invalid(format!(
            "{what}: bandwidth must be > 0 with a normal square (about 1.5e-154 ≤ s ≤ 1.3e154), got {s:e}"
        )));
    }
    Ok(())
}

/// The witness `φ(z) = Σ_i a_i k(z, x_i) − Σ_j b_j k(z, y_j)` of the clouds `a`, `b` and its
/// gradient `∇φ(z)` at the points `z` (point-contiguous, `a`'s dimension), bandwidth `s`:
/// `(φ, ∇φ)`. Checked like [`mmd_between`](super::mmd_between); `z` must hold whole points.
pub fn witness_between(
    z: &[f64],
    a: &Cloud,
    b: &Cloud,
    bandwidth: f64,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    check_pair("witness", a, b, bandwidth)?;
    if !z.len().is_multiple_of(a.dim) {
        return Err(SimError::Invalid(format!(
            "witness: {} coordinates are not a multiple of the dimension {}",
            z.len(),
            a.dim
        )));
    }
    Ok(witness_in(&Exec::default(), a.dim, z, &a.x, &a.w, &b.x, &b.w, bandwidth))
}
