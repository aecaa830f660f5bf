//! Random Fourier features (Rahimi & Recht 2007) for the Gaussian kernel `k_s` (SPEC §2.1):
//!
//! ```text
//! Φ(x) = √(2/m) cos(Wᵀx + c) ∈ R^m,   W_{·k} ~ N(0, s⁻² I_d),   c_k ~ U(0, 2π),
//! E[Φ(x)ᵀΦ(y)] = exp(−|x − y|²/(2s²)) = k_s(x, y),
//! ∂Φ_k/∂x = −√(2/m) sin(w_kᵀx + c_k) w_k                    (Jacobian J(x), m×d).
//! ```
//!
//! The features are drawn once per run from stream `(seed, Features, 0, 0)`: first `W` column by
//! column (`w_1`, then `w_2`, ...; `d` standard normals each, divided by `s`), then `c_1..c_m`.
//!
//! [`Rff::moments`] computes, over weighted points `(x_i, w_i)`, the moments the Sobolev–Fisher
//! critic needs, with `Ψ(x) = √(2/m) sin(Wᵀx + c)`:
//!
//! ```text
//! μ = Σ_i w_i Φ(x_i),   G_cos = Σ_i w_i Φ(x_i) Φ(x_i)ᵀ,   G_sin = Σ_i w_i Ψ(x_i) Ψ(x_i)ᵀ.
//! ```
//!
//! The Sobolev Gramian `D = Σ_i w_i J_i J_iᵀ` then factorises as `D = G_sin ∘ (WᵀW)` — O(N m²),
//! never O(N m² d). The Gramians are streamed over fixed blocks of [`GRAM_ROWS`] points: each
//! block's scaled feature matrix `F` (rows `√w_i Φ(x_i)`) is formed in parallel, packed, and
//! `Fᵀ F` is written into the lower [`GRAM_TILE`]² tiles of that block's partial by the blocked
//! SYRK micro-kernel of [`super::gram`] (AVX-512 / AVX2 FMA, same bits on every path), tiles in
//! parallel. The block partials (`μ_b` and the tiles) are
//! added in the canonical dyadic tree over block indices of [`crate::dist::tree_sum`]: every
//! entry is summed in one fixed order, so the result is bitwise identical for any thread count
//! and any number of ranks (blocks are split over the ranks of the caller's explicit context,
//! [`crate::dist::Exec`]); memory
//! is O(m² log(N/GRAM_ROWS) + GRAM_ROWS·m), never O(N m).
//!
//! `sin` and `cos` come from [`sincos_into`], a branch-free Cody–Waite reduction by π/2 and the
//! fdlibm minimax polynomials on `[−π/4, π/4]` (≲ 1 ulp; arguments beyond 10⁶ fall back to
//! `f64::sin`/`f64::cos`): the features of 10⁵ points × 1000 features are 10⁸ sine–cosine pairs
//! per step.

use super::gram;
use crate::dist::{Exec, Par};
use crate::rng::{self, Purpose};
use crate::simd::{multiversion, Isa};
use nalgebra::{DMatrix, DMatrixView};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::time::Instant;

/// Points per streamed block of the Gram assembly. Part of the reproducibility contract: changing
/// it changes the rounding of every Gramian.
pub const GRAM_ROWS: usize = 2048;

/// Side of the output tiles of the Gram assembly (one GEMM per tile and block).
pub const GRAM_TILE: usize = 192;

/// Points per parallel task when forming features.
const FEATURE_CHUNK: usize = 32;

/// A random Fourier feature map `Φ(x) = √(2/m) cos(Wᵀx + c)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rff {
    /// Dimension `d` of the points.
    pub dim: usize,
    /// Number of features `m`.
    pub features: usize,
    /// Kernel bandwidth `s`.
    pub bandwidth: f64,
    /// `W` stored d×m row-major: `w[j*m + k]` is coordinate `j` of the frequency `w_k`.
    pub w: Vec<f64>,
    /// Phases `c_k ∈ [0, 2π)`.
    pub c: Vec<f64>,
    /// `√(2/m)`.
    pub scale: f64,
}

