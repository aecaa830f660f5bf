//! WFR gradient-flow fields (SPEC §2.2) and the debiased Sinkhorn divergence:
//!
//! - MMD energy `F = ½ MMD²` (unnormalised): `∂F/∂w_i = φ(x_i)`, `∂F/∂x_i = w_i ∇φ(x_i)` against
//!   central finite differences of `F` (relative 1e-5);
//! - Sinkhorn divergence `S_{ε,ρ}` (cost ½|x−y|²), unbalanced and balanced: `∂S/∂a_i = φ(x_i)`
//!   (balanced: along mass-preserving directions) and `∂S/∂x_i = a_i ∇φ(x_i)` against central
//!   finite differences of `S` (relative 1e-5, solves converged to a marginal error of 1e-13);
//! - `S(μ, μ) = 0`, `S(μ, ν) > 0`;
//! - the field: `u = −∇φ`, `g = −αφ` (free) / centred (conserving), warm starts, and a few explicit
//!   WFR steps decrease the energy.
//!
//! Finite-difference tolerance: each component must satisfy
//! `|fd − analytic| ≤ 1e-5 · max(|analytic|, 1e-2 · max_k |analytic_k|)` (the floor keeps
//! near-zero components from demanding an absolute accuracy below the FD noise).

use advreact::field::wfr::{Energy, Growth, SolverCfg, WfrField, WfrParams};
use advreact::field::{EvalCtx, Field};
use advreact::metrics::mmd_between;
use advreact::ot::{self, Cost, DivergenceOptions};
use advreact::{Cloud, SimError};

fn cloud(k: usize, d: usize, seed: u64, offset: f64, spread: f64) -> Vec<f64> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    (0..k * d).map(|i| spread * next() + if i % d == 0 { offset } else { 0.0 }).collect()
}

fn weights(k: usize, mass: f64, seed: u64) -> Vec<f64> {
    let raw: Vec<f64> = (0..k).map(|i| 0.5 + ((i as u64 * 2654435761 + seed) % 97) as f64 / 97.0).collect();
    let t: f64 = raw.iter().sum();
    raw.iter().map(|r| r * mass / t).collect()
}

fn check_fd(what: &str, fd: &[f64], an: &[f64]) {
    let scale = an.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (k, (f, a)) in fd.iter().zip(an).enumerate() {
        let tol = 1e-5 * a.abs().max(1e-2 * scale);
        assert!(
            (f - a).abs() <= tol,
            "{what}[{k}]: finite difference {f} vs analytic {a} (|diff| {:e} > {tol:e})",
            (f - a).abs()
        );
    }
}

fn ctx<'a>(d: usize, x: &'a [f64], w: &'a [f64], target: &'a Cloud) -> EvalCtx<'a> {
    // One process on the rayon pool (leaked: a few bytes per context, in tests only).
    let exec = Box::leak(Box::new(advreact::dist::Exec::default()));
    EvalCtx { step: 0, t: 0.0, dim: d, x, w, mass: w.iter().sum(), target, exec }
}

/// `F = ½ MMD²` (unnormalised), bandwidth 0.4: `∂F/∂w_i = φ(x_i)` and `∂F/∂x_i = w_i ∇φ(x_i)`
/// to 1e-5 relative (central differences, h = 1e-6 for weights — F is quadratic in w, so only
/// rounding remains — and h = 1e-5 for positions, truncation O(h²/s²) ≈ 1e-9).
#[test]
fn mmd_energy_gradients_match_finite_differences() {
    let (d, s) = (2, 0.4);
    let x = cloud(25, d, 1, 0.0, 1.0);
    let w = weights(25, 1.3, 1);
    let y = cloud(30, d, 2, 0.5, 1.0);
    let b = weights(30, 0.8, 2);
    let target = Cloud::new(d, y.clone(), b.clone()).unwrap();
    let f = |x: &[f64], w: &[f64]| {
        0.5 * mmd_between(&Cloud::new(d, x.to_vec(), w.to_vec()).unwrap(), &target, s).unwrap().mmd2
    };
    let field = WfrField::new(Energy::Mmd { bandwidth: s }, Growth::Free, 1.0).unwrap();
    let (phi, grad) = field.first_variation(&ctx(d, &x, &w, &target)).unwrap();
    let hw = 1e-6;
    let fd_w: Vec<f64> = (0..25)
        .map(|i| {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[i] += hw;
            wm[i] -= hw;
            (f(&x, &wp) - f(&x, &wm)) / (2.0 * hw)
        })
        .collect();
    check_fd("dF/dw", &fd_w, &phi);
    let hx = 1e-5;
    let fd_x: Vec<f64> = (0..25 * d)
        .map(|k| {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += hx;
            xm[k] -= hx;
            (f(&xp, &w) - f(&xm, &w)) / (2.0 * hx)
        })
        .collect();
    let an_x: Vec<f64> = (0..25 * d).map(|k| w[k / d] * grad[k]).collect();
    check_fd("dF/dx", &fd_x, &an_x);
    // The field: u = −∇φ, g = −α φ (free), exactly.
    let mut u = vec![0.0; 25 * d];
    let mut g = vec![0.0; 25];
    field.eval(&ctx(d, &x, &w, &target), &mut u, &mut g).unwrap();
    for k in 0..25 * d {
        assert_eq!(u[k], -grad[k]);
    }
    for i in 0..25 {
        assert_eq!(g[i], -phi[i]);
    }
}

