//! The Sinkhorn passes at high dimension (issue 16, performance): from `kernel::PANEL_MIN_DIM`
//! coordinates on they run the blocked loop (targets in panels, several queries per loaded
//! coordinate). Checked here against dense evaluations written out in this file:
//!
//! - one iteration (`sinkhorn_step`, balanced, from zero potentials) at d = 300, n = 200,
//!   m = 150 equals the dense two-pass log-sum-exp on `C_ij` summed coordinate by coordinate, to
//!   1e-12 relative (the two differ only by the rounding of the `d`-term sums: `C` to about
//!   `d · 2^-53 · C ≈ 3e-14 C` and the soft-min to as much times `C/ε`), for `½|x − y|²`, elastic
//!   ℓ1 and elastic smoothed ℓ0;
//! - a full solve's potentials (`½|x − y|²` and elastic ℓ1) give, through the dense plan `a_i b_j exp((f_i + g_j − C_ij)/ε)`,
//!   the solver's row and column masses to 1e-10 relative, the marginals to 1e-8 and its
//!   `⟨C, π⟩` to 1e-10;
//! - the bits do not depend on the thread count (1 or 2 threads, or every block on the calling
//!   thread), d = 40.
//!
//! The blocked and the plain loop give the same bits (unit tests `kernel::tests` and
//! `ot::pass::tests::blocked_loop_gives_the_plain_bits`), so a solve's potentials are those of
//! the old path exactly.

use advreact::dist::{Exec, Par};
use advreact::ot::{self, sinkhorn_step, Cost, Penalty, Potentials, SinkhornOptions};
use advreact::Cloud;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `n` points of `N(shift·1, I_d)`, weights `∝ 1, 2, 3, 1, 2, 3, …` of total mass 1.
fn cloud(n: usize, d: usize, seed: u64, shift: f64) -> Cloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            shift + z
        })
        .collect();
    let total: f64 = (0..n).map(|i| 1.0 + (i % 3) as f64).sum();
    Cloud::new(d, x, (0..n).map(|i| (1.0 + (i % 3) as f64) / total).collect()).unwrap()
}

/// `C(x, y)` term by term, plain arithmetic (no fused operations).
fn dense_cost(cost: Cost, x: &[f64], y: &[f64]) -> f64 {
    let sq: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    match cost {
        Cost::HalfSqEuclidean => 0.5 * sq,
        Cost::Elastic { gamma, penalty } => {
            0.5 * sq + gamma * x.iter().zip(y).map(|(a, b)| penalty.value(a - b)).sum::<f64>()
        }
        other => panic!("not used here: {other:?}"),
    }
}

fn costs() -> [Cost; 3] {
    [
        Cost::HalfSqEuclidean,
        Cost::Elastic { gamma: 0.1, penalty: Penalty::L1 },
        Cost::Elastic { gamma: 2.0, penalty: Penalty::SmoothedL0 { sigma: 0.5 } },
    ]
}

fn balanced(eps: f64, cost: Cost) -> SinkhornOptions {
    SinkhornOptions {
        tol: 1e-12,
        max_iter: 10_000,
        ..SinkhornOptions::kl(eps, f64::INFINITY, f64::INFINITY, cost)
    }
}

/// `−ε LSE_j (log w_j + (p_j − C_j)/ε)` by two plain passes (max, then sum).
fn soft_min(eps: f64, logw_p_c: impl Iterator<Item = (f64, f64, f64)>) -> f64 {
    let s: Vec<f64> = logw_p_c.map(|(lw, p, c)| lw + (p - c) / eps).collect();
    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    -eps * (mx + s.iter().map(|v| (v - mx).exp()).sum::<f64>().ln())
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{what}: got {got}, want {want}");
}

