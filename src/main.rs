//! `advreact` command line: run scenarios, validate them, compare point clouds.

use advreact::compare::compare_tables;
use advreact::data::read_snapshot;
use advreact::error::{ConfigError, Error};
use advreact::ot::{
    export::report_json, solve_partial, uot_clouds, write_solution, Cost, EpsScaling, Marginal, MeasureRef,
    PlanExport, SinkhornOptions, UotSolution,
};
use advreact::particles::Cloud;
use advreact::run::{
    resume_run, run_scenario, write_comparison, write_folder_atomically, RunOptions, RunOutcome,
};
use advreact::scenario::{self, Overrides};
use advreact::stepper::StopReason;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Ctrl-C: the first asks the run to stop after the current step (checkpoint + summary with stop
/// reason `interrupted`); a second one exits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the current step and writing a checkpoint (Ctrl-C again to quit now)"
        );
    });
    flag
}

/// A time for the console: at most 10 significant digits (`7.6`, not `7.6000000000000005`).
fn fmt_time(t: f64) -> String {
    let s = format!("{t:.9e}");
    s.parse::<f64>().map(advreact::format::num).unwrap_or(s)
}

/// Print a one-line report of a finished run (and its guard warnings on stderr); true if it
/// ended well.
fn report(r: &RunOutcome) -> bool {
    let s = &r.summary;
    let metrics: Vec<String> = s.final_metrics.iter().map(|(k, v)| format!("{k}={v:.6e}")).collect();
    println!(
        "{}: {} after {} steps (t = {}), n = {}, {}",
        r.dir.display(),
        s.stop_reason,
        s.steps,
        fmt_time(s.t),
        s.n,
        metrics.join(", ")
    );
    for w in &s.warnings {
        eprintln!("warning: {}: {w}", r.dir.display());
    }
    if let Some(e) = &s.error {
        eprintln!("error: {}: {e}", r.dir.display());
    }
    if s.stop_reason == StopReason::Interrupted {
        eprintln!("interrupted: continue with `advreact resume {}`", r.dir.display());
    }
    matches!(s.stop_reason, StopReason::Completed | StopReason::Extinct)
}

#[derive(Parser)]
#[command(
    name = "advreact",
    version,
    about = "Advection–reaction particle dynamics for unbalanced optimal transport"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario file into output/<name>/ (metrics, snapshots, lineage, plots).
    Run {
        file: PathBuf,
        /// Override meta.seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Output folder (default output/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override time.steps.
        #[arg(long)]
        steps: Option<usize>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Any guard intervention (growth clipping, displacement cap) stops the run: stop reason
        /// `guard`, exit code 1 (scenario key `time.strict`; `resume` inherits it).
        #[arg(long)]
        strict: bool,
    },
    /// Continue a killed or interrupted run from its last checkpoint (report.checkpoint_every).
    Resume {
        /// The run's output folder, e.g. output/<name>.
        dir: PathBuf,
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Unbalanced entropic OT between two weighted clouds (log-domain, O(n+m) memory): prints the
    /// report as JSON and writes marginals (which points are destroyed), optionally the plan.
    Uot {
        a: PathBuf,
        b: PathBuf,
        #[command(flatten)]
        args: UotArgs,
        #[command(flatten)]
        plan: PlanArgs,
        /// Output folder (default output/uot/<a>__<b>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time one problem and print a JSON line (the engine's side of scripts/bench_peers.sh): median
    /// and min seconds over --reps runs after a warm-up, peak memory, a check value. Clouds: n points
    /// N(0, I_d) vs m points N(0.5, I_d), uniform weights (see src/bench.rs for each problem).
    Bench {
        /// mmd (exact MMD²) | usd-step (one Sobolev–Fisher step) | uot-iter (one log-domain
        /// unbalanced Sinkhorn iteration, |x-y|², τ = 1, ε = 0.05 × median cost; time per
        /// iteration) | uot-solve (full solve to tol 1e-6) | sinkhorn-div (debiased Sinkhorn
        /// divergence + gradient, GeomLoss blur 0.05, reach 1, cold start, to tol 1e-6) |
        /// sinkhorn-div-annealed (the same on GeomLoss's fixed ε schedule, marginal errors reported)
        problem: String,
        #[arg(long, default_value_t = 4000)]
        n: usize,
        #[arg(long, default_value_t = 4000)]
        m: usize,
        #[arg(long, default_value_t = 2)]
        d: usize,
        /// Random features (usd-step).
        #[arg(long, default_value_t = 1000)]
        features: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Sinkhorn iterations per timed run (uot-iter; the time reported is per iteration).
        #[arg(long, default_value_t = 10)]
        iters: usize,
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Check a scenario file (parse, validate, build) without running it.
    Validate { file: PathBuf },
    /// MMD between two weighted clouds (CSV with header; x1..xd, optional w and time columns).
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Kernel bandwidth s of exp(-|x-y|²/(2s²)) (default: median distance within B).
        #[arg(long)]
        bandwidth: Option<f64>,
        /// Select rows with this time value (files with a time column).
        #[arg(long)]
        time: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    // ---- trajectory inference (src/infer/) ----
    /// Predict a held-out time point from its neighbours; writes output/infer/<data>_<method>_t<T>/.
    Infer(InferArgs),
    /// Forward prediction from the first snapshot, chaining the method between consecutive snapshots.
    Forward(ForwardArgs),
    /// Fates: mass flowing from each cluster at --from to each cluster at --to (WOT coupling).
    Fates(FatesArgs),
    /// Regenerate a results file: `results inference` writes results/inference.md.
    Results(ResultsArgs),
}

fn set_threads(threads: Option<usize>) -> Result<(), Error> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(ConfigError::new("<cli>", "--threads", "must be ≥ 1, got 0").into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| ConfigError::new("<cli>", "--threads", e.to_string()))?;
    }
    Ok(())
}

