//! Ornstein–Uhlenbeck moments (SPEC §1) against ../shared/fixtures/ou_moments.json.
//!
//! The fixture gives, for each case, the exact moments of the Euler–Maruyama chain with step
//! `em_step` (`mean = m + (x0−m) q^k`, `var = v0 q^{2k} + σ² h (1 − q^{2k})/(1 − q²)`,
//! `q = 1 − θh`). Our stepper *is* that chain, so the sample moments over N = 20000 particles
//! must lie within 4 standard errors of them: SE(mean) = √(var/N), SE(var) = var √(2/(N−1))
//! (Gaussian law — the chain from a Gaussian start stays Gaussian).

mod common;
use advreact::field::analytic::OrnsteinUhlenbeck;
use advreact::reaction::ReactionKind;
use advreact::Cloud;
use common::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn start(n: usize, mean: f64, var: f64, seed: u64) -> Cloud {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            mean + var.sqrt() * z
        })
        .collect();
    Cloud::uniform(1, x, 1.0).unwrap()
}

#[test]
fn euler_maruyama_moments_within_four_standard_errors() {
    let fx = fixture("ou_moments.json");
    let n = 20_000;
    for (ci, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let theta = case["theta"].as_f64().unwrap();
        let m = case["m"].as_f64().unwrap();
        let sigma = case["sigma"].as_f64().unwrap();
        let h = case["em_step"].as_f64().unwrap();
        let src =
            start(n, case["x0_mean"].as_f64().unwrap(), case["x0_var"].as_f64().unwrap(), 11 + ci as u64);
        let mut checked = 0;
        for em in case["euler_maruyama_moments"].as_array().unwrap() {
            let steps = em["steps"].as_u64().unwrap() as usize;
            if steps == 0 || steps > 2000 {
                continue;
            }
            let field = Box::new(OrnsteinUhlenbeck { theta, mean: vec![m] });
            let mut s = sim(&src, field, ReactionKind::None, false, h, steps, sigma, 5 + ci as u64);
            s.run(&mut []).unwrap();
            let x = &s.particles.x;
            let mean = x.iter().sum::<f64>() / n as f64;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            let (em_mean, em_var) = (em["mean"].as_f64().unwrap(), em["var"].as_f64().unwrap());
            let se_mean = (em_var / n as f64).sqrt();
            let se_var = em_var * (2.0 / (n - 1) as f64).sqrt();
            assert!(
                (mean - em_mean).abs() <= 4.0 * se_mean,
                "case {ci} t={}: mean {mean} vs {em_mean} (4 SE = {})",
                em["t"],
                4.0 * se_mean
            );
            assert!(
                (var - em_var).abs() <= 4.0 * se_var,
                "case {ci} t={}: var {var} vs {em_var} (4 SE = {})",
                em["t"],
                4.0 * se_var
            );
            checked += 1;
        }
        assert!(checked >= 2, "case {ci}: only {checked} times checked");
    }
}

#[test]
fn noiseless_ou_matches_the_scheme_to_1e9() {
    // σ = 0: every particle follows x_k = m + (x_0 − m)(1 − θh)^k exactly (up to rounding).
    let (theta, m, h, steps) = (0.7, [0.5, -1.0, 2.0], 0.01, 300);
    let x0: Vec<f64> = (0..30).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let src = Cloud::uniform(3, x0.clone(), 1.0).unwrap();
    let field = Box::new(OrnsteinUhlenbeck { theta, mean: m.to_vec() });
    let mut s = sim(&src, field, ReactionKind::None, false, h, steps, 0.0, 1);
    let summary = s.run(&mut []).unwrap();
    assert_eq!(summary.steps, steps);
    let q = (1.0 - theta * h).powi(steps as i32);
    for (i, (x, x0)) in s.particles.x.iter().zip(&x0).enumerate() {
        let mk = m[i % 3];
        let exact = mk + (x0 - mk) * q;
        assert!((x - exact).abs() <= 1e-9, "particle {}: {x} vs {exact}", i / 3);
    }
}