impl Rff {
    /// Draw `m` features for dimension `dim` and bandwidth `s` from stream `(seed, Features, 0, 0)`.
    pub fn new(dim: usize, features: usize, bandwidth: f64, seed: u64) -> Self {
        let m = features;
        let mut r = rng::stream(seed, Purpose::Features, 0, 0);
        let mut w = vec![0.0; dim * m];
        for k in 0..m {
            for j in 0..dim {
                let z: f64 = StandardNormal.sample(&mut r);
                w[j * m + k] = z / bandwidth;
            }
        }
        let c = (0..m).map(|_| r.random::<f64>() * std::f64::consts::TAU).collect();
        Self::from_parts(dim, bandwidth, w, c)
    }

    /// A feature map with given frequencies (`w` d×m row-major) and phases.
    pub fn from_parts(dim: usize, bandwidth: f64, w: Vec<f64>, c: Vec<f64>) -> Self {
        let m = c.len();
        assert_eq!(w.len(), dim * m, "Rff: W must be d×m");
        Self { dim, features: m, bandwidth, w, c, scale: (2.0 / m.max(1) as f64).sqrt() }
    }

    /// Frequency `j`-th coordinates `(W_{j,1..m})`: row `j` of `W`.
    pub fn w_row(&self, j: usize) -> &[f64] {
        &self.w[j * self.features..(j + 1) * self.features]
    }

    /// Phases `θ = Wᵀx + c` (length m), accumulated as `((c_k + x_1 W_1k) + x_2 W_2k) + ...`.
    #[inline(always)]
    pub fn phases(&self, x: &[f64], theta: &mut [f64]) {
        theta.copy_from_slice(&self.c);
        for (j, &xj) in x.iter().enumerate() {
            for (t, wjk) in theta.iter_mut().zip(self.w_row(j)) {
                *t += xj * wjk;
            }
        }
    }

    /// `Φ(x)` into `phi` (length m).
    pub fn features_into(&self, x: &[f64], phi: &mut [f64]) {
        let m = self.features;
        let mut theta = vec![0.0; m];
        let mut s = vec![0.0; m];
        self.phases(x, &mut theta);
        sincos_into(&theta, &mut s, phi);
        phi.iter_mut().for_each(|v| *v *= self.scale);
    }