fn div_opts(eps: f64, rho: Option<f64>) -> DivergenceOptions {
    DivergenceOptions {
        eps,
        rho,
        cost: Cost::HalfSqEuclidean,
        tol: 1e-13,
        max_iter: 200_000,
        eps_scaling: None,
        exec: advreact::dist::Exec::default(),
    }
}

/// The weighted cloud `Σ w_i δ_{x_i}` of the test data.
fn measure(d: usize, x: &[f64], w: &[f64]) -> Cloud {
    Cloud::new(d, x.to_vec(), w.to_vec()).unwrap()
}

fn divergence(d: usize, x: &[f64], a: &[f64], y: &[f64], b: &[f64], o: &DivergenceOptions) -> f64 {
    let s = ot::sinkhorn_divergence(&measure(d, x, a), &measure(d, y, b), o, None).unwrap();
    assert!(s.converged());
    s.value
}

/// Unbalanced divergence (ε = 0.1, ρ = 1, masses 1.2 vs 0.7): `∂S/∂a_i = φ(x_i)` and
/// `∂S/∂x_i = a_i ∇φ(x_i)` to 1e-5 relative (h = 1e-5, central; solves to 1e-13).
#[test]
fn unbalanced_sinkhorn_divergence_gradients_match_finite_differences() {
    let d = 2;
    let (n, m) = (12, 15);
    let x = cloud(n, d, 3, 0.0, 1.0);
    let a = weights(n, 1.2, 3);
    let y = cloud(m, d, 4, 0.6, 1.0);
    let b = weights(m, 0.7, 4);
    let o = div_opts(0.1, Some(1.0));
    let (am, bm) = (measure(d, &x, &a), measure(d, &y, &b));
    let sd = ot::sinkhorn_divergence(&am, &bm, &o, None).unwrap();
    assert!(sd.converged());
    assert!(sd.value > 0.0);
    let (phi, grad) = sd.first_variation(&x, &am, &bm, &o).unwrap();
    let h = 1e-5;
    let fd_a: Vec<f64> = (0..n)
        .map(|i| {
            let (mut ap, mut amn) = (a.clone(), a.clone());
            ap[i] += h;
            amn[i] -= h;
            (divergence(d, &x, &ap, &y, &b, &o) - divergence(d, &x, &amn, &y, &b, &o)) / (2.0 * h)
        })
        .collect();
    check_fd("dS/da", &fd_a, &phi);
    let fd_x: Vec<f64> = (0..n * d)
        .map(|k| {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += h;
            xm[k] -= h;
            (divergence(d, &xp, &a, &y, &b, &o) - divergence(d, &xm, &a, &y, &b, &o)) / (2.0 * h)
        })
        .collect();
    let an_x: Vec<f64> = (0..n * d).map(|k| a[k / d] * grad[k]).collect();
    check_fd("dS/dx", &fd_x, &an_x);
}

