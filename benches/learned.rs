//! Var-RUOT fit benchmarks (SPEC §6): one loss-and-gradient evaluation by the exact discrete
//! adjoint at N = 2000 particles, m = 512 random features (plus the constant and linear terms,
//! cosine space–time basis), 100 steps (`dt = 0.01` on [0, 1]), σ = 0.1, d = 2 and d = 10.
//!
//! - `adjoint/d*`: the forward pass (states stored) and the backward pass, with the mass, action
//!   and HJB terms (`γ_S = 0`: no Sinkhorn solve) — the cost of the adjoint itself;
//! - `with_divergence/d*`: the same plus the debiased unbalanced Sinkhorn divergence to one
//!   2000-cell snapshot at t = 1 (ε = 0.05, ρ = 1, tolerance 1e-6), warm-started from the
//!   previous evaluation as in a fit.
//!
//! Data: `X_0 ~ N(0, I_d)`, the snapshot `N(0.5 e_1, I_d)`; coefficients fixed and small.

use advreact::dist::Exec;
use advreact::infer::Series;
use advreact::learned::features::{FeatureSpec, Features, TimeBasis};
use advreact::learned::var_ruot::{Problem, VarRuotParams};
use advreact::Cloud;
use criterion::{criterion_group, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn setup(d: usize, gamma_s: f64) -> (Problem, Vec<f64>) {
    let n = 2000;
    let mut rng = ChaCha8Rng::seed_from_u64(7 + d as u64);
    let mut draw = |shift: f64| -> Vec<f64> {
        (0..n * d)
            .map(|k| {
                let z: f64 = StandardNormal.sample(&mut rng);
                z + if k % d == 0 { shift } else { 0.0 }
            })
            .collect()
    };
    let x0 = draw(0.0);
    let x1 = draw(0.5);
    let clouds = vec![Cloud::new(d, x0, vec![1.0; n]).unwrap(), Cloud::new(d, x1, vec![1.0; n]).unwrap()];
    let series = Series {
        file: PathBuf::from("<bench>"),
        times: vec![0.0, 1.0],
        clouds,
        growth: None,
        labels: None,
        ids: None,
    };
    let features = Features::new(FeatureSpec {
        dim: d,
        random: 512,
        ell_x: 1.0,
        ell_t: 1.5,
        poly: 1,
        time: TimeBasis::Cosine,
        seed: 1,
        centre: vec![0.0; d],
        scale: 1.0,
        t_centre: 0.5,
        t_scale: 0.5,
    })
    .unwrap();
    let theta: Vec<f64> = (0..features.len()).map(|i| 0.05 * ((i as f64) * 0.37).sin()).collect();
    let params = VarRuotParams {
        sigma: 0.1,
        dt: 0.01,
        eps: 0.05,
        rho: Some(1.0),
        gamma_s,
        gamma_m: 1.0,
        gamma_a: 0.01,
        gamma_h: 0.01,
        sinkhorn_tol: 1e-6,
        ..VarRuotParams::default()
    };
    (Problem::new(&series, features, &params).unwrap(), theta)
}

fn bench(c: &mut Criterion) {
    let exec = Exec::default();
    let mut g = c.benchmark_group("var_ruot");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    for d in [2, 10] {
        let (mut p, theta) = setup(d, 0.0);
        assert_eq!(p.steps(), 100);
        g.bench_function(format!("adjoint/d{d}"), |b| {
            b.iter(|| black_box(p.loss_and_grad(black_box(&theta), true, &exec).unwrap()))
        });
        let (mut p, theta) = setup(d, 1.0);
        p.loss_and_grad(&theta, true, &exec).unwrap();
        g.bench_function(format!("with_divergence/d{d}"), |b| {
            b.iter(|| black_box(p.loss_and_grad(black_box(&theta), true, &exec).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
