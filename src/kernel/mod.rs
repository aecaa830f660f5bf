//! Kernel reductions: every field, metric and solver of the crate is a weighted sum over pairs
//! `(x_i, y_j)` of a function of the squared distance `|x_i − y_j|²`. This module holds the one
//! tiled pass over the pairs ([`for_each_tile`], on the targets' coordinate-major copy [`Soa`],
//! with the one distance computation of the crate's reductions) and the Gaussian-kernel sums
//! built on it; the Sinkhorn soft-min (`ot::pass`), the plan access (`ot::plan`) and the
//! entropic Wasserstein certificate (`metrics::wasserstein`) use the same pass. Nothing here
//! stores an N×M matrix: memory is O(N + M) plus one tile per thread. (The exact network simplex,
//! `ot::exact`, prices single arcs with its own scalar distance: it has no tiled pass.)
//!
//! Execution context: the sums that may be split take the caller's [`crate::dist::Exec`] by
//! reference ([`gauss_sum`], [`gauss_sum_grad`], [`rff::Rff::moments`]) and hand it to
//! [`crate::dist::row_pass`] / [`crate::dist::tree_sum`], which split the rows over its ranks and
//! run the blocks with its `Par`; nothing here looks up a communicator on its own.

pub mod exp;
pub mod gaussian;
pub mod gram;
pub mod rff;

pub use gaussian::{gauss_sum, gauss_sum_grad, GaussianKernel};

/// Columns per tile: the squared distances of one query against `TILE` targets are computed into
/// a stack buffer, then consumed by the caller's epilogue (exp + accumulate, log-sum-exp, ...).
pub const TILE: usize = 256;

/// Queries per parallel task.
pub const ROW_BLOCK: usize = 64;

/// A tile-sized scratch buffer aligned to a cache line, so that full-vector loads and stores of
/// the kernel loops never straddle two lines (a misaligned stack buffer cost 15 % of an MMD).
#[repr(C, align(64))]
pub struct TileBuf(pub [f64; TILE]);

impl TileBuf {
    /// A zeroed buffer.
    pub const fn new() -> Self {
        TileBuf([0.0; TILE])
    }
}

impl Default for TileBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// Points per register chunk of the distance loop (one 512-bit vector of f64).
pub const LANES: usize = 8;

/// Points stored coordinate-major (structure of arrays): coordinate `k` of point `j` is
/// `coord(k, j, 1)[0]`. The tiled distance loop then runs over `j` innermost, which vectorises for
/// any dimension. Every coordinate row starts on a 64-byte boundary (rows padded to a multiple of
/// 8 values), so full-vector loads of aligned chunks never straddle two cache lines.
#[derive(Debug, Clone)]
pub struct Soa {
    /// Coordinates per point.
    pub dim: usize,
    /// Points.
    pub n: usize,
    /// Values between the starts of two coordinate rows (`n` rounded up to a multiple of 8).
    stride: usize,
    /// Index in `data` of the first value (the first 64-byte boundary).
    off: usize,
    data: Vec<f64>,
}

impl Soa {
    /// Transpose particle-contiguous points (`x[j*d + k]`).
    pub fn from_rows(dim: usize, x: &[f64]) -> Self {
        let n = x.len().checked_div(dim).unwrap_or(0);
        let stride = n.div_ceil(LANES) * LANES;
        let mut data = vec![0.0; dim * stride + LANES];
        let off = data.as_ptr().align_offset(64).min(LANES - 1);
        for (j, p) in x.chunks_exact(dim.max(1)).enumerate() {
            for (k, v) in p.iter().enumerate() {
                data[off + k * stride + j] = *v;
            }
        }
        Self { dim, n, stride, off, data }
    }
    /// Coordinate `k` of points `j0..j0+len`.
    #[inline(always)]
    pub fn coord(&self, k: usize, j0: usize, len: usize) -> &[f64] {
        let s = self.off + k * self.stride + j0;
        &self.data[s..s + len]
    }
}