/// Balanced divergence (ε = 0.05, probability measures): `∂S/∂x_i = a_i ∇φ(x_i)` and, along
/// the mass-preserving direction `e_i − e_0`, `φ(x_i) − φ(x_0)`, to 1e-5 relative.
#[test]
fn balanced_sinkhorn_divergence_gradients_match_finite_differences() {
    let d = 3;
    let (n, m) = (10, 13);
    let x = cloud(n, d, 5, 0.0, 1.0);
    let a = weights(n, 1.0, 5);
    let y = cloud(m, d, 6, 0.4, 1.0);
    let b = weights(m, 1.0, 6);
    let o = div_opts(0.05, None);
    let (am, bm) = (measure(d, &x, &a), measure(d, &y, &b));
    let sd = ot::sinkhorn_divergence(&am, &bm, &o, None).unwrap();
    assert!(sd.converged());
    let (phi, grad) = sd.first_variation(&x, &am, &bm, &o).unwrap();
    let h = 1e-5;
    let fd_a: Vec<f64> = (1..n)
        .map(|i| {
            let (mut ap, mut amn) = (a.clone(), a.clone());
            ap[i] += h;
            ap[0] -= h;
            amn[i] -= h;
            amn[0] += h;
            (divergence(d, &x, &ap, &y, &b, &o) - divergence(d, &x, &amn, &y, &b, &o)) / (2.0 * h)
        })
        .collect();
    let an_a: Vec<f64> = (1..n).map(|i| phi[i] - phi[0]).collect();
    check_fd("dS/da (mass-preserving)", &fd_a, &an_a);
    let fd_x: Vec<f64> = (0..n * d)
        .map(|k| {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += h;
            xm[k] -= h;
            (divergence(d, &xp, &a, &y, &b, &o) - divergence(d, &xm, &a, &y, &b, &o)) / (2.0 * h)
        })
        .collect();
    let an_x: Vec<f64> = (0..n * d).map(|k| a[k / d] * grad[k]).collect();
    check_fd("dS/dx", &fd_x, &an_x);
}

/// `S(μ, μ) = 0` (to 1e-12 of OT(μ, μ): the asymmetric and symmetric solves agree to the
/// tolerance), `S(μ, ν) > 0` for `μ ≠ ν`, unbalanced and balanced; and `S` grows with the
/// mass mismatch.
#[test]
fn divergence_vanishes_on_the_diagonal() {
    let d = 2;
    let x = cloud(20, d, 7, 0.0, 1.0);
    let a = weights(20, 1.0, 7);
    let y = cloud(20, d, 8, 0.3, 1.0);
    for rho in [Some(0.5), None] {
        let o = div_opts(0.05, rho);
        let am = measure(d, &x, &a);
        let s = ot::sinkhorn_divergence(&am, &am, &o, None).unwrap();
        assert!(s.value.abs() <= 1e-12 * s.ot_aa.abs().max(1.0), "{rho:?}: {}", s.value);
        let sxy = divergence(d, &x, &a, &y, &a, &o);
        assert!(sxy > 1e-3, "{rho:?}: {sxy}");
    }
    let o = div_opts(0.05, Some(0.5));
    let a2: Vec<f64> = a.iter().map(|v| 2.0 * v).collect();
    let s1 = divergence(d, &x, &a, &x, &a2, &o);
    assert!(s1 > 0.0);
}

/// The Sinkhorn field: `u = −∇φ`, conserving growth has `Σ w g = 0`; prepare warm-starts (a
/// second prepare on the same particles needs at most 2 iterations per solve); a balanced energy
/// with free growth is refused; eval before prepare is an error, not garbage.
#[test]
fn sinkhorn_field_eval_and_warm_start() {
    let d = 2;
    let x = cloud(40, d, 9, 0.0, 1.0);
    let w = weights(40, 1.0, 9);
    let target = Cloud::new(d, cloud(50, d, 10, 0.8, 1.0), weights(50, 1.5, 10)).unwrap();
    let mut f = WfrField::new(Energy::Sinkhorn { eps: 0.05, rho: Some(1.0) }, Growth::Conserving, 2.0)
        .unwrap()
        .with_solver(SolverCfg {
            tol: 1e-10,
            max_iter: 10_000,
            eps_scaling: Some(ot::EpsScaling::default()),
        });
    let c = ctx(d, &x, &w, &target);
    let mut u = vec![0.0; 40 * d];
    let mut g = vec![0.0; 40];
    assert!(matches!(f.eval(&c, &mut u, &mut g), Err(SimError::Numerical { .. })));
    f.prepare(&c).unwrap();
    let diag: std::collections::HashMap<String, f64> =
        f.diagnostics().into_iter().map(|(k, v)| (k, v.value())).collect();
    assert_eq!(diag["sinkhorn_converged"], 1.0);
    let flag = f.diagnostics().into_iter().find(|(k, _)| k == "sinkhorn_converged").map(|(_, v)| v);
    assert_eq!(flag, Some(advreact::format::Diag::Flag(true)), "a boolean, not 1.0");
    assert!(diag["sinkhorn_divergence"] > 0.0);
    f.eval(&c, &mut u, &mut g).unwrap();
    let (phi, grad) = f.first_variation(&c).unwrap();
    for k in 0..40 * d {
        assert_eq!(u[k], -grad[k]);
    }
    let wg: f64 = g.iter().zip(&w).map(|(g, w)| g * w).sum();
    assert!(wg.abs() <= 1e-12 * phi.iter().map(|p| p.abs()).sum::<f64>());
    // Warm start: same particles again.
    f.prepare(&c).unwrap();
    let diag: std::collections::HashMap<String, f64> =
        f.diagnostics().into_iter().map(|(k, v)| (k, v.value())).collect();
    assert!(diag["sinkhorn_iterations"] <= 4.0, "{diag:?}");
    assert!(WfrField::new(Energy::Sinkhorn { eps: 0.05, rho: None }, Growth::Free, 1.0).is_err());
    assert!(WfrField::new(Energy::Sinkhorn { eps: 0.05, rho: None }, Growth::Conserving, 1.0).is_ok());
    assert!(WfrField::new(Energy::Mmd { bandwidth: -1.0 }, Growth::Free, 1.0).is_err());
}

