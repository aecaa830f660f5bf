//! Unbalanced Sinkhorn benchmarks (SPEC §3): one iteration (two streamed passes over the n·m
//! pairs) and a full solve, n = m = 4000 and 10^5, d = 2 and 10.
//!
//! Problem (as in `shared/fixtures/anchor_timings.md`): source `N(0, I_d)`, target
//! `N(e_1, I_d)`, uniform weights of mass 1 and 1.5, cost `|x − y|²`, `ε = 0.05 × median cost`,
//! KL penalties `τ = 1` on both sides. Full solve: ε-scaling from the cost diameter (factor 0.5),
//! tolerance 1e-6 on the relative marginal error.
//!
//! n = 4000 runs under criterion (10 samples). n = 10^5 (2·10^10 pair evaluations per iteration)
//! is timed by hand: the median of 3 single iterations, and one full solve at d = 2 (tolerance
//! 1e-4); set `UOT_BENCH_SKIP_LARGE=1` to skip it.
//!
//! Elastic cost (SPEC §7, the generic-cost tile path): one iteration at n = m = 4000, d = 1000,
//! `h(z) = ½|z|² + γ|z|₁` (`γ = 0.1`) against `½|x − y|²` on the same clouds and ε, timed by hand
//! (median of `UOT_BENCH_ELASTIC_REPS` single iterations each, default 1, wall and CPU seconds,
//! and their ratio); `UOT_BENCH_SKIP_ELASTIC=1` skips it. At d = 1000 the passes run the blocked
//! loop (`kernel::for_each_term_tile`, panels of the targets).

use advreact::ot::{sinkhorn_step, uot_clouds, Cost, EpsScaling, Penalty, Potentials, SinkhornOptions};
use advreact::Cloud;
use criterion::{criterion_group, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Problem {
    d: usize,
    x: Vec<f64>,
    y: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    opts: SinkhornOptions,
}

impl Problem {
    fn new(n: usize, d: usize, tol: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(42 + d as u64);
        let mut draw = |shift: f64| -> Vec<f64> {
            (0..n * d)
                .map(|k| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    z + if k % d == 0 { shift } else { 0.0 }
                })
                .collect()
        };
        let x = draw(0.0);
        let y = draw(1.0);
        // Median cost over a 500 × 500 subsample.
        let k = n.min(500);
        let mut c: Vec<f64> = (0..k)
            .flat_map(|i| {
                let (x, y) = (&x, &y);
                (0..k).map(move |j| Cost::SqEuclidean.eval(&x[i * d..(i + 1) * d], &y[j * d..(j + 1) * d]))
            })
            .collect();
        c.sort_by(f64::total_cmp);
        let eps = 0.05 * c[c.len() / 2];
        let opts = SinkhornOptions {
            tol,
            max_iter: 10_000,
            eps_scaling: Some(EpsScaling { start: None, factor: 0.5 }),
            ..SinkhornOptions::kl(eps, 1.0, 1.0, Cost::SqEuclidean)
        };
        Self { d, x, y, a: vec![1.0 / n as f64; n], b: vec![1.5 / n as f64; n], opts }
    }
    fn measures(&self) -> (Cloud, Cloud) {
        let cloud = |x: &[f64], w: &[f64]| Cloud::new(self.d, x.to_vec(), w.to_vec()).unwrap();
        (cloud(&self.x, &self.a), cloud(&self.y, &self.b))
    }
    fn zeros(&self) -> Potentials {
        Potentials { f: vec![0.0; self.a.len()], g: vec![0.0; self.b.len()] }
    }
}

fn bench_4000(c: &mut Criterion) {
    let mut g = c.benchmark_group("uot_n4000");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for d in [2, 10] {
        let p = Problem::new(4000, d, 1e-6);
        let (a, b) = p.measures();
        g.bench_function(format!("iteration_d{d}"), |bch| {
            let mut pot = p.zeros();
            bch.iter(|| sinkhorn_step(&a, &b, &p.opts, black_box(&mut pot)).unwrap())
        });
        let s = uot_clouds(&a, &b, &p.opts).unwrap();
        eprintln!(
            "n = 4000, d = {d}: eps = {:.4}, full solve: {} iterations ({} annealing), \
             converged {}, marginal errors {:.1e} / {:.1e}, transported mass {:.4}",
            p.opts.eps,
            s.report.iterations,
            s.report.annealing_iterations,
            s.report.converged,
            s.report.marginal_error_a,
            s.report.marginal_error_b,
            s.report.transported_mass
        );
        g.bench_function(format!("solve_d{d}"), |bch| bch.iter(|| uot_clouds(&a, &b, &p.opts).unwrap()));
    }
    g.finish();
}

