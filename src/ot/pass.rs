//! The one reduction of the Sinkhorn loop (`ot::sinkhorn::iterate`): for every query point `x_i`,
//! the streamed log-sum-exp
//!
//! `L_i = LSE_j (h_j − λ γ(|x_i − y_j|²))`,  `λ = c/ε` (cost `C = c γ(|x − y|²)`),
//!
//! with the ground function `γ` the identity (every UOT cost, `W2`) or the square root (`W1`)
//! ([`Ground`]), over the targets `y_j`, taken tile by tile from [`crate::kernel::for_each_tile`]
//! (the same tiles and distance bits as the Gaussian sums and the plan access) with a
//! running maximum `M` and running sum `S = Σ exp(s_j − M)` (a new tile with a larger maximum
//! rescales `S` by `exp(M_old − M_new)`), so memory is O(n + m) plus one tile per thread. With
//! `h_j = log b_j + g_j/ε` this gives the soft-min `f̂_i = −ε L_i` of the Sinkhorn update. Two
//! variants carry extra sums over the soft-max weights `p_ij = exp(s_j − L_i)`:
//!
//! - statistics for the objective: `Σ_j p_ij |x_i − y_j|²` and `Σ_j p_ij g_j`;
//! - the barycentre `Σ_j p_ij y_j` (barycentric map, gradients of the potentials).
//!
//! Determinism: each row is reduced by one thread, over `j` in increasing order, with a fixed
//! 32-lane split of every tile sum, so the bits do not depend on the thread count; and since only
//! `+`/`×` and exactly rounded fused multiply-adds (`f64::mul_add`, in the shared
//! [`crate::kernel::exp`]) are used, not on the SIMD level either. The three variants
//! share the same code for `M` and `S`, so `L_i` is bitwise the same in all of them — unless the
//! plain pass truncates (next paragraph). The rows are split over the ranks of the operator's
//! execution context ([`crate::dist::Exec`], given to [`Reduction::new`] by the solve, from
//! `SinkhornOptions::exec`) in blocks of [`ROW_BLOCK`], run on the calling thread or the rayon
//! pool as its `Par` says, and all-gathered ([`crate::dist::row_pass`]): a row's value depends only
//! on its block (a fixed set of rows), so the bits do not depend on the number of ranks either.
//!
//! A [`Reduction`] is the prepared operator of one direction of a solve: the targets'
//! coordinate-major copy, the truncation geometry (target tile order and boxes, query order) and a
//! workspace are built once per solve and reused by every half-iteration.
//!
//! At small ε the plain pass ([`Reduction::lse`], every Sinkhorn iteration) skips tiles of targets whose
//! every term is below `e^{−(ln m + 42)}` times the row's largest (`Cull`): each row's sum changes
//! by less than `e^{−42} ≈ 5.7e−19` relative. The statistics and barycentre passes never truncate.
//!
//! Generic (elastic) cost, SPEC §7: `C_ij = h(x_i − y_j) = ½|z|² + γ Σ_k τ₁(z_k)` is not a
//! function of `|x − y|²`, so its tiles come from a second tile path (`for_each_cost_tile`) that
//! computes `h` itself per (row, tile) from the same coordinate-major targets (O(n + m) memory,
//! same fixed order over coordinates and lanes, hence the same determinism); the tile value is
//! then the cost (`c = 1`, ground = identity) and every pass (soft-min, statistics — so
//! `Σ_j p_ij C_ij` for the objective —, barycentre `Σ_j p_ij y_j`, plan access) runs unchanged on
//! it. One more pass, [`Reduction::lse_grad`], averages `∇h(x_i − y_j)` for the entropic map.
//! Truncation is **switched off** for the elastic cost: a valid bound exists (`h(z) ≥ ½|z|²` for
//! `γ ≥ 0`, since `τ₁ ≥ 0`, so `U_T(x) = max_T h − λ ½ dist²(x, box_T)` still bounds every term of a
//! tile) but the floor `F(x)` must then be a true term, `h(x − y_{r_T})`, and the share of skipped
//! tiles is small at the large ε the displacement-sparse maps use; not done.
//!
//! **Pair cache.** In high dimension a tile value costs `d` fused multiply-adds (or the elastic
//! cost's `d` terms) against a few operations for the soft-min that consumes it, and a solve reads
//! the same pairs on every half-iteration. So from [`CACHE_MIN_DIM`] coordinates on, for at most
//! [`CACHE_MAX_PAIRS`] pairs and on one rank, an operator's first untruncated pass stores every
//! pair's tile value (row-major `n × m`, computed by the same tile loop, so the same bits) and
//! every untruncated pass reads them instead of recomputing them: each row still sees its
//! tiles in increasing `j` with the same values, so every pass gives the bits of the streamed one
//! (unit test `pair_cache_gives_the_streamed_bits`). The truncated pass keeps its own copy in its
//! row and target order and skips the same tiles (`pair_cache_of_the_truncated_pass_gives_the_streamed_bits`).
//! Memory: `8 n m` bytes per order used, at most 128 MiB each (a one-pass operator, e.g. a map
//! applied to new points, holds them only for that pass).
//!
//! The row blocks run inside a function compiled for the level [`crate::simd::level`] (AVX-512,
//! AVX2 + FMA or scalar; `ADVREACT_SIMD` overrides it), with the same bits on every level.

use crate::dist::Exec;
use crate::kernel::exp;
use crate::kernel::{for_each_term_tile, for_each_tile, tile_order, PairTerm, Soa, TileBuf, ROW_BLOCK, TILE};
use crate::ot::{elastic_combine, Penalty};
use crate::simd::{multiversion, Isa};
use rayon::prelude::*;
use std::cell::OnceCell;

/// Accumulator lanes of every tile sum and maximum: four 8-wide vectors, so that four
/// independent dependency chains hide the add / max latency.
const LANES: usize = 32;
const NEG_INF: f64 = f64::NEG_INFINITY;

/// The ground cost as a function of the squared distance, `C = c · ground(|x − y|²)`: the squared
/// distance itself (every UOT cost, `W2`) or the distance (`W1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ground {
    /// `ground(d²) = d²`.
    SqDist,
    /// `ground(d²) = √d²` (correctly rounded on every SIMD level).
    Dist,
}

impl Ground {
    #[inline(always)]
    fn of(self, d2: f64) -> f64 {
        match self {
            Ground::SqDist => d2,
            Ground::Dist => d2.sqrt(),
        }
    }
}

/// A [`Ground`] as a type, so that the tile loop is compiled once per ground cost.
trait GroundFn {
    const G: Ground;
    #[inline(always)]
    fn of(d2: f64) -> f64 {
        Self::G.of(d2)
    }
}
struct GSq;
struct GDist;
impl GroundFn for GSq {
    const G: Ground = Ground::SqDist;
}
impl GroundFn for GDist {
    const G: Ground = Ground::Dist;
}

/// Extra sums carried along a row, over the unnormalised weights `e_j = exp(s_j − M)`.
trait RowExtra {
    /// The running maximum grew: multiply every sum by `r = exp(M_old − M_new)`.
    fn rescale(&mut self, r: f64);
    /// Add one tile: `d2[jj] = |x − y_{j0+jj}|²`, `e[jj]` its weight.
    fn tile(&mut self, j0: usize, d2: &[f64], e: &[f64]);
}

#[derive(Clone, Copy)]
struct NoExtra;

impl RowExtra for NoExtra {
    #[inline(always)]
    fn rescale(&mut self, _r: f64) {}
    #[inline(always)]
    fn tile(&mut self, _j0: usize, _d2: &[f64], _e: &[f64]) {}
}

/// `Σ e_j d2_j` and `Σ e_j pot_j`, [`LANES`] lanes each.
struct Stats<'a> {
    pot: &'a [f64],
    sd2: [f64; LANES],
    spot: [f64; LANES],
}

impl RowExtra for Stats<'_> {
    #[inline(always)]
    fn rescale(&mut self, r: f64) {
        self.sd2.iter_mut().for_each(|v| *v *= r);
        self.spot.iter_mut().for_each(|v| *v *= r);
    }
    #[inline(always)]
    fn tile(&mut self, j0: usize, d2: &[f64], e: &[f64]) {
        let pot = &self.pot[j0..j0 + e.len()];
        let full = e.len() - e.len() % LANES;
        for ((ec, dc), pc) in e[..full]
            .chunks_exact(LANES)
            .zip(d2[..full].chunks_exact(LANES))
            .zip(pot[..full].chunks_exact(LANES))
        {
            for k in 0..LANES {
                self.sd2[k] += ec[k] * dc[k];
                self.spot[k] += ec[k] * pc[k];
            }
        }
        for k in 0..e.len() - full {
            self.sd2[k] += e[full + k] * d2[full + k];
            self.spot[k] += e[full + k] * pot[full + k];
        }
    }
}

/// `Σ e_j y_j` (d coordinates, read from the targets' coordinate-major copy).
struct Bary<'a> {
    ys: &'a Soa,
    acc: Vec<f64>,
}

impl RowExtra for Bary<'_> {
    #[inline(always)]
    fn rescale(&mut self, r: f64) {
        self.acc.iter_mut().for_each(|v| *v *= r);
    }
    #[inline(always)]
    fn tile(&mut self, j0: usize, _d2: &[f64], e: &[f64]) {
        for (k, a) in self.acc.iter_mut().enumerate() {
            let yk = self.ys.coord(k, j0, e.len());
            let mut s = [0.0; LANES];
            let full = e.len() - e.len() % LANES;
            for (ec, yc) in e[..full].chunks_exact(LANES).zip(yk[..full].chunks_exact(LANES)) {
                for l in 0..LANES {
                    s[l] = ec[l].mul_add(yc[l], s[l]);
                }
            }
            for (l, (ej, yj)) in e[full..].iter().zip(&yk[full..]).enumerate() {
                s[l] = ej.mul_add(*yj, s[l]);
            }
            *a += lane_sum(&s);
        }
    }
}

