//! Parametric displacement-sparse maps (src/maps/sparse.rs, SPEC §7).
//!
//! Sizes: the d = 50 problem at its n = 1500 per cloud. `ε = 25` (costs `½|x − y|²` are
//! ≈ 50 in d = 50): a blur large enough that `S_ε` is not dominated by the 50-dimensional
//! sampling noise.

use advreact::dist::{Exec, Par};
use advreact::maps::sparse::{fit_sparse_map, GammaChoice, SparseMapFit, SparseMapParams, SparsePenalty};
use advreact::ot::sinkhorn_divergence;
use advreact::rng::{stream, Purpose};
use advreact::Cloud;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

/// `n` points of `N(0, I_d)` plus `shift` on the coordinates `support`, unit mass.
fn gaussian(n: usize, d: usize, support: &[usize], shift: f64, seed: u64) -> Cloud {
    let mut r = stream(seed, Purpose::Sampling, 0, 0);
    let mut x: Vec<f64> = (0..n * d).map(|_| StandardNormal.sample(&mut r)).collect();
    for i in 0..n {
        for &k in support {
            x[i * d + k] += shift;
        }
    }
    Cloud::uniform(d, x, 1.0).unwrap()
}

/// Median over `splits` random halvings of `S_ε` between the two halves of `nu`.
fn split_half_floor(nu: &Cloud, p: &SparseMapParams, splits: u64) -> f64 {
    let (n, d) = (nu.len(), nu.dim);
    let mut v: Vec<f64> = (0..splits)
        .map(|s| {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.shuffle(&mut stream(s, Purpose::Analysis, 0, 0));
            let half = |ids: &[usize]| {
                Cloud::uniform(d, ids.iter().flat_map(|&i| nu.point(i).to_vec()).collect(), 1.0).unwrap()
            };
            let (a, b) = (half(&idx[..n / 2]), half(&idx[n / 2..]));
            sinkhorn_divergence(&a, &b, &p.divergence_options(&Exec::default()), None).unwrap().value
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Coordinates displaced for more than half of the source points.
fn support(fit: &SparseMapFit) -> Vec<usize> {
    (0..fit.dim_frequency.len()).filter(|&k| fit.dim_frequency[k] > 0.5).collect()
}

fn params(penalty: SparsePenalty, gamma: GammaChoice, eps: f64) -> SparseMapParams {
    SparseMapParams { penalty, gamma, eps, features: 50, ..Default::default() }
}

/// d = 50, 5 coordinates shifted by 2, n = 1500: smoothed ℓ0 with target
/// dimensionality 5 moves ≤ 6 coordinates where the γ = 0 fit moves ≥ 40 (about 50), finds the
/// true support (recall ≥ 0.95), and is feasible: `S_ε(T#μ, ν) ≤ 1.5 ×` the split-half floor
/// (median of 3 splits). The map applies out of sample and round-trips through JSON.
#[test]
fn l0_target_dims_recovers_the_shifted_coordinates() {
    let (n, d) = (1500, 50);
    let truth = [3, 11, 19, 27, 41];
    let (mu, nu) = (gaussian(n, d, &[], 0.0, 1), gaussian(n, d, &truth, 2.0, 2));
    let p = params(SparsePenalty::SmoothedL0 { sigma: 0.1 }, GammaChoice::TargetDims(5.0), 25.0);
    let fit = fit_sparse_map(&mu, &nu, &p, &Exec::default()).unwrap();
    eprintln!("work {:?}, rounds {:?}", fit.work, fit.rounds);
    let base = &fit.rounds[0];
    assert_eq!(base.gamma, 0.0);
    assert!(base.dims >= 40.0, "γ = 0 map moves {} coordinates", base.dims);
    assert!(fit.dims <= 6.0 && (fit.dims - 5.0).abs() <= 0.5, "dims {}", fit.dims);
    assert!(fit.gamma > 0.0);
    let found = support(&fit);
    let recall = truth.iter().filter(|k| found.contains(k)).count() as f64 / truth.len() as f64;
    assert!(recall >= 0.95, "support {found:?}");
    let floor = split_half_floor(&nu, &p, 3);
    assert!(fit.divergence <= 1.5 * floor, "S_ε {} vs floor {floor}", fit.divergence);
    assert!(fit.delta > 0.0 && fit.delta < 0.02, "δ = 1e-2 × median std ≈ 1e-2: {}", fit.delta);
    // out of sample: fresh source points move by ≈ 2 on the truth and stay put elsewhere
    let fresh = gaussian(100, d, &[], 0.0, 7);
    let delta = fit.map.displacement(&fresh.x).unwrap();
    for k in 0..d {
        let mean: f64 = (0..100).map(|i| delta[i * d + k]).sum::<f64>() / 100.0;
        if truth.contains(&k) {
            assert!((mean - 2.0).abs() < 0.3, "coordinate {k}: mean displacement {mean}");
        } else {
            assert!(mean.abs() < 0.05, "coordinate {k}: mean displacement {mean}");
        }
    }
    let json = serde_json::to_string(&fit.map).unwrap();
    let back: advreact::maps::sparse::SparseMap = serde_json::from_str(&json).unwrap();
    back.check().unwrap();
    assert_eq!(back.apply(&fresh.x).unwrap(), fit.map.apply(&fresh.x).unwrap());
    assert!(fit.map.apply(&fresh.x[..7]).is_err());
}

/// Mean `|Δ_k|` over the source points and the true coordinates, relative to the true shift.
fn kept_fraction(fit: &SparseMapFit, mu: &Cloud, truth: &[usize], shift: f64) -> f64 {
    let d = mu.dim;
    let delta = fit.map.displacement(&mu.x).unwrap();
    let s: f64 =
        (0..mu.len()).flat_map(|i| truth.iter().map(move |&k| i * d + k)).map(|j| delta[j].abs()).sum();
    s / (mu.len() * truth.len()) as f64 / shift
}

/// At the same dimensionality (target 3 of d = 12, both reached within ±0.5), smoothed ℓ0 keeps
/// more of the true shift than ℓ1: shrinkage `1 − mean|Δ_k|/shift` on the true support is
/// smaller for ℓ0 (ℓ1's bias is about γ; ℓ0's gradient vanishes for `|z| ≫ σ`).
#[test]
fn l0_shrinks_the_true_displacements_less_than_l1() {
    let (n, d, shift) = (300, 12, 1.5);
    let truth = [0, 5, 9];
    let (mu, nu) = (gaussian(n, d, &[], 0.0, 3), gaussian(n, d, &truth, shift, 4));
    let exec = Exec::default();
    let l0 = params(SparsePenalty::SmoothedL0 { sigma: 0.1 }, GammaChoice::TargetDims(3.0), 6.0);
    let l1 = params(SparsePenalty::L1, GammaChoice::TargetDims(3.0), 6.0);
    let (f0, f1) =
        (fit_sparse_map(&mu, &nu, &l0, &exec).unwrap(), fit_sparse_map(&mu, &nu, &l1, &exec).unwrap());
    for f in [&f0, &f1] {
        assert!((f.dims - 3.0).abs() <= 0.5, "dims {} (warnings {:?})", f.dims, f.warnings);
        assert_eq!(support(f), truth.to_vec());
    }
    let (k0, k1) = (kept_fraction(&f0, &mu, &truth, shift), kept_fraction(&f1, &mu, &truth, shift));
    eprintln!("kept: ℓ0 {k0:.4}, ℓ1 {k1:.4}; γ ℓ0 {} ℓ1 {}", f0.gamma, f1.gamma);
    assert!(1.0 - k0 < 1.0 - k1, "shrinkage ℓ0 {} vs ℓ1 {}", 1.0 - k0, 1.0 - k1);
}

/// Eight Gaussians in 2-D (the paper's Figure 2 setting, our sizes): source `N(0, 0.5² I)`,
/// target eight Gaussians (std 0.2) on the circle of radius 2; 200 points each. A γ sweep with
/// smoothed ℓ0 (`σ = 0.05`): the mean dimensionality does not increase with γ by more than 0.1,
/// `S_ε` does not decrease by more than 5 % of its range over the sweep (the noise allowance:
/// Sinkhorn tolerance and the optimiser's stopping rule), and both move: dimensionality falls by
/// more than 0.5 and `S_ε` rises.
#[test]
fn eight_gaussians_gamma_sweep_is_monotone() {
    let n = 200;
    let mut r = stream(5, Purpose::Sampling, 0, 0);
    let mut g = || -> f64 { StandardNormal.sample(&mut r) };
    let src: Vec<f64> = (0..2 * n).map(|_| 0.5 * g()).collect();
    let mut tgt = Vec::with_capacity(2 * n);
    for i in 0..n {
        let a = std::f64::consts::TAU * (i % 8) as f64 / 8.0;
        tgt.push(2.0 * a.cos() + 0.2 * g());
        tgt.push(2.0 * a.sin() + 0.2 * g());
    }
    let (mu, nu) = (Cloud::uniform(2, src, 1.0).unwrap(), Cloud::uniform(2, tgt, 1.0).unwrap());
    let exec = Exec::default();
    let mut sweep = Vec::new();
    for gamma in [0.0, 0.1, 0.3, 1.0, 3.0] {
        let p = params(SparsePenalty::SmoothedL0 { sigma: 0.05 }, GammaChoice::Fixed(gamma), 0.1);
        let f = fit_sparse_map(&mu, &nu, &p, &exec).unwrap();
        eprintln!("γ {gamma}: dims {:.3}, S {:.5}", f.dims, f.divergence);
        sweep.push((f.dims, f.divergence));
    }
    let (smin, smax) = sweep.iter().fold((f64::MAX, f64::MIN), |(a, b), s| (a.min(s.1), b.max(s.1)));
    for w in sweep.windows(2) {
        assert!(w[1].0 <= w[0].0 + 0.1, "dimensionality rose: {sweep:?}");
        assert!(w[1].1 >= w[0].1 - 0.05 * (smax - smin), "S_ε fell: {sweep:?}");
    }
    let (first, last) = (sweep[0], sweep[sweep.len() - 1]);
    assert!(last.0 < first.0 - 0.5 && last.1 > first.1, "{sweep:?}");
}

/// Same seed, same bits: one and two rayon threads, and the sequential `Exec`.
#[test]
fn same_seed_same_bits_for_one_and_two_threads() {
    let (n, d) = (150, 6);
    let (mu, nu) = (gaussian(n, d, &[], 0.0, 8), gaussian(n, d, &[1], 1.0, 9));
    let p = params(SparsePenalty::SmoothedL0 { sigma: 0.1 }, GammaChoice::TargetDims(1.0), 3.0);
    let run = |threads: usize, par: Par| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let exec = Exec { par, ..Exec::default() };
            let f = fit_sparse_map(&mu, &nu, &p, &exec).unwrap();
            (f.map.theta, f.divergence.to_bits(), f.gamma.to_bits())
        })
    };
    let one = run(1, Par::Rayon);
    assert!(one.0.iter().any(|v| *v != 0.0));
    assert_eq!(one, run(2, Par::Rayon));
    assert_eq!(one, run(2, Par::Seq));
}

/// Bad settings and inputs are one-line errors, not panics.
#[test]
fn bad_input_is_an_error() {
    let (mu, nu) = (gaussian(20, 3, &[], 0.0, 1), gaussian(20, 2, &[], 0.0, 2));
    let p = SparseMapParams::default();
    let e = fit_sparse_map(&mu, &nu, &p, &Exec::default()).unwrap_err().to_string();
    assert!(e.contains("dimension"), "{e}");
    let nu = gaussian(20, 3, &[], 0.0, 2);
    let p = SparseMapParams { gamma: GammaChoice::TargetDims(4.0), ..Default::default() };
    let e = fit_sparse_map(&mu, &nu, &p, &Exec::default()).unwrap_err().to_string();
    assert!(e.contains("sparse_map.target_dims") && !e.contains('\n'), "{e}");
}
