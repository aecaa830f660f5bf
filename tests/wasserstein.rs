//! Exact and entropic Wasserstein distances (`metrics::wasserstein`) against POT's `ot.emd2` /
//! `ot.sinkhorn2` fixtures, closed-form Gaussian W2, and invariances.

use advreact::metrics::wasserstein::{
    network_simplex, sinkhorn, sorted_1d, wasserstein, Method, Order, Solver, WassersteinOpts,
    WassersteinResult,
};
use advreact::Cloud;
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../shared/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn rows(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().flat_map(f64s).collect()
}

fn matrix(v: &Value) -> DMatrix<f64> {
    let r: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    DMatrix::from_fn(r.len(), r.len(), |i, j| r[i][j])
}

struct Case {
    name: String,
    a: Cloud,
    b: Cloud,
    c: Value,
}

fn emd_cases() -> Vec<Case> {
    let f = fixture("emd.json");
    f["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let d = c["d"].as_u64().unwrap() as usize;
            Case {
                name: c["name"].as_str().unwrap().to_string(),
                a: Cloud::new(d, rows(&c["x"]), f64s(&c["a"])).unwrap(),
                b: Cloud::new(d, rows(&c["y"]), f64s(&c["b"])).unwrap(),
                c: c.clone(),
            }
        })
        .collect()
}

fn solve(a: &Cloud, b: &Cloud, order: Order, solver: Solver) -> WassersteinResult {
    let o = WassersteinOpts { solver, ..Default::default() };
    wasserstein(a, b, order, &o).unwrap()
}

/// Relative agreement `|got − want| ≤ tol·|want|` (all fixture values are O(1), none is 0).
fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{what}: got {got:.17e}, want {want:.17e}, rel err {:.2e} > {tol:e}",
        ((got - want) / want).abs()
    );
}

/// Largest per-point deviation of the plan's marginals from the normalised weights.
fn max_marginal_dev(r: &WassersteinResult, a: &Cloud, b: &Cloud) -> f64 {
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    for &(i, j, t) in &r.plan {
        assert!(t > 0.0);
        ra[i] += t;
        rb[j] += t;
    }
    let (ma, mb) = (a.mass(), b.mass());
    let da = ra.iter().zip(&a.w).map(|(r, w)| (r - w / ma).abs());
    let db = rb.iter().zip(&b.w).map(|(r, w)| (r - w / mb).abs());
    da.chain(db).fold(0.0, f64::max)
}

/// Every `emd.json` case, W2² and W1, by the network simplex and by the automatic choice (the
/// sorted solver in 1-D), to 1e-9 relative. Plans: marginals equal the weights to 1e-12 per
/// point, at most n + m − 1 entries.
#[test]
fn emd_fixture_exact_values_and_plans() {
    for c in emd_cases() {
        let (n, m) = (c.a.len(), c.b.len());
        for (order, key) in [(Order::W2, "W2sq"), (Order::W1, "W1")] {
            let want = c.c[key].as_f64().unwrap();
            for solver in [Solver::NetworkSimplex, Solver::Auto] {
                let r = solve(&c.a, &c.b, order, solver);
                let what = format!("{} {key} {solver:?}", c.name);
                assert_eq!(r.method, Method::Exact);
                assert_rel(r.cost, want, 1e-9, &what);
                let p = if order == Order::W2 { 2.0 } else { 1.0 };
                assert_rel(r.value.powf(p), want, 1e-9, &what);
                assert!(r.plan.len() < n + m, "{what}: {} plan entries", r.plan.len());
                let dev = max_marginal_dev(&r, &c.a, &c.b);
                assert!(dev <= 1e-12, "{what}: marginal deviation {dev:e}");
                assert!(r.marginal_error <= 1e-12);
                assert!((r.mass_a - 1.0).abs() < 1e-12 && (r.mass_b - 1.0).abs() < 1e-12);
            }
        }
    }
}