fn cmd_run(
    file: &Path,
    seed: Option<u64>,
    threads: Option<usize>,
    out: Option<PathBuf>,
    steps: Option<usize>,
    quiet: bool,
    strict: bool,
) -> Result<bool, Error> {
    set_threads(threads)?;
    let flag = interrupt_flag();
    let scs = scenario::load(file, &Overrides { seed, steps, strict })?;
    // Build every variant first so a bad variant fails before anything is written.
    for sc in &scs {
        sc.build()?;
    }
    let mut ok = true;
    let mut done = Vec::new();
    for sc in &scs {
        let out = match (&out, &sc.label) {
            (Some(o), Some(l)) => Some(o.join(l)),
            (Some(o), None) => Some(o.clone()),
            _ => None,
        };
        let opts = RunOptions { out, progress: !quiet, interrupt: Some(flag.clone()) };
        let r = run_scenario(sc, &opts)?;
        ok &= report(&r);
        if let Some(l) = &sc.label {
            done.push((l.clone(), r.dir.clone()));
        }
        if r.summary.stop_reason == StopReason::Interrupted {
            break;
        }
    }
    if done.len() > 1 && done.len() == scs.len() {
        let dir = out.clone().unwrap_or_else(|| Path::new("output").join(&scs[0].spec.meta.name));
        let files = write_comparison(&dir, &done)?;
        println!(
            "comparison: {}",
            files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ok)
}

/// `advreact compare`; the kernel sums are split over the ranks of the current communicator, and
/// only `print` ranks print.
/// Read both inputs of `compare` (no collective work).
fn compare_inputs(
    a: &Path,
    b: &Path,
) -> Result<(advreact::data::SnapshotTable, advreact::data::SnapshotTable), Error> {
    Ok((read_snapshot(a)?, read_snapshot(b)?))
}

/// `compare` on read tables (the kernel sums split over the ranks); prints if `print`.
fn cmd_compare(
    (ta, tb): &(advreact::data::SnapshotTable, advreact::data::SnapshotTable),
    bandwidth: Option<f64>,
    time: Option<f64>,
    json: bool,
    print: bool,
) -> Result<(), Error> {
    let c = compare_tables(ta, tb, bandwidth, time)?;
    let (s, t, mmd, ca, cb) = (c.bandwidth, c.terms, c.mmd, &c.a, &c.b);
    if !print {
        return Ok(());
    }
    if json {
        let v = serde_json::json!({
            "bandwidth": s, "mmd2": t.mmd2, "mmd": mmd, "mass_a": ca.mass(), "mass_b": cb.mass(),
            "n_a": ca.len(), "n_b": cb.len(), "term_xx": t.xx, "term_yy": t.yy, "term_xy": t.xy,
        });
        println!("{v}");
    } else {
        println!("bandwidth {s}");
        println!("MMD²      {:.12e}", t.mmd2);
        println!("MMD       {mmd:.12e}");
        println!("mass A    {:.12e}  ({} points)", ca.mass(), ca.len());
        println!("mass B    {:.12e}  ({} points)", cb.mass(), cb.len());
    }
    Ok(())
}

/// The `uot` command's problem and solver options.
#[derive(clap::Args, Clone)]
struct UotArgs {
    /// Entropic regularisation ε (cost units).
    #[arg(long)]
    eps: f64,
    /// Source marginal penalty τ_a ("inf" = exact marginal).
    #[arg(long, default_value = "inf")]
    tau_a: f64,
    /// Target marginal penalty τ_b ("inf" = exact marginal).
    #[arg(long, default_value = "inf")]
    tau_b: f64,
    /// Marginal penalty: kl (soft) or tv (hard cut).
    #[arg(long, default_value = "kl")]
    penalty: String,
    /// Partial transport: move exactly this much mass (TV penalties found by bisection).
    #[arg(long)]
    partial_mass: Option<f64>,
    /// sqeuclidean (|x-y|², POT's default) or half_sqeuclidean (½|x-y|², GeomLoss p=2).
    #[arg(long, default_value = "sqeuclidean")]
    cost: String,
    /// Stop when both relative L1 marginal errors are below this.
    #[arg(long, default_value_t = 1e-9)]
    tol: f64,
    #[arg(long, default_value_t = 10_000)]
    max_iter: usize,
    /// Anneal ε from the cost diameter down to --eps (factor 0.5 per stage).
    #[arg(long)]
    eps_scaling: bool,
    /// Select rows with this time value (files with a time column).
    #[arg(long)]
    time: Option<f64>,
}

/// What of the plan the `uot` command writes.
#[derive(clap::Args, Clone)]
struct PlanArgs {
    /// Write the k largest plan entries of each row (plan.csv).
    #[arg(long)]
    top_k: Option<usize>,
    /// Write every plan entry ≥ this value (plan.csv).
    #[arg(long)]
    threshold: Option<f64>,
    /// Write the dense plan (plan_dense.csv; refused above 10^7 entries).
    #[arg(long)]
    dense: bool,
    /// Write the barycentric map T(x_i) (barycentric.csv).
    #[arg(long)]
    barycentric: bool,
}

impl PlanArgs {
    fn export(&self) -> PlanExport {
        PlanExport {
            barycentric: self.barycentric,
            top_k: self.top_k,
            threshold: self.threshold,
            max_entries: 10_000_000,
            dense: self.dense,
        }
    }
}

fn cmd_uot(a: &Path, b: &Path, u: &UotArgs, plan: &PlanExport, out: Option<PathBuf>) -> Result<bool, Error> {
    let (ca, cb, opts) = uot_inputs(a, b, u)?;
    let sol = uot_solve(&ca, &cb, u, &opts)?;
    uot_write(a, b, &ca, &cb, &sol, plan, out)
}

/// The `uot` command's clouds and solver options, validated (no solving).
fn uot_inputs(a: &Path, b: &Path, u: &UotArgs) -> Result<(Cloud, Cloud, SinkhornOptions), Error> {
    let cli = |k: &str, m: String| -> Error { ConfigError::new("<cli>", k, m).into() };
    let ca = read_snapshot(a)?.select(u.time)?;
    let cb = read_snapshot(b)?.select(u.time)?;
    if ca.dim != cb.dim {
        return Err(cli("B", format!("{} is {}-D, {} is {}-D", b.display(), cb.dim, a.display(), ca.dim)));
    }
    if !(u.eps.is_finite() && u.eps > 0.0) {
        return Err(cli("--eps", format!("must be > 0, got {}", u.eps)));
    }
    for (k, t) in [("--tau-a", u.tau_a), ("--tau-b", u.tau_b)] {
        if t.is_nan() || t <= 0.0 {
            return Err(cli(k, format!("must be > 0 (or inf), got {t}")));
        }
    }
    let cost: Cost = u.cost.parse().map_err(|e: String| cli("--cost", e))?;
    let (ma, mb) = match u.penalty.as_str() {
        "kl" => (Marginal::kl(u.tau_a), Marginal::kl(u.tau_b)),
        "tv" => (Marginal::tv(u.tau_a), Marginal::tv(u.tau_b)),
        p => return Err(cli("--penalty", format!("must be kl or tv, got '{p}'"))),
    };
    let mut opts = SinkhornOptions::kl(u.eps, u.tau_a, u.tau_b, cost);
    opts.marginal_a = ma;
    opts.marginal_b = mb;
    opts.tol = u.tol;
    opts.max_iter = u.max_iter;
    opts.eps_scaling = u.eps_scaling.then(EpsScaling::default);
    Ok((ca, cb, opts))
}

/// Solve the `uot` problem (its row passes split over the ranks of the current communicator).
fn uot_solve(ca: &Cloud, cb: &Cloud, u: &UotArgs, opts: &SinkhornOptions) -> Result<UotSolution, Error> {
    Ok(match u.partial_mass {
        Some(m) => solve_partial(MeasureRef::from(ca), MeasureRef::from(cb), m, opts, 1e-6)?.solution,
        None => uot_clouds(ca, cb, opts)?,
    })
}

/// Write the `uot` output folder and print the report; `Ok(converged)`.
fn uot_write(
    a: &Path,
    b: &Path,
    ca: &Cloud,
    cb: &Cloud,
    sol: &UotSolution,
    plan: &PlanExport,
    out: Option<PathBuf>,
) -> Result<bool, Error> {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let out = out.unwrap_or_else(|| Path::new("output/uot").join(format!("{}__{}", stem(a), stem(b))));
    write_folder_atomically(&out, |dir| write_solution(dir, ca, cb, sol, plan))?;
    println!("{}", report_json(&sol.report));
    eprintln!("uot: wrote {}", out.display());
    let r = &sol.report;
    if !r.converged {
        eprintln!(
            "warning: not converged: marginal errors {:.3e} / {:.3e} > tol {:.1e} after {} iterations (raise --max-iter or use --eps-scaling)",
            r.marginal_error_a, r.marginal_error_b, r.tol, r.iterations
        );
    }
    Ok(r.converged)
}

// ---- trajectory inference (src/infer/): `infer`, `forward`, `fates`, `results` ----

/// Options shared by the inference commands.
#[derive(clap::Args, Clone)]
struct InferCommon {
    /// Keep at most N cells per time point (uniform, seeded; kept cells carry the snapshot's mass). 0: all.
    #[arg(long, default_value_t = 0)]
    subsample: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// WOT: entropic ε relative to the mean cost.
    #[arg(long, default_value_t = 0.05)]
    eps: f64,
    /// WOT: marginal penalty τ relative to the mean cost.
    #[arg(long, default_value_t = 10.0)]
    tau: f64,
    /// WOT: outer solves (growth re-estimated from the row marginals between them).
    #[arg(long, default_value_t = 3)]
    growth_iters: usize,
    /// Flows: step cap per segment.
    #[arg(long, default_value_t = 1500)]
    max_steps: usize,
    #[arg(long)]
    threads: Option<usize>,
}

impl InferCommon {
    fn params(&self) -> advreact::infer::InferParams {
        let mut p = advreact::infer::InferParams { seed: self.seed, ..Default::default() };
        p.wot.eps_rel = self.eps;
        p.wot.tau_rel = self.tau;
        p.wot.growth_iters = self.growth_iters;
        p.flow.max_steps = self.max_steps;
        p
    }
}

/// `--strict` of `infer` and `forward`.
#[derive(clap::Args, Clone)]
struct StrictArg {
    /// Any warning (a flow's step cap, displacement cap or growth clipping; a Sinkhorn solve
    /// short of its tolerance) is an error: the output is written, the exit code is 1.
    #[arg(long)]
    strict: bool,
}

#[derive(clap::Args)]
struct InferArgs {
    /// Snapshot CSV (time,x1..xd[,w]).
    data: PathBuf,
    /// The held-out time point (an interior time of the file).
    #[arg(long)]
    holdout: f64,
    /// wot | usd | wfr_mmd | wfr_sinkhorn
    #[arg(long, default_value = "wot")]
    method: advreact::infer::Method,
    /// Output folder (default output/infer/<data>_<method>_t<T>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// WOT: a column of per-cell prior growth rates (not a coordinate).
    #[arg(long)]
    growth_column: Option<String>,
    /// WOT: sample pairs ∝ π_ij instead of weighting them by their lineage's mass at T.
    #[arg(long)]
    no_lineage: bool,
    #[command(flatten)]
    common: InferCommon,
    #[command(flatten)]
    strict: StrictArg,
}

#[derive(clap::Args)]
struct ForwardArgs {
    data: PathBuf,
    #[arg(long, default_value = "wot")]
    method: advreact::infer::Method,
    /// Output folder (default output/infer/<data>_<method>_forward).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: InferCommon,
    #[command(flatten)]
    strict: StrictArg,
}

#[derive(clap::Args)]
struct FatesArgs {
    data: PathBuf,
    #[arg(long)]
    from: f64,
    #[arg(long)]
    to: f64,
    /// k-means clusters per time point (ignored with --label-column).
    #[arg(long, default_value_t = 5)]
    clusters: usize,
    /// A column of cluster labels (numbers; not a coordinate).
    #[arg(long)]
    label_column: Option<String>,
    /// Output folder (default output/infer/<data>_fates_t<from>_t<to>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: InferCommon,
}

#[derive(clap::Args)]
struct ResultsArgs {
    /// Which results file: inference
    what: String,
    /// Keep at most N cells per time point (0: all).
    #[arg(long, default_value_t = 1500)]
    subsample: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder of data sets (<name>/<name>.csv and .json).
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Output file.
    #[arg(long, default_value = "results/inference.md")]
    out: PathBuf,
    /// Comma-separated methods (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<advreact::infer::Method>>,
    #[arg(long)]
    threads: Option<usize>,
}

/// Print an inference command's warnings on stderr; false (exit code 1) if there are any and
/// `strict` is set.
fn warn(out: &Path, warnings: &[advreact::infer::Warning], strict: bool) -> bool {
    for w in warnings {
        eprintln!("warning: {}: {w}", out.display());
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "error: {}: --strict: {} warning(s) (listed above and in the JSON)",
            out.display(),
            warnings.len()
        );
        return false;
    }
    true
}

