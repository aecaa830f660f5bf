//! Every SIMD level this CPU has gives the bits of the scalar level (src/simd.rs): an MMD, an
//! unbalanced OT solve (truncated and untruncated soft-min passes), Gram tiles, random-feature
//! moments, and a Sobolev–Fisher step (critic solve, evaluation, critic gradient).
//! Levels the CPU lacks are skipped, and the test output says so.

use advreact::dist::Exec;
use advreact::kernel::gram;
use advreact::kernel::rff::Rff;
use advreact::metrics::mmd_between;
use advreact::ot::{uot_clouds, Cost, SinkhornOptions};
use advreact::simd::{with_level, Level};
use advreact::Cloud;

fn data(n: usize, seed: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|v| (((v + seed) * 7919 % 1009) as f64) / 500.0 * scale - scale).collect()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `f()` at every level this CPU has, each compared with the scalar level's value.
fn same_on_every_level<T: PartialEq + std::fmt::Debug>(what: &str, f: impl Fn() -> T) {
    let scalar = with_level(Level::Scalar, &f).expect("the scalar level always runs");
    for lvl in [Level::Avx2Fma, Level::Avx512] {
        match with_level(lvl, &f) {
            Some(v) => assert!(v == scalar, "{what}: {lvl:?} differs from scalar"),
            None => println!("{what}: skipping {}, this CPU lacks it", lvl.name()),
        }
    }
}

#[test]
fn mmd_has_the_same_bits_on_every_level() {
    let d = 3;
    let (x, y) = (data(700 * d, 1, 1.0), data(500 * d, 2, 1.2));
    let (a, b) = (data(700, 3, 0.4).iter().map(|v| v + 1.0).collect::<Vec<_>>(), vec![1.0 / 500.0; 500]);
    let (x, y) = (Cloud::new(d, x, a).unwrap(), Cloud::new(d, y, b).unwrap());
    same_on_every_level("mmd", || {
        let t = mmd_between(&x, &y, 0.6).unwrap();
        bits(&[t.mmd2])
    });
}

#[test]
fn uot_solve_has_the_same_bits_on_every_level() {
    // m > 1024 targets and a small ε: the truncated soft-min pass is exercised too.
    let d = 2;
    let (n, m) = (300, 1500);
    let (x, y) = (data(n * d, 4, 1.0), data(m * d, 5, 1.0));
    let (a, b) = (vec![1.0 / n as f64; n], vec![1.5 / m as f64; m]);
    let (ca, cb) = (Cloud::new(d, x, a).unwrap(), Cloud::new(d, y, b).unwrap());
    for eps in [0.5, 0.002] {
        let opts = SinkhornOptions {
            tol: 1e-300,
            max_iter: 40,
            ..SinkhornOptions::kl(eps, 1.0, 2.0, Cost::SqEuclidean)
        };
        same_on_every_level(&format!("uot ε = {eps}"), || {
            let s = uot_clouds(&ca, &cb, &opts).unwrap();
            let r = &s.report;
            (bits(&s.potentials.f), bits(&s.potentials.g), bits(&s.row_mass), bits(&[r.primal_objective]))
        });
    }
}

#[test]
fn gram_tiles_have_the_same_bits_on_every_level() {
    // Ragged: a partial strip (m = 45), a partial point chunk (rows = 600), off-diagonal tiles.
    let (rows, m) = (600, 45);
    let f = data(rows * m, 6, 1.0);
    let mut p = vec![0.0; gram::strips(m) * rows * gram::MR];
    gram::pack(advreact::dist::Par::Rayon, &f, rows, m, &mut p);
    same_on_every_level("gram tile", || {
        [(0, 45, 0, 45), (24, 21, 0, 24), (24, 13, 0, 45)]
            .map(|(i0, ri, j0, cj)| {
                let mut t = vec![0.0; ri * cj];
                gram::tile(&p, rows, m, i0, ri, j0, cj, &mut t);
                bits(&t)
            })
            .concat()
    });
}

#[test]
fn rff_moments_have_the_same_bits_on_every_level() {
    let (d, m, n) = (3, 203, 2500);
    let rff = Rff::new(d, m, 0.7, 5);
    let x = data(n * d, 7, 1.5);
    let w: Vec<f64> = data(n, 8, 0.3).iter().map(|v| v + 1.0).collect();
    same_on_every_level("rff", || {
        let mo = rff.moments(&Exec::default(), &x, &w, 0.5, true, true);
        let (gc, gs) = (mo.cos_gram.unwrap(), mo.sin_gram.unwrap());
        (bits(&mo.mean), bits(gc.as_slice()), bits(gs.as_slice()), bits(&rff.features(&x[..d])))
    });
}

#[test]
fn sobolev_fisher_step_has_the_same_bits_on_every_level() {
    use advreact::field::sobolev_fisher::{SobolevFisher, SobolevFisherParams};
    use advreact::field::{EvalCtx, Field};
    use advreact::Cloud;
    let (d, n) = (2, 900);
    let target = Cloud::new(d, data(n * d, 9, 1.0), vec![1.0 / n as f64; n]).unwrap();
    let (x, w) = (data(n * d, 10, 0.8), vec![1.0 / n as f64; n]);
    let cfg =
        SobolevFisherParams { features: 150, bandwidth: 0.8, ..Default::default() }.check(true).unwrap();
    same_on_every_level("usd step", || {
        let mut f = SobolevFisher::new(cfg.clone(), d, &target, 3).unwrap();
        f.solve(&Exec::default(), 0, &x, &w).unwrap();
        let (mut u, mut g) = (vec![0.0; n * d], vec![0.0; n]);
        let ctx = EvalCtx {
            step: 0,
            t: 0.0,
            dim: d,
            x: &x,
            w: &w,
            mass: 1.0,
            target: &target,
            exec: &Exec::default(),
        };
        f.eval(&ctx, &mut u, &mut g).unwrap();
        let mut grad = vec![0.0; d];
        let c = f.critic_and_gradient(&x[..d], &mut grad);
        assert!(u.iter().any(|v| *v != 0.0) && c != 0.0, "a trivial critic compares nothing");
        (bits(f.beta()), bits(&u), bits(&g), bits(&[c]), bits(&grad))
    });
}
