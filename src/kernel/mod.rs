//! Kernel reductions: every field, metric and solver of the crate is a weighted sum over pairs
//! `(x_i, y_j)` of a function of the squared distance `|x_i − y_j|²`. This module holds the one
//! tiled pass over the pairs ([`for_each_tile`], on the targets' coordinate-major copy [`Soa`],
//! with the one distance computation of the crate's reductions) and the Gaussian-kernel sums
//! built on it; the Sinkhorn soft-min (`ot::pass`), the plan access (`ot::plan`) and the
//! entropic Wasserstein certificate (`metrics::wasserstein`) use the same pass. Nothing here
//! stores an N×M matrix: memory is O(N + M) plus one tile per thread. (The exact network simplex,
//! `ot::exact`, prices single arcs with its own scalar distance: it has no tiled pass.)
//!
//! **High dimension.** The distance of a pair is a sum over the coordinates,
//! `|x − y|² = Σ_k t_k²`, `t_k = x_k − y_k` (fused: `s ← fma(t_k, t_k, s)`, `k = 0, 1, …`). At
//! large `d` the plain loop (one query against 32 targets, all coordinates) loads every target
//! coordinate once per query, from a tile of `TILE · d` values (2 MB at d = 1000: beyond L1/L2,
//! and one page per coordinate). From [`PANEL_MIN_DIM`] coordinates on, [`for_each_tile`] runs the
//! blocked loop instead: the targets are also stored in panels of [`PANEL`] (coordinate after
//! coordinate, one sequential stream) and `QB` = 4 queries are taken together, so each loaded
//! coordinate serves `QB` queries and the `QB × PANEL` running sums stay in registers. The pairs
//! are the same sums in the same order (only which pairs are computed together changes), so the
//! bits are those of the plain loop — no expansion `|x|² + |y|² − 2x·y` and none of its
//! cancellation. The elastic costs of `ot::pass` use the same loop through [`PairTerm`]. Extra
//! memory: the panel copy (`m · d` values) and one tile per query of a block.
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
///
/// From [`PANEL_MIN_DIM`] coordinates on, a second copy in *panels* is kept as well (see
/// [`for_each_tile`]): panel `p` holds the targets `p·PANEL .. p·PANEL + PANEL` (the last one
/// zero-padded), coordinate after coordinate, `PANEL` values each, so that the blocked loop reads
/// one panel as a single sequential stream of `d · PANEL` values (the coordinate-major rows of a
/// large `d` lie `n` values apart: one page, one TLB entry, per coordinate).
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
    /// The panel copy (`None` below [`PANEL_MIN_DIM`]) and the index of its first value (a
    /// 64-byte boundary).
    panels: Option<(usize, Vec<f64>)>,
}

impl Soa {
    /// Transpose particle-contiguous points (`x[j*d + k]`); with the panel copy when
    /// `dim ≥ PANEL_MIN_DIM`.
    pub fn from_rows(dim: usize, x: &[f64]) -> Self {
        Self::with_panels(dim, x, dim >= PANEL_MIN_DIM)
    }

    /// Like [`Soa::from_rows`], with the panel copy (hence the blocked loop of [`for_each_tile`])
    /// exactly when `panels` — whatever the dimension (tests and benchmarks compare the loops;
    /// both give the same bits).
    pub fn with_panels(dim: usize, x: &[f64], panels: bool) -> Self {
        let n = x.len().checked_div(dim).unwrap_or(0);
        let stride = n.div_ceil(LANES) * LANES;
        let mut data = vec![0.0; dim * stride + LANES];
        let off = data.as_ptr().align_offset(64).min(LANES - 1);
        for (j, p) in x.chunks_exact(dim.max(1)).enumerate() {
            for (k, v) in p.iter().enumerate() {
                data[off + k * stride + j] = *v;
            }
        }
        let panels = (panels && dim > 0).then(|| {
            let mut pd = vec![0.0; n.div_ceil(PANEL) * dim * PANEL + LANES];
            let poff = pd.as_ptr().align_offset(64).min(LANES - 1);
            for (j, p) in x.chunks_exact(dim).enumerate() {
                let base = poff + (j / PANEL) * dim * PANEL + j % PANEL;
                for (k, v) in p.iter().enumerate() {
                    pd[base + k * PANEL] = *v;
                }
            }
            (poff, pd)
        });
        Self { dim, n, stride, off, data, panels }
    }

    /// Coordinate `k` of points `j0..j0+len`.
    #[inline(always)]
    pub fn coord(&self, k: usize, j0: usize, len: usize) -> &[f64] {
        let s = self.off + k * self.stride + j0;
        &self.data[s..s + len]
    }

    /// Whether the panel copy exists (the passes then use the blocked loop).
    pub fn has_panels(&self) -> bool {
        self.panels.is_some()
    }