/// The lanes summed by a fixed pairwise tree (halves first: whole vectors, then within one).
#[inline(always)]
fn lane_sum(v: &[f64; LANES]) -> f64 {
    let mut w = *v;
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for k in 0..n {
            w[k] += w[k + n];
        }
    }
    w[0]
}

/// Fold one tile into a row's running state `(M, S)` and extras: `d2[jj] = |x − y_{j0+jj}|²`,
/// `buf` scratch of at least `d2.len()` (rounded up to the exp block).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn absorb_tile<I: Isa, G: GroundFn, E: RowExtra>(
    state: &mut (f64, f64),
    ex: &mut E,
    j0: usize,
    d2: &[f64],
    h: &[f64],
    lam: f64,
    buf: &mut [f64; TILE],
) {
    let len = d2.len();
    let hs = &h[j0..j0 + len];
    // `s_j = h_j − λ ground(d2_j)` and its lane-wise maximum in one sweep.
    let full = len - len % LANES;
    let mut mx = [NEG_INF; LANES];
    for ((sc, hc), dc) in buf[..full]
        .chunks_exact_mut(LANES)
        .zip(hs[..full].chunks_exact(LANES))
        .zip(d2[..full].chunks_exact(LANES))
    {
        for k in 0..LANES {
            let v = hc[k] - lam * G::of(dc[k]);
            sc[k] = v;
            mx[k] = if v > mx[k] { v } else { mx[k] };
        }
    }
    for (k, ((sj, hj), dj)) in buf[full..len].iter_mut().zip(&hs[full..]).zip(&d2[full..]).enumerate() {
        let v = hj - lam * G::of(*dj);
        *sj = v;
        mx[k] = if v > mx[k] { v } else { mx[k] };
    }
    let tm = mx.iter().fold(NEG_INF, |a, &b| if b > a { b } else { a });
    if tm == NEG_INF {
        // Every weight of this tile is zero — or some value is NaN (the maximum skips NaN):
        // then the row's result is NaN, never a silently dropped tile.
        if buf[..len].iter().any(|v| v.is_nan()) {
            *state = (f64::NAN, f64::NAN);
        }
        return;
    }
    let (m, s) = state;
    if tm > *m {
        let r = exp::exp_or_zero(*m - tm);
        *s *= r;
        ex.rescale(r);
        *m = tm;
    }
    // Whole blocks (past `len` the buffer holds stale finite values, computed and ignored).
    let padded = len.div_ceil(exp::BLOCK) * exp::BLOCK;
    for c in buf[..padded].chunks_exact_mut(exp::BLOCK) {
        exp::exp_shifted_block_on::<I>(c.try_into().expect("block"), *m);
    }
    let mut acc = [0.0; LANES];
    for c in buf[..full].chunks_exact(LANES) {
        for k in 0..LANES {
            acc[k] += c[k];
        }
    }
    for (k, &v) in buf[full..len].iter().enumerate() {
        acc[k] += v;
    }
    *s += lane_sum(&acc);
    ex.tile(j0, d2, &buf[..len]);
}

/// Stream a block of rows `xs` (particle-contiguous): `states[r] = (M, S)` with
/// `L_r = M + ln S` (`M = −∞` when every `h_j = −∞`), `ex[r]` the row's extras. Tiles of targets
/// in the outer loop, rows in the inner one ([`for_each_tile`]): a tile is read once per
/// block, and each row still sees the tiles in increasing order (the bits of a row do not depend
/// on the block).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn stream_block<I: Isa, G: GroundFn, E: RowExtra>(
    xs: &[f64],
    ys: &Soa,
    h: &[f64],
    lam: f64,
    cull: Option<&Cull>,
    el: Elastic,
    cached: Option<&[f64]>,
    ex: &mut [E],
    states: &mut [(f64, f64)],
) {
    states.iter_mut().for_each(|st| *st = (NEG_INF, 0.0));
    let d = ys.dim.max(1);
    let (floors, alive) = cull.map(|c| c.block_plan::<G>(xs, lam)).unwrap_or_default();
    let mut buf = TileBuf::new();
    let skip = |r: usize, t: usize| {
        cull.is_some_and(|c| !alive[t] || c.skip::<G>(t, &xs[r * d..(r + 1) * d], lam, floors[r]))
    };
    let len = if cull.is_some() { CULL_TILE } else { TILE };
    if let Some(rows) = cached {
        // the stored tile values of these rows ([`PairCache`]): each row sees the tiles of the
        // streamed pass (same length, same skipped tiles), the same values in the same order, so
        // the same bits (called here, not through a closure, so that the epilogue is compiled
        // with this level's features)
        let m = ys.n;
        for (r, row) in rows.chunks_exact(m.max(1)).enumerate() {
            for (t, j0) in (0..m).step_by(len).enumerate() {
                if skip(r, t) {
                    continue;
                }
                let vals = &row[j0..(j0 + len).min(m)];
                absorb_tile::<I, G, E>(&mut states[r], &mut ex[r], j0, vals, h, lam, &mut buf.0);
            }
        }
        return;
    }
    // The closure's type depends on `I`: each level's copy gets its own instance of the tile
    // loop, inlined into its `#[target_feature]` function.
    let mut tile = |r: usize, j0: usize, d2: &[f64], _isa: std::marker::PhantomData<I>| {
        absorb_tile::<I, G, E>(&mut states[r], &mut ex[r], j0, d2, h, lam, &mut buf.0)
    };
    match el {
        None => for_each_tile(xs, ys, len, skip, |r, j0, d2| tile(r, j0, d2, std::marker::PhantomData)),
        Some(el) => for_each_cost_tile(xs, ys, el, |r, j0, c| tile(r, j0, c, std::marker::PhantomData)),
    }
}

/// The elastic parameters `(γ, τ)` of an operator's cost, `None` for a squared-distance ground.
pub(crate) type Elastic = Option<(f64, Penalty)>;

/// The generic-cost tile path: like [`for_each_tile`] (no truncation), but the tile holds the
/// elastic cost `C_rj = h(x_r − y_j) = ½ Σ_k t_k² + γ Σ_k τ₁(t_k)`, `t = x_r − y_j`, both sums
/// over `k = 0, 1, …` in order (the squares fused, `t.mul_add(t, ·)`, as in the distance
/// tiles), combined by [`elastic_combine`]: the bits of [`crate::ot::Cost::eval`], whatever the
/// block or thread. From [`crate::kernel::PANEL_MIN_DIM`] coordinates on, the blocked loop of
/// [`for_each_term_tile`] (several queries per loaded target coordinate; the same sums, so the
/// same bits). Memory: two tiles (plain loop) or one tile per row of the block (blocked loop).
#[inline(always)]
fn for_each_cost_tile(
    xs: &[f64],
    y: &Soa,
    (gamma, pen): (f64, Penalty),
    f: impl FnMut(usize, usize, &[f64]),
) {
    match pen {
        Penalty::L1 => cost_tiles(xs, y, L1Term { gamma }, f),
        Penalty::SmoothedL0 { .. } => cost_tiles(xs, y, PenTerm { gamma, pen }, f),
    }
}

/// The elastic cost with `τ₁ = |·|` (a type of its own, so that the loops are compiled without a
/// branch on the penalty).
#[derive(Clone, Copy)]
struct L1Term {
    gamma: f64,
}

impl PairTerm for L1Term {
    #[inline(always)]
    fn add(self, t: f64, sq: &mut f64, pen: &mut f64) {
        *sq = t.mul_add(t, *sq);
        *pen += t.abs();
    }
    #[inline(always)]
    fn finish(self, sq: f64, pen: f64) -> f64 {
        elastic_combine(sq, pen, self.gamma)
    }
}

/// The elastic cost with any penalty `τ₁` ([`Penalty::value`]).
#[derive(Clone, Copy)]
struct PenTerm {
    gamma: f64,
    pen: Penalty,
}

impl PairTerm for PenTerm {
    #[inline(always)]
    fn add(self, t: f64, sq: &mut f64, pen: &mut f64) {
        *sq = t.mul_add(t, *sq);
        *pen += self.pen.value(t);
    }
    #[inline(always)]
    fn finish(self, sq: f64, pen: f64) -> f64 {
        elastic_combine(sq, pen, self.gamma)
    }
}

/// [`for_each_cost_tile`] for one elastic term; the plain loop runs over the targets innermost
/// (one coordinate of a whole tile at a time, the two sums in tile buffers).
#[inline(always)]
fn cost_tiles<T: PairTerm>(xs: &[f64], y: &Soa, term: T, f: impl FnMut(usize, usize, &[f64])) {
    let mut pn = TileBuf::new();
    let plain = |x: &[f64], j0: usize, s: &mut [f64]| {
        let len = s.len();
        let p = &mut pn.0[..len];
        s.fill(0.0);
        p.fill(0.0);
        for (k, xk) in x.iter().enumerate() {
            for ((sj, pj), yj) in s.iter_mut().zip(p.iter_mut()).zip(y.coord(k, j0, len)) {
                term.add(xk - yj, sj, pj);
            }
        }
        for (sj, pj) in s.iter_mut().zip(p.iter()) {
            *sj = term.finish(*sj, *pj);
        }
    };
    for_each_term_tile(xs, y, TILE, term, |_, _| false, f, plain);
}