    /// `Φ(x)`.
    pub fn features(&self, x: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.features];
        self.features_into(x, &mut phi);
        phi
    }

    /// The Jacobian `J(x) = ∂Φ/∂x` (m×d row-major: `out[k*d + j] = ∂Φ_k/∂x_j`), written
    /// explicitly (for tests and dense reference assemblies).
    pub fn jacobian(&self, x: &[f64], out: &mut [f64]) {
        let (m, d) = (self.features, self.dim);
        let mut theta = vec![0.0; m];
        let (mut s, mut c) = (vec![0.0; m], vec![0.0; m]);
        self.phases(x, &mut theta);
        sincos_into(&theta, &mut s, &mut c);
        for k in 0..m {
            for j in 0..d {
                out[k * d + j] = -self.scale * s[k] * self.w[j * m + k];
            }
        }
    }

    /// The RFF kernel `k̂(x, y) = Φ(x)ᵀΦ(y)`.
    pub fn kernel(&self, x: &[f64], y: &[f64]) -> f64 {
        dot(&self.features(x), &self.features(y))
    }

    /// `(WᵀW)_{kl} = w_kᵀ w_l`.
    pub fn wtw_entry(&self, k: usize, l: usize) -> f64 {
        let m = self.features;
        (0..self.dim).map(|j| self.w[j * m + k] * self.w[j * m + l]).sum()
    }

    /// The weighted moments `μ = Σ w_i Φ(x_i)` and, on request, `G_cos = Σ w_i Φ_i Φ_iᵀ` and
    /// `G_sin = Σ w_i Ψ_i Ψ_iᵀ` (`Ψ = √(2/m) sin(Wᵀx + c)`), with every weight multiplied by
    /// `wscale` (≥ 0). Gramians are returned full (both triangles). See the module doc for the
    /// blocking and the determinism contract. The blocks are split over the ranks of `exec`
    /// ([`crate::dist::tree_sum`]); within a block the loops run with `exec.par`
    /// ([`crate::dist::Par::for_each`]: the calling thread alone, or the current rayon pool).
    #[allow(clippy::too_many_arguments)]
    pub fn moments(
        &self,
        exec: &Exec,
        x: &[f64],
        w: &[f64],
        wscale: f64,
        cos_gram: bool,
        sin_gram: bool,
    ) -> RffMoments {
        let (m, d) = (self.features, self.dim);
        let n = w.len();
        assert_eq!(x.len(), n * d, "Rff::moments: positions and weights disagree");
        let mut out = RffMoments {
            mean: vec![0.0; m],
            cos_gram: None,
            sin_gram: None,
            features_secs: 0.0,
            gram_secs: 0.0,
        };
        let rows_max = GRAM_ROWS.min(n);
        let mut fc = vec![0.0; rows_max * m];
        let mut fs = if sin_gram { vec![0.0; rows_max * m] } else { Vec::new() };
        let mut sw = vec![0.0; rows_max];
        // The block's features packed in strips for the Gram micro-kernel (see `gram`).
        let packed_len = gram::strips(m) * rows_max * gram::MR;
        let mut pc = if cos_gram { vec![0.0; packed_len] } else { Vec::new() };
        let mut ps = if sin_gram { vec![0.0; packed_len] } else { Vec::new() };
        let nt = m.div_ceil(GRAM_TILE);
        let tile_len = |t: usize| GRAM_TILE.min(m - t * GRAM_TILE);
        // Lower tiles (I ≥ J) of each requested Gramian: (is_sin, I, J, offset in the block
        // partial). A block partial is [μ_b (m) | tiles, each column-major].
        let mut tiles: Vec<(bool, usize, usize, usize)> = Vec::new();
        let mut len = m;
        for (want, is_sin) in [(cos_gram, false), (sin_gram, true)] {
            if want {
                for i in 0..nt {
                    for j in 0..=i {
                        tiles.push((is_sin, i, j, len));
                        len += tile_len(i) * tile_len(j);
                    }
                }
            }
        }
        let (mut features_secs, mut gram_secs) = (0.0, 0.0);
        let par = exec.par;
        let leaf = |b: usize| -> Vec<f64> {
            let b0 = b * GRAM_ROWS;
            let rows = GRAM_ROWS.min(n - b0);
            let mut part = vec![0.0; len];
            let t0 = Instant::now();
            let xb = &x[b0 * d..(b0 + rows) * d];
            for (s, wi) in sw[..rows].iter_mut().zip(&w[b0..b0 + rows]) {
                *s = (wi * wscale).sqrt();
            }
            self.fill_block(par, xb, &sw[..rows], &mut fc[..rows * m], &mut fs);
            let (mu, rest) = part.split_at_mut(m);
            // μ_b = Σ_r √w_r F_r, over features in parallel, points in order.
            let fcb = &fc[..rows * m];
            let swb = &sw[..rows];
            par.for_each(mu.par_chunks_mut(64).enumerate(), |(q, mu)| {
                let k0 = q * 64;
                for (r, &s) in swb.iter().enumerate() {
                    let row = &fcb[r * m + k0..r * m + k0 + mu.len()];
                    for (a, f) in mu.iter_mut().zip(row) {
                        *a += s * f;
                    }
                }
            });
            features_secs += t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            if !tiles.is_empty() {
                let plen = gram::strips(m) * rows * gram::MR;
                if cos_gram {
                    gram::pack(par, fcb, rows, m, &mut pc[..plen]);
                }
                if sin_gram {
                    gram::pack(par, &fs[..rows * m], rows, m, &mut ps[..plen]);
                }
                let mut slices = Vec::with_capacity(tiles.len());
                let mut rest = rest;
                for (_, i, j, _) in &tiles {
                    let (t, r) = rest.split_at_mut(tile_len(*i) * tile_len(*j));
                    slices.push(t);
                    rest = r;
                }
                par.for_each(tiles.par_iter().zip(slices), |((is_sin, i, j, _), t)| {
                    let p = if *is_sin { &ps[..plen] } else { &pc[..plen] };
                    let (ri, cj) = (tile_len(*i), tile_len(*j));
                    gram::tile(p, rows, m, *i * GRAM_TILE, ri, *j * GRAM_TILE, cj, t);
                });
            }
            gram_secs += t0.elapsed().as_secs_f64();
            part
        };
        let t0 = Instant::now();
        let total = crate::dist::tree_sum(exec, n.div_ceil(GRAM_ROWS), len, leaf);
        let tree_secs = t0.elapsed().as_secs_f64() - features_secs - gram_secs;
        out.mean.copy_from_slice(&total[..m]);
        let t0 = Instant::now();
        if !tiles.is_empty() {
            let (mut gc, mut gs) =
                (cos_gram.then(|| DMatrix::zeros(m, m)), sin_gram.then(|| DMatrix::zeros(m, m)));
            for (is_sin, i, j, off) in &tiles {
                let g = if *is_sin { gs.as_mut() } else { gc.as_mut() };
                let Some(g) = g else { continue };
                let (ri, cj) = (tile_len(*i), tile_len(*j));
                let tile = DMatrixView::from_slice(&total[*off..off + ri * cj], ri, cj);
                let (r0, c0) = (i * GRAM_TILE, j * GRAM_TILE);
                for c in 0..cj {
                    for r in 0..ri {
                        let v = tile[(r, c)];
                        if r0 + r >= c0 + c {
                            g[(r0 + r, c0 + c)] = v;
                            g[(c0 + c, r0 + r)] = v;
                        }
                    }
                }
            }
            out.cos_gram = gc;
            out.sin_gram = gs;
        }
        out.features_secs = features_secs;
        out.gram_secs = gram_secs + tree_secs.max(0.0) + t0.elapsed().as_secs_f64();
        out
    }

    /// Rows `√w_r Φ(x_r)` into `fc` and (if `fs` is non-empty) `√w_r Ψ(x_r)` into `fs`.
    fn fill_block(&self, par: Par, xb: &[f64], sw: &[f64], fc: &mut [f64], fs: &mut [f64]) {
        let m = self.features;
        let rows = sw.len();
        let lvl = crate::simd::level();
        if fs.is_empty() {
            par.for_each(fc.par_chunks_mut(FEATURE_CHUNK * m).enumerate(), |(q, fcq)| {
                fill_chunk_at(lvl, self, xb, sw, q * FEATURE_CHUNK, fcq, &mut [])
            });
        } else {
            par.for_each(
                fc.par_chunks_mut(FEATURE_CHUNK * m)
                    .zip(fs[..rows * m].par_chunks_mut(FEATURE_CHUNK * m))
                    .enumerate(),
                |(q, (fcq, fsq))| fill_chunk_at(lvl, self, xb, sw, q * FEATURE_CHUNK, fcq, fsq),
            );
        }
    }
}