fn fmt_t(t: f64) -> String {
    t.to_string()
}

fn cmd_infer(a: &InferArgs) -> Result<bool, Error> {
    set_threads(a.common.threads)?;
    let series = infer_load(a)?;
    let (r, params) = infer_compute(a, &series)?;
    infer_report(a, &r, &params)
}

/// The `infer` command's data (read and subsampled; no collective work).
fn infer_load(a: &InferArgs) -> Result<advreact::infer::Series, Error> {
    Ok(advreact::infer::load_series(&a.data, a.growth_column.as_deref(), None)?
        .subsample(a.common.subsample, a.common.seed))
}

/// The `infer` command's prediction (its kernel passes split over the ranks of the current
/// communicator).
fn infer_compute(
    a: &InferArgs,
    series: &advreact::infer::Series,
) -> Result<(advreact::infer::HoldoutResult, advreact::infer::InferParams), Error> {
    let mut params = a.common.params();
    params.wot.lineage_weighting = !a.no_lineage;
    let r = advreact::infer::holdout(series, a.holdout, a.method, &params)?;
    Ok((r, params))
}

/// Write the `infer` folder and print its metrics row.
fn infer_report(
    a: &InferArgs,
    r: &advreact::infer::HoldoutResult,
    params: &advreact::infer::InferParams,
) -> Result<bool, Error> {
    use advreact::infer;
    let out = a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!(
            "{}_{}_t{}",
            infer::data_name(&a.data),
            a.method,
            fmt_t(a.holdout)
        ))
    });
    infer::write_holdout(&out, r, params)?;
    let m = &r.metrics;
    println!("{}: data,method,holdout,w1,w2,mmd,mmd_normalised,mass_error,seconds", out.display());
    println!(
        "{},{},{},{},{},{},{},{},{:.3}",
        r.data, r.method, r.holdout, m.w1, m.w2, m.mmd, m.mmd_normalised, m.mass_error, r.seconds
    );
    Ok(warn(&out, &r.info.warnings, a.strict.strict))
}

