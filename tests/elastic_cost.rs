//! The elastic cost `h(z) = ½|z|² + γ τ(z)` (SPEC §7) in the Sinkhorn solver (SPEC §3):
//!
//! - against `tests/fixtures/elastic/sinkhorn_elastic.json` (made by `make_fixture.py` next to
//!   it: a dense numpy log-domain solver on the same matrix `C_ij = h(x_i − y_j)`, checked there
//!   against POT's `sinkhorn_log` / `sinkhorn_unbalanced(reg_type="kl")` to 1e-9): cost entries,
//!   plan marginals, mass, `⟨C, π⟩`, the objective and the potentials, to 1e-8 (ℓ1 and smoothed
//!   ℓ0; balanced and KL-unbalanced);
//! - `γ = 0` is `½|x − y|²`; the existing costs keep their serde forms; the bits do not depend
//!   on the thread count.

use advreact::dist::Exec;
use advreact::ot::{self, Cost, Penalty, SinkhornOptions};
use advreact::Cloud;
use serde_json::Value;

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn points(v: &Value) -> (usize, Vec<f64>) {
    let rows = v.as_array().unwrap();
    (rows[0].as_array().unwrap().len(), rows.iter().flat_map(vecf).collect())
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{what}: got {got}, want {want}");
}

fn opts(eps: f64, tau: Option<f64>, cost: Cost) -> SinkhornOptions {
    let t = tau.unwrap_or(f64::INFINITY);
    SinkhornOptions { tol: 1e-14, max_iter: 100_000, ..SinkhornOptions::kl(eps, t, t, cost) }
}

#[test]
fn matches_the_dense_numpy_pot_fixture() {
    let path = format!("{}/tests/fixtures/elastic/sinkhorn_elastic.json", env!("CARGO_MANIFEST_DIR"));
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let gamma = c["gamma"].as_f64().unwrap();
        let penalty = match c["penalty"].as_str().unwrap() {
            "l1" => Penalty::L1,
            _ => Penalty::SmoothedL0 { sigma: c["sigma"].as_f64().unwrap() },
        };
        let cost = Cost::Elastic { gamma, penalty };
        let (d, x) = points(&c["x"]);
        let (_, y) = points(&c["y"]);
        let (a, b) = (Cloud::new(d, x, vecf(&c["a"])).unwrap(), Cloud::new(d, y, vecf(&c["b"])).unwrap());
        for (j, want) in vecf(&c["C_first_row"]).iter().enumerate() {
            close(&format!("{name}: C[0][{j}]"), cost.eval(a.point(0), b.point(j)), *want, 1e-14);
        }
        let eps = c["eps"].as_f64().unwrap();
        let tau = c["tau"].as_f64();
        let sol = ot::uot_clouds(&a, &b, &opts(eps, tau, cost)).unwrap();
        let r = &sol.report;
        assert!(r.converged, "{name}: {r:?}");
        for (i, (g, w)) in sol.row_mass.iter().zip(vecf(&c["row_sums"])).enumerate() {
            close(&format!("{name}: row {i}"), *g, w, 1e-8);
        }
        for (j, (g, w)) in sol.col_mass.iter().zip(vecf(&c["col_sums"])).enumerate() {
            close(&format!("{name}: col {j}"), *g, w, 1e-8);
        }
        close(&format!("{name}: mass"), r.transported_mass, c["total_mass"].as_f64().unwrap(), 1e-8);
        close(&format!("{name}: <C,pi>"), r.transport_cost, c["linear_cost"].as_f64().unwrap(), 1e-8);
        close(&format!("{name}: primal"), r.primal_objective, c["objective"].as_f64().unwrap(), 1e-8);
        close(&format!("{name}: dual"), r.dual_objective, c["objective"].as_f64().unwrap(), 1e-8);
        // Potentials: unique for KL; up to a constant (f + k, g − k) when balanced.
        let (fr, gr) = (vecf(&c["f"]), vecf(&c["g"]));
        let (f, g) = (&sol.potentials.f, &sol.potentials.g);
        let k = if tau.is_some() { 0.0 } else { fr[0] - f[0] };
        for (u, v) in f.iter().zip(&fr) {
            close(&format!("{name}: f"), u + k, *v, 1e-8);
        }
        for (u, v) in g.iter().zip(&gr) {
            close(&format!("{name}: g"), u - k, *v, 1e-8);
        }
        // The plan access uses the same cost: its marginals are the solver's.
        let cp = sol.coupling(&a, &b).unwrap();
        for (u, v) in cp.row_masses().unwrap().iter().zip(&sol.row_mass) {
            close(&format!("{name}: coupling row"), *u, *v, 1e-13);
        }
        let dense = cp.dense(10_000).unwrap();
        close(&format!("{name}: dense entry"), dense[3 * b.len() + 7], cp.entry(3, 7), 1e-13);
    }
}