/// The rows `r0 ..` of [`Rff::fill_block`] (`fs` empty: cosines only), in the copy of the level
/// `I` ([`crate::simd`]).
#[inline(always)]
fn fill_chunk<I: Isa>(rff: &Rff, xb: &[f64], sw: &[f64], r0: usize, fc: &mut [f64], fs: &mut [f64]) {
    let (m, d) = (rff.features, rff.dim);
    let mut theta = vec![0.0; m];
    let mut s = vec![0.0; m];
    let mut c = vec![0.0; m];
    for (rr, fcr) in fc.chunks_exact_mut(m).enumerate() {
        let r = r0 + rr;
        rff.phases(&xb[r * d..(r + 1) * d], &mut theta);
        sincos_into_generic::<I>(&theta, &mut s, &mut c);
        let a = rff.scale * sw[r];
        for (o, v) in fcr.iter_mut().zip(&c) {
            *o = a * v;
        }
        if !fs.is_empty() {
            for (o, v) in fs[rr * m..(rr + 1) * m].iter_mut().zip(&s) {
                *o = a * v;
            }
        }
    }
}

multiversion!(fill_chunk_at => fill_chunk, fill_chunk_512, fill_chunk_256(
    rff: &Rff, xb: &[f64], sw: &[f64], r0: usize, fc: &mut [f64], fs: &mut [f64]
));

