//! Metrics above the exact-solver limit (issue 13, point 6): the entropic `W1`/`W2` path finishes,
//! its value lies within its certified bound of the exact value, and the infer metrics name the
//! estimator of each number. The limit is a parameter, so a problem "just above" it is small here.

use advreact::infer::{self, evaluate_with, Metrics};
use advreact::metrics::wasserstein::{wasserstein, Estimator, Order, Solver, WassersteinOpts};
use advreact::Cloud;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::Value;

/// `n` points of N(mean, std² I) in 2-D, unit weights (cells).
fn gaussian(n: usize, mean: [f64; 2], std: f64, seed: u64) -> Cloud {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..2 * n)
        .map(|k| {
            let z: f64 = StandardNormal.sample(&mut r);
            mean[k % 2] + std * z
        })
        .collect();
    Cloud::new(2, x, vec![1.0; n]).unwrap()
}

/// A two-cluster prediction against a one-cluster truth (the W distances are not tiny).
fn clouds() -> (Cloud, Cloud) {
    let pred = infer::pooled(&gaussian(260, [0.0, 0.0], 0.3, 1), &gaussian(160, [1.5, 0.5], 0.2, 2));
    let truth = gaussian(380, [0.6, 0.1], 0.5, 3);
    (pred, truth)
}

/// A limit of 390² = 152 100 pairs, just below the problem's 420 × 380 = 159 600, so `Auto` takes
/// the entropic path.
fn above_limit() -> WassersteinOpts {
    WassersteinOpts { exact_max_points: 390, ..Default::default() }
}

/// `Auto` counts pairs: exact at and below `exact_max_points²` pairs, entropic above, also when
/// the larger cloud exceeds the limit (a 5788 × 3781 hold-out is exact by default).
#[test]
fn auto_limit_counts_pairs() {
    let (pred, truth) = clouds();
    let at = WassersteinOpts { exact_max_points: 400, ..Default::default() }; // 160 000 ≥ 159 600
    assert!(wasserstein(&pred, &truth, Order::W2, &at).unwrap().estimator.is_exact());
    let narrow = WassersteinOpts { exact_max_points: 410, ..Default::default() }; // 420 > 410 points
    assert!(wasserstein(&pred, &truth, Order::W2, &narrow).unwrap().estimator.is_exact());
    assert!(!wasserstein(&pred, &truth, Order::W2, &above_limit()).unwrap().estimator.is_exact());
}

/// For `W1` (private Sinkhorn, early stop) and `W2` (`ot::sinkhorn::solve`): the exact value
/// (network simplex) lies inside the certified bracket, `|value − exact| ≤ error_bound`, the bracket
/// is narrow (≤ 5 % of the value: a bound that could not fail would be useless) and the value does
/// differ from the exact one (the entropic bias is real, so the bracket is doing work).
#[test]
fn entropic_path_is_within_its_stated_bound_of_exact() {
    let (pred, truth) = clouds();
    for order in [Order::W1, Order::W2] {
        let exact_opts = WassersteinOpts { solver: Solver::NetworkSimplex, ..Default::default() };
        let exact = wasserstein(&pred, &truth, order, &exact_opts).unwrap();
        assert_eq!(exact.estimator, Estimator::NetworkSimplex);
        let r = wasserstein(&pred, &truth, order, &above_limit()).unwrap();
        let Estimator::Entropic {
            eps, value_lower, value_upper, error_bound, cost_lower, cost_upper, ..
        } = r.estimator
        else {
            panic!("{order:?}: expected the entropic estimator above the limit, got {:?}", r.estimator);
        };
        assert!(eps > 0.0);
        assert!(
            cost_lower <= exact.cost && exact.cost <= cost_upper,
            "{order:?}: {} ∉ [{cost_lower}, {cost_upper}]",
            exact.cost
        );
        assert!(value_lower <= exact.value && exact.value <= value_upper, "{order:?}");
        assert!((r.value - exact.value).abs() <= error_bound, "{order:?}: {} vs {}", r.value, exact.value);
        assert!(error_bound <= 0.05 * exact.value, "{order:?}: bound {error_bound} vs value {}", exact.value);
        assert!((r.value - exact.value).abs() > 1e-6 * exact.value, "{order:?}: no entropic bias?");
    }
}

