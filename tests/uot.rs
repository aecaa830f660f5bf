//! Unbalanced Sinkhorn (SPEC §3) against independent references and closed-form behaviour:
//!
//! - every case of `shared/fixtures/uot_sinkhorn.json` (POT `sinkhorn_unbalanced` + an independent
//!   log-domain solver; cost `|x−y|²`, `reg = ε`, `reg_m = τ` on both sides): plan marginals,
//!   mass, linear cost and the generalised-KL objective to 1e-7 relative;
//! - the balanced limit against the entropic cases of `emd.json` (`objective_kl_ab`,
//!   `sinkhorn2_linear`) to 1e-7 relative;
//! - the outlier sweep `uot_outlier_sweep.json` (kept mass ratio of the moved point) to 1e-7
//!   relative;
//! - hard/soft cuts: KL keeps ≤ 1% of a point whose cheapest cost is ≥ 12τ; TV moves nothing
//!   across costs above `τ_a + τ_b` and everything below;
//! - robustness (ε = 1e-4 × cost scale, masses 1e-3 vs 1e3), honest `converged`, errors instead
//!   of NaN, determinism across thread counts, plan access (dense, sparse, barycentric map).

use advreact::dist::{Exec, Par};
use advreact::ot::{self, solve_partial, Cost, EpsScaling, Marginal, SinkhornOptions};
use advreact::{Cloud, CloudError, SimError};
use serde_json::Value;

/// The checked cloud of `d`-dimensional points `x` with weights `w`.
fn cl(d: usize, x: &[f64], w: &[f64]) -> Cloud {
    Cloud::new(d, x.to_vec(), w.to_vec()).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Rows of points → (dim, flat).
fn points(v: &Value) -> (usize, Vec<f64>) {
    let rows = v.as_array().unwrap();
    let d = rows[0].as_array().unwrap().len();
    let flat = rows.iter().flat_map(vecf).collect();
    (d, flat)
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs()
    }
}

fn assert_rel(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        rel(got, want) <= tol,
        "{what}: got {got}, want {want} (relative error {:e} > {tol:e})",
        rel(got, want)
    );
}

fn tight(eps: f64, tau: f64) -> SinkhornOptions {
    SinkhornOptions { tol: 1e-13, max_iter: 100_000, ..SinkhornOptions::kl(eps, tau, tau, Cost::SqEuclidean) }
}

