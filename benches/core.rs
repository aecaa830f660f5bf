//! Core benchmarks (issue 2): one OU step with N = 10^5 and 10^6 particles in d = 10 (noise on,
//! no reaction), and exact MMD between two clouds of 4000 points in d = 10.
//!
//! `cargo bench --bench core`; kernel evaluations per second = 3·4000² / (seconds per MMD).

use advreact::field::analytic::OrnsteinUhlenbeck;
use advreact::metrics::mmd_between;
use advreact::reaction::Reaction;
use advreact::stepper::{Simulation, TimeCfg};
use advreact::{Cloud, Particles};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn cloud(n: usize, d: usize, shift: f64) -> Cloud {
    let x: Vec<f64> = (0..n * d).map(|i| ((i * 7919) % 10007) as f64 / 10007.0 + shift).collect();
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn ou_step(c: &mut Criterion) {
    let d = 10;
    let mut g = c.benchmark_group("ou_step_d10");
    g.sample_size(10);
    for n in [100_000usize, 1_000_000] {
        let src = cloud(n, d, 0.0);
        let mut sim = Simulation::new(
            Particles::from_cloud(&src),
            Cloud::new(d, vec![], vec![]).unwrap(),
            Box::new(OrnsteinUhlenbeck { theta: 1.0, mean: vec![0.0; d] }),
            Reaction::default(),
            TimeCfg { dt: 1e-3, steps: usize::MAX, noise: 0.1, max_displacement: None },
            1,
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| b.iter(|| sim.step().unwrap()));
    }
    g.finish();
}

fn mmd_exact(c: &mut Criterion) {
    let (n, d) = (4000, 10);
    let (a, b) = (cloud(n, d, 0.0), cloud(n, d, 0.1));
    let mut g = c.benchmark_group("mmd_exact_d10");
    g.sample_size(10);
    // Three n×n kernel sums per MMD.
    g.throughput(Throughput::Elements(3 * (n * n) as u64));
    g.bench_function("n4000", |bch| bch.iter(|| mmd_between(&a, &b, 1.0).unwrap().mmd()));
    g.finish();
}

criterion_group!(benches, ou_step, mmd_exact);
criterion_main!(benches);
