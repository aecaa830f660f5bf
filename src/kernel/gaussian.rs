//! Gaussian kernel `k_s(x, y) = exp(−|x − y|² / (2 s²))` (SPEC §0) and its weighted sums
//!
//! `S(x) = Σ_j b_j k_s(x, y_j)`, `∇S(x) = Σ_j b_j k_s(x, y_j) (y_j − x) / s²`
//!
//! (from `∇_x k_s(x, y) = −(x − y)/s² k_s(x, y)`), evaluated at many queries `x_i` in parallel
//! over row blocks. Each query's sum runs over `j` in a fixed order, so results are identical for
//! any thread count — and any number of ranks: rows are split over the ranks of the current
//! communicator by blocks of [`CHUNK`] rows and all-gathered ([`crate::dist::row_pass`]). Each
//! block of queries runs in the copy of its loop for [`crate::simd::level`] (same bits on every
//! level).

use super::exp::exp_scaled_into_on;
use super::{for_each_tile, Soa, TileBuf, ROW_BLOCK, TILE};
use crate::rng::CHUNK;
use crate::simd::{multiversion, Isa};
use rayon::prelude::*;

/// A Gaussian kernel of bandwidth `s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianKernel {
    /// Bandwidth `s` of `k_s(x, y) = exp(−|x − y|²/(2s²))`.
    pub bandwidth: f64,
}

impl GaussianKernel {
    /// The kernel of bandwidth `s = bandwidth`.
    pub fn new(bandwidth: f64) -> Self {
        Self { bandwidth }
    }
    /// `k_s(x, y)`.
    pub fn eval(&self, x: &[f64], y: &[f64]) -> f64 {
        let d2: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
        (-d2 / (2.0 * self.bandwidth * self.bandwidth)).exp()
    }
}

/// `Σ a_i b_i` with four independent accumulators (vectorisable; fixed order).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for q in 0..4 {
            s[q] += x[q] * y[q];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// `Σ a_i` with the same accumulator pattern as [`dot`].
#[inline(always)]
fn dot_ones(a: &[f64]) -> f64 {
    let mut s = [0.0; 4];
    let ca = a.chunks_exact(4);
    let ra = ca.remainder();
    for x in ca {
        for q in 0..4 {
            s[q] += x[q];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3]) + ra.iter().sum::<f64>()
}

/// `out[i] = Σ_j b_j exp(−|x_i − y_j|²/(2s²))` for every query `x_i` (particle-contiguous, dim
/// `d`).
/// Rows are split over the ranks of the current communicator ([`crate::dist::row_pass`]).
pub fn gauss_sum(d: usize, x: &[f64], y: &[f64], b: &[f64], s: f64, out: &mut [f64]) {
    let n = out.len();
    crate::dist::row_pass(n, CHUNK, &mut [(out, 1)], |rows, o| {
        gauss_sum_rows(d, &x[rows.start * d..rows.end * d], y, b, s, o[0])
    });
}

fn gauss_sum_rows(d: usize, x: &[f64], y: &[f64], b: &[f64], s: f64, out: &mut [f64]) {
    let c = -0.5 / (s * s);
    let y = Soa::from_rows(d, y);
    let lvl = crate::simd::level();
    out.par_chunks_mut(ROW_BLOCK).enumerate().for_each(|(blk, o)| {
        let i0 = blk * ROW_BLOCK;
        sum_block_at(lvl, &x[i0 * d..(i0 + o.len()) * d], &y, b, c, o)
    });
}

/// `o[r] = Σ_j b_j exp(c |x_r − y_j|²)` for a block of queries `xb`.
#[inline(always)]
fn sum_block<I: Isa>(xb: &[f64], y: &Soa, b: &[f64], c: f64, o: &mut [f64]) {
    o.iter_mut().for_each(|v| *v = 0.0);
    let mut k = TileBuf::new();
    for_each_tile(
        xb,
        y,
        TILE,
        |_, _| false,
        |r, j0, d2| {
            let k = &mut k.0[..d2.len()];
            exp_scaled_into_on::<I>(d2, k, c);
            o[r] += dot(k, &b[j0..j0 + d2.len()]);
        },
    );
}

multiversion!(sum_block_at => sum_block, sum_block_512, sum_block_256(
    xb: &[f64], y: &Soa, b: &[f64], c: f64, o: &mut [f64]
));