/// The output of [`Rff::moments`].
#[derive(Debug, Clone)]
pub struct RffMoments {
    /// `μ = Σ w_i Φ(x_i)` (length m).
    pub mean: Vec<f64>,
    /// `Σ w_i Φ_i Φ_iᵀ` (m×m), if requested.
    pub cos_gram: Option<DMatrix<f64>>,
    /// `Σ w_i Ψ_i Ψ_iᵀ` (m×m), if requested.
    pub sin_gram: Option<DMatrix<f64>>,
    /// Wall-clock seconds spent forming features (phases, sin/cos, scaling, `μ`).
    pub features_secs: f64,
    /// Wall-clock seconds spent in the Gram products.
    pub gram_secs: f64,
}

/// `Σ a_k b_k` with eight interleaved accumulators (fixed order: deterministic, vectorisable).
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

// fdlibm constants (e_rem_pio2.c, k_sin.c, k_cos.c), given by their IEEE bit patterns exactly as
// in the fdlibm sources. π/2 is split in 33-bit pieces: n·PIO2_1 and n·PIO2_2 are exact for
// |n| < 2^20.
const INV_PIO2: f64 = std::f64::consts::FRAC_2_PI;
const PIO2_1: f64 = f64::from_bits(0x3FF9_21FB_5440_0000); // 1.57079632673412561417e+00
const PIO2_2: f64 = f64::from_bits(0x3DD0_B461_1A60_0000); // 6.07710050630396597660e-11
const PIO2_3: f64 = f64::from_bits(0x3BA3_198A_2E00_0000); // 2.02226624871116645580e-21
/// `1.5 · 2^52`: adding it rounds to the nearest integer, kept in the low mantissa bits.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
/// Beyond this `|x|` the three-piece reduction loses accuracy; use libm.
const REDUCE_LIMIT: f64 = 1.0e6;

const S1: f64 = f64::from_bits(0xBFC5_5555_5555_5549); // -1.66666666666666324348e-01
const S2: f64 = f64::from_bits(0x3F81_1111_1110_F8A6); //  8.33333333332248946124e-03
const S3: f64 = f64::from_bits(0xBF2A_01A0_19C1_61D5); // -1.98412698298579493134e-04
const S4: f64 = f64::from_bits(0x3EC7_1DE3_57B1_FE7D); //  2.75573137070700676789e-06
const S5: f64 = f64::from_bits(0xBE5A_E5E6_8A2B_9CEB); // -2.50507602534068634195e-08
const S6: f64 = f64::from_bits(0x3DE5_D93A_5ACF_D57C); //  1.58969099521155010221e-10
const C1: f64 = f64::from_bits(0x3FA5_5555_5555_554C); //  4.16666666666666019037e-02
const C2: f64 = f64::from_bits(0xBF56_C16C_16C1_5177); // -1.38888888888741095749e-03
const C3: f64 = f64::from_bits(0x3EFA_01A0_19CB_1590); //  2.48015872894767294178e-05
const C4: f64 = f64::from_bits(0xBE92_7E4F_809C_52AD); // -2.75573143513906633035e-07
const C5: f64 = f64::from_bits(0x3E21_EE9E_BDB4_B1C4); //  2.08757232129817482790e-09
const C6: f64 = f64::from_bits(0xBDA8_FAE9_BE88_38D4); // -1.13596475577881948265e-11

