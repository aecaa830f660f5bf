//! A branch-free `exp` for the kernel loops, with an explicit AVX-512 path for blocks that gives
//! the same bits as the portable one.
//!
//! `exp(x) = 2^e · 2^{j/16} · e^r` with `k = round(16 x / ln 2)`, `e = ⌊k/16⌋`, `j = k mod 16`,
//! `r = x − k ln2/16` (`ln2/16` split in a high and a low part, Cody–Waite), so `|r| ≤ ln2/32`.
//! `2^{j/16}` comes from a 16-entry table `T` (each entry the double nearest to it, relative error
//! ≤ 2^−53), `e^r − 1 = q(r)` from its Taylor polynomial of degree 7 (truncation
//! `|r|^8/8! < 1.3e−18` relative, a hundredth of an ulp), and the result is
//! `fma(T_j, q, T_j) · 2^e`: one rounding of `T_j (1 + q)`, then an exact power-of-two scaling.
//! Inputs are clamped to `[−708, 709]`, where the result is a normal double: below, `exp` would
//! be subnormal and we return `≈ e^{−708} ≈ 3.3e−308` instead — an absolute error below 3.3e−308,
//! invisible next to any sum it enters. NaN propagates.
//!
//! Error against `f64::exp` on [−708, 709]: at most 1 ulp (the test below measures every point of
//! a 4·10^6-point grid). The one `exp` of the crate's kernel loops: Gaussian sums
//! ([`super::gaussian`], through [`exp_scaled_into`]) and the Sinkhorn soft-min passes
//! (`ot::pass`, through [`exp_shifted_block`] and [`exp_or_zero`]).
//!
//! Same bits everywhere: the scalar code uses only exactly rounded operations (`f64::mul_add` is
//! a fused multiply-add by definition — hardware FMA when present, a correctly rounded software
//! one otherwise) and a table lookup. At the AVX-512 level ([`crate::simd`]) the block functions
//! run the same operation sequence on 8 lanes with intrinsics: the table lookup is one
//! two-register permute indexed by the low bits of `k`, and `2^e` is applied by `vscalefpd`, exact
//! for the normal results the clamp guarantees — so every level gives the same bits (tested
//! below). Inside a multiversioned kernel they are reached through `exp_shifted_block_on` and
//! `exp_scaled_into_on` (inlined into the kernel's copy); elsewhere through [`exp_shifted_block`]
//! and [`exp_scaled_into`], which dispatch on [`crate::simd::level`].

use crate::simd::{multiversion, Isa, Level};

const LOG2E_16: f64 = 16.0 * std::f64::consts::LOG2_E;
/// `ln2/16` split (fdlibm's `ln 2` split, divided by 16): the high part has 32 trailing zero bits.
const LN2_16_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000) / 16.0;
const LN2_16_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76) / 16.0;
/// 2^52 + 2^51: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;
/// Clamp range: every result is a normal double.
const LO: f64 = -708.0;
const HI: f64 = 709.0;

/// `T[j]` = the double nearest to `2^{j/16}`.
const T: [f64; 16] = {
    const B: [u64; 16] = [
        0x3ff0_0000_0000_0000,
        0x3ff0_b558_6cf9_890f,
        0x3ff1_72b8_3c7d_517b,
        0x3ff2_387a_6e75_6238,
        0x3ff3_06fe_0a31_b715,
        0x3ff3_dea6_4c12_3422,
        0x3ff4_bfda_d536_2a27,
        0x3ff5_ab07_dd48_5429,
        0x3ff6_a09e_667f_3bcd,
        0x3ff7_a114_73eb_0187,
        0x3ff8_ace5_422a_a0db,
        0x3ff9_c491_82a3_f090,
        0x3ffa_e89f_995a_d3ad,
        0x3ffc_199b_dd85_529c,
        0x3ffd_5818_dcfb_a487,
        0x3ffe_a4af_a2a4_90da,
    ];
    let mut t = [0.0; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = f64::from_bits(B[j]);
        j += 1;
    }
    t
};

/// Taylor coefficients `1/k!`, k = 2..7 (of `q(r) = r + r² (1/2 + r/6 + …)`).
const C2: f64 = 0.5;
const C3: f64 = 1.0 / 6.0;
const C4: f64 = 1.0 / 24.0;
const C5: f64 = 1.0 / 120.0;
const C6: f64 = 1.0 / 720.0;
const C7: f64 = 1.0 / 5_040.0;

