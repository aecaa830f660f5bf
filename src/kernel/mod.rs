//! Kernel reductions: every field, metric and solver of the crate is a weighted sum over pairs
//! `(x_i, y_j)` of a function of the squared distance `|x_i − y_j|²`. This module holds the one
//! tiled pass over the pairs ([`for_each_tile`]) and the Gaussian-kernel sums built on it;
//! nothing here stores an N×M matrix: memory is O(N + M) plus one tile per thread.

pub mod exp;
pub mod gaussian;
pub mod rff;

pub use gaussian::{gauss_sum, gauss_sum_grad, GaussianKernel};

/// Columns per tile: the squared distances of one query against `TILE` targets are computed into
/// a stack buffer, then consumed by the caller's epilogue (exp + accumulate, log-sum-exp, ...).
pub const TILE: usize = 256;

/// Queries per parallel task.
pub const ROW_BLOCK: usize = 64;

/// Squared distances `out[j] = |x − y_j|²` for the `out.len()` points `y` (particle-contiguous).
#[inline]
pub fn sqdist_row(x: &[f64], y: &[f64], out: &mut [f64]) {
    let d = x.len();
    match d {
        1 => {
            for (o, yj) in out.iter_mut().zip(y) {
                let t = x[0] - yj;
                *o = t * t;
            }
        }
        2 => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(2)) {
                let a = x[0] - yj[0];
                let b = x[1] - yj[1];
                *o = a * a + b * b;
            }
        }
        3 => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(3)) {
                let a = x[0] - yj[0];
                let b = x[1] - yj[1];
                let c = x[2] - yj[2];
                *o = a * a + b * b + c * c;
            }
        }
        _ => {
            for (o, yj) in out.iter_mut().zip(y.chunks_exact(d)) {
                let mut s = 0.0;
                for (a, b) in x.iter().zip(yj) {
                    let t = a - b;
                    s += t * t;
                }
                *o = s;
            }
        }
    }
}

/// Points stored coordinate-major (structure of arrays): `data[k*n + j]` is coordinate `k` of
/// point `j`. The tiled distance loop then runs over `j` innermost, which vectorises for any
/// dimension.
#[derive(Debug, Clone)]
pub struct Soa {
    pub dim: usize,
    pub n: usize,
    pub data: Vec<f64>,
}

impl Soa {
    /// Transpose particle-contiguous points (`x[j*d + k]`).
    pub fn from_rows(dim: usize, x: &[f64]) -> Self {
        let n = x.len().checked_div(dim).unwrap_or(0);
        let mut data = vec![0.0; x.len()];
        for (j, p) in x.chunks_exact(dim.max(1)).enumerate() {
            for (k, v) in p.iter().enumerate() {
                data[k * n + j] = *v;
            }
        }
        Self { dim, n, data }
    }
    /// Coordinate `k` of points `j0..j0+len`.
    #[inline(always)]
    pub fn coord(&self, k: usize, j0: usize, len: usize) -> &[f64] {
        &self.data[k * self.n + j0..k * self.n + j0 + len]
    }
}

/// Calls `f(j0, d2)` for consecutive tiles of the points `y`, where `d2[jj] = |x − y_{j0+jj}|²`
/// (summed over coordinates in increasing order with fused multiply-adds). Tiles are
/// visited in increasing `j0`, so any accumulation in `f` has a fixed order.
#[inline]
pub fn for_each_tile_soa(x: &[f64], y: &Soa, mut f: impl FnMut(usize, &[f64])) {
    let mut buf = [0.0f64; TILE];
    let mut j0 = 0;
    while j0 < y.n {
        let len = TILE.min(y.n - j0);
        let b = &mut buf[..len];
        b.iter_mut().for_each(|v| *v = 0.0);
        for (k, xk) in x.iter().enumerate() {
            for (o, yk) in b.iter_mut().zip(y.coord(k, j0, len)) {
                let t = xk - yk;
                *o = t.mul_add(t, *o);
            }
        }
        f(j0, b);
        j0 += len;
    }
}

/// Calls `f(j0, d2)` for consecutive tiles of targets, where `d2[jj] = |x − y_{j0+jj}|²`.
/// Tiles are visited in increasing `j0`, so any accumulation in `f` has a fixed order.
#[inline]
pub fn for_each_tile(x: &[f64], y: &[f64], mut f: impl FnMut(usize, &[f64])) {
    let d = x.len();
    let m = y.len().checked_div(d).unwrap_or(0);
    let mut buf = [0.0f64; TILE];
    let mut j0 = 0;
    while j0 < m {
        let len = TILE.min(m - j0);
        sqdist_row(x, &y[j0 * d..(j0 + len) * d], &mut buf[..len]);
        f(j0, &buf[..len]);
        j0 += len;
    }
}