fn cmd_forward(a: &ForwardArgs) -> Result<bool, Error> {
    set_threads(a.common.threads)?;
    let series = forward_load(a)?;
    let (r, params) = forward_compute(a, &series)?;
    forward_report(a, &r, &params)
}

/// The `forward` command's data (no collective work).
fn forward_load(a: &ForwardArgs) -> Result<advreact::infer::Series, Error> {
    Ok(advreact::infer::load_series(&a.data, None, None)?.subsample(a.common.subsample, a.common.seed))
}

/// The `forward` command's predictions (kernel passes split over the ranks).
fn forward_compute(
    a: &ForwardArgs,
    series: &advreact::infer::Series,
) -> Result<(advreact::infer::ForwardResult, advreact::infer::InferParams), Error> {
    let params = a.common.params();
    let r = advreact::infer::forward(series, a.method, &params)?;
    Ok((r, params))
}

/// Write the `forward` folder and print its table.
fn forward_report(
    a: &ForwardArgs,
    r: &advreact::infer::ForwardResult,
    params: &advreact::infer::InferParams,
) -> Result<bool, Error> {
    use advreact::infer;
    let out = a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!("{}_{}_forward", infer::data_name(&a.data), a.method))
    });
    infer::write_atomically(&out, |dir| {
        let p = dir.join("forward.json");
        let v = serde_json::json!({ "result": r, "params": params, "warnings": r.warnings });
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))
    })?;
    println!("{}: t,w1,w2,mmd,mass_pred,mass_true,mass_error", out.display());
    for (t, m) in r.times.iter().zip(&r.metrics) {
        println!("{t},{},{},{},{},{},{}", m.w1, m.w2, m.mmd, m.mass_pred, m.mass_true, m.mass_error);
    }
    Ok(warn(&out, &r.warnings, a.strict.strict))
}