/// `(sin x, cos x)` for `|x| ≤ 10⁶` (branch-free core of [`sincos_into`]).
#[inline(always)]
fn sincos_reduced(x: f64) -> (f64, f64) {
    let t = x * INV_PIO2 + ROUND_MAGIC;
    let q = t.to_bits() & 3;
    let n = t - ROUND_MAGIC;
    let r = ((x - n * PIO2_1) - n * PIO2_2) - n * PIO2_3;
    let z = r * r;
    let sin_r = r + r * z * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
    let hz = 0.5 * z;
    let wc = 1.0 - hz;
    let cos_r = wc + (((1.0 - wc) - hz) + z * z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6))))));
    // Quadrant q: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s).
    let swap = q & 1 == 1;
    let (s, c) = if swap { (cos_r, sin_r) } else { (sin_r, cos_r) };
    let sin_neg = q & 2 != 0;
    let cos_neg = (q + 1) & 2 != 0;
    (if sin_neg { -s } else { s }, if cos_neg { -c } else { c })
}

/// `(sin x, cos x)`.
#[inline]
pub fn sincos(x: f64) -> (f64, f64) {
    if x.abs() <= REDUCE_LIMIT {
        sincos_reduced(x)
    } else {
        x.sin_cos()
    }
}

/// `s_k = sin θ_k`, `c_k = cos θ_k` for a slice of arguments, at the level
/// [`crate::simd::level`] (wider vectors only: no fused multiply-add is used, so the bits are
/// those of the scalar level).
pub fn sincos_into(theta: &[f64], s: &mut [f64], c: &mut [f64]) {
    sincos_into_at(crate::simd::level(), theta, s, c)
}

multiversion!(sincos_into_at => sincos_into_generic, sincos_into_512, sincos_into_256(
    theta: &[f64], s: &mut [f64], c: &mut [f64]
));