fn cloud(n: usize, d: usize, seed: u64, shift: f64) -> Cloud {
    let mut s = seed;
    let x: Vec<f64> = (0..n * d)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0 + shift
        })
        .collect();
    Cloud::new(d, x, vec![1.0 / n as f64; n]).unwrap()
}

/// `γ = 0` is the half squared-Euclidean cost (same plan to 1e-12); and the elastic solve gives
/// the same bits sequentially and on the rayon pool (600 rows: several row blocks).
#[test]
fn gamma_zero_is_half_sqeuclidean_and_bits_do_not_depend_on_threads() {
    let (a, b) = (cloud(600, 4, 1, 0.0), cloud(550, 4, 2, 0.3));
    let e0 = Cost::Elastic { gamma: 0.0, penalty: Penalty::L1 };
    let s0 = ot::uot_clouds(&a, &b, &opts(0.1, Some(1.0), e0)).unwrap();
    let sh = ot::uot_clouds(&a, &b, &opts(0.1, Some(1.0), Cost::HalfSqEuclidean)).unwrap();
    for (u, v) in s0.row_mass.iter().zip(&sh.row_mass) {
        close("γ = 0 row mass", *u, *v, 1e-12);
    }
    close("γ = 0 objective", s0.report.primal_objective, sh.report.primal_objective, 1e-12);
    let el = Cost::Elastic { gamma: 0.2, penalty: Penalty::SmoothedL0 { sigma: 0.3 } };
    let mut o = opts(0.1, Some(1.0), el);
    o.max_iter = 30;
    let par = ot::uot_clouds(&a, &b, &o).unwrap();
    o.exec = Exec::seq();
    let seq = ot::uot_clouds(&a, &b, &o).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&par.potentials.f), bits(&seq.potentials.f));
    assert_eq!(bits(&par.potentials.g), bits(&seq.potentials.g));
    assert_eq!(par.report.primal_objective.to_bits(), seq.report.primal_objective.to_bits());
}

/// Serde forms: the existing names unchanged, the elastic cost as a tagged object; invalid
/// parameters are errors, not NaN.
#[test]
fn serde_forms_and_validation() {
    assert_eq!(serde_json::to_string(&Cost::SqEuclidean).unwrap(), "\"sqeuclidean\"");
    assert_eq!(serde_json::to_string(&Cost::HalfSqEuclidean).unwrap(), "\"half_sqeuclidean\"");
    let e = Cost::Elastic { gamma: 0.5, penalty: Penalty::SmoothedL0 { sigma: 2.0 } };
    let s = serde_json::to_string(&e).unwrap();
    assert_eq!(s, r#"{"elastic":{"gamma":0.5,"penalty":{"type":"smoothed_l0","sigma":2.0}}}"#);
    assert_eq!(serde_json::from_str::<Cost>(&s).unwrap(), e);
    let (a, b) = (cloud(10, 2, 3, 0.0), cloud(10, 2, 4, 0.0));
    let bad = Cost::Elastic { gamma: -1.0, penalty: Penalty::L1 };
    let err = ot::uot_clouds(&a, &b, &opts(0.1, None, bad)).unwrap_err().to_string();
    assert!(err.contains("gamma"), "{err}");
    let bad = Cost::Elastic { gamma: 1.0, penalty: Penalty::SmoothedL0 { sigma: 0.0 } };
    let err = ot::uot_clouds(&a, &b, &opts(0.1, None, bad)).unwrap_err().to_string();
    assert!(err.contains("sigma"), "{err}");
}
