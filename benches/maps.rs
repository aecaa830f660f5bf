//! Displacement-sparse map benchmark (src/maps/sparse.rs): one full fit at d = 100, n = 1000.
//!
//! Problem: source `N(0, I_d)`, target `N(0, I_d)` shifted by 2 on 10 coordinates, unit masses.
//! Smoothed ℓ0 (`σ = 0.1`) at a fixed `γ = 0.5` (the `γ = 0` fit and the penalised fit from it),
//! `ε = 1`, 50 random features, default tolerances. Criterion with 10 samples: the median is the
//! seconds of one fit.

use advreact::dist::Exec;
use advreact::maps::sparse::{fit_sparse_map, GammaChoice, SparseMapParams, SparsePenalty};
use advreact::Cloud;
use criterion::{criterion_group, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;
use std::time::Duration;

fn cloud(n: usize, d: usize, moved: usize, seed: u64) -> Cloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * d)
        .map(|k| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z + if k % d < moved { 2.0 } else { 0.0 }
        })
        .collect();
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn bench(c: &mut Criterion) {
    let (n, d) = (1000, 100);
    let (mu, nu) = (cloud(n, d, 0, 1), cloud(n, d, 10, 2));
    let p = SparseMapParams {
        penalty: SparsePenalty::SmoothedL0 { sigma: 0.1 },
        gamma: GammaChoice::Fixed(0.5),
        eps: 1.0,
        features: 50,
        ..Default::default()
    };
    let exec = Exec::default();
    let mut g = c.benchmark_group("maps");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(30));
    g.bench_function(format!("sparse_l0_fit/d{d}_n{n}"), |b| {
        b.iter(|| black_box(fit_sparse_map(black_box(&mu), &nu, &p, &exec).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