fn cmd_fates(a: &FatesArgs) -> Result<bool, Error> {
    use advreact::infer::{self, fates, kmeans};
    set_threads(a.common.threads)?;
    let series = infer::load_series(&a.data, None, a.label_column.as_deref())?
        .subsample(a.common.subsample, a.common.seed);
    let (i0, i1) = (series.index_of(a.from)?, series.index_of(a.to)?);
    if i1 <= i0 {
        return Err(ConfigError::new(
            "<cli>",
            "--to",
            format!("must be a later time than --from ({})", a.from),
        )
        .into());
    }
    let (x0, x1) = (&series.clouds[i0], &series.clouds[i1]);
    let clusters = |k: usize, c: &advreact::Cloud, tag: u64| -> (kmeans::Clusters, Vec<String>) {
        match &series.labels {
            Some(l) => {
                let (cl, vals) = kmeans::from_labels(c, &l[k]);
                (cl, vals.iter().map(|v| format!("L{v}")).collect())
            }
            None => {
                let cl = kmeans::kmeans(c, a.clusters, 100, a.common.seed.wrapping_add(tag));
                let names = (1..=cl.k).map(|j| format!("{}{j}", if tag == 0 { "A" } else { "B" })).collect();
                (cl, names)
            }
        }
    };
    let (c0, n0) = clusters(i0, x0, 0);
    let (c1, n1) = clusters(i1, x1, 1);
    let params = a.common.params();
    let fa = fates::fates(x0, x1, a.from, a.to, c0, c1, (n0, n1), &params.wot)?;
    let out = a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!(
            "{}_fates_t{}_t{}",
            infer::data_name(&a.data),
            fmt_t(a.from),
            fmt_t(a.to)
        ))
    });
    infer::write_atomically(&out, |dir| fates::write_fates(dir, &fa, x0, x1))?;
    println!("{}: fates.csv, fates.png, clusters.csv, descendants.csv, ancestors.csv", out.display());
    let k1 = fa.target.k;
    for (i, name) in fa.source_names.iter().enumerate() {
        let row: Vec<String> = (0..k1).map(|j| format!("{:.1}", fa.matrix[i * k1 + j])).collect();
        println!("{name} → [{}]", row.join(", "));
    }
    Ok(true)
}

