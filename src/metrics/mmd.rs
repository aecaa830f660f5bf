//! Maximum mean discrepancy between weighted, unnormalised measures (SPEC §4):
//!
//! `MMD²(α, β) = Σ_ii' a_i a_i' k(x_i, x_i') + Σ_jj' b_j b_j' k(y_j, y_j') − 2 Σ_ij a_i b_j k(x_i, y_j)`
//!
//! with the Gaussian kernel `k_s(x, y) = exp(−|x − y|²/(2s²))` (the biased V-statistic), and
//! `MMD = sqrt(max(MMD², 0))`. The witness `φ(x) = Σ_i a_i k(x, x_i) − Σ_j b_j k(x, y_j)` is the
//! first variation: `∂MMD²/∂a_i = 2 φ(x_i)`, `∂MMD²/∂x_i = 2 a_i ∇φ(x_i)`.
//!
//! All sums run through the tiled kernel reductions of [`crate::kernel`]: O(n + m) memory. For
//! bitwise-identical inputs the three terms are bitwise identical, so `MMD(x, x) = 0` exactly.

use crate::kernel::{gauss_sum, gauss_sum_grad};

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

/// `Σ_i a_i Σ_j b_j k(x_i, y_j)`.
fn cross(d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> f64 {
    let mut row = vec![0.0; a.len()];
    gauss_sum(d, x, y, b, s, &mut row);
    row.iter().zip(a).map(|(r, ai)| r * ai).sum()
}

/// The terms of `MMD²` between `Σ a_i δ_{x_i}` and `Σ b_j δ_{y_j}` (dim `d`, bandwidth `s`).
pub fn mmd_terms(d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> MmdTerms {
    let xx = cross(d, x, a, x, a, s);
    let yy = cross(d, y, b, y, b, s);
    let xy = cross(d, x, a, y, b, s);
    MmdTerms { xx, yy, xy, mmd2: xx + yy - 2.0 * xy }
}

/// `Σ_ij a_i b_j k(x_i, y_j)`: one term of `MMD²` (e.g. the fixed target's `yy` term, computed
/// once per run).
pub fn mmd_cross_term(d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> f64 {
    cross(d, x, a, y, b, s)
}

/// `MMD = sqrt(max(MMD², 0))`.
pub fn mmd(d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], s: f64) -> f64 {
    mmd_terms(d, x, a, y, b, s).mmd2.max(0.0).sqrt()
}

/// The witness `φ(z) = Σ_i a_i k(z, x_i) − Σ_j b_j k(z, y_j)` and its gradient at the points `z`
/// (particle-contiguous). Returns `(φ, ∇φ)`.
pub fn witness(
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
    gauss_sum_grad(d, z, x, a, s, &mut va, &mut ga);
    gauss_sum_grad(d, z, y, b, s, &mut vb, &mut gb);
    va.iter_mut().zip(&vb).for_each(|(p, q)| *p -= q);
    ga.iter_mut().zip(&gb).for_each(|(p, q)| *p -= q);
    (va, ga)
}
