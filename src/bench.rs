//! `advreact bench`: time one problem in this process and print one JSON line — the engine's side
//! of the peer benchmark (`scripts/bench_peers.sh` runs the same problems in POT / GeomLoss /
//! numpy, alternating with these). Medians over repetitions (after one warm-up run), plus the
//! process's peak resident memory (`VmHWM`), so memory-flat claims can be checked from outside.
//! The peak is reset (`/proc/self/clear_refs`) once the problem is set up, so it covers the timed
//! runs and the resident inputs, not set-up buffers such as the median-cost sample
//! (`"peak_rss_scope": "timed"`; `"process"` where the reset is unavailable).
//!
//! Problems (points are deterministic pseudo-random clouds from the seed: `n` source points
//! `N(0, I_d)`, `m` target points `N(0.5·1, I_d)`, uniform weights `1/n`, `1/m`):
//! - `mmd`: exact weighted MMD² between the two clouds (3 kernel sums, bandwidth 1);
//! - `usd-step`: one Sobolev–Fisher step (critic solve + evaluation) with `n` particles, `m`
//!   target samples and `features` random features, α = 1, conserving;
//! - `uot-iter`: one plain log-domain unbalanced Sinkhorn iteration ([`sinkhorn_step`]: the `f`
//!   and the `g` half-update, two streamed passes over the `n·m` pairs), cost `|x − y|²`, KL
//!   marginals `τ_a = τ_b = 1` (POT's `reg_m = 1`), `ε = 0.05 ×` the median cost ([`median_cost`],
//!   the rule `scripts/bench_peers.py` uses too). Each run does `iters` iterations from zero
//!   potentials; times are per iteration, `pairs_per_s` counts `2·n·m` pairs per iteration;
//! - `uot-solve`: a full [`solve`] of the same problem to tolerance 1e-6 on the relative marginal
//!   errors (default solver: translation step, adaptive over-relaxation, no ε-scaling); reports the
//!   iterations and the converged flag;
//! - `sinkhorn-div`: the debiased unbalanced Sinkhorn divergence `S(α, β)` and its gradient in the
//!   source positions, `∂S/∂x_i = a_i ∇φ(x_i)`, with GeomLoss's `p = 2, blur = 0.05, reach = 1,
//!   scaling = 0.5` in the engine's terms: cost `½|x − y|²`, `ε = blur²`, `ρ = reach²`, the three
//!   `OT_ε` solved from a cold start with the settings of the `wfr` field with
//!   `energy = "sinkhorn"` ([`SolverCfg::default`]: ε-scaling from the cost diameter by factor
//!   0.5 per iteration, tolerance 1e-6, at most 1000 iterations per solve) — what one step of the
//!   WFR–Sinkhorn flow costs from a cold start. Note that GeomLoss's `scaling = 0.5` halves the
//!   blur (ε by 0.25) per step and stops after its fixed schedule, while the engine iterates to
//!   the tolerance; the JSON reports the engine's iterations.
//! - `sinkhorn-div-annealed`: the same, with GeomLoss's fixed schedule instead of a tolerance —
//!   ε from the cost diameter bound `ε₀` down to `blur²` by the factor `scaling² = 0.25` per
//!   iteration, one iteration per ε and one more at the final ε, then stop — the same amount of
//!   work as `SamplesLoss(…, scaling = 0.5)`. Not converged: the JSON reports the marginal errors
//!   reached (relative L1) so the accuracy can be compared too.

use advreact::error::{ConfigError, Error};
use advreact::field::sobolev_fisher::{SobolevFisher, SobolevFisherCfg};
use advreact::field::wfr::SolverCfg;
use advreact::field::{EvalCtx, Field};
use advreact::metrics::mmd_between;
use advreact::ot::{
    cost_scale_bound, sinkhorn_divergence, sinkhorn_step, uot_clouds, Cost, DivergenceOptions, EpsScaling,
    Potentials, SinkhornOptions,
};
use advreact::particles::Cloud;
use advreact::rng::{self, Purpose};
use rand_distr::{Distribution, StandardNormal};
use serde_json::{json, Value};
use std::time::Instant;

/// The problems [`run_bench`] knows.
pub const PROBLEMS: &[&str] =
    &["mmd", "usd-step", "uot-iter", "uot-solve", "sinkhorn-div", "sinkhorn-div-annealed"];

/// At most this many points of each cloud enter the median cost ([`median_cost`]).
pub const MEDIAN_SAMPLE: usize = 2000;

/// GeomLoss's `blur`, `reach` and `scaling` of the `sinkhorn-div` problems (`p = 2`).
const BLUR: f64 = 0.05;
const REACH: f64 = 1.0;
const SCALING: f64 = 0.5;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub problem: String,
    pub n: usize,
    pub m: usize,
    pub d: usize,
    pub features: usize,
    pub reps: usize,
    /// Sinkhorn iterations per timed run (`uot-iter`).
    pub iters: usize,
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
    Cloud::uniform(d, x, 1.0).unwrap()
}

