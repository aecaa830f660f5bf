//! Blocked Gram products `G = Σ_r F_r F_rᵀ` (a symmetric rank-k update, "SYRK") for the random
//! feature Gramians of the Sobolev–Fisher critic:
//!
//! ```text
//! G_ab = Σ_{r < rows} F_ra F_rb,   F a rows × m matrix (row r = the scaled features of point r).
//! ```
//!
//! **Layout.** [`pack`] copies `F` (row-major) into strips of [`MR`] = 24 features:
//! `P[s][r][0..24] = F[r][24s .. 24s + 24]` (the last strip zero-padded), so that the 24 entries
//! of one strip at one point are contiguous (three 512-bit loads) — the micro-kernel reads both
//! its operands from this one packed copy.
//!
//! **Micro-kernel.** A 24 × 8 block of `G` (rows `a` of one strip, columns `b` of a third of a
//! strip) lives in 24 vector accumulators across a chunk of [`KC`] points; per point it does three
//! loads, eight broadcasts and twenty-four fused multiply-adds. Tiles are walked chunk by chunk (a strip
//! chunk of `KC × 24` doubles stays in L1, the tile's columns in L2), and the blocks of a diagonal
//! tile strictly above the diagonal are skipped.
//!
//! **Determinism.** Every entry is accumulated by the same sequence of fused multiply-adds
//! `c ← fma(F_ra, F_rb, c)`, `r = 0, 1, …, rows − 1`, whatever the instruction set (AVX-512,
//! AVX2 + FMA, or the portable `f64::mul_add`; chosen by [`crate::simd::level`]), the chunking or the thread count: the bits are the
//! same on every path (a test checks the paths against each other).

use crate::dist::Par;
use crate::simd::Level;

/// Features per packed strip (rows of a micro-block: three 512-bit vectors).
pub const MR: usize = 24;
/// Columns of a micro-block.
pub const NR: usize = 8;
/// Points per chunk of the micro-kernel loop.
pub const KC: usize = 256;

/// Number of strips for `m` features.
pub fn strips(m: usize) -> usize {
    m.div_ceil(MR)
}

/// Pack `f` (`rows × m`, row-major) into strips: `p[(s·rows + r)·24 + a] = f[r·m + 24s + a]`
/// (zero past `m`). `p` must hold `strips(m) · rows · 24` values. Strips are copied with `par`
/// ([`Par::for_each`]).
pub fn pack(par: Par, f: &[f64], rows: usize, m: usize, p: &mut [f64]) {
    use rayon::prelude::*;
    assert!(f.len() >= rows * m && p.len() == strips(m) * rows * MR, "gram::pack: sizes");
    if rows == 0 {
        return;
    }
    par.for_each(p.par_chunks_mut(rows * MR).enumerate(), |(s, ps)| {
        let a0 = s * MR;
        let w = MR.min(m - a0);
        for (r, pr) in ps.chunks_exact_mut(MR).enumerate() {
            let src = &f[r * m + a0..r * m + a0 + w];
            if let (Ok(dst), Ok(src)) = (<&mut [f64; MR]>::try_from(&mut *pr), <&[f64; MR]>::try_from(src)) {
                *dst = *src; // a full strip: a fixed-size copy, no call
            } else {
                pr[..w].copy_from_slice(src);
                pr[w..].iter_mut().for_each(|v| *v = 0.0);
            }
        }
    });
}