#[test]
fn one_iteration_matches_the_dense_soft_min() {
    let (n, m, d, eps) = (200, 150, 300, 5.0);
    let (a, b) = (cloud(n, d, 1, 0.0), cloud(m, d, 2, 0.3));
    let (wa, wb) = (a.w.clone(), b.w.clone());
    for cost in costs() {
        let c: Vec<f64> = (0..n * m).map(|ij| dense_cost(cost, a.point(ij / m), b.point(ij % m))).collect();
        let mut pot = Potentials { f: vec![0.0; n], g: vec![0.0; m] };
        sinkhorn_step(&a, &b, &balanced(eps, cost), &mut pot).unwrap();
        let f: Vec<f64> =
            (0..n).map(|i| soft_min(eps, (0..m).map(|j| (wb[j].ln(), 0.0, c[i * m + j])))).collect();
        let g: Vec<f64> =
            (0..m).map(|j| soft_min(eps, (0..n).map(|i| (wa[i].ln(), f[i], c[i * m + j])))).collect();
        // The soft-min is not a constant: a wrong cost would move it.
        assert!(
            f.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                - f.iter().cloned().fold(f64::INFINITY, f64::min)
                > 1.0
        );
        for (i, (u, v)) in pot.f.iter().zip(&f).enumerate() {
            close(&format!("{cost:?}: f[{i}]"), *u, *v, 1e-12);
        }
        for (j, (u, v)) in pot.g.iter().zip(&g).enumerate() {
            close(&format!("{cost:?}: g[{j}]"), *u, *v, 1e-12);
        }
    }
}

#[test]
fn full_solve_matches_the_dense_plan() {
    let (n, m, d, eps) = (200, 150, 300, 5.0);
    let (a, b) = (cloud(n, d, 3, 0.0), cloud(m, d, 4, 0.3));
    let (wa, wb) = (a.w.clone(), b.w.clone());
    // Smoothed ℓ0 (an `exp_m1` per coordinate: slow) is left to the one-iteration test.
    for cost in &costs()[..2] {
        let cost = *cost;
        let sol = ot::uot_clouds(&a, &b, &balanced(eps, cost)).unwrap();
        assert!(sol.report.converged, "{cost:?}: {:?}", sol.report);
        let (f, g) = (&sol.potentials.f, &sol.potentials.g);
        let (mut rows, mut cols, mut lin) = (vec![0.0; n], vec![0.0; m], 0.0);
        for i in 0..n {
            for j in 0..m {
                let cij = dense_cost(cost, a.point(i), b.point(j));
                let p = wa[i] * wb[j] * ((f[i] + g[j] - cij) / eps).exp();
                rows[i] += p;
                cols[j] += p;
                lin += p * cij;
            }
        }
        for i in 0..n {
            close(&format!("{cost:?}: row mass {i}"), sol.row_mass[i] / rows[i], 1.0, 1e-10);
            close(&format!("{cost:?}: row marginal {i}"), rows[i] / wa[i], 1.0, 1e-8);
        }
        for j in 0..m {
            close(&format!("{cost:?}: column mass {j}"), sol.col_mass[j] / cols[j], 1.0, 1e-10);
            close(&format!("{cost:?}: column marginal {j}"), cols[j] / wb[j], 1.0, 1e-8);
        }
        close(&format!("{cost:?}: <C, pi>"), sol.report.transport_cost, lin, 1e-10);
    }
}

/// Same bits with 1 and 2 threads and with every block on the calling thread (several row
/// blocks: n, m > 64 and not multiples of the register group or the panel).
#[test]
fn bits_do_not_depend_on_threads() {
    let (n, m, d, eps) = (301, 257, 40, 1.0);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cost in costs() {
        let run = |k: usize, seq: bool| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(k).build().unwrap();
            pool.install(|| {
                let (a, b) = (cloud(n, d, 5, 0.0), cloud(m, d, 6, 0.2));
                let mut o = SinkhornOptions { max_iter: 8, ..SinkhornOptions::kl(eps, 1.0, 1.0, cost) };
                if seq {
                    o.exec = Exec::seq();
                    assert_eq!(o.exec.par, Par::Seq);
                }
                let sol = ot::uot_clouds(&a, &b, &o).unwrap();
                assert!(sol.report.iterations > 1);
                (bits(&sol.potentials.f), bits(&sol.potentials.g), bits(&sol.row_mass), bits(&sol.col_mass))
            })
        };
        let one = run(1, false);
        assert_eq!(run(2, false), one, "{cost:?}: 2 threads");
        assert_eq!(run(2, true), one, "{cost:?}: Par::Seq");
    }
}