fn cmd_results(a: &ResultsArgs) -> Result<bool, Error> {
    use advreact::infer::{self, report};
    if a.what != "inference" {
        return Err(ConfigError::new(
            "<cli>",
            "results",
            format!("unknown results file '{}' (expected inference)", a.what),
        )
        .into());
    }
    set_threads(a.threads)?;
    let methods = a.methods.clone().unwrap_or_else(|| infer::Method::ALL.to_vec());
    let mut command = format!("cargo run --release -- results inference --subsample {}", a.subsample);
    if a.seed != 0 {
        command += &format!(" --seed {}", a.seed);
    }
    if a.methods.is_some() {
        let m: Vec<&str> = methods.iter().map(|m| m.name()).collect();
        command += &format!(" --methods {}", m.join(","));
    }
    let cfg = report::ReportCfg {
        data_dir: a.data_dir.clone(),
        subsample: a.subsample,
        methods,
        params: infer::InferParams { seed: a.seed, ..Default::default() },
        command,
    };
    let md = report::inference_report(&cfg)?;
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = a.out.with_extension("md.partial");
    std::fs::write(&tmp, md).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &a.out).map_err(|e| Error::io(&a.out, e))?;
    println!("{}", a.out.display());
    Ok(true)
}

// ---- end of trajectory inference ----
#[cfg(feature = "mpi")]
mod mpi_main;

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "mpi")]
    if mpi_main::launched_by_mpirun() {
        return mpi_main::main(cli);
    }
    let result = dispatch(cli.cmd);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run one command in this process; `Ok(false)` means it ran but ended badly (exit code 1).
