//! `map`'s feasibility `W1` at high dimension (issue 16's benchmark): the size rule
//! (`maps::command::feasibility_w1_solver`: exact while `n·m·d ≤ 2.5·10⁸`), the entropic path's
//! certified bracket containing the exact value with a warning naming the method and bound, and
//! (ignored, run by hand) the writer of the benchmark's control / perturbed CSVs.

use advreact::data::{read_snapshot, write_cloud, Selection};
use advreact::dist::Exec;
use advreact::maps::command::{feasibility_w1, feasibility_w1_solver, W1_EXACT_BUDGET};
use advreact::metrics::wasserstein::{Estimator, Solver};
use advreact::synthetic::{perturbation, PerturbationSpec};
use advreact::Cloud;
use std::path::PathBuf;

#[test]
fn the_size_rule_counts_pair_coordinates() {
    let b = W1_EXACT_BUDGET;
    assert_eq!(b, 250_000_000);
    // results/sparse_maps.md's d = 100, n = 1000 stays exact; the largest square d = 100 problem.
    assert_eq!(feasibility_w1_solver(1000, 1000, 100, b), Solver::Auto);
    assert_eq!(feasibility_w1_solver(1581, 1581, 100, b), Solver::Auto);
    assert_eq!(feasibility_w1_solver(1582, 1582, 100, b), Solver::Sinkhorn);
    // For d ≤ 10 every problem Auto solves exactly (n·m ≤ 5000²) stays within the budget.
    assert_eq!(feasibility_w1_solver(5000, 5000, 10, b), Solver::Auto);
    assert_eq!(feasibility_w1_solver(2, 12_500_000, 10, b), Solver::Auto);
    // Issue 16's benchmark.
    assert_eq!(feasibility_w1_solver(4000, 4000, 1000, b), Solver::Sinkhorn);
    assert_eq!(feasibility_w1_solver(500, 500, 1000, b), Solver::Auto);
    assert_eq!(feasibility_w1_solver(501, 500, 1000, b), Solver::Sinkhorn);
}

/// Two Gaussian-like clouds from a deterministic generator, the second shifted in 3 coordinates.
fn clouds(n: usize, m: usize, d: usize) -> (Cloud, Cloud) {
    let mut s = 7u64;
    let mut u = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut pts = |k: usize, shift: f64| -> Vec<f64> {
        (0..k * d).map(|i| u() + u() + u() + if i % d < 3 { shift } else { 0.0 }).collect()
    };
    let (x, y) = (pts(n, 0.0), pts(m, 0.8));
    (Cloud::new(d, x, vec![1.0 / n as f64; n]).unwrap(), Cloud::new(d, y, vec![1.0 / m as f64; m]).unwrap())
}

#[test]
fn above_the_budget_the_w1_is_entropic_certified_and_warned() {
    let (a, b) = clouds(300, 280, 20);
    let exec = Exec::default();
    // Within the budget: the network simplex, no warning.
    let (exact, warn) = feasibility_w1(&a, &b, W1_EXACT_BUDGET, &exec).unwrap();
    assert_eq!(exact.estimator, Estimator::NetworkSimplex);
    assert!(warn.is_none());
    // Above it (budget 0): the entropic W1, whose certified bracket holds the exact value.
    let (ent, warn) = feasibility_w1(&a, &b, 0, &exec).unwrap();
    let Estimator::Entropic { value_lower, value_upper, error_bound, .. } = ent.estimator else {
        panic!("expected the entropic estimator, got {:?}", ent.estimator)
    };
    let w = exact.value;
    assert!(
        value_lower <= w * (1.0 + 1e-12) && w <= value_upper * (1.0 + 1e-12),
        "{value_lower} {w} {value_upper}"
    );
    assert!((ent.value - w).abs() <= error_bound * (1.0 + 1e-12));
    // The bracket is informative (a few per cent of W1 here), not vacuous.
    assert!(error_bound < 0.05 * w, "error bound {error_bound} vs W1 {w}");
    let warn = warn.expect("an entropic W1 is warned about");
    for want in ["entropic", "exact budget", "certified error bound", &format!("{error_bound:.3e}")] {
        assert!(warn.contains(want), "'{want}' not in: {warn}");
    }
}

/// Writes the benchmark's clouds (the scenario `perturbation_sparse.toml`'s law, seed 0) as
/// `control.csv` and `perturbed.csv` (`time,x1..xd,w`) into `$MAP_BENCH_DIR`; `MAP_BENCH_N`,
/// `MAP_BENCH_D` (default 4000, 1000) and `k = 50`. Checks that they read back bit for bit.
/// `MAP_BENCH_DIR=/tmp/pb cargo test --release --test maps_bench -- --ignored`
#[test]
#[ignore]
fn write_perturbation_csvs() {
    let dir = PathBuf::from(std::env::var("MAP_BENCH_DIR").expect("MAP_BENCH_DIR"));
    let var = |k: &str, d: usize| std::env::var(k).map(|v| v.parse().unwrap()).unwrap_or(d);
    let spec = PerturbationSpec {
        blocks: 5,
        block_size: 10,
        rho: 0.5,
        ..PerturbationSpec::new(var("MAP_BENCH_N", 4000), var("MAP_BENCH_D", 1000), 50)
    };
    let p = perturbation(&spec, 0).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, c) in [("control.csv", &p.control), ("perturbed.csv", &p.perturbed)] {
        let path = dir.join(name);
        write_cloud(&path, 0.0, c).unwrap();
        let (back, _) =
            read_snapshot(&path).unwrap().select_as(Selection { time: None, normalize: false }).unwrap();
        assert_eq!(back.x, c.x, "{name}");
    }
    println!("support: {:?}", p.support.dims);
}