/// `c[b·24 + a] ← fma(A[r][a], B[r][b], c[b·24 + a])` for `r < kc`, with `A[r][a] = a[r·24 + a]`
/// and `B[r][b] = b[r·24 + b]` (both read from packed strips).
fn micro_portable(kc: usize, a: &[f64], b: &[f64], c: &mut [f64; MR * NR]) {
    for r in 0..kc {
        let ar = &a[r * MR..r * MR + MR];
        let br = &b[r * MR..r * MR + NR];
        for (cb, &bv) in c.chunks_exact_mut(MR).zip(br) {
            for (ca, &av) in cb.iter_mut().zip(ar) {
                *ca = av.mul_add(bv, *ca);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn micro_avx512(kc: usize, a: &[f64], b: &[f64], c: &mut [f64; MR * NR]) {
    use std::arch::x86_64::*;
    assert!(a.len() >= kc * MR && b.len() >= (kc.max(1) - 1) * MR + NR);
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: every load reads `a[r·24 .. r·24 + 24]` or `b[r·24 + j]` with r < kc, j < 8, and
    // every store writes `c[0..192]` — inside the slices by the assert and the array type.
    unsafe {
        let mut c0 = [_mm512_setzero_pd(); NR];
        let mut c1 = [_mm512_setzero_pd(); NR];
        let mut c2 = [_mm512_setzero_pd(); NR];
        for j in 0..NR {
            c0[j] = _mm512_loadu_pd(pc.add(j * MR));
            c1[j] = _mm512_loadu_pd(pc.add(j * MR + 8));
            c2[j] = _mm512_loadu_pd(pc.add(j * MR + 16));
        }
        for r in 0..kc {
            let a0 = _mm512_loadu_pd(pa.add(r * MR));
            let a1 = _mm512_loadu_pd(pa.add(r * MR + 8));
            let a2 = _mm512_loadu_pd(pa.add(r * MR + 16));
            for j in 0..NR {
                let bj = _mm512_set1_pd(*pb.add(r * MR + j));
                c0[j] = _mm512_fmadd_pd(a0, bj, c0[j]);
                c1[j] = _mm512_fmadd_pd(a1, bj, c1[j]);
                c2[j] = _mm512_fmadd_pd(a2, bj, c2[j]);
            }
        }
        for j in 0..NR {
            _mm512_storeu_pd(pc.add(j * MR), c0[j]);
            _mm512_storeu_pd(pc.add(j * MR + 8), c1[j]);
            _mm512_storeu_pd(pc.add(j * MR + 16), c2[j]);
        }
    }
}

/// AVX2 + FMA: the 24 × 8 block as six 8 × 4 parts (8 accumulators each), same per-entry
/// sequence of fused multiply-adds as the other paths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn micro_avx2(kc: usize, a: &[f64], b: &[f64], c: &mut [f64; MR * NR]) {
    use std::arch::x86_64::*;
    assert!(a.len() >= kc * MR && b.len() >= (kc.max(1) - 1) * MR + NR);
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: as in `micro_avx512`: reads a[r·24 + i0 .. + 8], b[r·24 + j0 + j], r < kc, writes
    // c[0..192].
    unsafe {
        for (i0, j0) in [(0, 0), (8, 0), (16, 0), (0, 4), (8, 4), (16, 4)] {
            let mut lo = [_mm256_setzero_pd(); 4];
            let mut hi = [_mm256_setzero_pd(); 4];
            for j in 0..4 {
                lo[j] = _mm256_loadu_pd(pc.add((j0 + j) * MR + i0));
                hi[j] = _mm256_loadu_pd(pc.add((j0 + j) * MR + i0 + 4));
            }
            for r in 0..kc {
                let a0 = _mm256_loadu_pd(pa.add(r * MR + i0));
                let a1 = _mm256_loadu_pd(pa.add(r * MR + i0 + 4));
                for j in 0..4 {
                    let bj = _mm256_set1_pd(*pb.add(r * MR + j0 + j));
                    lo[j] = _mm256_fmadd_pd(a0, bj, lo[j]);
                    hi[j] = _mm256_fmadd_pd(a1, bj, hi[j]);
                }
            }
            for j in 0..4 {
                _mm256_storeu_pd(pc.add((j0 + j) * MR + i0), lo[j]);
                _mm256_storeu_pd(pc.add((j0 + j) * MR + i0 + 4), hi[j]);
            }
        }
    }
}

fn micro(path: Level, kc: usize, a: &[f64], b: &[f64], c: &mut [f64; MR * NR]) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `tile_on`, the only caller, asserts `path.supported()`.
        Level::Avx512 => unsafe { micro_avx512(kc, a, b, c) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Level::Avx2Fma => unsafe { micro_avx2(kc, a, b, c) },
        _ => micro_portable(kc, a, b, c),
    }
}

/// One tile of `G`: rows `i0 .. i0 + ri`, columns `j0 .. j0 + cj` (`i0`, `j0` multiples of 24),
/// written column-major into `t` (`ri × cj`), from the packed strips `p` of `rows` points and `m`
/// features. On a diagonal tile (`i0 == j0`) only the lower triangle (row ≥ column) is exact;
/// entries strictly above the diagonal may be zero. Runs at the level [`crate::simd::level`].
#[allow(clippy::too_many_arguments)]
pub fn tile(p: &[f64], rows: usize, m: usize, i0: usize, ri: usize, j0: usize, cj: usize, t: &mut [f64]) {
    tile_on(crate::simd::level(), p, rows, m, i0, ri, j0, cj, t)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn tile_on(
    path: Level,
    p: &[f64],
    rows: usize,
    m: usize,
    i0: usize,
    ri: usize,
    j0: usize,
    cj: usize,
    t: &mut [f64],
) {
    assert!(path.supported(), "gram::tile: this CPU cannot run the {path:?} micro-kernel");
    assert!(
        i0.is_multiple_of(MR) && j0.is_multiple_of(MR) && i0 + ri <= m && j0 + cj <= m,
        "gram::tile: bounds"
    );
    assert!(p.len() == strips(m) * rows * MR && t.len() == ri * cj, "gram::tile: sizes");
    let (nbi, nbj) = (ri.div_ceil(MR), cj.div_ceil(NR));
    let diagonal = i0 == j0;
    // Accumulators of every 24 × 8 block of the tile, kept across the point chunks.
    let mut acc = vec![[0.0f64; MR * NR]; nbi * nbj];
    let strip = |k: usize| &p[k * rows * MR..(k + 1) * rows * MR];
    for r0 in (0..rows).step_by(KC) {
        let kc = KC.min(rows - r0);
        for bi in 0..nbi {
            let a = &strip(i0 / MR + bi)[r0 * MR..];
            for bj in 0..nbj {
                let col = j0 + bj * NR;
                if diagonal && bi * MR + MR <= bj * NR {
                    continue; // every entry of the block lies above the diagonal
                }
                let b = &strip(col / MR)[r0 * MR + col % MR..];
                micro(path, kc, a, b, &mut acc[bi * nbj + bj]);
            }
        }
    }
    for bi in 0..nbi {
        for bj in 0..nbj {
            let blk = &acc[bi * nbj + bj];
            for jj in 0..NR.min(cj - bj * NR) {
                let c = bj * NR + jj;
                let rlen = MR.min(ri - bi * MR);
                t[c * ri + bi * MR..c * ri + bi * MR + rlen].copy_from_slice(&blk[jj * MR..jj * MR + rlen]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference `Σ_r f[r·m + a] f[r·m + b]` with the same fused order (tests, small problems).
    fn entry(f: &[f64], rows: usize, m: usize, a: usize, b: usize) -> f64 {
        (0..rows).fold(0.0, |c, r| f[r * m + a].mul_add(f[r * m + b], c))
    }

    /// `Fᵀ F` entry by a plain dot product of columns (unfused; for accuracy checks).
    fn entry_unfused(f: &[f64], rows: usize, m: usize, a: usize, b: usize) -> f64 {
        let ca: Vec<f64> = (0..rows).map(|r| f[r * m + a]).collect();
        let cb: Vec<f64> = (0..rows).map(|r| f[r * m + b]).collect();
        crate::kernel::rff::dot(&ca, &cb)
    }

    fn data(rows: usize, m: usize) -> Vec<f64> {
        (0..rows * m).map(|v| ((v * 7919 % 1013) as f64) / 506.0 - 1.0).collect()
    }

    /// Every path gives, bit for bit, the fused sequential sum; ragged sizes (m = 45: a partial
    /// strip and partial blocks; rows = 600: a partial point chunk).
    #[test]
    fn tiles_equal_fused_sums_on_every_path() {
        let (rows, m) = (600, 45);
        let f = data(rows, m);
        let mut p = vec![0.0; strips(m) * rows * MR];
        pack(Par::Rayon, &f, rows, m, &mut p);
        let mut q = vec![f64::NAN; p.len()];
        pack(Par::Seq, &f, rows, m, &mut q);
        assert_eq!(p, q, "packing does not depend on the parallelism");
        for path in Level::ALL.into_iter().filter(|l| l.supported()) {
            for (i0, ri, j0, cj) in [(0, 45, 0, 45), (24, 21, 0, 24), (24, 13, 0, 45), (24, 21, 24, 21)] {
                let mut t = vec![f64::NAN; ri * cj];
                tile_on(path, &p, rows, m, i0, ri, j0, cj, &mut t);
                for c in 0..cj {
                    for r in 0..ri {
                        let (a, b) = (i0 + r, j0 + c);
                        if i0 == j0 && a < b {
                            continue;
                        }
                        let want = entry(&f, rows, m, a, b);
                        assert_eq!(t[c * ri + r].to_bits(), want.to_bits(), "{path:?} ({a},{b})");
                        let plain = entry_unfused(&f, rows, m, a, b);
                        assert!((t[c * ri + r] - plain).abs() <= 1e-12 * rows as f64, "{a} {b}");
                    }
                }
            }
        }
    }
}