/// The O(n log n) sorted solver against the fixture's 1-D cross-checks (`W2sq_1d_check`,
/// `W1_1d_check`, from `ot.wasserstein_1d`), 1e-9 relative.
#[test]
fn sorted_1d_matches_fixture_1d_checks() {
    let mut seen = 0;
    for c in emd_cases() {
        for (order, key) in [(Order::W2, "W2sq_1d_check"), (Order::W1, "W1_1d_check")] {
            let Some(want) = c.c.get(key).and_then(Value::as_f64) else {
                continue;
            };
            seen += 1;
            let r = solve(&c.a, &c.b, order, Solver::Sorted1d);
            assert_rel(r.cost, want, 1e-9, &format!("{} {key}", c.name));
        }
    }
    assert_eq!(seen, 4);
}

/// Balanced log-domain Sinkhorn against POT's `sinkhorn2` (`sinkhorn2_linear` = ⟨T_ε, M⟩ on
/// `M = |x − y|²`) at the fixture's ε, 1e-9 relative. Both sides converge to marginal errors of
/// ~1e-13, so the linear cost agrees to ~1e-12·max M.
#[test]
fn entropic_matches_pot_sinkhorn2() {
    for c in emd_cases() {
        for e in c.c["entropic"].as_array().unwrap() {
            assert_eq!(e["cost"], "sqeuclidean");
            let eps = e["reg"].as_f64().unwrap();
            let o = WassersteinOpts {
                solver: Solver::Sinkhorn,
                eps: Some(eps),
                tol: 1e-13,
                max_iter: 50_000,
                ..Default::default()
            };
            let r = wasserstein(&c.a, &c.b, Order::W2, &o).unwrap();
            assert_eq!(r.method, Method::Entropic { eps });
            assert!(r.plan.is_empty());
            assert!(r.marginal_error < 1e-12, "{}: {}", c.name, r.marginal_error);
            let want = e["sinkhorn2_linear"].as_f64().unwrap();
            assert_rel(r.cost, want, 1e-9, &format!("{} entropic ε = {eps}", c.name));
        }
    }
}

/// Above the exact limit `Auto` switches to Sinkhorn and says so. Its value is the linear cost
/// of a (marginal-error ≤ tol) feasible coupling, hence ≥ OT − tol·max c, and by optimality of
/// `T_ε` for `⟨T,C⟩ + ε KL(T | a⊗b)`: `⟨T_ε, C⟩ ≤ OT + ε KL(T* | a⊗b) ≤ OT + ε min(H(a), H(b))`.
#[test]
fn entropic_above_limit_is_labelled_and_bracketed() {
    for c in emd_cases() {
        let exact = solve(&c.a, &c.b, Order::W2, Solver::NetworkSimplex).cost;
        let o = WassersteinOpts { exact_max_points: 10, eps_rel: 0.1, tol: 1e-10, ..Default::default() };
        let r = wasserstein(&c.a, &c.b, Order::W2, &o).unwrap();
        if c.a.dim == 1 {
            assert_eq!(r.method, Method::Exact, "1-D is always exact under Auto");
            continue;
        }
        let Method::Entropic { eps } = r.method else { panic!("{}: expected entropic", c.name) };
        let h = |w: &[f64]| -> f64 {
            let s: f64 = w.iter().sum();
            w.iter().filter(|v| **v > 0.0).map(|v| -(v / s) * (v / s).ln()).sum()
        };
        let bound = eps * h(&c.a.w).min(h(&c.b.w));
        // Slack for the marginal error (≤ 1e-10 in L1) times costs of at most ~30.
        let slack = 1e-8;
        assert!(r.cost >= exact - slack, "{}: {} < {exact}", c.name, r.cost);
        assert!(r.cost <= exact + bound + slack, "{}: {} > {exact} + {bound}", c.name, r.cost);
        assert!(r.cost > exact + 1e-3 * bound, "{}: entropic bias expected", c.name);
    }
}

