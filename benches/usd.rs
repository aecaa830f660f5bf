//! One Unbalanced Sobolev Descent step (critic `prepare` + `eval`, SPEC §2.1) for
//! N ∈ {10⁴, 10⁵} particles, m ∈ {300, 1000} features, d ∈ {2, 10}; α = 1, conserving, so both
//! Gramians (`G_sin` for D and `G_cos` for C) are assembled. After each configuration the
//! per-phase split (features, Gramians, solve, evaluation) averaged over the measured steps is
//! printed. Sample sizes are criterion's minimum (10, flat sampling) so the whole bench runs in
//! a few minutes. On a shared machine the wall-clock figures depend on the load: the ratio of
//! process CPU time to wall time over each configuration (read from `/proc/self/stat`, Linux
//! only) is printed as "cores used", to tell a slow kernel from a busy machine.

use advreact::field::sobolev_fisher::{SobolevFisher, SobolevFisherCfg};
use advreact::field::{EvalCtx, Field};
use advreact::Cloud;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::time::{Duration, Instant};

/// Process CPU time (user + system, all threads) in seconds, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn cloud(n: usize, d: usize, shift: f64, seed: u64) -> Cloud {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            shift + 0.3 * z
        })
        .collect();
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn usd_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("usd_step");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    for n in [10_000usize, 100_000] {
        for m in [300usize, 1000] {
            for d in [2usize, 10] {
                let source = cloud(n, d, 0.0, 1);
                let target = cloud(n, d, 0.2, 2);
                let cfg = SobolevFisherCfg {
                    features: m,
                    bandwidth: 0.3,
                    alpha: 1.0,
                    ridge: 1e-3,
                    conserve: true,
                    resolve_every: 1,
                };
                let mut field = SobolevFisher::new(cfg, d, &target, 7).unwrap();
                let mut u = vec![0.0; n * d];
                let mut g = vec![0.0; n];
                let mut step = 0;
                let exec = advreact::dist::Exec::default();
                let (cpu0, wall0) = (cpu_seconds(), Instant::now());
                let id = BenchmarkId::from_parameter(format!("N={n}/m={m}/d={d}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        let ctx = EvalCtx {
                            step,
                            t: 0.0,
                            dim: d,
                            x: &source.x,
                            w: &source.w,
                            mass: 1.0,
                            target: &target,
                            exec: &exec,
                        };
                        step += 1;
                        u.iter_mut().for_each(|v| *v = 0.0);
                        g.iter_mut().for_each(|v| *v = 0.0);
                        field.prepare(&ctx).unwrap();
                        field.eval(&ctx, &mut u, &mut g).unwrap();
                    })
                });
                let cores = match (cpu0, cpu_seconds()) {
                    (Some(a), Some(b)) => format!("{:.2}", (b - a) / wall0.elapsed().as_secs_f64()),
                    _ => "?".into(),
                };
                let t = field.timings();
                let s = t.solves.max(1) as f64;
                let e = t.evals.max(1) as f64;
                let total = t.features / s + t.gram / s + t.solve / s + t.eval / e;
                println!(
                    "  phases N={n} m={m} d={d} (mean of {} steps): features {:.4}s, Gramians \
                     {:.4}s, solve {:.4}s, evaluation {:.4}s, sum {:.4}s; cores used {cores}",
                    t.solves,
                    t.features / s,
                    t.gram / s,
                    t.solve / s,
                    t.eval / e,
                    total
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, usd_step);
criterion_main!(benches);