    /// Panel `p` (`dim · PANEL` values, coordinate after coordinate), if the copy exists.
    #[inline(always)]
    fn panel(&self, p: usize) -> Option<&[f64]> {
        let w = self.dim * PANEL;
        self.panels.as_ref().map(|(off, pd)| &pd[off + p * w..off + (p + 1) * w])
    }
}

/// The squared distances from `x` to the targets `j0 .. j0 + len` (`len ≤ TILE`), written to the
/// front of `buf` (every value overwritten: the buffer is reused across tiles, never cleared).
#[inline(always)]
fn tile_soa(x: &[f64], y: &Soa, j0: usize, b: &mut [f64]) {
    let len = b.len();
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

/// The value of one pair `(x, y)` as a sum over the coordinates of `t_k = x_k − y_k`: two running
/// sums (`sq`, `pen`), each updated once per coordinate in the order `k = 0, 1, …`, then combined.
/// The distance loops of the crate (the plain one and the blocked one of [`for_each_tile`]) call
/// the same `add` sequence for a pair, so they give the same bits.
pub trait PairTerm: Copy {
    /// Fold coordinate difference `t = x_k − y_k` into the pair's sums.
    fn add(self, t: f64, sq: &mut f64, pen: &mut f64);
    /// The pair's value from its two sums.
    fn finish(self, sq: f64, pen: f64) -> f64;
}

/// `|x − y|² = Σ_k t_k²`, fused: `sq ← fma(t, t, sq)` (the second sum is unused).
#[derive(Debug, Clone, Copy)]
pub struct SqDist;

impl PairTerm for SqDist {
    #[inline(always)]
    fn add(self, t: f64, sq: &mut f64, _pen: &mut f64) {
        *sq = t.mul_add(t, *sq);
    }
    #[inline(always)]
    fn finish(self, sq: f64, _pen: f64) -> f64 {
        sq
    }
}

/// Targets per panel of the blocked loop (two 512-bit vectors of f64).
pub const PANEL: usize = 16;
/// Queries per register group of the blocked loop: each loaded target coordinate is used by
/// this many queries (`QB · PANEL` running sums — 8 AVX-512 registers for `|x − y|²`).
const QB: usize = 4;
/// Dimension from which [`Soa::from_rows`] builds the panel copy, so that the passes use the
/// blocked loop. Both loops give the same bits; below it the plain loop is as fast or faster
/// (`results/performance.md`, "High-dimensional passes").
pub const PANEL_MIN_DIM: usize = 24;

/// The values of the pairs (query `q` of `x`, target `l` of one panel): `out[q][l]`, each the
/// [`PairTerm`] sums over the coordinates in order. The `QB · PANEL` sums stay in registers
/// across the coordinates; each coordinate costs `PANEL` loads of the panel (sequential) and
/// `QB` broadcasts of the queries'.
#[inline(always)]
fn panel_group<T: PairTerm>(x: [&[f64]; QB], panel: &[f64], term: T, out: &mut [[f64; PANEL]; QB]) {
    let d = panel.len() / PANEL;
    assert!(x.iter().all(|r| r.len() == d), "panel_group: query length");
    let mut sq = [[0.0f64; PANEL]; QB];
    let mut pen = [[0.0f64; PANEL]; QB];
    for k in 0..d {
        let yk: &[f64; PANEL] = panel[k * PANEL..(k + 1) * PANEL].try_into().expect("panel row");
        for q in 0..QB {
            let xq = x[q][k];
            for l in 0..PANEL {
                term.add(xq - yk[l], &mut sq[q][l], &mut pen[q][l]);
            }
        }
    }
    for q in 0..QB {
        for l in 0..PANEL {
            out[q][l] = term.finish(sq[q][l], pen[q][l]);
        }
    }
}

/// The blocked loop of [`for_each_term_tile`] (`y` has its panel copy, `tile` is a multiple of
/// [`PANEL`]). Per tile: the rows that are not skipped, in groups of [`QB`]; per panel of the
/// tile, every group in turn (the panel, `d · PANEL` values, stays in L2 across the block's
/// rows); each row's values of the tile are kept (memory: `rows × TILE` values per block), then
/// `f` is called for the rows in order.
#[inline(always)]
fn blocked_tiles<T: PairTerm>(
    xs: &[f64],
    y: &Soa,
    tile: usize,
    term: T,
    mut skip: impl FnMut(usize, usize) -> bool,
    mut f: impl FnMut(usize, usize, &[f64]),
) {
    let d = y.dim;
    let rows = xs.len() / d;
    let mut vals = vec![0.0; rows * TILE];
    let mut live: Vec<usize> = Vec::with_capacity(rows);
    let mut out = [[0.0; PANEL]; QB];
    let mut j0 = 0;
    while j0 < y.n {
        let len = tile.min(y.n - j0);
        live.clear();
        live.extend((0..rows).filter(|&r| !skip(r, j0 / tile)));
        if !live.is_empty() {
            for p in j0 / PANEL..(j0 + len).div_ceil(PANEL) {
                let panel = y.panel(p).expect("blocked loop without panels");
                let (c0, w) = (p * PANEL - j0, PANEL.min(j0 + len - p * PANEL));
                for g in live.chunks(QB) {
                    // A short group repeats its last row (computed, not stored).
                    let x = std::array::from_fn(|q| {
                        let r = g[q.min(g.len() - 1)];
                        &xs[r * d..(r + 1) * d]
                    });
                    panel_group(x, panel, term, &mut out);
                    for (&r, o) in g.iter().zip(&out) {
                        vals[r * TILE + c0..r * TILE + c0 + w].copy_from_slice(&o[..w]);
                    }
                }
            }
            for &r in &live {
                f(r, j0, &vals[r * TILE..r * TILE + len]);
            }
        }
        j0 += len;
    }
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
    skip: impl FnMut(usize, usize) -> bool,
    f: impl FnMut(usize, usize, &[f64]),
) {
    for_each_term_tile(xs, y, tile, SqDist, skip, f, |x, j0, b| tile_soa(x, y, j0, b))
}

/// [`for_each_tile`] for any [`PairTerm`]: the blocked loop (`blocked_tiles`) when `y` has its
/// panel copy and `tile` is a multiple of [`PANEL`], else the plain loop: per (tile, query),
/// `plain(x, j0, b)` writes the values of the pairs of `x` and the targets `j0 .. j0 + b.len()`
/// to `b` — it must compute the same [`PairTerm`] sums as the blocked loop, so the same bits.
#[inline(always)]
pub fn for_each_term_tile<T: PairTerm>(
    xs: &[f64],
    y: &Soa,
    tile: usize,
    term: T,
    mut skip: impl FnMut(usize, usize) -> bool,
    mut f: impl FnMut(usize, usize, &[f64]),
    mut plain: impl FnMut(&[f64], usize, &mut [f64]),
) {
    assert!((1..=TILE).contains(&tile), "tile length {tile} outside 1..={TILE}");
    if y.has_panels() && tile.is_multiple_of(PANEL) {
        return blocked_tiles(xs, y, tile, term, skip, f);
    }
    let d = y.dim.max(1);
    let mut buf = TileBuf::new();
    let mut j0 = 0;
    while j0 < y.n {
        let len = tile.min(y.n - j0);
        for (r, x) in xs.chunks_exact(d).enumerate() {
            if !skip(r, j0 / tile) {
                let b = &mut buf.0[..len];
                plain(x, j0, b);
                f(r, j0, b);
            }
        }
        j0 += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call `f(r, j0, values)` of [`for_each_tile`], in order, as bits.
    fn calls(
        xs: &[f64],
        y: &Soa,
        tile: usize,
        skip: impl Fn(usize, usize) -> bool,
    ) -> Vec<(usize, usize, Vec<u64>)> {
        let mut out = Vec::new();
        for_each_tile(xs, y, tile, skip, |r, j0, v| {
            out.push((r, j0, v.iter().map(|v| v.to_bits()).collect()))
        });
        out
    }

    /// The blocked loop calls `f` for the same (row, tile) pairs in the same order with the same
    /// bits as the plain loop — short register groups (1 and 6 rows), partial tiles and panels,
    /// the truncated pass's tile length 64 with skipped pairs, a tile length that is not a
    /// multiple of [`PANEL`] (plain loop) — and each value is the fused sum `Σ_k t_k²` in order.
    #[test]
    fn blocked_and_plain_loops_agree_bitwise() {
        let val = |v: usize, s: usize| (((v + s) * 7919 % 1009) as f64) / 500.0 - 1.0;
        for d in [1, 3, 24, 41] {
            for (rows, m) in [(1, 15), (6, 300), (64, 257)] {
                let xs: Vec<f64> = (0..rows * d).map(|v| val(v, 1)).collect();
                let y: Vec<f64> = (0..m * d).map(|v| val(v, 2)).collect();
                let (plain, blocked) = (Soa::with_panels(d, &y, false), Soa::with_panels(d, &y, true));
                for tile in [TILE, 64, 50] {
                    let skip = |r: usize, t: usize| tile == 64 && (r + t) % 3 == 1;
                    let want = calls(&xs, &plain, tile, skip);
                    assert_eq!(calls(&xs, &blocked, tile, skip), want, "d = {d}, {rows} × {m}, tile {tile}");
                    let pairs: usize = want.iter().map(|c| c.2.len()).sum();
                    assert!(pairs > 0 && (tile != 64 || rows * m == 15 || pairs < rows * m));
                    for (r, j0, v) in &want {
                        for (jj, b) in v.iter().enumerate() {
                            let j = j0 + jj;
                            let direct = (0..d).fold(0.0f64, |a, k| {
                                let t = xs[r * d + k] - y[j * d + k];
                                t.mul_add(t, a)
                            });
                            assert_eq!(*b, direct.to_bits(), "d = {d}, pair ({r}, {j})");
                        }
                    }
                }
            }
        }
    }
}