/// Margin of the tile truncation in the plain soft-min pass (see [`Cull`]).
const CULL_MARGIN: f64 = 42.0;
/// Tile length of the truncated pass: smaller boxes are skipped more often, at more overhead per
/// tile (converged divergence of the benchmark, n = m = 4000: 1.63 s with 32, 1.31 s with 64,
/// 1.38 s with 128, 1.60 s with 256).
const CULL_TILE: usize = 64;
/// The truncated pass is used only when, on a sample of rows, at least this share of the
/// (row, tile) pairs would be skipped (the tile order and the bounds cost time of their own).
const CULL_MIN_SHARE: f64 = 0.5;
/// Rows of that sample.
const CULL_SAMPLE_ROWS: usize = 64;
/// Nor below this many targets: sorting and bounding cost more than they save on small passes
/// (`results inference`: 3-D and 10-D data sets of 500–900 cells ran up to 30 % slower).
const CULL_MIN_TARGETS: usize = 1024;

/// Rows `order[0], order[1], …` of the particle-contiguous points `p` (dim `d`).
fn gather_rows(d: usize, p: &[f64], order: &[usize]) -> Vec<f64> {
    order.iter().flat_map(|&i| p[i * d..(i + 1) * d].iter().copied()).collect()
}

/// The parts of the truncation test that depend on the targets alone, built once per operator
/// (on its first pass that may truncate, [`Cull::threshold`]) and reused by every later one.
struct Geometry {
    /// Targets in tile order (leaves of [`CULL_TILE`]): the permutation and the rows
    /// (particle-contiguous).
    order_y: Vec<usize>,
    ys_rows: Vec<f64>,
    /// Per tile, per coordinate: the bounding box.
    lo: Vec<f64>,
    hi: Vec<f64>,
}

/// The operands of a truncated pass, built once per operator (on its first truncated pass, when
/// [`Cull::plan`] accepts) and reused by every later one: the targets of the [`Geometry`] in
/// coordinate-major order, and the queries in tile order (leaves of [`ROW_BLOCK`] rows), the
/// permutation and the rows.
struct Tiled {
    ys: Soa,
    order_x: Vec<usize>,
    xs: Vec<f64>,
}

impl Tiled {
    fn new(d: usize, x: &[f64], geo: &Geometry) -> Self {
        let order_x = tile_order(d, x, ROW_BLOCK);
        let xs = gather_rows(d, x, &order_x);
        Self { ys: Soa::from_rows(d, &geo.ys_rows), order_x, xs }
    }
}

impl Geometry {
    fn new(d: usize, y: &[f64]) -> Self {
        let m = y.len() / d;
        let order_y = tile_order(d, y, CULL_TILE);
        let ys_rows = gather_rows(d, y, &order_y);
        let nt = m.div_ceil(CULL_TILE);
        let (mut lo, mut hi) = (vec![f64::INFINITY; nt * d], vec![NEG_INF; nt * d]);
        for t in 0..nt {
            let b = t * d;
            for p in ys_rows[t * CULL_TILE * d..((t + 1) * CULL_TILE).min(m) * d].chunks_exact(d) {
                for (k, v) in p.iter().enumerate() {
                    lo[b + k] = lo[b + k].min(*v);
                    hi[b + k] = hi[b + k].max(*v);
                }
            }
        }
        Self { order_y, ys_rows, lo, hi }
    }
}

/// Truncation of negligible tiles in [`Reduction::lse`] (the pass of every Sinkhorn iteration).
///
/// The targets are put in [`tile_order`] and streamed in tiles of [`CULL_TILE`] (each tile
/// spatially compact; the order and the boxes are the operator's [`Geometry`], the query order
/// its [`Tiled`] operands, each built once). With `γ = ground` (increasing), for query `x` and
/// tile `T` every term obeys
/// `s_j = h_j − λ γ(|x − y_j|²) ≤ U_T(x) = max_T h − λ γ(dist²(x, box_T))`, and the row's largest
/// term is at least `F(x) = max_T (h_{r_T} − λ γ(|x − y_{r_T}|²))` (`r_T` the point of `T` with the
/// largest `h`). A tile is skipped when `U_T(x) < F(x) − τ`, `τ = ln m + 42`: the skipped terms
/// then sum to less than `m e^{−τ} e^{F} ≤ e^{−42} e^{M}`, where `M ≥ F` is the largest term, so
/// the row's sum `S ≥ e^{M}` changes by a relative `e^{−42} ≈ 5.7e−19` at most (a
/// two-hundredth of an ulp) and `L = log S` by as much in absolute terms. When no tile could
/// ever be skipped — spread of `h` plus `λ γ(squared diameter of all the points)` `≤ τ` —
/// or any input is NaN or infinite (other than `h = −∞`, a zero weight), or there are fewer than
/// [`CULL_MIN_TARGETS`] targets, or fewer than [`CULL_MIN_SHARE`] of the pairs of a sample of
/// rows would be skipped, the pass runs on the targets in their given order with no truncation,
/// so large-ε passes keep their bits.
///
/// (Measured on the converged Sinkhorn divergence of the performance benchmark, n = m = 4000,
/// ε = 0.0025, tiles of 64: 80–85 % of the (row, tile) pairs are skipped, against 86 % for an
/// oracle that knows each tile's largest term.)
struct Cull<'g> {
    d: usize,
    tau: f64,
    geo: &'g Geometry,
    /// The geometry's tile boxes (read on every (row, tile) test).
    lo: &'g [f64],
    hi: &'g [f64],
    /// `h` in tile order.
    hs: Vec<f64>,
    /// Per tile: `max h`, and the coordinates of a point where it is reached.
    hmax: Vec<f64>,
    rep_y: Vec<f64>,
}

impl<'g> Cull<'g> {
    /// `τ = ln m + 42` when the pass on `h` may be truncated, `None` when it runs untruncated
    /// for a reason that does not need the tile order (see the type's docs). `diam2`: the squared
    /// diameter of all the points (`None` when a coordinate is not finite).
    fn threshold(d: usize, diam2: Option<f64>, h: &[f64], lam: f64, ground: Ground) -> Option<f64> {
        let m = h.len();
        if m < CULL_MIN_TARGETS || d == 0 || !(lam > 0.0 && lam.is_finite()) {
            return None;
        }
        if h.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
            return None;
        }
        let diam2 = diam2?;
        let tau = (m as f64).ln() + CULL_MARGIN;
        let (hlo, hhi) = h.iter().fold((f64::INFINITY, NEG_INF), |(a, b), &v| (a.min(v), b.max(v)));
        if hhi == NEG_INF || (hhi - hlo) + lam * ground.of(diam2) <= tau {
            return None;
        }
        Some(tau)
    }

    /// The tile bounds of `h` on the prepared geometry, or `None` when fewer than
    /// [`CULL_MIN_SHARE`] of the pairs of a sample of the queries `x` would be skipped.
    fn plan(
        geo: &'g Geometry,
        d: usize,
        x: &[f64],
        h: &[f64],
        lam: f64,
        tau: f64,
        ground: Ground,
    ) -> Option<Self> {
        let m = h.len();
        let hs: Vec<f64> = geo.order_y.iter().map(|&j| h[j]).collect();
        let nt = m.div_ceil(CULL_TILE);
        let (lo, hi) = (&geo.lo[..], &geo.hi[..]);
        let mut c = Cull { d, tau, geo, lo, hi, hs, hmax: vec![NEG_INF; nt], rep_y: vec![0.0; nt * d] };
        for t in 0..nt {
            let (j0, j1) = (t * CULL_TILE, ((t + 1) * CULL_TILE).min(m));
            let mut rep = j0;
            for j in j0..j1 {
                if c.hs[j] > c.hs[rep] {
                    rep = j;
                }
            }
            c.hmax[t] = c.hs[rep];
            c.rep_y[t * d..(t + 1) * d].copy_from_slice(&geo.ys_rows[rep * d..(rep + 1) * d]);
        }
        // Up to CULL_SAMPLE_ROWS rows spread over the queries decide whether truncation pays.
        let n = x.len() / d;
        let step = n.div_ceil(CULL_SAMPLE_ROWS).max(1);
        let (mut pairs, mut skipped) = (0usize, 0usize);
        for xi in x.chunks_exact(d).step_by(step) {
            let (f, skip) = match ground {
                Ground::SqDist => {
                    (c.floor::<GSq>(xi, lam), Cull::skip::<GSq> as fn(&Self, usize, &[f64], f64, f64) -> bool)
                }
                Ground::Dist => (
                    c.floor::<GDist>(xi, lam),
                    Cull::skip::<GDist> as fn(&Self, usize, &[f64], f64, f64) -> bool,
                ),
            };
            pairs += nt;
            skipped += (0..nt).filter(|&t| skip(&c, t, xi, lam, f)).count();
        }
        if (skipped as f64) < CULL_MIN_SHARE * pairs as f64 {
            return None;
        }
        Some(c)
    }

    /// `F(x)`: a lower bound of the largest term of the row of `x` (a term itself).
    fn floor<G: GroundFn>(&self, x: &[f64], lam: f64) -> f64 {
        let mut best = NEG_INF;
        for (yr, hr) in self.rep_y.chunks_exact(self.d).zip(&self.hmax) {
            let d2: f64 = x.iter().zip(yr).map(|(a, b)| (a - b) * (a - b)).sum();
            let v = hr - lam * G::of(d2);
            if v > best {
                best = v;
            }
        }
        best
    }

    /// For a block of rows `xs` (particle-contiguous): each row's floor `F(x)`, and which tiles
    /// survive the block-level test `V_T ≥ min_r F(x_r) − τ`, `V_T = max_T h − λ dist²(B, box_T)`
    /// with `B` the rows' bounding box (`V_T ≥ U_T(x)` for every row of the block, so a tile
    /// failing it fails every row's test).
    fn block_plan<G: GroundFn>(&self, xs: &[f64], lam: f64) -> (Vec<f64>, Vec<bool>) {
        let (d, nt) = (self.d, self.hmax.len());
        let (mut blo, mut bhi) = (vec![f64::INFINITY; d], vec![NEG_INF; d]);
        for x in xs.chunks_exact(d) {
            for (k, xk) in x.iter().enumerate() {
                blo[k] = blo[k].min(*xk);
                bhi[k] = bhi[k].max(*xk);
            }
        }
        let v: Vec<f64> = (0..nt)
            .map(|t| {
                let b = t * d;
                let d2: f64 = (0..d)
                    .map(|k| (self.lo[b + k] - bhi[k]).max(blo[k] - self.hi[b + k]).max(0.0))
                    .map(|g| g * g)
                    .sum();
                self.hmax[t] - lam * G::of(d2)
            })
            .collect();
        let floors: Vec<f64> = xs.chunks_exact(d).map(|x| self.floor::<G>(x, lam)).collect();
        let fmin = floors.iter().fold(f64::INFINITY, |a, &b| a.min(b));
        let alive = v.iter().map(|&u| u >= fmin - self.tau).collect();
        (floors, alive)
    }

    /// Whether tile `t` is negligible for the row of `x`: `U_t(x) < F(x) − τ`.
    #[inline(always)]
    fn skip<G: GroundFn>(&self, t: usize, x: &[f64], lam: f64, floor: f64) -> bool {
        let b = t * self.d;
        let mut d2 = 0.0;
        for (k, xk) in x.iter().enumerate() {
            let g = (self.lo[b + k] - xk).max(xk - self.hi[b + k]).max(0.0);
            d2 += g * g;
        }
        self.hmax[t] - lam * G::of(d2) < floor - self.tau
    }
}

