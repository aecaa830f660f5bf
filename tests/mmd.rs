//! MMD against ../shared/fixtures/mmd.json (independent numpy/longdouble computation):
//! terms, MMD² and gradients to 1e-10 relative (the fixture's own longdouble check differs by
//! ~1e-16; our tiled sums reorder additions, costing a few ulp per term).

mod common;
use advreact::metrics::{mmd_between, witness_between};
use advreact::Cloud;
use common::*;

fn rel(a: f64, b: f64, scale: f64) -> f64 {
    (a - b).abs() / scale.max(1e-300)
}

#[test]
fn every_fixture_case_to_1e10() {
    let fx = fixture("mmd.json");
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let d = case["d"].as_u64().unwrap() as usize;
        let s = case["s"].as_f64().unwrap();
        let (x, y) = (rows(&case["x"]), rows(&case["y"]));
        let (a, b) = (f64s(&case["a"]), f64s(&case["b"]));
        let (ca, cb) =
            (Cloud::new(d, x.clone(), a.clone()).unwrap(), Cloud::new(d, y.clone(), b.clone()).unwrap());
        let t = mmd_between(&ca, &cb, s).unwrap();
        let scale = t.xx.abs() + t.yy.abs() + 2.0 * t.xy.abs();
        for (got, key) in [(t.xx, "term_xx"), (t.yy, "term_yy"), (t.xy, "term_xy")] {
            let want = case[key].as_f64().unwrap();
            assert!(rel(got, want, want.abs()) <= 1e-10, "{name} {key}: {got} vs {want}");
        }
        let want = case["mmd2"].as_f64().unwrap();
        // MMD² is a difference of terms: relative to the terms' scale when it cancels to ~0.
        assert!(
            rel(t.mmd2, want, want.abs().max(1e-6 * scale)) <= 1e-10,
            "{name} mmd2: {} vs {want}",
            t.mmd2
        );
        // Gradients: ∂MMD²/∂a_i = 2 φ(x_i), ∂MMD²/∂x_i = 2 a_i ∇φ(x_i),
        // ∂MMD²/∂b_j = −2 φ(y_j), ∂MMD²/∂y_j = −2 b_j ∇φ(y_j).
        let (phi_x, gphi_x) = witness_between(&x, &ca, &cb, s).unwrap();
        let (phi_y, gphi_y) = witness_between(&y, &ca, &cb, s).unwrap();
        let ga: Vec<f64> = phi_x.iter().map(|p| 2.0 * p).collect();
        let gb: Vec<f64> = phi_y.iter().map(|p| -2.0 * p).collect();
        let gx: Vec<f64> = gphi_x.iter().enumerate().map(|(k, g)| 2.0 * a[k / d] * g).collect();
        let gy: Vec<f64> = gphi_y.iter().enumerate().map(|(k, g)| -2.0 * b[k / d] * g).collect();
        for (got, key) in [(ga, "grad_a"), (gb, "grad_b"), (gx, "grad_x"), (gy, "grad_y")] {
            let want =
                if key.ends_with('x') || key.ends_with('y') { rows(&case[key]) } else { f64s(&case[key]) };
            // Relative to the gradient norm, floored at 1e-6 (the identical-clouds case is 0).
            let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (g, w) in got.iter().zip(&want) {
                assert!(rel(*g, *w, norm.max(1e-6)) <= 1e-10, "{name} {key}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn identical_clouds_give_exactly_zero_and_mmd_is_symmetric() {
    let d = 3;
    let x: Vec<f64> = (0..700 * d).map(|i| ((i * 7919) % 1013) as f64 / 300.0).collect();
    let a: Vec<f64> = (0..700).map(|i| 0.5 + (i % 5) as f64).collect();
    let ca = Cloud::new(d, x.clone(), a.clone()).unwrap();
    assert_eq!(mmd_between(&ca, &ca, 0.4).unwrap().mmd2, 0.0);
    let y: Vec<f64> = x.iter().map(|v| v * 1.1 + 0.05).collect();
    let b: Vec<f64> = a.iter().rev().copied().collect();
    let cb = Cloud::new(d, y, b).unwrap();
    let mmd = |p: &Cloud, q: &Cloud| mmd_between(p, q, 0.4).unwrap().mmd();
    let (m1, m2) = (mmd(&ca, &cb), mmd(&cb, &ca));
    assert!(m1 > 0.0);
    assert!((m1 - m2).abs() <= 1e-13 * m1, "{m1} vs {m2}");
}
