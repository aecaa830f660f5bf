//! `advreact bench`: time one problem in this process and print one JSON line — the engine's side
//! of the peer benchmark (`scripts/bench_peers.sh` runs the same problems in POT / GeomLoss /
//! numpy, alternating with these). Medians over repetitions, plus the process's peak resident
//! memory (`VmHWM`), so memory-flat claims can be checked from outside.
//!
//! Problems (points are deterministic pseudo-random clouds from the seed):
//! - `mmd`: exact weighted MMD² between two clouds of `n` and `m` points (3 kernel sums);
//! - `usd-step`: one Sobolev–Fisher step (critic solve + evaluation) with `n` particles, `m`
//!   target samples and `features` random features, α = 1, conserving.

use crate::error::{ConfigError, Error};
use crate::field::sobolev_fisher::{SobolevFisher, SobolevFisherCfg};
use crate::field::{EvalCtx, Field};
use crate::metrics::mmd_terms;
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use rand_distr::{Distribution, StandardNormal};
use std::time::Instant;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub problem: String,
    pub n: usize,
    pub m: usize,
    pub d: usize,
    pub features: usize,
    pub reps: usize,
    pub seed: u64,
}

/// A Gaussian cloud `N(shift·1, I)` of `n` points with uniform weights summing to 1.
pub fn gaussian_cloud(n: usize, d: usize, shift: f64, seed: u64, role: u64) -> Cloud {
    let mut r = rng::stream(seed, Purpose::Analysis, role, 0);
    let x: Vec<f64> = (0..n * d)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut r);
            z + shift
        })
        .collect();
    Cloud::uniform(d, x, 1.0)
}

/// Peak resident memory of this process in bytes (`VmHWM`), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        0.5 * (v[k / 2 - 1] + v[k / 2])
    }
}

/// Time `f` `reps` times after one warm-up; returns the per-run seconds.
pub fn time_reps(reps: usize, mut f: impl FnMut() -> Result<f64, Error>) -> Result<(Vec<f64>, f64), Error> {
    let mut check = f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        check = f()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    Ok((times, check))
}

/// Run a benchmark; returns the JSON line.
pub fn run_bench(b: &BenchSpec) -> Result<String, Error> {
    let bad = |k: &str, m: String| -> Error { ConfigError::new("<cli>", k, m).into() };
    if b.n == 0 || b.m == 0 || b.d == 0 {
        return Err(bad("--n/--m/--d", "must be ≥ 1".into()));
    }
    let x = gaussian_cloud(b.n, b.d, 0.0, b.seed, 0);
    let y = gaussian_cloud(b.m, b.d, 0.5, b.seed, 1);
    let (times, check, pairs) = match b.problem.as_str() {
        "mmd" => {
            let (t, c) = time_reps(b.reps, || Ok(mmd_terms(b.d, &x.x, &x.w, &y.x, &y.w, 1.0).mmd2))?;
            (t, c, (b.n * b.n + b.m * b.m + b.n * b.m) as f64)
        }
        "usd-step" => {
            let cfg = SobolevFisherCfg { features: b.features, bandwidth: 1.0, ..Default::default() };
            let mut f = SobolevFisher::new(cfg, b.d, &y, b.seed).map_err(Error::from)?;
            let mut u = vec![0.0; b.n * b.d];
            let mut g = vec![0.0; b.n];
            let (t, c) = time_reps(b.reps, || {
                let ctx = EvalCtx { step: 0, t: 0.0, dim: b.d, x: &x.x, w: &x.w, mass: 1.0, target: &y };
                f.solve(0, &x.x, &x.w)?;
                u.iter_mut().for_each(|v| *v = 0.0);
                g.iter_mut().for_each(|v| *v = 0.0);
                f.eval(&ctx, &mut u, &mut g)?;
                Ok(u[0])
            })?;
            (t, c, 0.0)
        }
        other => return Err(bad("problem", format!("unknown '{other}'; known: mmd, usd-step"))),
    };
    let med = median(times.clone());
    let mut v = serde_json::json!({
        "engine": "advreact",
        "problem": b.problem,
        "n": b.n, "m": b.m, "d": b.d,
        "threads": rayon::current_num_threads(),
        "reps": times.len(),
        "median_s": med,
        "min_s": times.iter().cloned().fold(f64::INFINITY, f64::min),
        "peak_rss_mb": peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        "check": check,
    });
    if pairs > 0.0 {
        v["pairs_per_s"] = serde_json::json!(pairs / med);
    }
    if b.problem == "usd-step" {
        v["features"] = serde_json::json!(b.features);
    }
    Ok(v.to_string())
}
