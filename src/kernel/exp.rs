//! A branch-free `exp` for the kernel loops, written so the compiler vectorises it over a tile.
//!
//! `exp(x) = 2^k · e^r` with `k = round(x / ln 2)`, `r = x − k ln 2` (`ln 2` split in a high and a
//! low part, Cody–Waite), `|r| ≤ ln2/2`, and `e^r` by its Taylor polynomial of degree 13
//! (truncation `|r|^14/14! < 2e-17` relative) evaluated by Estrin's scheme (depth 4 instead of
//! Horner's 13, so independent lanes pipeline). Inputs are clamped to `[−708, 709]`, where `2^k`
//! is a normal double: below, `exp` would be subnormal and we return `e^{−708} ≈ 3.3e−308`
//! instead — an absolute error below 3.3e−308, invisible next to any sum it enters.
//!
//! Error against `f64::exp` on [−708, 709]: at most 2 ulp (test below). The one `exp` of the
//! crate's kernel loops: Gaussian sums ([`super::gaussian`]) and the Sinkhorn soft-min passes
//! (`ot::pass`, through [`exp_or_zero`]). It uses fused
//! multiply-add (`f64::mul_add`, exactly rounded by definition), so its results are the same on
//! every CPU — with hardware FMA fast, without it through the correctly rounded software `fma`.

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` split (fdlibm): the high part has 32 trailing zero bits, so `k · LN2_HI` is exact.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 2^52 + 2^51: adding it rounds to an integer held in the low mantissa bits.
const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// Taylor coefficients `1/k!`, k = 0..13.
const F: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// `e^x` to within 2 ulp for `x ≥ −708`; `e^{−708}` below (see module docs).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let x = x.clamp(-708.0, 709.0);
    let t = x.mul_add(LOG2E, SHIFTER);
    let kf = t - SHIFTER;
    let r = kf.mul_add(-LN2_LO, kf.mul_add(-LN2_HI, x));
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q = |i: usize| F[i + 1].mul_add(r, F[i]);
    let s0 = q(2).mul_add(r2, q(0));
    let s1 = q(6).mul_add(r2, q(4));
    let s2 = q(10).mul_add(r2, q(8));
    let u0 = s1.mul_add(r4, s0);
    let u1 = q(12).mul_add(r4, s2);
    let p = u1.mul_add(r8, u0);
    // k ∈ [−1021, 1023] after the clamp: 2^k is a normal double, built from its bits.
    let k = t.to_bits().wrapping_sub(SHIFTER.to_bits()) as i64;
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// `e^x` for `x ≥ −708` (as [`exp`]), exactly `0` below and for `−∞`; NaN propagates. For the
/// soft-min sums, where a zero weight (`log w = −∞`) must contribute exactly nothing.
#[inline(always)]
pub fn exp_or_zero(x: f64) -> f64 {
    let y = exp(x);
    if x < -708.0 {
        0.0
    } else {
        y
    }
}

/// Block length of [`exp_shifted_block`].
pub const BLOCK: usize = 32;

/// `v[k] ← exp_or_zero(v[k] − m)` on a fixed-size block, so that the compiler keeps several
/// vectors of independent evaluations in flight.
#[inline(always)]
pub fn exp_shifted_block(v: &mut [f64; BLOCK], m: f64) {
    for x in v.iter_mut() {
        *x = exp_or_zero(*x - m);
    }
}

/// `out[i] = exp(scale · v[i])` in place over a slice (vectorised).
#[inline(always)]
pub fn exp_scaled_inplace(v: &mut [f64], scale: f64) {
    for x in v.iter_mut() {
        *x = exp(scale * *x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn within_two_ulp_of_std() {
        let mut worst = 0;
        let n = 2_000_000;
        for i in 0..=n {
            let x = -708.0 + (709.0 + 708.0) * i as f64 / n as f64;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        // Fine grid near 0, where the kernels live.
        for i in 0..=n {
            let x = -40.0 + 41.0 * i as f64 / n as f64;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e4) <= 3.4e-308 && exp(-1e4) > 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), exp(-708.0));
        assert!(exp(709.0).is_finite());
        assert_eq!(exp_or_zero(-708.5), 0.0);
        assert_eq!(exp_or_zero(f64::NEG_INFINITY), 0.0);
        assert!(exp_or_zero(f64::NAN).is_nan());
        assert_eq!(exp_or_zero(-1.25), exp(-1.25));
    }
}