/// Like [`gauss_sum`], and also the gradient `grad[i] = ∇S(x_i) = Σ_j b_j k(x_i, y_j)(y_j − x_i)/s²`
/// (`grad` is n·d, particle-contiguous).
/// Rows are split over the ranks of the current communicator ([`crate::dist::row_pass`]).
pub fn gauss_sum_grad(d: usize, x: &[f64], y: &[f64], b: &[f64], s: f64, out: &mut [f64], grad: &mut [f64]) {
    let n = out.len();
    crate::dist::row_pass(n, CHUNK, &mut [(out, 1), (grad, d)], |rows, o| {
        let (o0, o1) = o.split_at_mut(1);
        gauss_sum_grad_rows(d, &x[rows.start * d..rows.end * d], y, b, s, o0[0], o1[0])
    });
}

fn gauss_sum_grad_rows(d: usize, x: &[f64], y: &[f64], b: &[f64], s: f64, out: &mut [f64], grad: &mut [f64]) {
    let c = -0.5 / (s * s);
    let inv_s2 = 1.0 / (s * s);
    let y = Soa::from_rows(d, y);
    let lvl = crate::simd::level();
    out.par_chunks_mut(ROW_BLOCK).zip(grad.par_chunks_mut(ROW_BLOCK * d)).enumerate().for_each(
        |(blk, (o, g))| {
            let i0 = blk * ROW_BLOCK;
            grad_block_at(lvl, &x[i0 * d..(i0 + o.len()) * d], &y, b, c, inv_s2, o, g)
        },
    );
}

/// [`sum_block`] and the gradients `g` (particle-contiguous) of a block of queries `xb`.
#[inline(always)]
fn grad_block<I: Isa>(xb: &[f64], y: &Soa, b: &[f64], c: f64, inv_s2: f64, o: &mut [f64], g: &mut [f64]) {
    let d = y.dim;
    // Per query: Σ_j b_j k_ij in `o`, Σ_j b_j k_ij y_j in `g` (turned into ∇S below).
    o.iter_mut().for_each(|v| *v = 0.0);
    g.iter_mut().for_each(|v| *v = 0.0);
    let mut kt = TileBuf::new();
    for_each_tile(
        xb,
        y,
        TILE,
        |_, _| false,
        |r, j0, d2| {
            let kt = &mut kt.0[..d2.len()];
            exp_scaled_into_on::<I>(d2, kt, c);
            kt.iter_mut().zip(&b[j0..j0 + d2.len()]).for_each(|(k, bj)| *k *= bj);
            o[r] += dot_ones(kt);
            for (k, a) in g[r * d..(r + 1) * d].iter_mut().enumerate() {
                *a += dot(kt, y.coord(k, j0, d2.len()));
            }
        },
    );
    for ((gr, xi), acc) in g.chunks_exact_mut(d).zip(xb.chunks_exact(d)).zip(o.iter()) {
        for (gk, xk) in gr.iter_mut().zip(xi) {
            *gk = (*gk - acc * xk) * inv_s2;
        }
    }
}

multiversion!(grad_block_at => grad_block, grad_block_512, grad_block_256(
    xb: &[f64], y: &Soa, b: &[f64], c: f64, inv_s2: f64, o: &mut [f64], g: &mut [f64]
));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_direct_evaluation() {
        let d = 3;
        let x: Vec<f64> = (0..300 * d).map(|v| ((v * 37 % 101) as f64) / 50.0 - 1.0).collect();
        let y: Vec<f64> = (0..500 * d).map(|v| ((v * 53 % 97) as f64) / 40.0 - 1.2).collect();
        let b: Vec<f64> = (0..500).map(|j| 0.5 + (j % 7) as f64 / 7.0).collect();
        let s = 0.7;
        let k = GaussianKernel::new(s);
        let mut out = vec![0.0; 300];
        let mut grad = vec![0.0; 300 * d];
        gauss_sum_grad(d, &x, &y, &b, s, &mut out, &mut grad);
        let mut out2 = vec![0.0; 300];
        gauss_sum(d, &x, &y, &b, s, &mut out2);
        for i in [0, 17, 299] {
            let xi = &x[i * d..(i + 1) * d];
            let mut v = 0.0;
            let mut gv = vec![0.0; d];
            for j in 0..500 {
                let yj = &y[j * d..(j + 1) * d];
                let kv = b[j] * k.eval(xi, yj);
                v += kv;
                for q in 0..d {
                    gv[q] += kv * (yj[q] - xi[q]) / (s * s);
                }
            }
            assert!((out[i] - v).abs() <= 1e-12 * v.abs());
            assert!((out[i] - out2[i]).abs() <= 1e-14 * v.abs());
            for q in 0..d {
                assert!((grad[i * d + q] - gv[q]).abs() <= 1e-11 * (1.0 + gv[q].abs()));
            }
        }
    }
}