/// The squared distances from `x` to the targets `j0 .. j0 + len` (`len ≤ TILE`), written to the
/// front of `buf` (every value overwritten: the buffer is reused across tiles, never cleared).
#[inline(always)]
fn tile_soa<'b>(x: &[f64], y: &Soa, j0: usize, len: usize, buf: &'b mut TileBuf) -> &'b [f64] {
    let b = &mut buf.0[..len];
    // 32 points at a time, their distances held in four registers across the coordinates
    // (no store per coordinate; four independent fused chains hide the FMA latency); the
    // tail point by point — the same fused sum over k = 0, 1, … either way.
    const W: usize = 4 * LANES;
    let full = len - len % W;
    for (c, o) in b[..full].chunks_exact_mut(W).enumerate() {
        let j = j0 + c * W;
        let mut acc = [0.0f64; W];
        for (k, xk) in x.iter().enumerate() {
            let yk: &[f64; W] = y.coord(k, j, W).try_into().expect("lane chunk");
            for l in 0..W {
                let t = xk - yk[l];
                acc[l] = t.mul_add(t, acc[l]);
            }
        }
        o.copy_from_slice(&acc);
    }
    for (jj, o) in b.iter_mut().enumerate().skip(full) {
        *o = x.iter().enumerate().fold(0.0, |a, (k, xk)| {
            let t = xk - y.coord(k, j0 + jj, 1)[0];
            t.mul_add(t, a)
        });
    }
    b
}

/// A permutation of the points `y` (particle-contiguous, dim `d`) after which every run of
/// `leaf` consecutive points (from the start) is spatially compact: the leaves of a k-d split. A
/// range of points is cut across its widest coordinate at a multiple of `leaf` near its median (so
/// that the cuts fall on leaf boundaries), recursively, down to single leaves. Ties are broken by
/// index, so the order is a function of the points alone.
pub fn tile_order(d: usize, y: &[f64], leaf: usize) -> Vec<usize> {
    fn split(d: usize, y: &[f64], leaf: usize, idx: &mut [usize]) {
        if idx.len() <= leaf {
            return;
        }
        let (mut k, mut widest) = (0, f64::NEG_INFINITY);
        for c in 0..d {
            let (lo, hi) = idx.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &j| {
                let v = y[j * d + c];
                (lo.min(v), hi.max(v))
            });
            if hi - lo > widest {
                (k, widest) = (c, hi - lo);
            }
        }
        let mid = idx.len().div_ceil(leaf) / 2 * leaf;
        idx.select_nth_unstable_by(mid, |&a, &b| y[a * d + k].total_cmp(&y[b * d + k]).then(a.cmp(&b)));
        let (l, r) = idx.split_at_mut(mid);
        split(d, y, leaf, l);
        split(d, y, leaf, r);
    }
    let mut idx: Vec<usize> = (0..y.len().checked_div(d).unwrap_or(0)).collect();
    split(d.max(1), y, leaf.max(1), &mut idx);
    idx
}

/// The one tiled pass over pairs: for a block of queries `xs` (particle-contiguous, dim `y.dim`)
/// against the targets `y`, calls `f(r, j0, d2)` with `d2[jj] = |x_r − y_{j0+jj}|²` for tiles of
/// `tile ≤ TILE` targets (tile `t` holds targets `t·tile ..`), leaving out the pairs (query `r`,
/// tile `t`) where `skip(r, t)` (their distances are not computed and `f` not called). Tiles are
/// in the outer loop and the queries of the block in the inner one, so a tile of targets is read
/// from memory once per block (it stays in L1 across the queries); each query sees its tiles in
/// increasing `j0`, so any accumulation in `f` has a fixed order. Every distance is the same
/// fused sum over the coordinates `k = 0, 1, …` (`t.mul_add(t, acc)`), whatever the block, the
/// tile length or the skipped tiles: every reduction of the crate sees the same bits of `|x − y|²`.
#[inline(always)]
pub fn for_each_tile(
    xs: &[f64],
    y: &Soa,
    tile: usize,
    mut skip: impl FnMut(usize, usize) -> bool,
    mut f: impl FnMut(usize, usize, &[f64]),
) {
    assert!((1..=TILE).contains(&tile), "tile length {tile} outside 1..={TILE}");
    let d = y.dim.max(1);
    let mut buf = TileBuf::new();
    let mut j0 = 0;
    while j0 < y.n {
        let len = tile.min(y.n - j0);
        for (r, x) in xs.chunks_exact(d).enumerate() {
            if !skip(r, j0 / tile) {
                f(r, j0, tile_soa(x, y, j0, len, &mut buf));
            }
        }
        j0 += len;
    }
}