fn large() {
    if std::env::var("UOT_BENCH_SKIP_LARGE").is_ok() {
        return;
    }
    let n = 100_000;
    for d in [2, 10] {
        let p = Problem::new(n, d, 1e-4);
        let (a, b) = p.measures();
        let mut pot = p.zeros();
        let mut t: Vec<f64> = (0..3)
            .map(|_| {
                let t0 = Instant::now();
                sinkhorn_step(&a, &b, &p.opts, &mut pot).unwrap();
                t0.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        println!(
            "uot_n100000/iteration_d{d}: median of 3 = {:.2} s ({:.2} ns per pair evaluation)",
            t[1],
            t[1] * 1e9 / (2.0 * (n * n) as f64)
        );
    }
    let p = Problem::new(n, 2, 1e-4);
    let (a, b) = p.measures();
    let t0 = Instant::now();
    let s = uot_clouds(&a, &b, &p.opts).unwrap();
    println!(
        "uot_n100000/solve_d2 (tol 1e-4, one run): {:.1} s, {} iterations ({} annealing), \
         converged {}, marginal errors {:.1e} / {:.1e}",
        t0.elapsed().as_secs_f64(),
        s.report.iterations,
        s.report.annealing_iterations,
        s.report.converged,
        s.report.marginal_error_a,
        s.report.marginal_error_b
    );
}

/// CPU seconds of this process so far, all threads (`utime + stime` of `/proc/self/stat`, in
/// ticks of 1/100 s; `NaN` where that file does not exist). On a shared machine the wall time of
/// a pass depends on the other jobs; its CPU time much less.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// Medians of `reps` single iterations of `opts` from zero potentials: (wall, CPU) seconds.
fn median_iteration(a: &Cloud, b: &Cloud, opts: &SinkhornOptions, reps: usize) -> (f64, f64) {
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..reps.max(1))
        .map(|_| {
            let mut pot = Potentials { f: vec![0.0; a.len()], g: vec![0.0; b.len()] };
            let (t0, c0) = (Instant::now(), cpu_seconds());
            sinkhorn_step(a, b, opts, &mut pot).unwrap();
            black_box(&pot);
            (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], cpu[cpu.len() / 2])
}

fn elastic() {
    if std::env::var("UOT_BENCH_SKIP_ELASTIC").is_ok() {
        return;
    }
    let (n, d) = (4000, 1000);
    let p = Problem::new(n, d, 1e-6);
    let (a, b) = p.measures();
    let half = SinkhornOptions { cost: Cost::HalfSqEuclidean, ..p.opts.clone() };
    let el = SinkhornOptions { cost: Cost::Elastic { gamma: 0.1, penalty: Penalty::L1 }, ..p.opts.clone() };
    let reps = std::env::var("UOT_BENCH_ELASTIC_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let ((th, ch), (te, ce)) = (median_iteration(&a, &b, &half, reps), median_iteration(&a, &b, &el, reps));
    println!(
        "uot_n4000_d1000/iteration (median of {reps}): half_sqeuclidean {th:.3} s wall, {ch:.2} s CPU; \
         elastic-l1 {te:.3} s wall, {ce:.2} s CPU; ratio elastic / half_sqeuclidean = {:.2} wall, {:.2} CPU",
        te / th,
        ce / ch
    );
}

/// One `½|x − y|²` iteration at n = m = 4000 for d around the blocked loop's threshold
/// (`kernel::PANEL_MIN_DIM`): medians of 3, wall and CPU seconds. `UOT_BENCH_SKIP_DIMS=1` skips it.
fn dims() {
    if std::env::var("UOT_BENCH_SKIP_DIMS").is_ok() {
        return;
    }
    for d in [10, 16, 24, 32, 64, 128] {
        let p = Problem::new(4000, d, 1e-6);
        let (a, b) = p.measures();
        let half = SinkhornOptions { cost: Cost::HalfSqEuclidean, ..p.opts.clone() };
        let (w, c) = median_iteration(&a, &b, &half, 3);
        println!("uot_n4000_d{d}/iteration half_sqeuclidean (median of 3): {w:.3} s wall, {c:.2} s CPU");
    }
}

criterion_group!(benches, bench_4000);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    elastic();
    dims();
    large();
}