/// A few explicit WFR steps (`x ← x + u dt`, `w ← w e^{g dt}`) decrease the energy, for both
/// energies and with free growth (mass moves toward the target's).
#[test]
fn wfr_steps_decrease_the_energy() {
    let d = 2;
    let target = Cloud::new(d, cloud(60, d, 12, 1.0, 0.5), weights(60, 2.0, 12)).unwrap();
    for energy in [Energy::Mmd { bandwidth: 0.5 }, Energy::Sinkhorn { eps: 0.05, rho: Some(1.0) }] {
        let mut x = cloud(50, d, 11, 0.0, 0.5);
        let mut w = weights(50, 1.0, 11);
        let mut f = WfrField::new(energy, Growth::Free, 1.0).unwrap().with_solver(SolverCfg {
            tol: 1e-9,
            max_iter: 10_000,
            eps_scaling: Some(ot::EpsScaling::default()),
        });
        let energy_of = |f: &WfrField, x: &[f64], w: &[f64]| match energy {
            Energy::Mmd { bandwidth } => {
                let p = Cloud::new(d, x.to_vec(), w.to_vec()).unwrap();
                0.5 * mmd_between(&p, &target, bandwidth).unwrap().mmd2
            }
            Energy::Sinkhorn { .. } => {
                let diag: std::collections::HashMap<String, f64> =
                    f.diagnostics().into_iter().map(|(k, v)| (k, v.value())).collect();
                diag["sinkhorn_divergence"]
            }
        };
        let dt = 0.1;
        let mut last = f64::INFINITY;
        for step in 0..8 {
            let c = EvalCtx { step, ..ctx(d, &x, &w, &target) };
            f.prepare(&c).unwrap();
            let e = energy_of(&f, &x, &w);
            assert!(e < last, "{energy:?}: step {step}: energy {e} ≥ {last}");
            last = e;
            let mut u = vec![0.0; x.len()];
            let mut g = vec![0.0; w.len()];
            f.eval(&c, &mut u, &mut g).unwrap();
            for (xk, uk) in x.iter_mut().zip(&u) {
                *xk += dt * uk;
            }
            for (wi, gi) in w.iter_mut().zip(&g) {
                *wi *= (dt * gi).exp();
            }
        }
        let mass: f64 = w.iter().sum();
        assert!(mass > 1.0, "{energy:?}: mass {mass} did not grow toward 2");
    }
}

/// The params are the one parsed and validated form of the `[field]` table: the energy is built
/// from the flat keys (a missing one named), `conserve` resolves to the caller's default, the
/// solver keys reach the field, and the rules of [`WfrField::check`] apply.
#[test]
fn params_build_the_energy_and_validate_once() {
    let p: WfrParams =
        toml::from_str("energy = \"sinkhorn\"\nblur = 0.05\nreach = 2.0\nmax_iter = 7").unwrap();
    let f = p.check(true).unwrap();
    assert_eq!(f.energy, Energy::Sinkhorn { eps: 0.05, rho: Some(2.0) });
    assert_eq!((f.growth, f.alpha), (Growth::Conserving, 1.0));
    assert_eq!(f.solver, SolverCfg { max_iter: 7, ..SolverCfg::default() });
    assert_eq!(p.check(false).unwrap().growth, Growth::Free);
    let mmd = WfrParams { conserve: Some(false), alpha: 3.0, ..WfrParams::mmd(0.4) }.check(true).unwrap();
    assert_eq!((mmd.energy, mmd.growth, mmd.alpha), (Energy::Mmd { bandwidth: 0.4 }, Growth::Free, 3.0));
    let e = WfrParams { bandwidth: None, ..WfrParams::mmd(0.4) }.check(true).unwrap_err();
    assert_eq!(e.to_string(), "bandwidth: missing: energy = \"mmd\" needs a bandwidth");
    assert_eq!(WfrParams::sinkhorn(0.05, None).check(false).unwrap_err().key, "reach");
    assert!(WfrParams::sinkhorn(0.05, None).check(true).is_ok());
    assert_eq!(WfrParams { tol: 0.0, ..WfrParams::mmd(0.4) }.check(true).unwrap_err().key, "tol");
    let e = toml::from_str::<WfrParams>("energy = \"mmd\"\nbandwith = 0.4").unwrap_err();
    assert!(e.message().contains("unknown field `bandwith`"), "{e}");
}