/// Relabelling the points (with their weights) of either cloud changes nothing but the
/// summation order: 1e-12 relative; the plan is the relabelled plan's value.
#[test]
fn permutation_invariance() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for c in emd_cases() {
        let permute = |cl: &Cloud, rng: &mut ChaCha8Rng| {
            let mut idx: Vec<usize> = (0..cl.len()).collect();
            rand::seq::SliceRandom::shuffle(&mut idx[..], rng);
            let x = idx.iter().flat_map(|&i| cl.point(i).to_vec()).collect();
            let w = idx.iter().map(|&i| cl.w[i]).collect();
            Cloud::new(cl.dim, x, w).unwrap()
        };
        let pa = permute(&c.a, &mut rng);
        let pb = permute(&c.b, &mut rng);
        for order in [Order::W1, Order::W2] {
            for solver in [Solver::NetworkSimplex, Solver::Auto] {
                let r0 = solve(&c.a, &c.b, order, solver).cost;
                let r1 = solve(&pa, &pb, order, solver).cost;
                assert_rel(r1, r0, 1e-12, &format!("{} {order:?} permuted", c.name));
                // Swapping the roles of the two clouds: W is symmetric.
                let r2 = solve(&c.b, &c.a, order, solver).cost;
                assert_rel(r2, r0, 1e-12, &format!("{} {order:?} swapped", c.name));
            }
        }
    }
}

/// `W(μ, μ) = 0` exactly for the exact solvers (the identity plan has cost 0 and the optimum
/// is ≤ that; the tolerance below admits only pricing round-off, 1e-12·max c).
#[test]
fn distance_to_itself_is_zero() {
    for c in emd_cases() {
        for cl in [&c.a, &c.b] {
            for order in [Order::W1, Order::W2] {
                for solver in [Solver::NetworkSimplex, Solver::Auto] {
                    let r = solve(cl, cl, order, solver);
                    assert!(r.cost.abs() <= 1e-12, "{} {order:?}: {}", c.name, r.cost);
                    assert!(max_marginal_dev(&r, cl, cl) <= 1e-12);
                }
            }
        }
    }
}

/// Zero weights and duplicate points: adding zero-mass points, or splitting a point into
/// duplicates sharing its mass, leaves W unchanged (1e-12 relative); unnormalised inputs are
/// normalised and their masses reported.
#[test]
fn zero_weights_duplicates_and_normalisation() {
    for c in emd_cases() {
        let d = c.a.dim;
        // a': every point of a duplicated with its weight split 1/3 : 2/3, plus a zero-weight
        // far-away point; b': weights scaled by 7 and two zero-weight copies of b's first point.
        let mut xa = Vec::new();
        let mut wa = Vec::new();
        for i in 0..c.a.len() {
            xa.extend_from_slice(c.a.point(i));
            wa.push(c.a.w[i] / 3.0);
            xa.extend_from_slice(c.a.point(i));
            wa.push(c.a.w[i] * 2.0 / 3.0);
        }
        xa.extend(vec![50.0; d]);
        wa.push(0.0);
        let mut xb = c.b.x.clone();
        let mut wb: Vec<f64> = c.b.w.iter().map(|w| 7.0 * w).collect();
        for _ in 0..2 {
            xb.extend_from_slice(c.b.point(0));
        }
        wb.extend([0.0, 0.0]);
        let a2 = Cloud::new(d, xa, wa).unwrap();
        let b2 = Cloud::new(d, xb, wb).unwrap();
        for (order, key) in [(Order::W2, "W2sq"), (Order::W1, "W1")] {
            let want = c.c[key].as_f64().unwrap();
            for solver in [Solver::NetworkSimplex, Solver::Auto] {
                let r = solve(&a2, &b2, order, solver);
                assert_rel(r.cost, want, 1e-9, &format!("{} {key} {solver:?}", c.name));
                assert!((r.mass_b - 7.0).abs() < 1e-12);
                assert!(max_marginal_dev(&r, &a2, &b2) <= 1e-12);
                assert!(r.plan.len() < a2.len() + b2.len());
            }
        }
    }
}