/// Peak resident memory of this process in bytes (`VmHWM`), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Reset the peak resident memory to the current resident memory (Linux ≥ 4.0); false if the
/// system refuses.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The median of `v` (mean of the two middle values for an even count, as `numpy.median`).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        0.5 * (v[k / 2 - 1] + v[k / 2])
    }
}

/// The median of `|x_i − y_j|²` over the first `min(n, 2000)` source and the first `min(m, 2000)`
/// target points (the clouds are i.i.d. draws, so a prefix is an unbiased, deterministic
/// subsample). Returns the median and whether it is over a subsample (false: the whole matrix,
/// then equal to `numpy.median` of the dense cost matrix).
pub fn median_cost(x: &Cloud, y: &Cloud) -> (f64, bool) {
    let d = x.dim;
    let (kn, km) = (x.len().min(MEDIAN_SAMPLE), y.len().min(MEDIAN_SAMPLE));
    let mut c = Vec::with_capacity(kn * km);
    for p in x.x.chunks_exact(d).take(kn) {
        c.extend(y.x.chunks_exact(d).take(km).map(|q| Cost::SqEuclidean.eval(p, q)));
    }
    (median(c), kn < x.len() || km < y.len())
}

/// Time `f` `reps` times after one warm-up; returns the per-run seconds.
pub fn time_reps(reps: usize, mut f: impl FnMut() -> Result<f64, Error>) -> Result<(Vec<f64>, f64), Error> {
    let mut check = f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
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
    if !PROBLEMS.contains(&b.problem.as_str()) {
        return Err(bad("problem", format!("unknown '{}'; known: {}", b.problem, PROBLEMS.join(", "))));
    }
    if b.iters == 0 {
        return Err(bad("--iters", "must be ≥ 1".into()));
    }
    if b.reps == 0 {
        return Err(bad("--reps", "must be ≥ 1, got 0 (no timed run)".into()));
    }
    let x = gaussian_cloud(b.n, b.d, 0.0, b.seed, 0);
    let y = gaussian_cloud(b.m, b.d, 0.5, b.seed, 1);
    let nm = (b.n * b.m) as f64;
    // Problem-specific fields of the JSON line.
    let mut extra = serde_json::Map::new();
    // Whether the peak memory was reset after the set-up (each problem does it just before timing).
    let rss_reset: bool;
    // The ε of the UOT problems, and the set-up done before the timed runs.
    let uot_opts = |extra: &mut serde_json::Map<String, Value>| {
        let (med, sub) = median_cost(&x, &y);
        let eps = 0.05 * med;
        extra.insert("eps".into(), json!(eps));
        extra.insert("eps_from".into(), json!(if sub { "subsample" } else { "full" }));
        extra.insert("eps_sample".into(), json!([b.n.min(MEDIAN_SAMPLE), b.m.min(MEDIAN_SAMPLE)]));
        extra.insert("tau".into(), json!(1.0));
        extra.insert("cost".into(), json!("sqeuclidean"));
        SinkhornOptions::kl(eps, 1.0, 1.0, Cost::SqEuclidean)
    };
    let (times, check, pairs) = match b.problem.as_str() {
        "mmd" => {
            rss_reset = reset_peak_rss();
            let (t, c) = time_reps(b.reps, || Ok(mmd_between(&x, &y, 1.0)?.mmd2))?;
            (t, c, (b.n * b.n + b.m * b.m + b.n * b.m) as f64)
        }
        "usd-step" => {
            let cfg = SobolevFisherCfg { features: b.features, bandwidth: 1.0, ..Default::default() };
            let mut f = SobolevFisher::new(cfg, b.d, &y, b.seed).map_err(Error::from)?;
            let exec = advreact::dist::Exec::default();
            let mut u = vec![0.0; b.n * b.d];
            let mut g = vec![0.0; b.n];
            rss_reset = reset_peak_rss();
            let (t, c) = time_reps(b.reps, || {
                let ctx = EvalCtx {
                    step: 0,
                    t: 0.0,
                    dim: b.d,
                    x: &x.x,
                    w: &x.w,
                    mass: 1.0,
                    target: &y,
                    exec: &exec,
                };
                f.solve(&exec, 0, &x.x, &x.w)?;
                u.iter_mut().for_each(|v| *v = 0.0);
                g.iter_mut().for_each(|v| *v = 0.0);
                f.eval(&ctx, &mut u, &mut g)?;
                Ok(u[0])
            })?;
            extra.insert("features".into(), json!(b.features));
            (t, c, 0.0)
        }
        "uot-iter" => {
            let opts = uot_opts(&mut extra);
            let mut pot = Potentials { f: vec![0.0; b.n], g: vec![0.0; b.m] };
            rss_reset = reset_peak_rss();
            let (t, c) = time_reps(b.reps, || {
                pot.f.fill(0.0);
                pot.g.fill(0.0);
                for _ in 0..b.iters {
                    sinkhorn_step(&x, &y, &opts, &mut pot)?;
                }
                Ok(pot.f[0])
            })?;
            extra.insert("iters".into(), json!(b.iters));
            // Per iteration.
            (t.iter().map(|s| s / b.iters as f64).collect(), c, 2.0 * nm)
        }
        "uot-solve" => {
            let opts = SinkhornOptions { tol: 1e-6, ..uot_opts(&mut extra) };
            extra.insert("tol".into(), json!(opts.tol));
            rss_reset = reset_peak_rss();
            let mut report = None;
            let (t, c) = time_reps(b.reps, || {
                let s = uot_clouds(&x, &y, &opts)?;
                let v = s.report.primal_objective;
                report = Some(s.report);
                Ok(v)
            })?;
            if let Some(r) = report {
                extra.insert("iterations".into(), json!(r.iterations));
                extra.insert("converged".into(), json!(r.converged));
                extra.insert("marginal_error".into(), json!(r.marginal_error_a.max(r.marginal_error_b)));
            }
            (t, c, 0.0)
        }
        "sinkhorn-div" | "sinkhorn-div-annealed" => {
            // The options of `WfrField` with `energy = "sinkhorn"` and its default solver; or
            // GeomLoss's fixed schedule (see the module doc).
            let s = SolverCfg::default();
            let mut opts = DivergenceOptions {
                eps: BLUR * BLUR,
                rho: Some(REACH * REACH),
                cost: Cost::HalfSqEuclidean,
                tol: s.tol,
                max_iter: s.max_iter,
                eps_scaling: s.eps_scaling,
                ..Default::default()
            };
            if b.problem == "sinkhorn-div-annealed" {
                let e0 = cost_scale_bound(&x, &y, opts.cost)?;
                let q = SCALING * SCALING;
                let steps = ((e0 / opts.eps).ln() / (1.0 / q).ln()).ceil().max(0.0) as usize;
                opts.eps_scaling = Some(EpsScaling { start: Some(e0), factor: q });
                opts.max_iter = steps + 1;
                extra.insert("schedule_iterations".into(), json!(steps + 1));
            }
            extra.insert("eps".into(), json!(opts.eps));
            extra.insert("rho".into(), json!(opts.rho));
            extra.insert("cost".into(), json!("half_sqeuclidean"));
            extra.insert("tol".into(), json!(opts.tol));
            extra.insert("eps_scaling_factor".into(), json!(opts.eps_scaling.map(|e| e.factor)));
            rss_reset = reset_peak_rss();
            let mut grad = vec![0.0; b.n * b.d];
            let mut last = None;
            let (t, c) = time_reps(b.reps, || {
                let sd = sinkhorn_divergence(&x, &y, &opts, None)?;
                let (_, g) = sd.first_variation(&x.x, &x, &y, &opts)?;
                // ∂S/∂x_i = a_i ∇φ(x_i) (what GeomLoss's backward returns).
                for ((gi, gp), w) in grad.chunks_exact_mut(b.d).zip(g.chunks_exact(b.d)).zip(&x.w) {
                    gi.iter_mut().zip(gp).for_each(|(o, v)| *o = w * v);
                }
                let v = sd.value;
                last = Some(sd);
                Ok(v)
            })?;
            if let Some(sd) = last {
                let its = [&sd.report_ab, &sd.report_aa, &sd.report_bb].map(|r| r.iterations);
                extra.insert("iterations".into(), json!({"ab": its[0], "aa": its[1], "bb": its[2]}));
                extra.insert("converged".into(), json!(sd.converged()));
                let errs = [&sd.report_ab, &sd.report_aa, &sd.report_bb]
                    .map(|r| r.marginal_error_a.max(r.marginal_error_b));
                extra.insert("marginal_error".into(), json!({"ab": errs[0], "aa": errs[1], "bb": errs[2]}));
            }
            extra.insert("grad_norm".into(), json!(grad.iter().map(|v| v * v).sum::<f64>().sqrt()));
            (t, c, 0.0)
        }
        _ => unreachable!("checked against PROBLEMS"),
    };
    let med = median(times.clone());
    let scope = if rss_reset { "timed" } else { "process" };
    let mut v = json!({
        "engine": "advreact",
        "problem": b.problem,
        "n": b.n, "m": b.m, "d": b.d,
        "threads": rayon::current_num_threads(),
        "reps": times.len(),
        "median_s": med,
        "min_s": times.iter().cloned().fold(f64::INFINITY, f64::min),
        "peak_rss_mb": peak_rss_bytes().map(|b| b as f64 / 1048576.0),
        "peak_rss_scope": scope,
        "check": check,
    });
    if pairs > 0.0 {
        v["pairs_per_s"] = json!(pairs / med);
    }
    for (k, val) in extra {
        v[k] = val;
    }
    Ok(v.to_string())
}