/// All cases of the POT fixture: marginals (each entry), mass, ⟨C,π⟩ and the objective to 1e-7
/// relative against `reference` (the independent log-domain solver, which the trusted POT runs
/// match to 1e-8); the objective also against every trusted POT run's
/// `primal_objective_generalized_kl`. Our solve is run to a marginal error of 1e-13, so the
/// 1e-7 budget is dominated by nothing but the fixtures' own stopping rules.
#[test]
fn pot_sinkhorn_unbalanced_fixture() {
    let fx = fixture("uot_sinkhorn.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["cost"].as_str().unwrap(), "sqeuclidean");
        let (d, x) = points(&c["x"]);
        let (_, y) = points(&c["y"]);
        let (a, b) = (vecf(&c["a"]), vecf(&c["b"]));
        let (eps, tau) = (c["reg"].as_f64().unwrap(), c["reg_m"].as_f64().unwrap());
        let (ma, mb) = (cl(d, &x, &a), cl(d, &y, &b));
        if let Some(mm) = c.get("M") {
            // The cost matrix is ours: |x − y|² to 1e-14.
            for (i, row) in mm.as_array().unwrap().iter().enumerate() {
                for (j, v) in vecf(row).iter().enumerate() {
                    let cij = Cost::SqEuclidean.eval(ma.point(i), mb.point(j));
                    assert!((cij - v).abs() <= 1e-14 * (1.0 + v.abs()), "{name}: M[{i}][{j}]");
                }
            }
        }
        let sol = ot::uot_clouds(&ma, &mb, &tight(eps, tau)).unwrap();
        let r = &sol.report;
        assert!(r.converged, "{name}: not converged: {r:?}");
        let rf = &c["reference"];
        for (i, (got, want)) in sol.row_mass.iter().zip(vecf(&rf["row_sums"])).enumerate() {
            assert_rel(&format!("{name}: row {i}"), *got, want, 1e-7);
        }
        for (j, (got, want)) in sol.col_mass.iter().zip(vecf(&rf["col_sums"])).enumerate() {
            assert_rel(&format!("{name}: col {j}"), *got, want, 1e-7);
        }
        assert_rel(&format!("{name}: mass"), r.transported_mass, rf["total_mass"].as_f64().unwrap(), 1e-7);
        assert_rel(&format!("{name}: <C,pi>"), r.transport_cost, rf["linear_cost"].as_f64().unwrap(), 1e-7);
        let obj = rf["objective"].as_f64().unwrap();
        assert_rel(&format!("{name}: primal"), r.primal_objective, obj, 1e-7);
        assert_rel(&format!("{name}: dual"), r.dual_objective, obj, 1e-7);
        // The terms add up, and primal = dual at the optimum (to 1e-10 relative).
        let sum = r.transport_cost + r.entropy_term + r.marginal_term_a + r.marginal_term_b;
        assert_rel(&format!("{name}: sum of terms"), sum, r.primal_objective, 1e-14);
        assert_rel(&format!("{name}: duality gap"), r.dual_objective, r.primal_objective, 1e-10);
        let trusted: Vec<&str> =
            c["trusted_methods"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        for run in c["runs"].as_array().unwrap() {
            let method = run["method"].as_str().unwrap();
            if trusted.contains(&method) {
                assert_rel(
                    &format!("{name}: vs POT {method}"),
                    r.primal_objective,
                    run["primal_objective_generalized_kl"].as_f64().unwrap(),
                    1e-7,
                );
            }
        }
        // Potentials are unique for KL penalties: compare with the independent solver's to
        // 1e-7 relative to the potential scale (max |f|, |g|, ε).
        let ind = &c["independent_logdomain"];
        let (fr, gr) = (vecf(&ind["f"]), vecf(&ind["g"]));
        let scale = fr.iter().chain(&gr).fold(eps, |s, v| s.max(v.abs()));
        for (u, v) in sol.potentials.f.iter().zip(&fr).chain(sol.potentials.g.iter().zip(&gr)) {
            assert!((u - v).abs() <= 1e-7 * scale, "{name}: potential {u} vs {v}");
        }
    }
}

/// The balanced limit (τ = ∞ both sides) against `emd.json`'s entropic entries (POT
/// `sinkhorn_log`): `objective_kl_ab = ⟨C,π⟩ + ε KL(π|ab)` and `sinkhorn2_linear = ⟨C,π⟩` to 1e-7
/// relative; our marginals are exact to the 1e-12 tolerance.
#[test]
fn balanced_limit_matches_emd_fixture_entropic_cases() {
    let fx = fixture("emd.json");
    let mut checked = 0;
    for c in fx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let (d, x) = points(&c["x"]);
        let (_, y) = points(&c["y"]);
        let (a, b) = (vecf(&c["a"]), vecf(&c["b"]));
        for e in c["entropic"].as_array().unwrap() {
            assert_eq!(e["cost"].as_str().unwrap(), "sqeuclidean");
            let eps = e["reg"].as_f64().unwrap();
            let opts = SinkhornOptions {
                tol: 1e-12,
                max_iter: 100_000,
                ..SinkhornOptions::kl(eps, f64::INFINITY, f64::INFINITY, Cost::SqEuclidean)
            };
            let sol = ot::uot_clouds(&cl(d, &x, &a), &cl(d, &y, &b), &opts).unwrap();
            let r = &sol.report;
            assert!(r.converged, "{name} eps={eps}");
            assert_eq!(r.marginal_term_a, 0.0);
            assert_rel(
                &format!("{name} eps={eps}: objective_kl_ab"),
                r.primal_objective,
                e["objective_kl_ab"].as_f64().unwrap(),
                1e-7,
            );
            assert_rel(
                &format!("{name} eps={eps}: linear"),
                r.transport_cost,
                e["sinkhorn2_linear"].as_f64().unwrap(),
                1e-7,
            );
            assert_rel(&format!("{name}: dual"), r.dual_objective, r.primal_objective, 1e-9);
            for (ri, ai) in sol.row_mass.iter().zip(&a) {
                assert!((ri - ai).abs() <= 1e-11, "{name}: row marginal {ri} vs {ai}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

/// The outlier sweep: source = the 15 cluster points + one point at `(D, 0)`, uniform weights
/// 1/16 both sides, `ε = 0.1`, `τ = 1`. Kept mass ratio of the moved point, the inliers' median
/// ratio and the total mass to 1e-7 relative.
#[test]
fn outlier_sweep_fixture() {
    let fx = fixture("uot_outlier_sweep.json");
    let (eps, tau) = (fx["reg"].as_f64().unwrap(), fx["reg_m"].as_f64().unwrap());
    let (d, xc) = points(&fx["x_cluster"]);
    let (_, y) = points(&fx["y"]);
    let n = xc.len() / d + 1;
    let m = y.len() / d;
    let a = vec![1.0 / n as f64; n];
    let b = vec![1.0 / m as f64; m];
    let rows = fx["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for row in rows {
        let dist = row["D"].as_f64().unwrap();
        let mut x = xc.clone();
        x.extend_from_slice(&[dist, 0.0]);
        let sol = ot::uot_clouds(&cl(d, &x, &a), &cl(d, &y, &b), &tight(eps, tau)).unwrap();
        assert!(sol.report.converged);
        let ratio = sol.row_mass[n - 1] / a[n - 1];
        assert_rel(
            &format!("D={dist}: outlier kept ratio"),
            ratio,
            row["outlier_row_mass_ratio"].as_f64().unwrap(),
            1e-7,
        );
        let mut inl: Vec<f64> = (0..n - 1).map(|i| sol.row_mass[i] / a[i]).collect();
        inl.sort_by(f64::total_cmp);
        assert_rel(
            &format!("D={dist}: inlier median"),
            inl[inl.len() / 2],
            row["inlier_row_mass_ratio_median"].as_f64().unwrap(),
            1e-7,
        );
        assert_rel(
            &format!("D={dist}: total mass"),
            sol.report.transported_mass,
            row["total_mass"].as_f64().unwrap(),
            1e-7,
        );
        let cmin = (0..m)
            .map(|j| Cost::SqEuclidean.eval(&x[(n - 1) * 2..], &y[j * 2..j * 2 + 2]))
            .fold(f64::INFINITY, f64::min);
        assert_rel("min cost", cmin, row["outlier_min_cost"].as_f64().unwrap(), 1e-12);
    }
}

/// A small 2-D cluster pair used by the cut tests: `k` source and target points in a unit box.
fn cluster(k: usize, seed: u64, offset: f64) -> Vec<f64> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    (0..k * 2).map(|i| if i % 2 == 0 { offset + next() } else { next() }).collect()
}

/// KL is a soft cut: an isolated source point whose cheapest cost is ≥ 12τ keeps ≤ 1% of its
/// mass (SPEC: roughly `exp(−c_min/(2τ))` ≈ 0.25% at 12τ).
#[test]
fn kl_destroys_far_points() {
    let tau = 0.5;
    let mut x = cluster(20, 1, 0.0);
    let y = cluster(20, 2, 0.0);
    // Cheapest cost of the outlier: (6.5 − 1)² ≥ 30 > 12τ = 6.
    x.extend_from_slice(&[6.5, 0.5]);
    let n = 21;
    let a = vec![1.0 / 21.0; n];
    let b = vec![1.0 / 20.0; 20];
    let sol = ot::uot_clouds(&cl(2, &x, &a), &cl(2, &y, &b), &tight(0.05, tau)).unwrap();
    assert!(sol.report.converged);
    let cmin = (0..20)
        .map(|j| Cost::SqEuclidean.eval(&x[40..42], &y[j * 2..j * 2 + 2]))
        .fold(f64::INFINITY, f64::min);
    assert!(cmin >= 12.0 * tau);
    let kept = sol.row_mass[20] / a[20];
    assert!(kept <= 0.01, "kept {kept}");
    // Inliers keep most of their mass.
    assert!(sol.row_mass[..20].iter().all(|r| r / a[0] > 0.5));
}

/// TV is a hard cut: with `τ_a = τ_b = 1` a point whose every cost exceeds 2 moves nothing
/// (kept mass < 1e-6 at ε = 0.01: the entropic leak is `exp(−(C − 2)/ε)`), and a point whose
/// costs are all below 2 (and whose target has room) moves its whole mass (to 1e-6 relative).
#[test]
fn tv_is_a_hard_cut() {
    let tv = |tau| SinkhornOptions {
        eps: 0.01,
        cost: Cost::SqEuclidean,
        marginal_a: Marginal::Tv { tau },
        marginal_b: Marginal::Tv { tau },
        tol: 1e-11,
        max_iter: 100_000,
        eps_scaling: Some(EpsScaling::default()),
        translation_invariant: false,
        relaxation: ot::Relaxation::default(),
        exec: Exec::default(),
    };
    // Source: a near point (cost to every target ≈ 1.0 < 2) and a far one (cost ≥ 2.25² > 2).
    let x = vec![0.0, 0.0, 3.0, 0.0];
    let y = vec![0.75, 0.0, 0.75, 0.1, 0.75, -0.1];
    let a = vec![0.3, 0.3];
    let b = vec![0.2, 0.2, 0.2];
    let sol = ot::uot_clouds(&cl(2, &x, &a), &cl(2, &y, &b), &tv(1.0)).unwrap();
    assert!(sol.report.converged, "{:?}", sol.report);
    let near = sol.row_mass[0] / a[0];
    let far = sol.row_mass[1] / a[1];
    assert!((near - 1.0).abs() < 1e-6, "near point kept {near}");
    assert!(far < 1e-6, "far point kept {far}");
    // The TV penalty: τ |π1 − a|₁ = τ·(0.3 − r_far) + τ·(0.6 − 0.3) on the target side.
    let r = &sol.report;
    assert!(
        (r.marginal_term_a - 1.0 * (a[1] - sol.row_mass[1]).abs() - (a[0] - sol.row_mass[0]).abs()).abs()
            < 1e-9
    );
    // Potentials of a TV solve stay within [−τ, τ].
    assert!(sol.potentials.f.iter().chain(&sol.potentials.g).all(|v| v.abs() <= 1.0));
}

/// Over-relaxation never leaves the TV dual domain: a solve stopped after a few over-relaxed
/// iterations (fixed ω = 1.8) still has `|f|, |g| ≤ τ` and a finite report; and plain, fixed and
/// adaptive relaxation reach the same optimum (objective to 1e-10 relative, marginals to 1e-8).
#[test]
fn relaxation_variants_agree_and_respect_the_tv_box() {
    let x = cluster(25, 15, 0.0);
    let y = cluster(30, 16, 0.5);
    let a = vec![1.0 / 25.0; 25];
    let b = vec![1.2 / 30.0; 30];
    let (ma, mb) = (cl(2, &x, &a), cl(2, &y, &b));
    let tv = SinkhornOptions {
        eps: 0.02,
        marginal_a: Marginal::Tv { tau: 0.3 },
        marginal_b: Marginal::Tv { tau: 0.3 },
        max_iter: 6,
        relaxation: ot::Relaxation::Fixed { omega: 1.8 },
        translation_invariant: false,
        ..SinkhornOptions::default()
    };
    let s = ot::uot_clouds(&ma, &mb, &tv).unwrap();
    assert!(!s.report.converged);
    assert!(s.potentials.f.iter().chain(&s.potentials.g).all(|v| v.abs() <= 0.3));
    assert!(s.report.dual_objective.is_finite());
    let mut reference = None;
    for relaxation in [ot::Relaxation::Off, ot::Relaxation::Fixed { omega: 1.5 }, ot::Relaxation::default()] {
        let o = SinkhornOptions { relaxation, ..tight(0.02, 0.5) };
        let s = ot::uot_clouds(&ma, &mb, &o).unwrap();
        assert!(s.report.converged, "{relaxation:?}");
        match &reference {
            None => reference = Some(s),
            Some(r) => {
                assert_rel(
                    &format!("{relaxation:?}: objective"),
                    s.report.primal_objective,
                    r.report.primal_objective,
                    1e-10,
                );
                for (p, q) in s.row_mass.iter().zip(&r.row_mass) {
                    assert_rel("row mass", *p, *q, 1e-8);
                }
            }
        }
    }
}

/// Partial transport: τ found by bisection so that the transported mass is 0.25 (of 1), to
/// 1e-6 relative; the kept mass goes to the closest pairs.
#[test]
fn partial_transport_hits_the_requested_mass() {
    let x = cluster(30, 3, 0.0);
    let y = cluster(30, 4, 0.4);
    let a = vec![1.0 / 30.0; 30];
    let b = vec![1.0 / 30.0; 30];
    let opts = SinkhornOptions {
        eps: 0.01,
        tol: 1e-10,
        max_iter: 100_000,
        eps_scaling: Some(EpsScaling::default()),
        ..SinkhornOptions::default()
    };
    let p = solve_partial(&cl(2, &x, &a), &cl(2, &y, &b), 0.25, &opts, 1e-6).unwrap();
    assert!(p.mass_error <= 1e-6, "{}", p.mass_error);
    assert!((p.solution.report.transported_mass - 0.25).abs() <= 0.25e-6);
    // The points that move are the ones closest to the target cloud (largest first coordinate).
    let mut order: Vec<usize> = (0..30).collect();
    order.sort_by(|&i, &j| x[2 * j].total_cmp(&x[2 * i]));
    let near: f64 = order[..5].iter().map(|&i| p.solution.row_mass[i]).sum();
    let far: f64 = order[25..].iter().map(|&i| p.solution.row_mass[i]).sum();
    assert!(near > far, "near {near} far {far}");
    // Out of range masses are refused.
    assert!(matches!(
        solve_partial(&cl(2, &x, &a), &cl(2, &y, &b), 1.5, &opts, 1e-6),
        Err(SimError::Invalid(_))
    ));
}

/// Issue 13 point 8: unit weights (masses 30 and 36) put the τ → 0 plan of the reference a⊗b
/// above both masses, so no mass was reachable. With the reference a⊗b / max(1, m(a), m(b)) the
/// solution is the scaled problem's, scaled back: its potentials give back its row and column
/// masses, the transported mass is the one asked for, and it is 36 times the solution of the
/// problem between a/36 and b/36.
#[test]
fn partial_transport_of_unit_weight_clouds() {
    let x = cluster(30, 3, 0.0);
    let y = cluster(36, 4, 0.4);
    let (a, b) = (vec![1.0; 30], vec![1.0; 36]);
    let opts = SinkhornOptions { eps: 0.05, tol: 1e-10, max_iter: 100_000, ..SinkhornOptions::default() };
    let (ma, mb) = (cl(2, &x, &a), cl(2, &y, &b));
    let p = solve_partial(&ma, &mb, 20.0, &opts, 1e-6).unwrap();
    assert_eq!(p.reference_scale, 36.0);
    let r = &p.solution.report;
    assert!((r.transported_mass - 20.0).abs() <= 20.0 * 1e-6, "{}", r.transported_mass);
    assert_eq!((r.mass_a, r.mass_b), (30.0, 36.0));
    let c = p.solution.coupling(&ma, &mb).unwrap();
    for (got, want) in
        [(c.row_masses().unwrap(), &p.solution.row_mass), (c.col_masses().unwrap(), &p.solution.col_mass)]
    {
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-12 * w.max(1e-300) + 1e-15, "{g} vs {w}");
        }
    }
    // The same as solving between a/36 and b/36 for mass 20/36, times 36.
    let (a1, b1) = (vec![1.0 / 36.0; 30], vec![1.0 / 36.0; 36]);
    let q = solve_partial(&cl(2, &x, &a1), &cl(2, &y, &b1), 20.0 / 36.0, &opts, 1e-6).unwrap();
    // (36 × 1/36 sums to 1 + 2e-16, so this one is rescaled by that: equal up to rounding.)
    assert!((q.reference_scale - 1.0).abs() < 1e-15, "{}", q.reference_scale);
    assert!((p.tau - q.tau).abs() <= 1e-9 * p.tau, "{} vs {}", p.tau, q.tau);
    for (rp, rq) in p.solution.row_mass.iter().zip(&q.solution.row_mass) {
        assert!((rp - 36.0 * rq).abs() <= 1e-9 * rp.abs(), "{rp} vs 36 × {rq}");
    }
    let (op, oq) = (r.primal_objective, q.solution.report.primal_objective);
    assert!((op - 36.0 * oq).abs() <= 1e-9 * op.abs(), "{op} vs 36 × {oq}");
}

/// ε = 1e-4 × cost scale, masses 1e-3 vs 1e3, KL and balanced-on-one-side: no NaN or infinity
/// anywhere, and the solve converges (ε-scaling from the cost diameter).
#[test]
fn tiny_eps_and_extreme_masses_stay_finite() {
    let x = cluster(40, 5, 0.0);
    let y = cluster(50, 6, 0.5);
    let a = vec![1e-3 / 40.0; 40];
    let b = vec![1e3 / 50.0; 50];
    let scale = 1.0; // costs are O(1) here
    for (ta, tb) in [(1.0, 1.0), (f64::INFINITY, 1.0), (1.0, f64::INFINITY), (0.01, 100.0)] {
        let opts = SinkhornOptions {
            eps: 1e-4 * scale,
            tol: 1e-8,
            max_iter: 20_000,
            eps_scaling: Some(EpsScaling { start: None, factor: 0.7 }),
            ..SinkhornOptions::kl(1e-4 * scale, ta, tb, Cost::SqEuclidean)
        };
        let (ca, cb) = (cl(2, &x, &a), cl(2, &y, &b));
        let sol = ot::uot_clouds(&ca, &cb, &opts).unwrap_or_else(|e| panic!("tau = ({ta}, {tb}): {e}"));
        let r = &sol.report;
        let all = [
            r.marginal_error_a,
            r.marginal_error_b,
            r.transport_cost,
            r.entropy_term,
            r.marginal_term_a,
            r.marginal_term_b,
            r.primal_objective,
            r.dual_objective,
            r.transported_mass,
        ];
        assert!(all.iter().all(|v| v.is_finite()), "{r:?}");
        assert!(sol.row_mass.iter().chain(&sol.col_mass).all(|v| v.is_finite()));
        assert!(sol.potentials.f.iter().chain(&sol.potentials.g).all(|v| v.is_finite()));
        assert!(r.converged, "tau = ({ta}, {tb}): {r:?}");
        assert_rel("duality gap", r.dual_objective, r.primal_objective, 1e-6);
        let c = sol.coupling(&ca, &cb).unwrap();
        assert!(c.barycentric_map().unwrap().iter().all(|v| v.is_finite()));
    }
}

/// `converged` is honest: a solve stopped by `max_iter` before the tolerance reports false, and
/// its reported error exceeds the tolerance.
#[test]
fn converged_flag_is_false_when_max_iter_is_too_small() {
    let x = cluster(30, 7, 0.0);
    let y = cluster(30, 8, 0.3);
    let a = vec![1.0 / 30.0; 30];
    let b = vec![2.0 / 30.0; 30];
    let mut opts = tight(0.01, 1.0);
    opts.max_iter = 3;
    let sol = ot::uot_clouds(&cl(2, &x, &a), &cl(2, &y, &b), &opts).unwrap();
    assert_eq!(sol.report.iterations, 3);
    assert!(!sol.report.converged);
    assert!(sol.report.marginal_error_a > opts.tol);
    opts.max_iter = 100_000;
    let sol = ot::uot_clouds(&cl(2, &x, &a), &cl(2, &y, &b), &opts).unwrap();
    assert!(sol.report.converged);
    assert!(sol.report.marginal_error_a <= 1e-13 && sol.report.marginal_error_b <= 1e-13);
}

/// Bad input is a typed error naming the problem, never a NaN or a panic.
#[test]
fn invalid_inputs_are_errors() {
    let x = vec![0.0, 1.0];
    let y = vec![0.5, 2.0];
    let a = vec![0.5, 0.5];
    let b = vec![1.0, 1.0];
    let o = SinkhornOptions::default();
    let err = |a: &[f64], b: &[f64], o: &SinkhornOptions| {
        ot::uot_clouds(&cl(1, &x, a), &cl(1, &y, b), o).unwrap_err()
    };
    // A NaN weight never reaches the solver: the cloud refuses it.
    let nan = Cloud::new(1, x.clone(), vec![f64::NAN, 0.5]).unwrap_err();
    assert!(matches!(nan, CloudError::Weight { point: 0, .. }), "{nan}");
    assert!(matches!(err(&[0.0, 0.0], &b, &o), SimError::Invalid(m) if m.contains("mass is 0")));
    let bal = SinkhornOptions::kl(0.1, f64::INFINITY, f64::INFINITY, Cost::SqEuclidean);
    assert!(matches!(err(&a, &b, &bal), SimError::Invalid(m) if m.contains("equal masses")));
    let mut neg = o.clone();
    neg.eps = -1.0;
    assert!(matches!(err(&a, &b, &neg), SimError::Invalid(m) if m.contains("eps")));
    // A zero weight on some points is fine.
    let sol = ot::uot_clouds(&cl(1, &x, &[0.0, 1.0]), &cl(1, &y, &b), &o).unwrap();
    assert_eq!(sol.row_mass[0], 0.0);
}

/// Same bits with 1 and 2 threads (and several row blocks: n, m > 64 and not multiples of 8).
#[test]
fn deterministic_across_thread_counts() {
    let x = cluster(301, 9, 0.0);
    let y = cluster(257, 10, 0.2);
    let a = vec![1.0 / 301.0; 301];
    let b: Vec<f64> = (0..257).map(|j| 1.0 + (j % 5) as f64).collect();
    // Built on the thread that solves: the options hold the (thread-bound) execution context.
    let opts = || SinkhornOptions {
        eps: 0.01,
        tol: 1e-10,
        eps_scaling: Some(EpsScaling::default()),
        ..SinkhornOptions::default()
    };
    let run = |k: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(k).build().unwrap();
        pool.install(|| {
            let (ca, cb) = (cl(2, &x, &a), cl(2, &y, &b));
            let sol = ot::uot_clouds(&ca, &cb, &opts()).unwrap();
            let c = sol.coupling(&ca, &cb).unwrap();
            let t = c.barycentric_map().unwrap();
            (sol, t)
        })
    };
    let (s1, t1) = run(1);
    let (s2, t2) = run(2);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&s1.potentials.f), bits(&s2.potentials.f));
    assert_eq!(bits(&s1.potentials.g), bits(&s2.potentials.g));
    assert_eq!(bits(&s1.row_mass), bits(&s2.row_mass));
    assert_eq!(bits(&t1), bits(&t2));
    assert_eq!(s1.report, s2.report);
    // `Par::Seq`: every row block on this thread, the same bits.
    let seq = SinkhornOptions { exec: Exec::seq(), ..opts() };
    assert_eq!(seq.exec.par, Par::Seq);
    let s0 = ot::uot_clouds(&cl(2, &x, &a), &cl(2, &y, &b), &seq).unwrap();
    assert!(s0.report.iterations > 1);
    assert_eq!(bits(&s0.potentials.f), bits(&s2.potentials.f));
    assert_eq!(bits(&s0.potentials.g), bits(&s2.potentials.g));
    assert_eq!(bits(&s0.row_mass), bits(&s2.row_mass));
    assert_eq!(s0.report, s2.report);
}