/// The resolved `[field]` tables (written as scenario.resolved.toml into run folders) are the
/// file's keys in the file's order, `conserve` filled in from `reaction.conserve`.
#[test]
fn resolved_field_tables_keep_the_file_format() {
    use advreact::scenario::{load_str, Overrides};
    let base = "[meta]\nname = \"s\"\n[source]\ntype = \"gaussian\"\nn = 20\nmean = [0.0, 0.0]\nstd = 0.1\n\
                [target]\ntype = \"gaussian\"\nn = 20\nmean = [0.5, 0.0]\nstd = 0.1\n\
                [reaction]\ntype = \"weights\"\nconserve = true\n[time]\ndt = 0.1\nsteps = 1\n[field]\n";
    let cases = [
        (
            "type = \"wfr\"\nenergy = \"sinkhorn\"\nblur = 0.05\n",
            "type = \"wfr\"\nenergy = \"sinkhorn\"\nblur = 0.05\nalpha = 1.0\nconserve = true\ntol = 0.000001\nmax_iter = 1000\n",
        ),
        (
            "type = \"sobolev_fisher\"\nbandwidth = 0.3\nfeatures = 16\n",
            "type = \"sobolev_fisher\"\nfeatures = 16\nbandwidth = 0.3\nalpha = 1.0\nridge = 0.001\nconserve = true\nresolve_every = 1\n",
        ),
    ];
    for (field, resolved) in cases {
        let scs = load_str(&format!("{base}{field}"), std::path::Path::new("s.toml"), &Overrides::default())
            .unwrap();
        let built = scs[0].build().unwrap_or_else(|e| panic!("{field}: {e}"));
        assert_eq!(toml::to_string(&built.resolved.field).unwrap(), resolved);
    }
    let scs = load_str(
        &format!("{base}type = \"wfr\"\nenergy = \"mmd\"\n"),
        std::path::Path::new("s.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let e = scs[0].build().err().expect("no bandwidth").to_string();
    assert_eq!(e, "s.toml: field.bandwidth: missing: energy = \"mmd\" needs a bandwidth");
}

/// The public divergence entries refuse mismatched shapes and invalid clouds with errors.
#[test]
fn divergence_entries_reject_bad_input() {
    let a = Cloud::new(2, vec![0.0, 0.0, 1.0, 0.5], vec![0.5, 0.7]).unwrap();
    let line = Cloud::new(1, vec![0.3], vec![1.0]).unwrap();
    // `Cloud::new` refuses this; the fields are public, so a struct literal can still make it.
    let flat = Cloud { dim: 0, x: vec![], w: vec![1.0] };
    let o = div_opts(0.1, Some(1.0));
    let c = Cost::HalfSqEuclidean;
    let z = [0.0, 0.0];
    assert!(ot::divergence::first_variation(&z, &a, &line, &[0.0], &[0.0, 0.0], &o).is_err());
    assert!(ot::divergence::first_variation(&[0.0], &a, &a, &[0.0, 0.0], &[0.0, 0.0], &o).is_err());
    assert!(ot::divergence::first_variation(&z, &a, &a, &[0.0], &[0.0, 0.0], &o).is_err());
    assert!(ot::divergence::first_variation(&z, &a, &a, &[0.0, 0.0], &[0.0], &o).is_err());
    assert!(ot::divergence::first_variation(&z, &a, &flat, &[0.0], &[0.0, 0.0], &o).is_err());
    assert!(ot::extend_potential(&[0.0, 0.0, 1.0], &a, &[0.0, 0.0], 0.1, c).is_err());
    assert!(ot::extend_potential(&z, &a, &[0.0], 0.1, c).is_err());
    assert!(ot::extend_potential(&z, &flat, &[0.0], 0.1, c).is_err());
    assert!(ot::cost_scale_bound(&a, &line, c).is_err());
    assert!(ot::cost_scale_bound(&flat, &a, c).is_err());
    assert!(ot::cost_scale_bound(&a, &a, c).is_ok());
    assert!(ot::sinkhorn_divergence(&a, &flat, &o, None).is_err());
    assert!(ot::solve_symmetric(&flat, &o.solver(false), None).is_err());
}