/// In 1-D the network simplex and the sorted solver agree on larger random problems with
/// n ≠ m, ties and zero weights: 1e-12 relative.
#[test]
fn network_simplex_matches_sorted_in_1d() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n, m) = (700, 450);
    let mut u = |k: usize, s: f64| -> Vec<f64> {
        (0..k)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                (z * s * 8.0).round() / 8.0
            })
            .collect()
    };
    let x = u(n, 1.0);
    let y = u(m, 2.0);
    let mut wa: Vec<f64> = u(n, 1.0).iter().map(|v| v.abs()).collect();
    let wb: Vec<f64> = u(m, 1.0).iter().map(|v| v.abs()).collect();
    wa[0] = 1.0;
    let a = Cloud::new(1, x, wa).unwrap();
    let b = Cloud::new(1, y, wb).unwrap();
    for order in [Order::W1, Order::W2] {
        let ns = solve(&a, &b, order, Solver::NetworkSimplex);
        let so = solve(&a, &b, order, Solver::Sorted1d);
        assert_rel(ns.cost, so.cost, 1e-12, &format!("{order:?}"));
        assert!(max_marginal_dev(&ns, &a, &b) <= 1e-12);
        assert!(max_marginal_dev(&so, &a, &b) <= 1e-12);
        let (cost, plan) = sorted_1d(&a, &b, order).unwrap();
        assert_eq!(cost, so.cost);
        assert!(plan.len() < n + m);
    }
}

/// Bad inputs are typed errors, not panics.
#[test]
fn invalid_inputs_are_errors() {
    let ok = Cloud::new(2, vec![0.0, 0.0, 1.0, 1.0], vec![0.5, 0.5]).unwrap();
    let o = WassersteinOpts::default();
    let empty = Cloud::new(2, vec![], vec![]).unwrap();
    let other_dim = Cloud::new(1, vec![0.0], vec![1.0]).unwrap();
    // `Cloud::new` refuses these; the fields are public, so a struct literal can still make them.
    let negative = Cloud { dim: 2, x: vec![0.0, 0.0, 1.0, 1.0], w: vec![1.0, -0.5] };
    let massless = Cloud::new(2, vec![0.0, 0.0], vec![0.0]).unwrap();
    let nan = Cloud { dim: 2, x: vec![0.0, f64::NAN], w: vec![1.0] };
    for bad in [&empty, &other_dim, &negative, &massless, &nan] {
        assert!(wasserstein(&ok, bad, Order::W2, &o).is_err());
        assert!(wasserstein(bad, &ok, Order::W1, &o).is_err());
    }
    let sorted = WassersteinOpts { solver: Solver::Sorted1d, ..Default::default() };
    assert!(wasserstein(&ok, &ok, Order::W2, &sorted).is_err());
    // The single-solver entries check the same way.
    for bad in [&empty, &other_dim, &negative, &massless, &nan] {
        assert!(network_simplex(&ok, bad, Order::W2, None).is_err());
        assert!(sinkhorn(bad, &ok, Order::W1, &o, |_, _| {}).is_err());
    }
    assert!(sorted_1d(&ok, &ok, Order::W2).is_err());
    assert!(sorted_1d(&other_dim, &ok, Order::W1).is_err());
    let line_nan = Cloud { dim: 1, x: vec![f64::NAN], w: vec![1.0] };
    assert!(sorted_1d(&other_dim, &line_nan, Order::W1).is_err());
}

// ---------------------------------------------------------------------------------------------
// Gaussians: W2 of samples against the closed form
// ---------------------------------------------------------------------------------------------

/// Symmetric square root.
fn sqrtm(s: &DMatrix<f64>) -> DMatrix<f64> {
    let e = s.clone().symmetric_eigen();
    let r = e.eigenvalues.map(|l| l.max(0.0).sqrt());
    &e.eigenvectors * DMatrix::from_diagonal(&r) * e.eigenvectors.transpose()
}

/// Brenier map `T(x) = m2 + A (x − m1)` from N(m1, S1) to N(m2, S2):
/// `A = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}`.
fn brenier(s1: &DMatrix<f64>, s2: &DMatrix<f64>) -> DMatrix<f64> {
    let r1 = sqrtm(s1);
    let r1i = r1.clone().try_inverse().unwrap();
    let a = &r1i * sqrtm(&(&r1 * s2 * &r1)) * &r1i;
    (&a + a.transpose()) * 0.5
}