/// Plan access: the dense plan's sums equal the online row/column masses (1e-12 relative), the
/// top-k and threshold exports are its largest entries, the barycentric map is `Σπy/Σπ`, and
/// a dense request above the size limit is refused.
#[test]
fn plan_access_agrees_with_the_dense_plan() {
    let x = cluster(70, 11, 0.0);
    let y = cluster(90, 12, 0.3);
    let a = vec![1.0 / 70.0; 70];
    let b = vec![1.5 / 90.0; 90];
    let opts = tight(0.02, 0.5);
    let (ma, mb) = (cl(2, &x, &a), cl(2, &y, &b));
    let sol = ot::uot_clouds(&ma, &mb, &opts).unwrap();
    let c = sol.coupling(&ma, &mb).unwrap();
    let dense = c.dense(70 * 90).unwrap();
    assert!(matches!(c.dense(70 * 90 - 1), Err(SimError::Limit { .. })));
    let rows = c.row_masses().unwrap();
    let cols = c.col_masses().unwrap();
    for i in 0..70 {
        let s: f64 = dense[i * 90..(i + 1) * 90].iter().sum();
        assert_rel("row", s, rows[i], 1e-12);
        assert_rel("row (solution)", sol.row_mass[i], rows[i], 1e-12);
        assert_rel("entry", c.entry(i, 3), dense[i * 90 + 3], 1e-12);
    }
    for j in 0..90 {
        let s: f64 = (0..70).map(|i| dense[i * 90 + j]).sum();
        assert_rel("col", s, cols[j], 1e-12);
        assert_rel("col (solution)", sol.col_mass[j], cols[j], 1e-12);
    }
    let t = c.barycentric_map().unwrap();
    for i in [0, 33, 69] {
        let row = &dense[i * 90..(i + 1) * 90];
        let s: f64 = row.iter().sum();
        for k in 0..2 {
            let v: f64 = row.iter().enumerate().map(|(j, p)| p * y[j * 2 + k]).sum::<f64>() / s;
            assert!((t[i * 2 + k] - v).abs() < 1e-12);
        }
    }
    let top = c.top_k(3).unwrap();
    assert_eq!(top.len(), 70 * 3);
    for i in 0..70 {
        let mut row: Vec<(f64, usize)> = (0..90).map(|j| (dense[i * 90 + j], j)).collect();
        row.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
        for r in 0..3 {
            let e = top[i * 3 + r];
            assert_eq!((e.i, e.j), (i, row[r].1));
            assert_rel("top-k value", e.value, row[r].0, 1e-12);
        }
    }
    let thr = 1e-4;
    let above = c.above(thr, 70 * 90).unwrap();
    let expect = dense.iter().filter(|&&v| v >= thr * (1.0 + 1e-12)).count();
    assert!(
        above.len() >= expect && above.len() <= dense.iter().filter(|&&v| v >= thr * (1.0 - 1e-12)).count()
    );
    assert!(matches!(c.above(thr, 3), Err(SimError::Limit { .. })));
}

/// The CLI entry point writes the report, the marginals, a sparse plan and the barycentric map.
#[test]
fn clouds_entry_point_writes_files() {
    let a = Cloud::uniform(2, cluster(20, 13, 0.0), 1.0).unwrap();
    let b = Cloud::uniform(2, cluster(25, 14, 0.5), 2.0).unwrap();
    let opts = SinkhornOptions::kl(0.05, 1.0, 1.0, Cost::HalfSqEuclidean);
    let sol = ot::uot_clouds(&a, &b, &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = ot::write_solution(
        dir.path(),
        &a,
        &b,
        &sol,
        &ot::PlanExport {
            barycentric: true,
            top_k: Some(2),
            threshold: None,
            max_entries: 10_000,
            dense: true,
        },
    )
    .unwrap();
    let names: Vec<String> =
        files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["report.json", "source.csv", "target.csv", "barycentric.csv", "plan.csv", "plan_dense.csv"]
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["converged"], Value::Bool(true));
    assert_eq!(report["cost"], "half_sqeuclidean");
    let plan = std::fs::read_to_string(dir.path().join("plan.csv")).unwrap();
    assert_eq!(plan.lines().count(), 1 + 40);
}