#[inline(always)]
fn lse_of(m: f64, s: f64) -> f64 {
    if m == NEG_INF {
        NEG_INF
    } else {
        m + s.ln()
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_lse<I: Isa>(
    d: usize,
    x: &[f64],
    ys: &Soa,
    h: &[f64],
    lam: f64,
    ground: Ground,
    cull: Option<&Cull>,
    el: Elastic,
    cache: Option<&[f64]>,
    i0: usize,
    o: &mut [f64],
) {
    let n = o.len();
    let mut st = vec![(NEG_INF, 0.0); n];
    let mut ex = vec![NoExtra; n];
    let xs = &x[i0 * d..(i0 + n) * d];
    let c = block_rows(cache, ys.n, i0, n);
    match ground {
        Ground::SqDist => stream_block::<I, GSq, _>(xs, ys, h, lam, cull, el, c, &mut ex, &mut st),
        Ground::Dist => stream_block::<I, GDist, _>(xs, ys, h, lam, cull, el, c, &mut ex, &mut st),
    }
    for (oi, &(m, s)) in o.iter_mut().zip(&st[..n]) {
        *oi = lse_of(m, s);
    }
}

multiversion!(block_lse_at => block_lse, block_lse_512, block_lse_256(
    d: usize, x: &[f64], ys: &Soa, h: &[f64], lam: f64, ground: Ground, cull: Option<&Cull>, el: Elastic,
    cache: Option<&[f64]>, i0: usize, o: &mut [f64]
));

/// The rows `i0 .. i0 + n` of a pair cache with `m` values per row.
#[inline(always)]
fn block_rows(cache: Option<&[f64]>, m: usize, i0: usize, n: usize) -> Option<&[f64]> {
    cache.map(|c| &c[i0 * m..(i0 + n) * m])
}

/// The tile values of the rows `i0 .. i0 + o.len() / m` against every target, into `o` (row-major,
/// `m` per row): the streamed pass's tiles (the same loop, so the same bits).
#[inline(always)]
fn block_fill<I: Isa>(d: usize, x: &[f64], ys: &Soa, el: Elastic, i0: usize, o: &mut [f64]) {
    let m = ys.n;
    let n = o.len() / m.max(1);
    let xs = &x[i0 * d..(i0 + n) * d];
    let mut store = |r: usize, j0: usize, v: &[f64], _isa: std::marker::PhantomData<I>| {
        o[r * m + j0..r * m + j0 + v.len()].copy_from_slice(v)
    };
    match el {
        None => {
            for_each_tile(xs, ys, TILE, |_, _| false, |r, j0, v| store(r, j0, v, std::marker::PhantomData))
        }
        Some(el) => for_each_cost_tile(xs, ys, el, |r, j0, v| store(r, j0, v, std::marker::PhantomData)),
    }
}

multiversion!(block_fill_at => block_fill, block_fill_512, block_fill_256(
    d: usize, x: &[f64], ys: &Soa, el: Elastic, i0: usize, o: &mut [f64]
));

/// Fewest coordinates for which a [`Reduction`] keeps its pair values ([`Reduction::pair_cache`]):
/// below it a tile value costs about as much to compute as to read.
pub(crate) const CACHE_MIN_DIM: usize = 16;

/// Most pairs `n·m` whose values a [`Reduction`] keeps (2²⁴: 128 MiB of `f64`, e.g. n = m = 4096).
pub(crate) const CACHE_MAX_PAIRS: usize = 1 << 24;

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_stats<I: Isa>(
    d: usize,
    x: &[f64],
    ys: &Soa,
    h: &[f64],
    lam: f64,
    pot: &[f64],
    el: Elastic,
    cache: Option<&[f64]>,
    i0: usize,
    o: &mut [f64],
    md: &mut [f64],
    mp: &mut [f64],
) {
    let n = o.len();
    let mut st = vec![(NEG_INF, 0.0); n];
    let mut ex: Vec<Stats> = (0..n).map(|_| Stats { pot, sd2: [0.0; LANES], spot: [0.0; LANES] }).collect();
    let c = block_rows(cache, ys.n, i0, n);
    stream_block::<I, GSq, _>(&x[i0 * d..(i0 + n) * d], ys, h, lam, None, el, c, &mut ex, &mut st[..n]);
    for (r, (&(m, s), e)) in st[..n].iter().zip(&ex).enumerate() {
        o[r] = lse_of(m, s);
        let (a, b) = if s > 0.0 { (lane_sum(&e.sd2) / s, lane_sum(&e.spot) / s) } else { (0.0, 0.0) };
        md[r] = a;
        mp[r] = b;
    }
}

multiversion!(block_stats_at => block_stats, block_stats_512, block_stats_256(
    d: usize, x: &[f64], ys: &Soa, h: &[f64], lam: f64, pot: &[f64], el: Elastic, cache: Option<&[f64]>,
    i0: usize, o: &mut [f64], md: &mut [f64], mp: &mut [f64],
));

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_bary<I: Isa>(
    d: usize,
    x: &[f64],
    ys: &Soa,
    h: &[f64],
    lam: f64,
    el: Elastic,
    cache: Option<&[f64]>,
    i0: usize,
    o: &mut [f64],
    bo: &mut [f64],
) {
    let n = o.len();
    let mut st = vec![(NEG_INF, 0.0); n];
    let mut ex: Vec<Bary> = (0..n).map(|_| Bary { ys, acc: vec![0.0; d] }).collect();
    let c = block_rows(cache, ys.n, i0, n);
    stream_block::<I, GSq, _>(&x[i0 * d..(i0 + n) * d], ys, h, lam, None, el, c, &mut ex, &mut st[..n]);
    for (r, (&(m, s), e)) in st[..n].iter().zip(&ex).enumerate() {
        o[r] = lse_of(m, s);
        for (bk, ak) in bo[r * d..(r + 1) * d].iter_mut().zip(&e.acc) {
            *bk = if s > 0.0 { ak / s } else { f64::NAN };
        }
    }
}

multiversion!(block_bary_at => block_bary, block_bary_512, block_bary_256(
    d: usize, x: &[f64], ys: &Soa, h: &[f64], lam: f64, el: Elastic, cache: Option<&[f64]>, i0: usize,
    o: &mut [f64], bo: &mut [f64],
));

/// `Σ e_j ∇h(x − y_j)` for one row `x` of an elastic cost: per coordinate,
/// `Σ_j e_j (t_j + γ τ₁'(t_j))`, `t_j = x_k − y_jk` (both sums in the fixed lane order).
struct GradH<'a> {
    ys: &'a Soa,
    x: &'a [f64],
    gamma: f64,
    pen: Penalty,
    acc: Vec<f64>,
}

impl RowExtra for GradH<'_> {
    #[inline(always)]
    fn rescale(&mut self, r: f64) {
        self.acc.iter_mut().for_each(|v| *v *= r);
    }
    #[inline(always)]
    fn tile(&mut self, j0: usize, _c: &[f64], e: &[f64]) {
        let (gamma, pen) = (self.gamma, self.pen);
        for (k, a) in self.acc.iter_mut().enumerate() {
            let (xk, yk) = (self.x[k], self.ys.coord(k, j0, e.len()));
            let mut s = [0.0; LANES];
            for (l, (ej, yj)) in e.iter().zip(yk).enumerate() {
                let t = xk - yj;
                s[l % LANES] = ej.mul_add(gamma.mul_add(pen.derivative(t), t), s[l % LANES]);
            }
            *a += lane_sum(&s);
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_grad<I: Isa>(
    d: usize,
    x: &[f64],
    ys: &Soa,
    h: &[f64],
    lam: f64,
    (gamma, pen): (f64, Penalty),
    cache: Option<&[f64]>,
    i0: usize,
    o: &mut [f64],
    go: &mut [f64],
) {
    let n = o.len();
    let xs = &x[i0 * d..(i0 + n) * d];
    let mut st = vec![(NEG_INF, 0.0); n];
    let mut ex: Vec<GradH> =
        xs.chunks_exact(d).map(|x| GradH { ys, x, gamma, pen, acc: vec![0.0; d] }).collect();
    let c = block_rows(cache, ys.n, i0, n);
    stream_block::<I, GSq, _>(xs, ys, h, lam, None, Some((gamma, pen)), c, &mut ex, &mut st[..n]);
    for (r, (&(m, s), e)) in st[..n].iter().zip(&ex).enumerate() {
        o[r] = lse_of(m, s);
        for (gk, ak) in go[r * d..(r + 1) * d].iter_mut().zip(&e.acc) {
            *gk = if s > 0.0 { ak / s } else { f64::NAN };
        }
    }
}

multiversion!(block_grad_at => block_grad, block_grad_512, block_grad_256(
    d: usize, x: &[f64], ys: &Soa, h: &[f64], lam: f64, el: (f64, Penalty), cache: Option<&[f64]>,
    i0: usize, o: &mut [f64], go: &mut [f64],
));

/// The prepared reduction of one direction of a solve, from the query points `x` to the
/// targets `y` (both particle-contiguous, dimension `d`): the squared diameter of all the points,
/// the targets' coordinate-major copy (built on the first untruncated pass), the truncation
/// [`Geometry`] — target tile order and boxes — (built on the first pass that may truncate) and
/// the operands of the truncated pass ([`Tiled`]: query order; built on the first truncated
/// pass) are functions of the points alone, built at most once per solve instead of on every
/// half-iteration, and only when a pass needs them (a single iteration, `sinkhorn_step`, builds
/// no more than the pass it runs uses); `h` and the reordered output are a workspace reused by
/// every pass. Every pass splits its rows over the ranks of the operator's execution context and
/// runs them with its parallelism ([`crate::dist::row_pass`]).
pub(crate) struct Reduction<'a> {
    exec: Exec,
    d: usize,
    x: &'a [f64],
    y: &'a [f64],
    ground: Ground,
    /// The elastic cost's parameters: the tiles hold `h(x − y)` (generic-cost path, never
    /// truncated); `None`: they hold `|x − y|²`.
    el: Elastic,
    ys: OnceCell<Soa>,
    /// `Σ_k (max_k − min_k)²` over both point sets; `None` if a coordinate is not finite.
    diam2: Option<f64>,
    geo: Option<Geometry>,
    tiled: OnceCell<Tiled>,
    h: Vec<f64>,
    sorted: Vec<f64>,
    /// Every pair's tile value in the caller's order (untruncated passes).
    cache: PairCache,
    /// Every pair's tile value in the truncated pass's order ([`Tiled`]).
    cache_tiled: PairCache,
}

/// The stored tile values of every pair of an operator, in one row and target order (module
/// doc: pair cache), built by the first pass that asks for them.
#[derive(Default)]
struct PairCache {
    vals: OnceCell<Option<Vec<f64>>>,
}

impl PairCache {
    /// The values of the queries `x` against the targets `ys` (row-major `n × m`), computed on the
    /// first call (the tile loop of a streamed pass); `None` when `d < CACHE_MIN_DIM`,
    /// `n·m > CACHE_MAX_PAIRS` or the rows are split over several ranks.
    fn get(&self, exec: &Exec, d: usize, x: &[f64], ys: &Soa, el: Elastic) -> Option<&[f64]> {
        if let Some(c) = self.vals.get() {
            return c.as_deref();
        }
        let (n, m) = (x.len() / d.max(1), ys.n);
        let eligible = d >= CACHE_MIN_DIM
            && n.checked_mul(m).is_some_and(|p| p > 0 && p <= CACHE_MAX_PAIRS)
            && exec.comm.size() == 1;
        let built = self.vals.get_or_init(|| {
            if !eligible {
                return None;
            }
            let lvl = crate::simd::level();
            let mut vals = vec![0.0; n * m];
            crate::dist::row_pass(exec, n, ROW_BLOCK, &mut [(&mut vals, m)], |i0, o| {
                block_fill_at(lvl, d, x, ys, el, i0, o[0])
            });
            Some(vals)
        });
        built.as_deref()
    }
}

impl<'a> Reduction<'a> {
    /// The operator from `x` to `y` for the ground cost `ground`, its passes run in `exec`.
    pub(crate) fn new(exec: &Exec, d: usize, x: &'a [f64], y: &'a [f64], ground: Ground) -> Self {
        let finite = x.iter().chain(y).all(|v| v.is_finite());
        let diam2 = finite.then(|| {
            let mut diam2 = 0.0;
            for k in 0..d {
                let (lo, hi) = x
                    .iter()
                    .skip(k)
                    .step_by(d)
                    .chain(y.iter().skip(k).step_by(d))
                    .fold((f64::INFINITY, NEG_INF), |(a, b), &v| (a.min(v), b.max(v)));
                diam2 += (hi - lo) * (hi - lo);
            }
            diam2
        });
        Self {
            exec: exec.clone(),
            d,
            x,
            y,
            ground,
            el: None,
            ys: OnceCell::new(),
            diam2,
            geo: None,
            tiled: OnceCell::new(),
            h: Vec::new(),
            sorted: Vec::new(),
            cache: PairCache::default(),
            cache_tiled: PairCache::default(),
        }
    }

    /// The stored tile values of every pair for an untruncated pass ([`PairCache::get`]).
    fn pair_cache(&self) -> Option<&[f64]> {
        self.cache.get(&self.exec, self.d, self.x, self.ys(), self.el)
    }

    /// The operator of the ground cost `cost`: its tiles hold `|x − y|²` (squared-Euclidean costs,
    /// `C = c|x − y|²`) or `h(x − y)` itself (elastic cost, `c = 1`).
    pub(crate) fn for_cost(exec: &Exec, d: usize, x: &'a [f64], y: &'a [f64], cost: crate::ot::Cost) -> Self {
        let mut r = Self::new(exec, d, x, y, Ground::SqDist);
        r.el = cost.elastic();
        r
    }

    /// Switch the operator to the elastic cost `el` (tiles of `h(x − y)`, never truncated).
    pub(crate) fn set_elastic(&mut self, el: Elastic) {
        self.el = el;
    }

    /// The targets' coordinate-major copy (built on first use).
    fn ys(&self) -> &Soa {
        self.ys.get_or_init(|| Soa::from_rows(self.d, self.y))
    }

    /// The soft-min of a Sinkhorn half-update,
    /// `out_i = −ε LSE_j (log w_j + p_j/ε − c·ground(|x_i − y_j|²)/ε)` (`logw` the targets'
    /// log-weights, `pot` their potential).
    pub(crate) fn soft_min(&mut self, logw: &[f64], pot: &[f64], eps: f64, c: f64, out: &mut [f64]) {
        let mut h = std::mem::take(&mut self.h);
        h.clear();
        h.extend(logw.iter().zip(pot).map(|(l, p)| l + p / eps));
        self.lse(&h, c / eps, out);
        self.h = h;
        out.iter_mut().for_each(|v| *v *= -eps);
    }

    /// `out[i] = LSE_j (h_j − λ ground(|x_i − y_j|²))` for every query `x_i`. Negligible tiles are
    /// skipped ([`Cull`]: relative error of each row's sum below 5.7e−19); the queries are then
    /// taken in tile order (leaves of [`ROW_BLOCK`] rows), so that each row block is compact and
    /// most tiles are dismissed for the whole block at once, and the results are returned in the
    /// caller's row order.
    pub(crate) fn lse(&mut self, h: &[f64], lam: f64, out: &mut [f64]) {
        let (lvl, d, ground, exec, el) = (crate::simd::level(), self.d, self.ground, &self.exec, self.el);
        let run =
            |x: &[f64], ys: &Soa, h: &[f64], cull: Option<&Cull>, cache: Option<&[f64]>, out: &mut [f64]| {
                crate::dist::row_pass(exec, out.len(), ROW_BLOCK, &mut [(out, 1)], |i0, o| {
                    block_lse_at(lvl, d, x, ys, h, lam, ground, cull, el, cache, i0, o[0])
                });
            };
        // The elastic cost's tiles are never truncated (see the module docs).
        let tau = if el.is_some() { None } else { Cull::threshold(d, self.diam2, h, lam, ground) };
        if tau.is_some() && self.geo.is_none() {
            self.geo = Some(Geometry::new(d, self.y));
        }
        let cull =
            self.geo.as_ref().zip(tau).and_then(|(g, tau)| Cull::plan(g, d, self.x, h, lam, tau, ground));
        match cull {
            None => run(self.x, self.ys(), h, None, self.pair_cache(), out),
            Some(c) => {
                let t = self.tiled.get_or_init(|| Tiled::new(d, self.x, c.geo));
                self.sorted.resize(out.len(), 0.0);
                let cache = self.cache_tiled.get(exec, d, &t.xs, &t.ys, el);
                run(&t.xs, &t.ys, &c.hs, Some(&c), cache, &mut self.sorted);
                for (&i, v) in t.order_x.iter().zip(&self.sorted) {
                    out[i] = *v;
                }
            }
        }
    }

    /// Like [`Reduction::lse`] (never truncated; squared-distance ground cost), and also the
    /// soft-max averages `mean_d2[i] = Σ_j p_ij |x_i − y_j|²` and `mean_pot[i] = Σ_j p_ij pot_j`,
    /// `p_ij = exp(h_j − λ|x_i − y_j|² − L_i)` (zero when `L_i = −∞`).
    pub(crate) fn lse_stats(
        &self,
        h: &[f64],
        lam: f64,
        pot: &[f64],
        lse: &mut [f64],
        mean_d2: &mut [f64],
        mean_pot: &mut [f64],
    ) {
        assert_eq!(self.ground, Ground::SqDist, "statistics pass of a squared-distance cost only");
        let (lvl, d, x, ys, el, cache) =
            (crate::simd::level(), self.d, self.x, self.ys(), self.el, self.pair_cache());
        let outs = &mut [(lse, 1), (mean_d2, 1), (mean_pot, 1)];
        crate::dist::row_pass(&self.exec, outs[0].0.len(), ROW_BLOCK, outs, |i0, o| {
            let [o, md, mp] = o else { unreachable!("three outputs") };
            block_stats_at(lvl, d, x, ys, h, lam, pot, el, cache, i0, o, md, mp)
        });
    }

    /// Like [`Reduction::lse`] (never truncated; squared-distance ground cost), and also the
    /// barycentres `bary[i] = Σ_j p_ij y_j` (n·d).
    pub(crate) fn lse_bary(&self, h: &[f64], lam: f64, lse: &mut [f64], bary: &mut [f64]) {
        assert_eq!(self.ground, Ground::SqDist, "barycentre pass of a squared-distance cost only");
        let (lvl, d, x, ys, el, cache) =
            (crate::simd::level(), self.d, self.x, self.ys(), self.el, self.pair_cache());
        crate::dist::row_pass(&self.exec, lse.len(), ROW_BLOCK, &mut [(lse, 1), (bary, d)], |i0, o| {
            let [o, bo] = o else { unreachable!("two outputs") };
            block_bary_at(lvl, d, x, ys, h, lam, el, cache, i0, o, bo)
        });
    }

    /// Elastic cost only: like [`Reduction::lse`] (never truncated), and also the soft-max
    /// averages of the cost's gradient, `grad[i] = Σ_j p_ij ∇h(x_i − y_j)` (n·d;
    /// `∇h(z)_k = z_k + γ τ₁'(z_k)`), `p_ij = exp(h_j − λ h(x_i − y_j) − L_i)`.
    pub(crate) fn lse_grad(&self, h: &[f64], lam: f64, lse: &mut [f64], grad: &mut [f64]) {
        let el = self.el.expect("gradient pass of an elastic cost only");
        let (lvl, d, x, ys, cache) = (crate::simd::level(), self.d, self.x, self.ys(), self.pair_cache());
        crate::dist::row_pass(&self.exec, lse.len(), ROW_BLOCK, &mut [(lse, 1), (grad, d)], |i0, o| {
            let [o, go] = o else { unreachable!("two outputs") };
            block_grad_at(lvl, d, x, ys, h, lam, el, cache, i0, o, go)
        });
    }

    /// Per-row visit of the values `row_shift_i + h_j − λ|x_i − y_j|²` (the plan entries
    /// `log π_ij` when `row_shift_i = log a_i + f_i/ε` and `h_j = log b_j + g_j/ε`), from the same
    /// tiles and the same distance bits as the soft-min passes: calls `visit(i, t, j0, tile)` for
    /// consecutive tiles of row `i`, blocks of rows run with the operator's parallelism
    /// ([`crate::dist::Par::collect`]), collecting one `T` per row (in row order).
    pub(crate) fn plan_rows<T: Send>(
        &self,
        row_shift: &[f64],
        h: &[f64],
        lam: f64,
        visit: impl Fn(usize, &mut T, usize, &[f64]) + Sync,
        init: impl Fn(usize) -> T + Sync,
    ) -> Vec<T> {
        let (d, n, x, ys, el) = (self.d, row_shift.len(), self.x, self.ys(), self.el);
        let blocks = self.exec.par.collect((0..n.div_ceil(ROW_BLOCK)).into_par_iter().map(|blk| {
            let i0 = blk * ROW_BLOCK;
            let i1 = (i0 + ROW_BLOCK).min(n);
            let mut out: Vec<T> = (i0..i1).map(&init).collect();
            let mut buf = TileBuf::new();
            let row = |r: usize, j0: usize, d2: &[f64]| {
                let lp = &mut buf.0[..d2.len()];
                let shift = row_shift[i0 + r];
                for ((l, hj), dj) in lp.iter_mut().zip(&h[j0..j0 + d2.len()]).zip(d2) {
                    *l = shift + (hj - lam * dj);
                }
                visit(i0 + r, &mut out[r], j0, lp);
            };
            match el {
                None => for_each_tile(&x[i0 * d..i1 * d], ys, TILE, |_, _| false, row),
                Some(el) => for_each_cost_tile(&x[i0 * d..i1 * d], ys, el, row),
            }
            out
        }));
        blocks.into_iter().flatten().collect()
    }
}

/// [`Reduction::lse`] of a one-off operator (squared-distance ground cost).
#[cfg(test)]
pub(crate) fn lse_rows(exec: &Exec, d: usize, x: &[f64], y: &[f64], h: &[f64], lam: f64, out: &mut [f64]) {
    Reduction::new(exec, d, x, y, Ground::SqDist).lse(h, lam, out)
}

/// [`Reduction::lse_bary`] of a one-off operator.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lse_rows_bary(
    exec: &Exec,
    d: usize,
    x: &[f64],
    y: &[f64],
    h: &[f64],
    lam: f64,
    lse: &mut [f64],
    bary: &mut [f64],
) {
    Reduction::new(exec, d, x, y, Ground::SqDist).lse_bary(h, lam, lse, bary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn lse_rows_stats(
        exec: &Exec,
        d: usize,
        x: &[f64],
        y: &[f64],
        h: &[f64],
        lam: f64,
        pot: &[f64],
        lse: &mut [f64],
        md: &mut [f64],
        mp: &mut [f64],
    ) {
        Reduction::new(exec, d, x, y, Ground::SqDist).lse_stats(h, lam, pot, lse, md, mp)
    }

    /// `LSE_j (h_j − λ ground(|x_i − y_j|²))` by two plain passes (max, then sum).
    fn reference(d: usize, xi: &[f64], y: &[f64], h: &[f64], lam: f64, ground: Ground) -> f64 {
        let s: Vec<f64> = (0..h.len())
            .map(|j| h[j] - lam * ground.of((0..d).map(|k| (xi[k] - y[j * d + k]).powi(2)).sum::<f64>()))
            .collect();
        let mx = s.iter().cloned().fold(NEG_INF, f64::max);
        mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln()
    }

    /// The distance ground cost (`W1`): truncated (large λ) and untruncated passes match the
    /// reference; and a prepared operator reused for several `h` (its geometry built once) gives
    /// the bits of a fresh operator each time.
    #[test]
    fn distance_ground_and_reused_operator() {
        let (n, m, d) = (130, 5000, 2);
        let x = data(n, d, 11);
        let y = data(m, d, 12);
        for ground in [Ground::Dist, Ground::SqDist] {
            let mut red = Reduction::new(&Exec::default(), d, &x, &y, ground);
            for (lam, shift) in [(3000.0, 0.0), (1.0, 0.5), (3000.0, 1.5)] {
                let h: Vec<f64> = (0..m).map(|j| ((j * 37 % 101) as f64) / 10.0 - 5.0 + shift).collect();
                let mut out = vec![0.0; n];
                red.lse(&h, lam, &mut out);
                let mut fresh = vec![0.0; n];
                Reduction::new(&Exec::default(), d, &x, &y, ground).lse(&h, lam, &mut fresh);
                assert_eq!(
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    fresh.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
                for i in 0..n {
                    let want = reference(d, &x[i * d..(i + 1) * d], &y, &h, lam, ground);
                    assert!(
                        (out[i] - want).abs() <= 1e-13 * (1.0 + want.abs()),
                        "{ground:?} λ = {lam}, row {i}"
                    );
                }
            }
            assert!(red.geo.is_some(), "{ground:?}: large λ should truncate");
        }
    }

    fn data(n: usize, d: usize, seed: usize) -> Vec<f64> {
        (0..n * d).map(|v| (((v + seed) * 7919 % 1009) as f64) / 500.0 - 1.0).collect()
    }

    #[test]
    fn streamed_lse_matches_two_pass_reference() {
        for &d in &[1usize, 2, 3, 7] {
            let (n, m) = (70, 600);
            let x = data(n, d, 1);
            let y = data(m, d, 2);
            // Weights spanning many orders of magnitude, one zero weight.
            let h: Vec<f64> =
                (0..m).map(|j| if j == 5 { NEG_INF } else { ((j * 31 % 17) as f64) * 3.0 - 20.0 }).collect();
            let lam = 37.0;
            let mut out = vec![0.0; n];
            lse_rows(&Exec::default(), d, &x, &y, &h, lam, &mut out);
            let mut st = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            lse_rows_stats(&Exec::default(), d, &x, &y, &h, lam, &h, &mut st.0, &mut st.1, &mut st.2);
            let mut bl = vec![0.0; n];
            let mut bary = vec![0.0; n * d];
            lse_rows_bary(&Exec::default(), d, &x, &y, &h, lam, &mut bl, &mut bary);
            for i in 0..n {
                let xi = &x[i * d..(i + 1) * d];
                let s: Vec<f64> = (0..m)
                    .map(|j| {
                        let d2: f64 = (0..d).map(|k| (xi[k] - y[j * d + k]).powi(2)).sum();
                        h[j] - lam * d2
                    })
                    .collect();
                let mx = s.iter().cloned().fold(NEG_INF, f64::max);
                let sum: f64 = s.iter().map(|v| (v - mx).exp()).sum();
                let lse = mx + sum.ln();
                assert!((out[i] - lse).abs() <= 1e-13 * (1.0 + lse.abs()), "{d} {i}");
                // Below `CULL_MIN_TARGETS` the plain pass is not truncated nor reordered: the three
                // variants share the code for `M` and `S`, hence the bits.
                assert_eq!(out[i].to_bits(), st.0[i].to_bits());
                assert_eq!(out[i].to_bits(), bl[i].to_bits());
                let mut yb = vec![0.0; d];
                for j in 0..m {
                    let p = (s[j] - lse).exp();
                    for k in 0..d {
                        yb[k] += p * y[j * d + k];
                    }
                }
                for k in 0..d {
                    assert!((bary[i * d + k] - yb[k]).abs() <= 1e-12, "{d} {i} {k}");
                }
            }
        }
    }

    /// At small ε most tiles are skipped, and every row still matches the exact sum over all
    /// terms (the truncation bound is 5.7e−19 relative; the tolerance is the reference's own
    /// rounding). At large ε nothing is reordered: the bits are those of the untruncated pass.
    #[test]
    fn negligible_tiles_are_skipped_within_the_bound() {
        let (n, m, d) = (130, 5000, 2);
        let x = data(n, d, 7);
        let y = data(m, d, 8);
        let h: Vec<f64> = (0..m).map(|j| ((j * 37 % 101) as f64) / 10.0 - 5.0).collect();
        for (lam, expect_skips) in [(2000.0, true), (1.0, false)] {
            let mut out = vec![0.0; n];
            lse_rows(&Exec::default(), d, &x, &y, &h, lam, &mut out);
            let mut exact = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            lse_rows_stats(
                &Exec::default(),
                d,
                &x,
                &y,
                &h,
                lam,
                &h,
                &mut exact.0,
                &mut exact.1,
                &mut exact.2,
            );
            let geo = Geometry::new(d, &y);
            let red = Reduction::new(&Exec::default(), d, &x, &y, Ground::SqDist);
            let tau = Cull::threshold(d, red.diam2, &h, lam, Ground::SqDist);
            let plan = tau.and_then(|t| Cull::plan(&geo, d, &x, &h, lam, t, Ground::SqDist));
            assert_eq!(plan.is_some(), expect_skips, "λ = {lam}");
            if let Some(c) = &plan {
                // As `lse_rows` runs it: rows in tile order, a block test, then a row test.
                let nt = m.div_ceil(CULL_TILE);
                let order = tile_order(d, &x, ROW_BLOCK);
                let xs: Vec<f64> = order.iter().flat_map(|&i| x[i * d..(i + 1) * d].to_vec()).collect();
                let (mut skipped, mut by_block) = (0usize, 0usize);
                for blk in xs.chunks(ROW_BLOCK * d) {
                    let (floors, alive) = c.block_plan::<GSq>(blk, lam);
                    by_block += alive.iter().filter(|a| !**a).count() * (blk.len() / d);
                    for (r, xi) in blk.chunks_exact(d).enumerate() {
                        skipped +=
                            (0..nt).filter(|&t| !alive[t] || c.skip::<GSq>(t, xi, lam, floors[r])).count();
                    }
                }
                let frac = skipped as f64 / (n * nt) as f64;
                assert!(by_block as f64 > 0.3 * (n * nt) as f64, "block test dismissed only {by_block}");
                assert!(frac > 0.6, "only {frac} of the tiles skipped");
            }
            for i in 0..n {
                let xi = &x[i * d..(i + 1) * d];
                let s: Vec<f64> = (0..m)
                    .map(|j| h[j] - lam * (0..d).map(|k| (xi[k] - y[j * d + k]).powi(2)).sum::<f64>())
                    .collect();
                let mx = s.iter().cloned().fold(NEG_INF, f64::max);
                let lse = mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
                assert!((out[i] - lse).abs() <= 1e-14 * (1.0 + lse.abs()), "λ = {lam}, row {i}");
                if !expect_skips {
                    assert_eq!(out[i].to_bits(), exact.0[i].to_bits(), "row {i}");
                }
            }
            // Same bits on 2 and 3 simulated ranks (row blocks, hence block tests, do not move).
            let run = |e: &Exec| {
                let mut o = vec![0.0; n];
                lse_rows(e, d, &x, &y, &h, lam, &mut o);
                o.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()
            };
            let one: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
            for size in [2, 3] {
                for r in crate::dist::testing::simulate(size, run) {
                    assert_eq!(r, one, "{size} ranks, λ = {lam}");
                }
            }
        }
    }

    /// The tile order is a permutation whose tiles are compact (each tile's box is a small part
    /// of the cloud's), and a function of the points alone.
    #[test]
    fn tile_order_makes_compact_tiles() {
        let (m, d) = (4100, 2);
        let y = data(m, d, 9);
        let order = tile_order(d, &y, TILE);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..m).collect::<Vec<_>>());
        assert_eq!(tile_order(d, &y, TILE), order);
        let mut area = 0.0;
        for t in order.chunks(TILE) {
            let ext = |k: usize| {
                let v = t.iter().map(|&j| y[j * d + k]);
                v.clone().fold(NEG_INF, f64::max) - v.fold(f64::INFINITY, f64::min)
            };
            area += ext(0) * ext(1);
        }
        // 17 tiles of a 2 × 2 square: compact boxes cover about the square once (random ones
        // would each cover nearly all of it, 17 × 4).
        assert!(area < 2.0 * 4.0, "tile boxes cover {area}");
    }

    /// The pair cache (from `CACHE_MIN_DIM` coordinates on, built by the first untruncated pass
    /// of an operator) gives every pass the bits of a fresh operator's streamed pass: soft-min on
    /// both grounds, statistics, barycentre and the elastic gradient, for the squared distance and
    /// both elastic costs, at d = 40 (blocked loop) and d = 17 (plain loop); 70 rows against 300
    /// targets (a partial tile). Below `CACHE_MIN_DIM` no cache is built.
    #[test]
    fn pair_cache_gives_the_streamed_bits() {
        let (n, m) = (70, 300);
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        for d in [40, 17, CACHE_MIN_DIM - 1] {
            let x = data(n, d, 31);
            let y = data(m, d, 32);
            let h: Vec<f64> = (0..m).map(|j| ((j * 13 % 29) as f64) - 14.0).collect();
            let pot: Vec<f64> = (0..m).map(|j| (j as f64).cos()).collect();
            let els = [None, Some((0.3, Penalty::L1)), Some((0.3, Penalty::SmoothedL0 { sigma: 0.5 }))];
            for el in els {
                // every pass of an operator, in order, as bits
                let passes = |red: &mut Reduction| {
                    let mut all = Vec::new();
                    let (mut o, mut md, mut mp) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                    red.lse_stats(&h, 1e-3, &pot, &mut o, &mut md, &mut mp);
                    all.extend([bits(&o), bits(&md), bits(&mp)]);
                    let mut b = vec![0.0; n * d];
                    red.lse_bary(&h, 1e-3, &mut o, &mut b);
                    all.extend([bits(&o), bits(&b)]);
                    if el.is_some() {
                        red.lse_grad(&h, 1e-3, &mut o, &mut b);
                        all.extend([bits(&o), bits(&b)]);
                    }
                    red.lse(&h, 1e-3, &mut o);
                    all.push(bits(&o));
                    all
                };
                let fresh = |cache: bool| {
                    let mut r = Reduction::new(&Exec::default(), d, &x, &y, Ground::SqDist);
                    r.set_elastic(el);
                    if !cache {
                        let _ = r.cache.vals.set(None);
                    }
                    r
                };
                let mut red = fresh(true);
                let first = passes(&mut red);
                let second = passes(&mut red);
                let third = passes(&mut red);
                let cached = red.cache.vals.get().is_some_and(|c| c.is_some());
                assert_eq!(cached, d >= CACHE_MIN_DIM, "d = {d}, {el:?}");
                assert!(first[0].iter().all(|b| f64::from_bits(*b).is_finite()));
                assert_eq!(first, second, "d = {d}, {el:?}");
                assert_eq!(first, third, "d = {d}, {el:?}");
                // an operator without the cache (every pass streamed) gives the same bits
                assert_eq!(passes(&mut fresh(false)), first, "d = {d}, {el:?}");
            }
            // W1's ground (square root of the cached squared distance)
            let streaming = Reduction::new(&Exec::default(), d, &x, &y, Ground::Dist);
            let _ = streaming.cache.vals.set(None);
            let mut o = vec![0.0; n];
            let mut red = streaming;
            red.lse(&h, 1e-3, &mut o);
            let streamed = bits(&o);
            let mut red = Reduction::new(&Exec::default(), d, &x, &y, Ground::Dist);
            for _ in 0..3 {
                red.lse(&h, 1e-3, &mut o);
                assert_eq!(bits(&o), streamed, "d = {d}, W1 ground");
            }
            for (i, xi) in x.chunks_exact(d).enumerate() {
                let r = reference(d, xi, &y, &h, 1e-3, Ground::Dist);
                assert!((o[i] - r).abs() <= 1e-12 * r.abs().max(1.0), "row {i}: {} vs {r}", o[i]);
            }
        }
    }

    /// The truncated pass with the pair cache (stored in its own row and target order) skips the
    /// same tiles and gives the bits of the streamed truncated pass, on both grounds.
    #[test]
    fn pair_cache_of_the_truncated_pass_gives_the_streamed_bits() {
        let (n, m, d) = (130, 1500, 20);
        let x = data(n, d, 41);
        let y = data(m, d, 42);
        let h: Vec<f64> = (0..m).map(|j| ((j * 37 % 101) as f64) / 10.0 - 5.0).collect();
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        for (ground, lam) in [(Ground::SqDist, 200.0), (Ground::Dist, 300.0)] {
            let mut red = Reduction::new(&Exec::default(), d, &x, &y, ground);
            let tau = Cull::threshold(d, red.diam2, &h, lam, ground);
            let geo = Geometry::new(d, &y);
            assert!(
                tau.and_then(|t| Cull::plan(&geo, d, &x, &h, lam, t, ground)).is_some(),
                "{ground:?}: truncates"
            );
            let mut o = vec![0.0; n];
            let mut streaming = Reduction::new(&Exec::default(), d, &x, &y, ground);
            let _ = streaming.cache_tiled.vals.set(None);
            streaming.lse(&h, lam, &mut o);
            let streamed = bits(&o);
            assert!(o.iter().all(|v| v.is_finite()));
            for _ in 0..3 {
                red.lse(&h, lam, &mut o);
                assert_eq!(bits(&o), streamed, "{ground:?}");
            }
            assert!(red.cache_tiled.vals.get().is_some_and(|c| c.is_some()), "{ground:?}: tiled cache built");
            assert!(red.cache.vals.get().is_none(), "{ground:?}: no untruncated pass ran");
            for (i, xi) in x.chunks_exact(d).enumerate() {
                let r = reference(d, xi, &y, &h, lam, ground);
                assert!((o[i] - r).abs() <= 1e-12 * r.abs().max(1.0), "row {i}: {} vs {r}", o[i]);
            }
        }
    }

    /// The AVX-512, AVX2 and baseline copies give the same bits (explicit `mul_add` only; fixed lane
    /// order), on the levels this CPU has.
    #[test]
    fn simd_levels_agree_bitwise() {
        use crate::simd::Level;
        let (n, m, d) = (70, 777, 3);
        let x = data(n, d, 3);
        let y = data(m, d, 4);
        let h: Vec<f64> = (0..m).map(|j| ((j * 13 % 29) as f64) - 14.0).collect();
        let pot: Vec<f64> = (0..m).map(|j| (j as f64).sin()).collect();
        let run = |lvl: Level| {
            let mut o = vec![0.0; n];
            let (mut md, mut mp) = (vec![0.0; n], vec![0.0; n]);
            let (mut o2, mut bo) = (vec![0.0; n], vec![0.0; n * d]);
            let ys = Soa::from_rows(d, &y);
            block_stats_at(lvl, d, &x, &ys, &h, 11.0, &pot, None, None, 0, &mut o, &mut md, &mut mp);
            block_bary_at(lvl, d, &x, &ys, &h, 11.0, None, None, 0, &mut o2, &mut bo);
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
            (bits(&o), bits(&md), bits(&mp), bits(&o2), bits(&bo))
        };
        let base = run(Level::Scalar);
        for lvl in Level::ALL.into_iter().filter(|l| l.supported()) {
            assert_eq!(run(lvl), base, "{lvl:?}");
        }
    }

    /// The blocked loop (targets in panels, several queries per loaded coordinate; used from
    /// `kernel::PANEL_MIN_DIM` coordinates on) gives the bits of the plain loop, for every pass
    /// (soft-min on both grounds, statistics, barycentre, elastic gradient) and cost (squared
    /// distance, elastic ℓ1 and smoothed ℓ0), on every SIMD level this CPU has: 70 rows (a block
    /// of 64 and one of 6, a short register group) against 300 targets (a partial tile and panel).
    #[test]
    fn blocked_loop_gives_the_plain_bits() {
        use crate::simd::Level;
        let (n, m) = (70, 300);
        for d in [5, 40] {
            let x = data(n, d, 21);
            let y = data(m, d, 22);
            let h: Vec<f64> = (0..m).map(|j| ((j * 13 % 29) as f64) - 14.0).collect();
            let pot: Vec<f64> = (0..m).map(|j| (j as f64).sin()).collect();
            let run = |lvl: Level, panels: bool| {
                let ys = Soa::with_panels(d, &y, panels);
                assert_eq!(ys.has_panels(), panels);
                let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
                let mut all = Vec::new();
                let els = [None, Some((0.3, Penalty::L1)), Some((0.3, Penalty::SmoothedL0 { sigma: 0.5 }))];
                for i0 in [0, ROW_BLOCK] {
                    let r = ROW_BLOCK.min(n - i0);
                    for el in els {
                        let mut o = vec![0.0; r];
                        block_lse_at(lvl, d, &x, &ys, &h, 0.7, Ground::SqDist, None, el, None, i0, &mut o);
                        let (mut so, mut md, mut mp) = (vec![0.0; r], vec![0.0; r], vec![0.0; r]);
                        block_stats_at(
                            lvl, d, &x, &ys, &h, 0.7, &pot, el, None, i0, &mut so, &mut md, &mut mp,
                        );
                        let (mut bl, mut bo) = (vec![0.0; r], vec![0.0; r * d]);
                        block_bary_at(lvl, d, &x, &ys, &h, 0.7, el, None, i0, &mut bl, &mut bo);
                        all.extend([bits(&o), bits(&so), bits(&md), bits(&mp), bits(&bl), bits(&bo)]);
                        if let Some(el) = el {
                            let (mut gl, mut go) = (vec![0.0; r], vec![0.0; r * d]);
                            block_grad_at(lvl, d, &x, &ys, &h, 0.7, el, None, i0, &mut gl, &mut go);
                            all.extend([bits(&gl), bits(&go)]);
                        }
                    }
                    let mut o = vec![0.0; r];
                    block_lse_at(lvl, d, &x, &ys, &h, 0.7, Ground::Dist, None, None, None, i0, &mut o);
                    all.push(bits(&o));
                }
                all
            };
            let base = run(Level::Scalar, false);
            // The values are finite and not all equal (the comparison could fail).
            assert!(base[0].iter().all(|b| f64::from_bits(*b).is_finite()));
            assert_ne!(base[0][0], base[0][1]);
            for lvl in Level::ALL.into_iter().filter(|l| l.supported()) {
                for panels in [false, true] {
                    assert_eq!(run(lvl, panels), base, "d = {d}, {lvl:?}, panels {panels}");
                }
            }
        }
    }

    /// Rows split over 2, 3 and 5 simulated ranks give the single-process bits (n = 300 rows is
    /// 5 blocks of 64, so some ranks own none, some a partial block).
    #[test]
    fn rows_split_over_ranks_agree_bitwise() {
        let (n, m, d) = (300, 450, 3);
        let x = data(n, d, 5);
        let y = data(m, d, 6);
        let h: Vec<f64> = (0..m).map(|j| ((j * 13 % 29) as f64) - 14.0).collect();
        let pot: Vec<f64> = (0..m).map(|j| (j as f64).cos()).collect();
        let run = |e: &Exec| {
            let mut l = vec![0.0; n];
            lse_rows(e, d, &x, &y, &h, 7.0, &mut l);
            let mut st = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            lse_rows_stats(e, d, &x, &y, &h, 7.0, &pot, &mut st.0, &mut st.1, &mut st.2);
            let (mut bl, mut bary) = (vec![0.0; n], vec![0.0; n * d]);
            lse_rows_bary(e, d, &x, &y, &h, 7.0, &mut bl, &mut bary);
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
            (bits(&l), bits(&st.0), bits(&st.1), bits(&st.2), bits(&bl), bits(&bary))
        };
        let one = run(&Exec::default());
        // `Par::Seq` (every block on the calling thread) gives the same bits.
        assert_eq!(run(&Exec::seq()), one, "Seq");
        for size in [2, 3, 5] {
            for r in crate::dist::testing::simulate(size, run) {
                assert_eq!(r, one, "{size} ranks");
            }
        }
    }

    /// A tile whose values are all NaN (here: NaN target weights) makes the row NaN instead of
    /// being skipped like a tile of zero weights.
    #[test]
    fn an_all_nan_tile_gives_nan() {
        let x = vec![0.0, 1.0];
        let y: Vec<f64> = (0..300).map(|j| j as f64 / 100.0).collect();
        let h: Vec<f64> = (0..300).map(|j| if j < TILE { f64::NAN } else { 0.0 }).collect();
        let mut out = vec![0.0; 2];
        lse_rows(&Exec::default(), 1, &x, &y, &h, 1.0, &mut out);
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
    }

    #[test]
    fn all_zero_weights_give_minus_infinity() {
        let x = vec![0.0, 1.0];
        let y = vec![0.5, 2.0, 3.0];
        let h = vec![NEG_INF; 3];
        let mut out = vec![0.0; 2];
        lse_rows(&Exec::default(), 1, &x, &y, &h, 1.0, &mut out);
        assert_eq!(out, vec![NEG_INF; 2]);
    }
}
