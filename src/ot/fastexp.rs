//! A branch-free, vectorisable `exp` for the soft-min reductions of [`super::pass`]:
//!
//! `exp(x) = 2ⁿ · exp(r)`, `n = round(x / ln 2)`, `r = x − n ln 2 ∈ [−ln2/2, ln2/2]`
//!
//! with a two-constant (Cody–Waite) reduction `r = (x − n·ln2_hi) − n·ln2_lo`, `exp(r)` by its
//! Taylor polynomial of degree 13 (truncation `|r|¹⁴/14! < 5e-18`, Estrin evaluation), and `2ⁿ`
//! assembled from the exponent bits. `n` is rounded with the shifter `1.5·2⁵²`, so there is no
//! float→int conversion and the loop vectorises on any x86-64 level. Accuracy: within 2 ulp of `f64::exp` on
//! `[−708, 709]` (tested below); arguments below `−708` return `0` (the true value is below
//! `3.3e-308` and is negligible against the `exp(0) = 1` term that every streamed log-sum-exp
//! holds); NaN propagates. Only plain `+`/`×` are used (no fused multiply-add), so the result has
//! the same bits whatever instruction set the caller was compiled for.

const LOG2E: f64 = std::f64::consts::LOG2_E;
/// `ln 2` split: the high part has 32 trailing zero bits (so `n·LN2_HI` is exact for `|n| < 2²⁰`).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
/// Arguments below this return 0.
pub(crate) const MIN_ARG: f64 = -708.0;

/// Taylor coefficients `1/k!`, `k = 0..=13`.
const C: [f64; 14] = [
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

/// `exp(x)` for `x ≤ 709` (see the module doc); `0` for `x < −708`. The polynomial is evaluated
/// by Estrin's scheme (dependency depth 8 instead of Horner's 26), which matters when many
/// independent evaluations are in flight ([`exp_shifted_block`]).
#[inline(always)]
pub(crate) fn exp(x: f64) -> f64 {
    let xc = if x < MIN_ARG { MIN_ARG } else { x };
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = C[0] + C[1] * r;
    let p23 = C[2] + C[3] * r;
    let p45 = C[4] + C[5] * r;
    let p67 = C[6] + C[7] * r;
    let p89 = C[8] + C[9] * r;
    let p1011 = C[10] + C[11] * r;
    let p1213 = C[12] + C[13] * r;
    let q0 = p01 + p23 * r2;
    let q1 = p45 + p67 * r2;
    let q2 = p89 + p1011 * r2;
    let s0 = q0 + q1 * r4;
    let s1 = q2 + p1213 * r4;
    let p = s0 + s1 * r8;
    // t's mantissa holds 2^51 + n; adding the bias and shifting keeps the 11 exponent bits n+1023.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    let y = p * scale;
    if x < MIN_ARG {
        0.0
    } else {
        y
    }
}

/// Block length of [`exp_shifted_block`].
pub(crate) const BLOCK: usize = 32;

/// `v[k] ← exp(v[k] − m)` on a fixed-size block, so that the compiler keeps several vectors of
/// independent evaluations in flight.
#[inline(always)]
pub(crate) fn exp_shifted_block(v: &mut [f64; BLOCK], m: f64) {
    for x in v.iter_mut() {
        *x = exp(*x - m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs() / f64::EPSILON
    }

    #[test]
    fn matches_std_exp_within_two_ulp() {
        let mut worst: f64 = 0.0;
        let n = 2_000_001;
        for k in 0..n {
            let x = -708.0 + 1417.0 * (k as f64) / ((n - 1) as f64);
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        // Small arguments, where the reduction is trivial.
        for k in 0..100_000 {
            let x = -1e-3 + 2e-3 * (k as f64) / 1e5;
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-709.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
    }
}
