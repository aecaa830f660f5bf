//! Kernel micro-benchmarks: the vectorised exp over a tile, the tiled squared distances, a
//! Gaussian-kernel row sum (n = m = 10^4, d = 10 and d = 2), and the Gram micro-kernel (the lower
//! 128² tiles of `FᵀF` for one block of 2048 points × 1024 features, one thread). Throughput is in
//! elements (exps, pairs, multiply-adds) per second; a multiply-add is 2 flops.

use advreact::kernel::exp::exp_scaled_into;
use advreact::kernel::gram;
use advreact::kernel::{for_each_tile, gauss_sum, Soa, TILE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn points(n: usize, d: usize, shift: f64) -> Vec<f64> {
    (0..n * d).map(|i| ((i * 7919) % 10007) as f64 / 10007.0 + shift).collect()
}

fn exp_tile(c: &mut Criterion) {
    let mut g = c.benchmark_group("exp");
    let base: Vec<f64> = (0..TILE).map(|i| i as f64 / TILE as f64 * 30.0).collect();
    let mut buf = base.clone();
    g.throughput(Throughput::Elements(TILE as u64));
    g.bench_function("tile256", |b| {
        b.iter(|| {
            exp_scaled_into(black_box(&base), &mut buf, -0.5);
            black_box(buf[7])
        })
    });
    g.finish();
}

fn sqdist(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqdist_tiles");
    for d in [2usize, 10] {
        let m = 10_000;
        let y = Soa::from_rows(d, &points(m, d, 0.0));
        let x = points(1, d, 0.3);
        g.throughput(Throughput::Elements(m as u64));
        g.bench_function(format!("d{d}_m{m}"), |b| {
            b.iter(|| {
                let mut acc = 0.0;
                for_each_tile(&x, &y, TILE, |_, _| false, |_, _, d2| acc += d2[0]);
                black_box(acc)
            })
        });
    }
    g.finish();
}

fn gauss_rows(c: &mut Criterion) {
    let mut g = c.benchmark_group("gauss_sum");
    g.sample_size(10);
    for d in [2usize, 10] {
        let n = 10_000;
        let (x, y) = (points(n, d, 0.0), points(n, d, 0.1));
        let b = vec![1.0 / n as f64; n];
        let mut out = vec![0.0; n];
        let exec = advreact::dist::Exec::default();
        g.throughput(Throughput::Elements((n * n) as u64));
        g.bench_function(format!("d{d}_n{n}"), |bch| {
            bch.iter(|| {
                gauss_sum(&exec, d, &x, &y, &b, 1.0, &mut out);
                black_box(out[0])
            })
        });
    }
    g.finish();
}

fn gram_tiles(c: &mut Criterion) {
    let (rows, m, side) = (2048usize, 1152usize, 192usize);
    let f = points(rows, m, -0.5);
    let mut p = vec![0.0; gram::strips(m) * rows * gram::MR];
    gram::pack(advreact::dist::Par::Rayon, &f, rows, m, &mut p);
    let nt = m / side;
    let mut t = vec![0.0; side * side];
    let mut g = c.benchmark_group("gram");
    g.sample_size(10);
    // Off-diagonal tiles only (the diagonal ones skip their upper blocks): every entry is a full
    // dot product of `rows` multiply-adds.
    let tiles = nt * (nt - 1) / 2;
    g.throughput(Throughput::Elements((tiles * side * side * rows) as u64));
    g.bench_function(format!("lower_tiles_rows{rows}_m{m}"), |b| {
        b.iter(|| {
            for i in 0..nt {
                for j in 0..i {
                    gram::tile(&p, rows, m, i * side, side, j * side, side, &mut t);
                }
            }
            black_box(t[3])
        })
    });
    g.finish();
}

criterion_group!(benches, exp_tile, sqdist, gauss_rows, gram_tiles);
criterion_main!(benches);