fn dispatch(cmd: Cmd) -> Result<bool, Error> {
    match cmd {
        Cmd::Run { file, seed, threads, out, steps, quiet, strict } => {
            cmd_run(&file, seed, threads, out, steps, quiet, strict)
        }
        Cmd::Resume { dir, threads, quiet } => set_threads(threads).and_then(|_| {
            let opts = RunOptions { out: None, progress: !quiet, interrupt: Some(interrupt_flag()) };
            resume_run(&dir, &opts).map(|r| report(&r))
        }),
        Cmd::Uot { a, b, args, plan, out, threads } => {
            set_threads(threads).and_then(|_| cmd_uot(&a, &b, &args, &plan.export(), out))
        }
        Cmd::Bench { problem, n, m, d, features, reps, iters, threads, seed } => set_threads(threads)
            .and_then(|_| {
                let spec = advreact::bench::BenchSpec { problem, n, m, d, features, reps, iters, seed };
                println!("{}", advreact::bench::run_bench(&spec)?);
                Ok(true)
            }),
        Cmd::Validate { file } => scenario::load(&file, &Overrides::default()).and_then(|scs| {
            for sc in &scs {
                sc.build()?;
                let label = sc.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default();
                println!("{}{label}: ok", file.display());
            }
            Ok(true)
        }),
        Cmd::Compare { a, b, bandwidth, time, json } => {
            compare_inputs(&a, &b).and_then(|t| cmd_compare(&t, bandwidth, time, json, true)).map(|_| true)
        }
        Cmd::Infer(a) => cmd_infer(&a),
        Cmd::Forward(a) => cmd_forward(&a),
        Cmd::Fates(a) => cmd_fates(&a),
        Cmd::Results(a) => cmd_results(&a),
    }
}