/// The body of [`sincos_into`]; `I` names the level of the copy it is inlined into (the code has
/// nothing level-specific: the compiler vectorises it for that level).
#[inline(always)]
#[allow(clippy::extra_unused_type_parameters)]
pub(crate) fn sincos_into_generic<I: Isa>(theta: &[f64], s: &mut [f64], c: &mut [f64]) {
    let mut large = false;
    for ((t, sk), ck) in theta.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
        let (a, b) = sincos_reduced(*t);
        *sk = a;
        *ck = b;
        large |= t.abs() > REDUCE_LIMIT;
    }
    if large {
        for ((t, sk), ck) in theta.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
            if t.abs() > REDUCE_LIMIT {
                (*sk, *ck) = t.sin_cos();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_matches_libm() {
        // Relative to max(1, |x|·ε) the error stays within a few ulps over the reduced range.
        let mut worst = 0.0f64;
        let mut x = -2.0e5;
        while x < 2.0e5 {
            for y in [x, x * 1e-5, x * 1e-3] {
                let (s, c) = sincos(y);
                worst = worst.max((s - y.sin()).abs()).max((c - y.cos()).abs());
            }
            x += 0.987_654_321;
        }
        assert!(worst < 4e-16, "worst sincos error {worst}");
        for y in [0.0, -0.0, 1e-300, 3.0e6, -7.5e8, f64::NAN] {
            let mut s = [0.0];
            let mut c = [0.0];
            sincos_into(&[y], &mut s, &mut c);
            let (es, ec) = y.sin_cos();
            assert!(s[0] == es || (s[0] - es).abs() < 1e-16 || (es.is_nan() && s[0].is_nan()));
            assert!(c[0] == ec || (c[0] - ec).abs() < 1e-16 || (ec.is_nan() && c[0].is_nan()));
        }
    }

    #[test]
    fn rff_approximates_gaussian_kernel() {
        // |k̂ − k| is O(1/√m): with m = 20000, 5 standard deviations ≈ 0.05.
        let s = 0.7;
        let rff = Rff::new(3, 20_000, s, 11);
        let x = [0.1, -0.2, 0.3];
        let y = [0.5, 0.1, -0.2];
        let d2: f64 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
        let k = (-d2 / (2.0 * s * s)).exp();
        assert!((rff.kernel(&x, &y) - k).abs() < 0.05);
        assert!((rff.kernel(&x, &x) - 1.0).abs() < 0.05);
    }

    #[test]
    fn moments_match_direct_sums_and_are_deterministic() {
        // Crosses block (GRAM_ROWS) and tile (GRAM_TILE) boundaries: n = 4·2048 + 5 points and
        // m = GRAM_TILE + 11 features (an off-diagonal tile and a ragged last tile).
        let (d, m, n) = (2, GRAM_TILE + 11, 4 * GRAM_ROWS + 5);
        assert!(m > GRAM_TILE && m % 24 != 0 && m % 8 != 0);
        let rff = Rff::new(d, m, 0.5, 3);
        let x: Vec<f64> = (0..n * d).map(|v| ((v * 37 % 101) as f64) / 60.0 - 0.8).collect();
        let w: Vec<f64> = (0..n).map(|i| 0.5 + (i % 7) as f64 / 7.0).collect();
        let mo = rff.moments(&Exec::default(), &x, &w, 0.25, true, true);
        let (gc, gs) = (mo.cos_gram.unwrap(), mo.sin_gram.unwrap());
        let mut mu = vec![0.0; m];
        let mut mu_abs = vec![0.0; m];
        let (mut dc, mut ds) = (DMatrix::zeros(m, m), DMatrix::zeros(m, m));
        let mut theta = vec![0.0; m];
        for i in 0..n {
            rff.phases(&x[i * d..(i + 1) * d], &mut theta);
            let wi = 0.25 * w[i];
            let phi: Vec<f64> = theta.iter().map(|t| rff.scale * t.cos()).collect();
            let psi: Vec<f64> = theta.iter().map(|t| rff.scale * t.sin()).collect();
            for k in 0..m {
                mu[k] += wi * phi[k];
                mu_abs[k] += (wi * phi[k]).abs();
                for l in 0..m {
                    dc[(k, l)] += wi * phi[k] * phi[l];
                    ds[(k, l)] += wi * psi[k] * psi[l];
                }
            }
        }
        // Entries are sums of ~8000 terms, here in point order, there in a block tree: the
        // rounding differences are ~√n·ε relative to Σ|terms| (≈ 1e-14); the bound allows 10×.
        for ((a, b), s) in mu.iter().zip(&mo.mean).zip(&mu_abs) {
            assert!((a - b).abs() < 1e-13 * s, "{a} vs {b}");
        }
        assert!((&dc - &gc).amax() < 1e-12);
        assert!((&ds - &gs).amax() < 1e-12);
        assert_eq!(gc, gc.transpose());
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| rff.moments(&Exec::default(), &x, &w, 0.25, true, true));
        assert_eq!(one.mean, mo.mean);
        assert_eq!(one.cos_gram.unwrap(), gc);
        assert_eq!(one.sin_gram.unwrap(), gs);
        // Split over 2, 3 and 5 ranks: the same bits (the blocks' dyadic tree does not depend on
        // the partition).
        for size in [2, 3, 5] {
            for r in crate::dist::testing::simulate(size, |e| rff.moments(e, &x, &w, 0.25, true, true)) {
                assert_eq!(r.mean, mo.mean);
                assert_eq!(r.cos_gram.as_ref(), Some(&gc));
                assert_eq!(r.sin_gram.as_ref(), Some(&gs));
            }
        }
    }
}