/// `e^x` to within 1 ulp for `x ∈ [−708, 709]`, `≈ e^{−708}` below, `≈ e^{709}` above (see the
/// module docs).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let x = x.clamp(LO, HI);
    let t = x.mul_add(LOG2E_16, SHIFTER);
    let kf = t - SHIFTER;
    let r = kf.mul_add(-LN2_16_LO, kf.mul_add(-LN2_16_HI, x));
    let p = C7.mul_add(r, C6).mul_add(r, C5).mul_add(r, C4).mul_add(r, C3).mul_add(r, C2);
    let q = (r * r).mul_add(p, r);
    // The low 16 bits of `t` hold `k` (two's complement): `j = k mod 16`, `e = k >> 4`.
    let k = t.to_bits().wrapping_sub(SHIFTER.to_bits()) as i64;
    let tj = T[(k & 15) as usize];
    let v = tj.mul_add(q, tj);
    // e ∈ [−1022, 1022] after the clamp and v ∈ [2^{−1/32}, 2^{31/32}]: the product is normal.
    v * f64::from_bits((((k >> 4) + 1023) as u64) << 52)
}

/// `e^x` for `x ≥ −708` (as [`exp`]), exactly `0` below and for `−∞`; NaN propagates. For the
/// soft-min sums, where a zero weight (`log w = −∞`) must contribute exactly nothing.
#[inline(always)]
pub fn exp_or_zero(x: f64) -> f64 {
    let y = exp(x);
    if x < LO {
        0.0
    } else {
        y
    }
}

/// Block length of [`exp_shifted_block`].
pub const BLOCK: usize = 32;

/// `v[k] ← exp_or_zero(v[k] − m)` on a fixed-size block, at the level [`crate::simd::level`].
pub fn exp_shifted_block(v: &mut [f64; BLOCK], m: f64) {
    exp_shifted_block_at(crate::simd::level(), v, m)
}

/// `out[i] = exp(scale · v[i])` (`out.len() == v.len()`), at the level [`crate::simd::level`].
pub fn exp_scaled_into(v: &[f64], out: &mut [f64], scale: f64) {
    exp_scaled_into_at(crate::simd::level(), v, out, scale)
}

/// [`exp_shifted_block`] compiled into a kernel of level `I::LEVEL` (the caller must be the
/// `I` copy of a [`crate::simd::multiversion`] body, so that AVX-512 code only runs where it can).
#[inline(always)]
pub(crate) fn exp_shifted_block_on<I: Isa>(v: &mut [f64; BLOCK], m: f64) {
    #[cfg(target_arch = "x86_64")]
    if I::LEVEL == Level::Avx512 {
        // SAFETY: the `IsaAvx512` instance runs only in an `avx512f` function entered after
        // checking the CPU (see above); the 8-lane loads and stores stay inside the block.
        unsafe { avx512::exp_or_zero_shifted(v, m) };
        return;
    }
    for x in v.iter_mut() {
        *x = exp_or_zero(*x - m);
    }
}

/// [`exp_scaled_into`] compiled into a kernel of level `I::LEVEL` (as [`exp_shifted_block_on`]).
#[inline(always)]
pub(crate) fn exp_scaled_into_on<I: Isa>(v: &[f64], out: &mut [f64], scale: f64) {
    assert_eq!(v.len(), out.len(), "exp_scaled_into: lengths differ");
    let mut full = 0;
    #[cfg(target_arch = "x86_64")]
    if I::LEVEL == Level::Avx512 {
        full = v.len() - v.len() % 8;
        // SAFETY: as in `exp_shifted_block_on`; the loads and stores cover `[..full]` of both.
        unsafe { avx512::exp_scaled(&v[..full], &mut out[..full], scale) };
    }
    for (o, x) in out[full..].iter_mut().zip(&v[full..]) {
        *o = exp(scale * *x);
    }
}

multiversion!(exp_shifted_block_at => exp_shifted_block_on, exp_shifted_block_512, exp_shifted_block_256(
    v: &mut [f64; BLOCK], m: f64
));
multiversion!(exp_scaled_into_at => exp_scaled_into_on, exp_scaled_into_512, exp_scaled_into_256(
    v: &[f64], out: &mut [f64], scale: f64
));