/// The same clouds on 1 and 3 threads: bit-identical values and bounds (reproducible whatever
/// the thread count).
#[test]
fn entropic_path_is_reproducible_across_thread_counts() {
    let (pred, truth) = clouds();
    let run = |threads: usize, order: Order| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| wasserstein(&pred, &truth, order, &above_limit()).unwrap())
    };
    for order in [Order::W1, Order::W2] {
        let (a, b) = (run(1, order), run(3, order));
        assert_eq!(a.value.to_bits(), b.value.to_bits(), "{order:?}");
        assert_eq!(a.estimator, b.estimator, "{order:?}");
    }
}

fn estimators_json(m: &Metrics) -> Value {
    serde_json::to_value(m).unwrap()["estimators"].clone()
}

/// The infer metrics (written to metrics.json / forward.json) name the estimator of every number:
/// `network_simplex` below the limit, `entropic` with its ε and error bound above it; `exact` agrees.
#[test]
fn metrics_json_names_the_estimator() {
    let (pred, truth) = clouds();
    let below = evaluate_with(&pred, &truth, None, &WassersteinOpts::default()).unwrap();
    assert!(below.exact);
    let e = estimators_json(&below);
    assert_eq!(e["w1"]["estimator"], "network_simplex");
    assert_eq!(e["w2"]["estimator"], "network_simplex");
    assert_eq!(e["mmd"], "exact");

    let above = evaluate_with(&pred, &truth, None, &above_limit()).unwrap();
    assert!(!above.exact);
    let e = estimators_json(&above);
    for (k, v) in [("w1", above.w1), ("w2", above.w2)] {
        assert_eq!(e[k]["estimator"], "entropic", "{k}");
        assert!(e[k]["eps"].as_f64().unwrap() > 0.0, "{k}");
        let b = e[k]["error_bound"].as_f64().unwrap();
        assert!(b > 0.0 && b < 0.05 * v, "{k}: {b}");
        let (lo, hi) = (e[k]["value_lower"].as_f64().unwrap(), e[k]["value_upper"].as_f64().unwrap());
        assert!(lo <= v && v <= hi, "{k}: {v} ∉ [{lo}, {hi}]");
        let exact = if k == "w1" { below.w1 } else { below.w2 };
        assert!(lo <= exact && exact <= hi, "{k}: exact {exact} ∉ [{lo}, {hi}]");
    }
}

/// `advreact infer` on a full shipped data set (no `--subsample`): every phase prints a start and
/// an end line on stderr (also when stderr is not a terminal), and `metrics.json` names the
/// estimator of every number.
#[test]
fn cli_infer_prints_phases_and_names_estimators() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/three_gene_2d/three_gene_2d.csv");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("held_out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_advreact"))
        .args(["infer", data.to_str().unwrap(), "--holdout", "2", "--method", "wot", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // Loading prints only its done line (a bad file's error stays the only line on stderr).
    let loading: Vec<&str> = err.lines().filter(|l| l.starts_with("loading ")).collect();
    assert!(loading.len() == 1 && loading[0].contains(": done in ") && loading[0].contains("cells"), "{err}");
    for phase in ["predict: wot t = 1 → 3 (442 → 690 cells)", "metrics: W1, W2, MMD (690 vs 530 points)"]
    {
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(phase)).collect();
        assert_eq!(lines.len(), 2, "{phase}: {err}");
        assert!(lines[0].ends_with('…') && lines[1].contains(": done in "), "{phase}: {err}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let e = &v["result"]["metrics"]["estimators"];
    assert_eq!(e["w1"]["estimator"], "network_simplex");
    assert_eq!(e["w2"]["estimator"], "network_simplex");
    assert_eq!(e["mmd"], "exact");
    assert_eq!(v["result"]["metrics"]["exact"], true);
}