/// `n` points `m + L z`, `z ~ N(0, I)`, `L L^T = S` (Cholesky), seeded ChaCha8.
fn sample(n: usize, m: &DVector<f64>, s: &DMatrix<f64>, seed: u64) -> Cloud {
    let d = m.len();
    let l = s.clone().cholesky().unwrap().l();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z = DVector::from_fn(d, |_, _| StandardNormal.sample(&mut rng));
        x.extend((m + &l * z).iter());
    }
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0))
}

/// The plug-in estimate `Ŵ = W2²(μ_n, ν_n)` (exact, network simplex) of two independent
/// samples of size n against the Bures closed form `W2sq` of every `gaussian_w2.json` case.
///
/// The tolerance comes from the decomposition `Ŵ − W2² = (L − W2²) + D`, where
/// `L = mean φ(X_i) + mean ψ(Y_j)` uses the closed-form Kantorovich potentials of the Gaussian
/// problem, `φ(x) = |x|² − 2u(x)`, `ψ(y) = |y|² − 2u*(y)`, `u(x) = ½(x−m1)ᵀA(x−m1) + m2·x`,
/// `u*(y) = m1·(y−m2) + ½(y−m2)ᵀA⁻¹(y−m2)`:
///
/// * `E L = W2²` (strong duality) and `L` is a mean of i.i.d. terms: by the CLT it is within
///   `4σ̂` of `W2²`, `σ̂² = (var φ(X) + var ψ(Y))/n` estimated from the sample (a 4σ miss has
///   probability ≈ 6e-5 per case; the seeds are fixed, so the test is deterministic).
/// * `D = Ŵ − L ≥ 0` *exactly* for an optimal plan, because `φ(x) + ψ(y) ≤ |x − y|²` by
///   Fenchel–Young, so `(φ, ψ)` is feasible for the empirical dual: this is a check of the
///   solver's optimality from below (to round-off, 1e-12·max c). From above, `D` is the plug-in
///   bias, which decays at the rate of empirical OT: `log n / n` for d ≤ 2 and `n^{−2/d}` for
///   d ≥ 3 (Fournier & Guillin 2015; Chizat et al. 2020). We check `D(500)/D(2000)` lies within
///   a factor 2 of the predicted ratio (3.27 for d ≤ 2, 4^{2/d} otherwise) — a suboptimal plan
///   would inflate `D` without following the rate.
///
/// So `|Ŵ − W2²| ≤ 4σ̂ + D(2000)`. For the d ≤ 3 cases we also compare with POT's plug-in value
/// on its own 1500-point samples: `|Ŵ − Ŵ_POT| ≤ 4 sqrt(σ̂²_2000 + σ̂²_1500) + D(500)`
/// (`D(1500) < D(500)`, `σ̂²_1500 = σ̂²_2000 · 2000/1500`).
#[test]
fn gaussian_samples_approach_closed_form_w2() {
    let f = fixture("gaussian_w2.json");
    for (k, c) in f["cases"].as_array().unwrap().iter().enumerate() {
        let name = c["name"].as_str().unwrap();
        let m1 = DVector::from_vec(f64s(&c["m1"]));
        let m2 = DVector::from_vec(f64s(&c["m2"]));
        let (s1, s2) = (matrix(&c["S1"]), matrix(&c["S2"]));
        let d = m1.len();
        let w2sq = c["W2sq"].as_f64().unwrap();
        let a_map = brenier(&s1, &s2);
        let a_inv = a_map.clone().try_inverse().unwrap();
        let phi = |x: &DVector<f64>| {
            let dx = x - &m1;
            x.dot(x) - (dx.dot(&(&a_map * &dx)) + 2.0 * m2.dot(x))
        };
        let psi = |y: &DVector<f64>| {
            let dy = y - &m2;
            y.dot(y) - (2.0 * m1.dot(&dy) + dy.dot(&(&a_inv * &dy)))
        };
        // The potentials are tight on the graph of the map: φ(x) + ψ(Tx) = |x − Tx|².
        let x0 = DVector::from_fn(d, |i, _| 0.3 * i as f64 - 0.2);
        let tx0 = &m2 + &a_map * (&x0 - &m1);
        let gap0 = phi(&x0) + psi(&tx0) - (&x0 - &tx0).norm_squared();
        assert!(gap0.abs() < 1e-10, "{name}: potentials not tight ({gap0})");

        // (Ŵ, σ̂, D) for one pair of samples of size n.
        let one = |n: usize, seed: u64, solver: Solver| {
            let xs = sample(n, &m1, &s1, seed);
            let ys = sample(n, &m2, &s2, seed + 1);
            let r = solve(&xs, &ys, Order::W2, solver);
            let pv: Vec<f64> = (0..n).map(|i| phi(&DVector::from_row_slice(xs.point(i)))).collect();
            let qv: Vec<f64> = (0..n).map(|j| psi(&DVector::from_row_slice(ys.point(j)))).collect();
            let ((mp, vp), (mq, vq)) = (mean_var(&pv), mean_var(&qv));
            let sd = ((vp + vq) / n as f64).sqrt();
            let gap = r.cost - (mp + mq);
            let maxc = xs.x.iter().chain(&ys.x).fold(0.0f64, |s, v| s.max(v.abs()));
            assert!(
                gap >= -1e-12 * 4.0 * d as f64 * maxc * maxc,
                "{name} n={n}: Ŵ below dual bound by {gap:e}"
            );
            if d == 1 && solver == Solver::NetworkSimplex {
                let so = solve(&xs, &ys, Order::W2, Solver::Sorted1d).cost;
                assert_rel(r.cost, so, 1e-12, &format!("{name} n={n} sorted vs simplex"));
            }
            (r.cost, sd, gap)
        };
        let mut gaps = Vec::new();
        let mut last = (0.0, 0.0);
        for n in [500usize, 2000] {
            let seed = 1000 * k as u64 + n as u64;
            let (w_hat, sd, mut gap) = one(n, seed, Solver::NetworkSimplex);
            if d == 1 {
                // In 1-D the bias comes from the extreme order statistics and one sample's D
                // is noisy: average it over 32 sample pairs (sorted solver, O(n log n)).
                gap += (1..32).map(|s| one(n, seed + 2 * s, Solver::Sorted1d).2).sum::<f64>();
                gap /= 32.0;
            }
            eprintln!("{name} n={n}: Ŵ {w_hat:.5} W2² {w2sq:.5} σ̂ {sd:.4} D {gap:.5}");
            gaps.push(gap);
            last = (w_hat, sd);
        }
        // Rate of the plug-in bias: log log n / n (d = 1, Gaussian tails; Bobkov & Ledoux
        // 2019), log n / n (d = 2), n^{−2/d} (d ≥ 3).
        let predicted = match d {
            1 => 4.0 * 500f64.ln().ln() / 2000f64.ln().ln(),
            2 => 4.0 * 500f64.ln() / 2000f64.ln(),
            _ => 4f64.powf(2.0 / d as f64),
        };
        let ratio = gaps[0] / gaps[1];
        assert!(
            ratio > predicted / 2.0 && ratio < predicted * 2.0,
            "{name}: D(500)/D(2000) = {ratio:.3}, predicted {predicted:.3}"
        );
        let (w_hat, sd) = last;
        assert!(
            (w_hat - w2sq).abs() <= 4.0 * sd + gaps[1],
            "{name}: Ŵ {w_hat} vs W2² {w2sq}: |Δ| > 4σ̂ ({sd}) + D ({})",
            gaps[1]
        );
        if d <= 3 {
            let pot = &c["empirical_emd2_check"];
            let pot_w = pot["W2sq_emd2"].as_f64().unwrap();
            let pot_n = pot["n_samples"].as_f64().unwrap();
            let sd_pair = sd * (1.0 + 2000.0 / pot_n).sqrt();
            assert!(
                (w_hat - pot_w).abs() <= 4.0 * sd_pair + gaps[0],
                "{name}: Ŵ {w_hat} vs POT plug-in {pot_w}"
            );
        }
    }
}
