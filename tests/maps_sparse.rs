//! Parametric displacement-sparse maps (src/maps/sparse.rs, SPEC §7).

use advreact::dist::Exec;
use advreact::maps::sparse::{fit_sparse_map, GammaChoice, SparseMapFit, SparseMapParams, SparsePenalty};
use advreact::ot::sinkhorn_divergence;
use advreact::rng::{stream, Purpose};
use advreact::Cloud;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;

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

#[test]
fn explore_d50() {
    let n: usize = std::env::var("N").map(|v| v.parse().unwrap()).unwrap_or(1500); let d = 50;
    let truth = [3, 11, 19, 27, 41];
    let mu = gaussian(n, d, &[], 0.0, 1);
    let nu = gaussian(n, d, &truth, 2.0, 2);
    let p = SparseMapParams {
        penalty: SparsePenalty::SmoothedL0 { sigma: 0.1 },
        gamma: GammaChoice::TargetDims(5.0),
        eps: std::env::var("EPS").map(|v| v.parse().unwrap()).unwrap_or(25.0),
        features: 50,
        ..Default::default()
    };
    let t0 = Instant::now();
    let fit = fit_sparse_map(&mu, &nu, &p, &Exec::default()).unwrap();
    eprintln!("fit {:.1}s", t0.elapsed().as_secs_f64());
    for r in &fit.rounds {
        eprintln!("{r:?}");
    }
    eprintln!("dims {} gamma {} S {} support {:?} warnings {:?}", fit.dims, fit.gamma, fit.divergence, support(&fit), fit.warnings);
    let t0 = Instant::now();
    eprintln!("floor {} ({:.1}s)", split_half_floor(&nu, &p, 5), t0.elapsed().as_secs_f64());
}