/// The same operations as [`exp`] / [`exp_or_zero`], 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// `exp` of 8 lanes, zeroed where `keep` is clear.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp8(x: __m512d, keep: __mmask8) -> __m512d {
        // `max(c, x)` / `min(c, x)` return `x` when it is NaN (as `f64::clamp`).
        let x = _mm512_min_pd(_mm512_set1_pd(HI), _mm512_max_pd(_mm512_set1_pd(LO), x));
        let t = _mm512_fmadd_pd(x, _mm512_set1_pd(LOG2E_16), _mm512_set1_pd(SHIFTER));
        let kf = _mm512_sub_pd(t, _mm512_set1_pd(SHIFTER));
        let r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(LN2_16_HI), x);
        let r = _mm512_fnmadd_pd(kf, _mm512_set1_pd(LN2_16_LO), r);
        let c = |v: f64| _mm512_set1_pd(v);
        let p = _mm512_fmadd_pd(c(C7), r, c(C6));
        let p = _mm512_fmadd_pd(p, r, c(C5));
        let p = _mm512_fmadd_pd(p, r, c(C4));
        let p = _mm512_fmadd_pd(p, r, c(C3));
        let p = _mm512_fmadd_pd(p, r, c(C2));
        let q = _mm512_fmadd_pd(_mm512_mul_pd(r, r), p, r);
        // Index bits 3..0 of each lane pick one of the 16 table entries in two registers.
        let tlo = _mm512_loadu_pd(T.as_ptr());
        let thi = _mm512_loadu_pd(T.as_ptr().add(8));
        let tj = _mm512_permutex2var_pd(tlo, _mm512_castpd_si512(t), thi);
        let v = _mm512_fmadd_pd(tj, q, tj);
        // 2^⌊k/16⌋ (k/16 is exact; `vscalefpd` floors its exponent operand).
        _mm512_maskz_scalef_pd(keep, v, _mm512_mul_pd(kf, _mm512_set1_pd(1.0 / 16.0)))
    }

    /// `v ← exp_or_zero(v − m)` (zero where `v − m < −708`, NaN kept: the mask is "not less").
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_or_zero_shifted(v: &mut [f64; BLOCK], m: f64) {
        let mv = _mm512_set1_pd(m);
        for c in v.chunks_exact_mut(8) {
            let x = _mm512_sub_pd(_mm512_loadu_pd(c.as_ptr()), mv);
            let keep = _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(x, _mm512_set1_pd(LO));
            _mm512_storeu_pd(c.as_mut_ptr(), exp8(x, keep));
        }
    }

    /// `out ← exp(scale · v)`, lengths equal and a multiple of 8.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_scaled(v: &[f64], out: &mut [f64], scale: f64) {
        let s = _mm512_set1_pd(scale);
        for (c, o) in v.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            let x = _mm512_mul_pd(_mm512_loadu_pd(c.as_ptr()), s);
            _mm512_storeu_pd(o.as_mut_ptr(), exp8(x, 0xff));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn within_one_ulp_of_std() {
        let mut worst = 0;
        let n = 2_000_000;
        for i in 0..=n {
            let x = LO + (HI - LO) * i as f64 / n as f64;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        // Fine grid near 0, where the kernels live.
        for i in 0..=n {
            let x = -40.0 + 41.0 * i as f64 / n as f64;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 1, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(1.0), std::f64::consts::E);
        assert!(exp(-1e4) <= 3.4e-308 && exp(-1e4) > 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), exp(LO));
        assert!(exp(HI).is_finite() && exp(HI) > 8.2e307);
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp_or_zero(-708.5), 0.0);
        assert_eq!(exp_or_zero(f64::NEG_INFINITY), 0.0);
        assert!(exp_or_zero(f64::NAN).is_nan());
        assert_eq!(exp_or_zero(-1.25), exp(-1.25));
    }

    /// The block functions give the bits of the scalar ones on every lane, including the
    /// clamps, the zero cut, infinities and NaN, at every level this CPU has (at AVX-512 this
    /// compares the intrinsics with the scalar code).
    #[test]
    fn blocks_match_scalar_bitwise() {
        let mut specials = vec![
            0.0,
            -0.0,
            1.0,
            -708.0,
            -708.0000001,
            -707.9999999,
            709.0,
            709.5,
            -745.2,
            -1e300,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        // Table-boundary points k ln2/16 and their neighbours, and a pseudo-random spread.
        for k in -16_400i64..16_400 {
            let x = k as f64 * std::f64::consts::LN_2 / 16.0;
            specials.extend([x, f64::from_bits(x.to_bits() + 1), x + 0.0216]);
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            specials.push((s >> 11) as f64 / (1u64 << 53) as f64 * 1500.0 - 750.0);
        }
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for lvl in Level::ALL.into_iter().filter(|l| l.supported()) {
            for (ci, chunk) in specials.chunks(BLOCK).enumerate() {
                let mut v = [0.0; BLOCK];
                v[..chunk.len()].copy_from_slice(chunk);
                let m = [0.0, 3.5, -2.25, f64::NEG_INFINITY][ci % 4];
                let orig = v;
                exp_shifted_block_at(lvl, &mut v, m);
                for (a, x) in v.iter().zip(&orig) {
                    assert!(same(*a, exp_or_zero(*x - m)), "{lvl:?}: exp_or_zero({x} - {m}): {a}");
                }
                let len = chunk.len().min(BLOCK - 3);
                let mut w = vec![0.0; len];
                exp_scaled_into_at(lvl, &orig[..len], &mut w, -0.75);
                for (a, x) in w.iter().zip(&orig) {
                    assert!(same(*a, exp(-0.75 * *x)), "{lvl:?}: exp(-0.75 · {x}): {a}");
                }
            }
        }
    }
}
