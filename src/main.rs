//! `advreact` command line: run scenarios, validate them, compare point clouds, unbalanced OT,
//! trajectory inference, benchmarks, redraw figures. One dispatcher ([`dispatch_in`]) serves the
//! single process and `mpirun` (src/mpi_main.rs, which adds only `run`'s distributed code).

mod bench;
mod compare;

use advreact::data::{read_snapshot_with, Selection, SnapshotTable};
use advreact::error::{ConfigError, Error};
use advreact::infer::commands::{
    check_out, count_at_least_one, fmt_t, forward_compute, forward_load, forward_model_args, forward_out,
    forward_report, infer_compute, infer_load, infer_out, infer_report, ColumnArgs, ForwardArgs, InferArgs,
    InferCommon,
};
use advreact::infer::wot::mean_sq_cost;
use advreact::maps;
use advreact::ot::{
    export::report_json, solve_partial, uot_clouds, write_solution_with_ids, CostKind, EpsScaling, Marginal,
    PlanExport, SinkhornOptions, UotSolution,
};
use advreact::output::{write_folder, Kind};
use advreact::particles::Cloud;
use advreact::run::{resume_run, run_built, run_sweep, sweep_out, RunOptions, RunOutcome, SweepOutcome};
use advreact::scenario::{self, Overrides};
use advreact::stepper::{StopReason, Summary};
use clap::{Parser, Subcommand};
use compare::compare_selected;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Ctrl-C, SIGTERM (what `timeout` and Slurm send) or SIGHUP: the first asks the run to stop
/// after the current step (checkpoint + summary with stop reason `interrupted`); a second one
/// exits at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing the current step and writing a checkpoint (interrupt again to quit now)"
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
/// ended well. An interrupted run gets a hint to resume it (a variant's is printed by
/// [`report_sweep`], for the top folder).
fn report(r: &RunOutcome, hint: bool) -> bool {
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
    if hint && s.stop_reason == StopReason::Interrupted {
        eprintln!("interrupted: continue with `advreact resume {}`", r.dir.display());
    }
    finished_well(s)
}

/// A run that ended well: all steps done, its stop rule met (`Converged`), or the population
/// extinct (a legitimate end of a decay). Every other stop reason is exit code 1.
fn finished_well(s: &Summary) -> bool {
    matches!(s.stop_reason, StopReason::Completed | StopReason::Converged | StopReason::Extinct)
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
        /// Output folder (default output/<name>). Replaced only if it is an earlier run's output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an output folder holding foreign files (never ., .., a parent of the current
        /// folder, $HOME or /).
        #[arg(long)]
        force: bool,
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
    /// Continue a killed or interrupted run from its last checkpoint (report.checkpoint_every);
    /// for a scenario with variants, then the variants not yet run and the comparison.
    Resume {
        /// The folder given to `run` (default output/<name>).
        dir: PathBuf,
        /// Replace the folder at DIR even if it holds foreign files (a run started with --force).
        #[arg(long)]
        force: bool,
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
        /// Replace an output folder holding foreign files (never ., .., a parent of the current
        /// folder, $HOME or /).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Fit a transport map SOURCE.csv → TARGET.csv (x1..xd, optional id / w columns): the entropic
    /// map of ½|x−y|² or of the elastic ℓ1 cost (sparse displacements), optionally after the
    /// KL-unbalanced rescaling (--tau). Writes DIR/map.json, mapped.csv, report.json,
    /// displacement.png (and arrows.png in 2-D). With --apply MAP.json NEW.csv --out F.csv:
    /// apply a fitted map to new points.
    Map(maps::command::MapArgs),
    /// Time one problem and print a JSON line (the engine's side of scripts/bench_peers.sh): median
    /// and min seconds over --reps runs after a warm-up, peak memory, a check value. Clouds: n points
    /// N(0, I_d) vs m points N(0.5, I_d), uniform weights (see src/bench.rs for each problem).
    Bench {
        #[arg(value_enum)]
        problem: BenchProblem,
        #[arg(long, default_value_t = 4000)]
        n: usize,
        #[arg(long, default_value_t = 4000)]
        m: usize,
        #[arg(long, default_value_t = 2)]
        d: usize,
        /// Random features (usd-step).
        #[arg(long, default_value_t = 1000)]
        features: usize,
        /// Timed runs (≥ 1).
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
    /// MMD between two weighted clouds (CSV with header; x1..xd, optional w, time and id columns).
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Kernel bandwidth s of exp(-|x-y|²/(2s²)) (default: median distance within B).
        #[arg(long)]
        bandwidth: Option<f64>,
        #[command(flatten)]
        input: PairArgs,
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
    // ---- learned dynamics (src/learned/commands.rs) ----
    /// Fit a learned dynamics (u, g) to all snapshots; writes output/fit/<data>_<model>/.
    Fit(advreact::learned::commands::FitArgs),
    /// Velocity and growth of a fitted model at points: u1..ud,g (and lambda for var_ruot).
    Field(advreact::learned::commands::FieldArgs),
    /// Redraw the figures of an output folder: a run's trajectories.png and metrics.png, each
    /// variant's and comparison.png for a scenario with variants, fates.png for a fates folder.
    /// Only into a folder the engine wrote (it carries .advreact-output); each PNG is replaced
    /// atomically.
    Plot { dir: PathBuf },
}

/// `bench PROBLEM` (names as in `bench::PROBLEMS`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BenchProblem {
    /// Exact MMD².
    Mmd,
    /// One Sobolev–Fisher step.
    UsdStep,
    /// One log-domain unbalanced Sinkhorn iteration, |x-y|², τ = 1, ε = 0.05 × median cost (time
    /// per iteration).
    UotIter,
    /// Full solve to tol 1e-6.
    UotSolve,
    /// Debiased Sinkhorn divergence + gradient, GeomLoss blur 0.05, reach 1, cold start, to tol 1e-6.
    SinkhornDiv,
    /// The same on GeomLoss's fixed ε schedule, marginal errors reported.
    SinkhornDivAnnealed,
}

/// `results learned --learners`: a learner of src/learned/results.rs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum LearnerChoice {
    /// UOT flow matching (`UotFmLearner`).
    UotFm,
    /// Var-RUOT (`VarRuotLearner`: `advreact fit --model var_ruot`).
    VarRuot,
}

/// `results WHAT`: which results file.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ResultsFile {
    /// results/inference.md: every method on every data set.
    Inference,
    /// results/learned_dynamics.md: the learned models under the Table 1 and hold-one-out protocols.
    Learned,
    /// results/sparse_maps.md: entropic vs sparse-ℓ1 vs sparse-ℓ0 maps on a synthetic perturbation.
    SparseMaps,
}

/// The command-line name of a value of a `ValueEnum`.
fn value_name(v: &impl clap::ValueEnum) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
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

fn cmd_run(file: &Path, ov: Overrides, threads: Option<usize>, opts: RunOptions) -> Result<bool, Error> {
    set_threads(threads)?;
    let scs = scenario::load(file, &ov)?;
    let variants = scs.len() > 1 || scs[0].label.is_some();
    // The output folder is checked, and every variant built, before anything is written.
    let top = match (&opts.out, variants) {
        (_, true) => sweep_out(&scs, opts.out.as_deref()),
        (Some(o), false) => o.clone(),
        (None, false) => advreact::run::default_out(&scs[0]),
    };
    check_out(&top, Kind::Run, opts.force)?;
    let mut built = scs.iter().map(|sc| sc.build()).collect::<Result<Vec<_>, _>>()?;
    if !variants {
        return run_built(&scs[0], built.remove(0), &opts).map(|r| report(&r, true));
    }
    let mut ok = true;
    let r = run_sweep(file, &ov, &scs, built, &opts, &mut |r| ok &= report(r, false))?;
    Ok(report_sweep(&r) && ok)
}

/// Print where the comparison went (or how to continue); true unless interrupted.
fn report_sweep(r: &SweepOutcome) -> bool {
    if !r.comparison.is_empty() {
        let files: Vec<String> = r.comparison.iter().map(|p| p.display().to_string()).collect();
        println!("comparison: {}", files.join(", "));
    }
    if r.interrupted {
        eprintln!("interrupted: continue with `advreact resume {}`", r.dir.display());
    }
    !r.interrupted
}

/// The inputs of the two-file commands (`compare`, `uot`): columns, rows and weights.
#[derive(clap::Args, Clone)]
struct PairArgs {
    /// Select rows with this time value in both files.
    #[arg(long, conflicts_with_all = ["time_a", "time_b"])]
    time: Option<f64>,
    /// Select rows with this time value in A (e.g. two time points of one file: A = B).
    #[arg(long)]
    time_a: Option<f64>,
    /// Select rows with this time value in B.
    #[arg(long)]
    time_b: Option<f64>,
    /// Scale each input's weights to total mass 1 (unit-weight snapshots of different sizes).
    #[arg(long)]
    normalize: bool,
    #[command(flatten)]
    columns: ColumnArgs,
}

impl PairArgs {
    fn read(&self, a: &Path, b: &Path) -> Result<(SnapshotTable, SnapshotTable), Error> {
        let spec = self.columns.spec(None, None);
        Ok((read_snapshot_with(a, &spec)?, read_snapshot_with(b, &spec)?))
    }
    fn selections(&self) -> (Selection, Selection) {
        let sel = |t: Option<f64>| Selection { time: t.or(self.time), normalize: self.normalize };
        (sel(self.time_a), sel(self.time_b))
    }
}

/// Read both inputs of `compare` (no collective work).
fn compare_inputs(a: &Path, b: &Path, input: &PairArgs) -> Result<(SnapshotTable, SnapshotTable), Error> {
    input.read(a, b)
}

/// `compare` on read tables (the kernel sums split over the ranks); prints if `print`.
fn cmd_compare(
    (ta, tb): &(SnapshotTable, SnapshotTable),
    bandwidth: Option<f64>,
    input: &PairArgs,
    json: bool,
    print: bool,
    exec: &advreact::dist::Exec,
) -> Result<(), Error> {
    let c = compare_selected(ta, tb, bandwidth, input.selections(), exec)?;
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
    #[arg(
        long,
        required_unless_present = "eps_rel",
        conflicts_with = "eps_rel",
        allow_negative_numbers = true
    )]
    eps: Option<f64>,
    /// Entropic regularisation relative to the mean cost: ε = eps_rel × mean of C(x, y) under the
    /// normalised product of A and B.
    #[arg(long, allow_negative_numbers = true)]
    eps_rel: Option<f64>,
    /// Source marginal penalty τ_a ("inf" = exact marginal).
    #[arg(long, default_value = "inf")]
    tau_a: f64,
    /// Target marginal penalty τ_b ("inf" = exact marginal).
    #[arg(long, default_value = "inf")]
    tau_b: f64,
    /// Marginal penalty: kl (soft) or tv (hard cut).
    #[arg(long, value_enum, default_value_t = Penalty::Kl)]
    penalty: Penalty,
    /// Partial transport: move exactly this much mass (TV penalties found by bisection; so not
    /// with --tau-a, --tau-b or --penalty).
    #[arg(long, conflicts_with_all = ["tau_a", "tau_b", "penalty"])]
    partial_mass: Option<f64>,
    /// sqeuclidean (|x-y|², POT's default), half_sqeuclidean (½|x-y|², GeomLoss p=2), or the
    /// elastic costs ½|z|² + γ τ(z), z = x − y: elastic-l1 (τ = Σ|z_k|) and elastic-l0
    /// (τ = Σ 1 − exp(−z_k²/(2σ²))), with --gamma (and --sigma).
    #[arg(long, value_enum, default_value_t = CostKind::SqEuclidean)]
    cost: CostKind,
    /// Elastic costs: the penalty strength γ ≥ 0 (required with elastic-l1 / elastic-l0).
    #[arg(long)]
    gamma: Option<f64>,
    /// elastic-l0: the width σ > 0 of the smoothed ℓ0 penalty (default 1).
    #[arg(long)]
    sigma: Option<f64>,
    /// Stop when both relative L1 marginal errors are below this.
    #[arg(long, default_value_t = 1e-9)]
    tol: f64,
    #[arg(long, default_value_t = 10_000)]
    max_iter: usize,
    /// Anneal ε from the cost diameter down to --eps (factor 0.5 per stage).
    #[arg(long)]
    eps_scaling: bool,
    #[command(flatten)]
    input: PairArgs,
}

/// `uot --penalty`: the divergence on each marginal.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Penalty {
    /// Kullback–Leibler (soft).
    Kl,
    /// Total variation (hard cut).
    Tv,
}

/// What of the plan the `uot` command writes.
#[derive(clap::Args, Clone)]
struct PlanArgs {
    /// Write the k largest plan entries of each row (plan.csv; k ≥ 1).
    #[arg(long, conflicts_with = "threshold", value_parser = count_at_least_one)]
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

/// The `uot` output folder: `out`, or output/uot/<a>__<b>.
fn uot_out(a: &Path, b: &Path, out: Option<PathBuf>) -> PathBuf {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    out.unwrap_or_else(|| Path::new("output/uot").join(format!("{}__{}", stem(a), stem(b))))
}

/// A cloud of the `uot` command with its points' ids (the file's `id` column).
type IdCloud = (Cloud, Option<Vec<String>>);

/// The `uot` command's clouds and solver options, validated (no solving).
fn uot_inputs(a: &Path, b: &Path, u: &UotArgs) -> Result<(IdCloud, IdCloud, SinkhornOptions), Error> {
    let cli = |k: &str, m: String| -> Error { ConfigError::new("<cli>", k, m).into() };
    let (ta, tb) = u.input.read(a, b)?;
    let (sa, sb) = u.input.selections();
    let (ca, cb) = (ta.select_as(sa)?, tb.select_as(sb)?);
    let (da, db) = (ca.0.dim, cb.0.dim);
    if da != db {
        return Err(cli("B", format!("{} is {db}-D, {} is {da}-D", b.display(), a.display())));
    }
    let cost = u.cost.build(u.gamma, u.sigma).map_err(|(k, m)| cli(k, m))?;
    if cost.elastic().is_some() && u.eps.is_none() {
        return Err(cli("--eps-rel", "is not available with an elastic cost: give --eps".into()));
    }
    let eps = match (u.eps, u.eps_rel) {
        (Some(e), _) => e,
        (None, r) => r.unwrap_or(f64::NAN) * cost.scale() * mean_sq_cost(&ca.0, &cb.0),
    };
    if !(eps.is_finite() && eps > 0.0) {
        let (k, v) = if u.eps.is_some() { ("--eps", u.eps) } else { ("--eps-rel", u.eps_rel) };
        let why = match v {
            Some(v) if v.is_finite() && v > 0.0 => format!("gives ε = {eps} (the points coincide)"),
            v => format!("must be > 0, got {}", v.unwrap_or(f64::NAN)),
        };
        return Err(cli(k, why));
    }
    for (k, t) in [("--tau-a", u.tau_a), ("--tau-b", u.tau_b)] {
        if t.is_nan() || t <= 0.0 {
            return Err(cli(k, format!("must be > 0 (or inf), got {t}")));
        }
    }
    let (ma, mb) = match u.penalty {
        Penalty::Kl => (Marginal::kl(u.tau_a), Marginal::kl(u.tau_b)),
        Penalty::Tv => (Marginal::tv(u.tau_a), Marginal::tv(u.tau_b)),
    };
    let mut opts = SinkhornOptions::kl(eps, u.tau_a, u.tau_b, cost);
    opts.marginal_a = ma;
    opts.marginal_b = mb;
    opts.tol = u.tol;
    opts.max_iter = u.max_iter;
    opts.eps_scaling = u.eps_scaling.then(EpsScaling::default);
    balanced_masses_agree(ca.0.mass(), cb.0.mass(), u)?;
    Ok((ca, cb, opts))
}

/// Balanced transport (both penalties `inf`, no `--partial-mass`) needs equal masses: unit-weight
/// snapshots of different sizes do not have them. The error gives the cause and the fixes.
fn balanced_masses_agree(ma: f64, mb: f64, u: &UotArgs) -> Result<(), Error> {
    let balanced = u.tau_a == f64::INFINITY && u.tau_b == f64::INFINITY && u.partial_mass.is_none();
    if balanced && (ma - mb).abs() > 1e-9 * ma.max(mb) {
        return Err(ConfigError::new(
            "<cli>",
            "--tau-a/--tau-b",
            format!(
                "balanced transport (both inf, the default) needs equal masses, got {ma} (A) and {mb} (B) \
                 (unit weights: the cell counts); pass --normalize to scale both to mass 1, \
                 --tau-a/--tau-b for unbalanced transport, or --partial-mass M (M < {}) to move part of it",
                ma.min(mb)
            ),
        )
        .into());
    }
    Ok(())
}

/// Solve the `uot` problem (its row passes split over the ranks of `opts.exec`).
fn uot_solve(
    (ca, _): &IdCloud,
    (cb, _): &IdCloud,
    u: &UotArgs,
    opts: &SinkhornOptions,
) -> Result<UotSolution, Error> {
    Ok(match u.partial_mass {
        Some(m) => solve_partial(ca, cb, m, opts, 1e-6)?.solution,
        None => uot_clouds(ca, cb, opts)?,
    })
}

/// Write the `uot` output folder and print the report; `Ok(converged)`.
fn uot_write(
    (ca, ida): &IdCloud,
    (cb, idb): &IdCloud,
    sol: &UotSolution,
    plan: &PlanExport,
    out: &Path,
    force: bool,
) -> Result<bool, Error> {
    if let Some(k) = plan.top_k.filter(|&k| k > cb.len()) {
        eprintln!(
            "warning: --top-k {k}: B has {} points, so plan.csv holds every entry of each row",
            cb.len()
        );
    }
    let ids = (ida.as_deref(), idb.as_deref());
    write_folder(out, Kind::Uot, force, |dir| write_solution_with_ids(dir, ca, cb, sol, plan, ids))?;
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

// ---- trajectory inference (src/infer/): `fates`, `results` (`infer`, `forward`: src/infer/commands.rs) ----

#[derive(clap::Args)]
struct FatesArgs {
    data: PathBuf,
    #[arg(long)]
    from: f64,
    #[arg(long)]
    to: f64,
    /// k-means clusters per time point (≥ 1, at most the cells at either time).
    #[arg(long, default_value_t = 5)]
    clusters: usize,
    /// A column of cluster labels (any strings; clusters are named by them; not a coordinate).
    #[arg(long, conflicts_with = "clusters")]
    label_column: Option<String>,
    /// Output folder (default output/infer/<data>_fates_t<from>_t<to>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: InferCommon,
}

#[derive(clap::Args)]
struct ResultsArgs {
    /// Which results file.
    #[arg(value_enum)]
    what: ResultsFile,
    /// Keep at most N cells per time point (0: all).
    #[arg(long, default_value_t = 1500)]
    subsample: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder of data sets (<name>/<name>.csv and .json).
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Output file (default: results/inference.md, results/learned_dynamics.md or
    /// results/sparse_maps.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `sparse-maps`: the dimensions (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000])]
    dims: Vec<usize>,
    /// `sparse-maps`: cells per population (one value, or one per dimension of --dims).
    #[arg(long = "cells", value_delimiter = ',', default_values_t = [4000usize])]
    cells: Vec<usize>,
    /// `sparse-maps`: shifted coordinates.
    #[arg(long = "shifted", default_value_t = 50)]
    shifted: usize,
    /// `sparse-maps`: the maps (comma-separated; default: entropic,sparse-l1,sparse-l0); `name@D`
    /// runs that map at dimension D only.
    #[arg(long = "maps", value_delimiter = ',')]
    maps: Option<Vec<String>>,
    /// `learned`, `sparse-maps`: the seeds (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 1, 2, 3, 4])]
    seeds: Vec<u64>,
    /// Comma-separated methods (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    methods: Option<Vec<advreact::infer::Method>>,
    /// `learned`: the learners (comma-separated; default: uot_fm,var_ruot).
    #[arg(long, value_enum, value_delimiter = ',')]
    learners: Option<Vec<LearnerChoice>>,
    /// `learned`: the data sets (comma-separated; default: all three).
    #[arg(long, value_delimiter = ',')]
    datasets: Option<Vec<String>>,
    #[arg(long)]
    threads: Option<usize>,
}

fn cmd_fates(a: &FatesArgs) -> Result<bool, Error> {
    use advreact::infer::{self, fates, kmeans};
    set_threads(a.common.threads)?;
    if a.clusters == 0 {
        return Err(ConfigError::new("<cli>", "--clusters", "must be ≥ 1, got 0").into());
    }
    let out = a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!(
            "{}_fates_t{}_t{}",
            infer::data_name(&a.data),
            fmt_t(a.from),
            fmt_t(a.to)
        ))
    });
    check_out(&out, Kind::Fates, a.common.force)?;
    let series = a.common.load(&a.data, a.label_column.as_deref(), None)?;
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
    if series.labels.is_none() {
        for (t, c) in [(a.from, x0), (a.to, x1)] {
            if a.clusters > c.len() {
                return Err(ConfigError::new(
                    "<cli>",
                    "--clusters",
                    format!(
                        "{} clusters for {} cells at time {t}: at most the number of cells",
                        a.clusters,
                        c.len()
                    ),
                )
                .into());
            }
        }
    }
    let clusters = |k: usize, c: &advreact::Cloud, tag: u64| -> (kmeans::Clusters, Vec<String>) {
        match &series.labels {
            Some(l) => kmeans::from_labels(c, &l[k]),
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
    for (t, cl, names) in [(a.from, &fa.source, &fa.source_names), (a.to, &fa.target, &fa.target_names)] {
        let empty: Vec<&str> =
            (0..cl.k).filter(|&l| !cl.labels.contains(&l)).map(|l| names[l].as_str()).collect();
        if !empty.is_empty() {
            eprintln!(
                "warning: --clusters {}: {} of the clusters at time {t} ended with no cells ({}); fewer clusters describe these data",
                a.clusters,
                empty.len(),
                empty.join(", ")
            );
        }
    }
    let ids = |k: usize| series.ids.as_ref().map(|v| v[k].as_slice());
    write_folder(&out, Kind::Fates, a.common.force, |dir| {
        fates::write_fates(dir, &fa, x0, x1, (ids(i0), ids(i1)))
    })?;
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
    set_threads(a.threads)?;
    if a.what == ResultsFile::Learned {
        return cmd_results_learned(a);
    }
    if a.what == ResultsFile::SparseMaps {
        return cmd_results_sparse_maps(a);
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results/inference.md"));
    // A file is written: never over a folder or a file that is not an earlier results file
    // (checked before the long computation).
    advreact::output::check_file(&out, advreact::infer::report::TITLE, "--out")?;
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
    write_results(&out, &md)
}

/// Write a results file atomically (a temporary file renamed over it) and print its path.
fn write_results(out: &Path, md: &str) -> Result<bool, Error> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = out.with_extension("md.partial");
    std::fs::write(&tmp, md).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = std::fs::rename(&tmp, out) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(out, e));
    }
    println!("{}", out.display());
    Ok(true)
}

/// `results learned`: the learned models under the papers' protocols.
fn cmd_results_learned(a: &ResultsArgs) -> Result<bool, Error> {
    use advreact::learned::results::{
        learned_report, LearnedCfg, ProtocolRunner, UotFmLearner, VarRuotLearner, TITLE,
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results/learned_dynamics.md"));
    advreact::output::check_file(&out, TITLE, "--out")?;
    if a.seeds.is_empty() {
        return Err(advreact::ConfigError::new("<cli>", "--seeds", "give at least one seed").into());
    }
    let seeds: Vec<String> = a.seeds.iter().map(|s| s.to_string()).collect();
    let mut command = format!(
        "cargo run --release -- results learned --subsample {} --seeds {}",
        a.subsample,
        seeds.join(",")
    );
    let chosen = a.learners.clone().unwrap_or_else(|| vec![LearnerChoice::UotFm, LearnerChoice::VarRuot]);
    if chosen.is_empty() {
        return Err(advreact::ConfigError::new("<cli>", "--learners", "give at least one learner").into());
    }
    if let Some(l) = &a.learners {
        let names: Vec<&str> = l
            .iter()
            .map(|c| match c {
                LearnerChoice::UotFm => "uot_fm",
                LearnerChoice::VarRuot => "var_ruot",
            })
            .collect();
        command += &format!(" --learners {}", names.join(","));
    }
    if let Some(d) = &a.datasets {
        command += &format!(" --datasets {}", d.join(","));
    }
    let cfg = LearnedCfg {
        data_dir: a.data_dir.clone(),
        subsample: a.subsample,
        seeds: a.seeds.clone(),
        floor_splits: advreact::infer::report::FLOOR_SPLITS,
        command,
        datasets: a.datasets.clone().unwrap_or_default(),
    };
    let uot = UotFmLearner { base: Default::default(), dt: advreact::learned::commands::DEFAULT_DT };
    let var = VarRuotLearner::default();
    let learners: Vec<&dyn ProtocolRunner> = chosen
        .iter()
        .map(|c| -> &dyn ProtocolRunner {
            match c {
                LearnerChoice::UotFm => &uot,
                LearnerChoice::VarRuot => &var,
            }
        })
        .collect();
    let md = learned_report(&cfg, &learners)?;
    write_results(&out, &md)
}

/// `results sparse-maps`: the three maps on the synthetic perturbation (src/synthetic/results.rs).
fn cmd_results_sparse_maps(a: &ResultsArgs) -> Result<bool, Error> {
    use advreact::synthetic::results::{sparse_maps_report, SparseMapsCfg, TITLE};
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("results/sparse_maps.md"));
    advreact::output::check_file(&out, TITLE, "--out")?;
    let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let seeds: Vec<usize> = a.seeds.iter().map(|&s| s as usize).collect();
    let mut command = format!(
        "cargo run --release -- results sparse-maps --dims {} --cells {} --shifted {} --seeds {}",
        list(&a.dims),
        list(&a.cells),
        a.shifted,
        list(&seeds)
    );
    let all = advreact::synthetic::results::METHODS.map(String::from).to_vec();
    if let Some(m) = &a.maps {
        command += &format!(" --maps {}", m.join(","));
    }
    let cfg = SparseMapsCfg {
        dims: a.dims.clone(),
        cells: a.cells.clone(),
        k: a.shifted,
        seeds: a.seeds.clone(),
        features: 100,
        methods: a.maps.clone().unwrap_or(all),
        command,
        exec: advreact::dist::Exec::default(),
    };
    write_results(&out, &sparse_maps_report(&cfg)?)
}

// ---- end of trajectory inference ----

/// `advreact plot DIR`: redraw the figures of a `run` or `fates` output folder; prints each file.
fn cmd_plot(dir: &Path) -> Result<bool, Error> {
    use advreact::output::{is_ours, MARKER};
    let written = if is_ours(dir, Kind::Run) {
        advreact::run::redraw(dir)?
    } else if is_ours(dir, Kind::Fates) {
        vec![advreact::infer::fates::redraw(dir)?]
    } else {
        let why = format!(
            "not a run or fates output folder of advreact (no {MARKER} naming run or fates); plot redraws only those"
        );
        return Err(ConfigError::new(dir.display().to_string(), "(plot)", why).into());
    };
    for p in &written {
        println!("{}", p.display());
    }
    Ok(true)
}
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

/// How the phases of a command are joined: in this process alone ([`Local`]), or over the ranks
/// of an `mpirun` job (src/mpi_main.rs), where every rank computes and one writes.
trait Phases {
    type Fail: From<Error>;
    /// A phase's outcome, as every process of the command sees it.
    fn agree<T>(&self, r: Result<T, Error>) -> Result<T, Self::Fail>;
    /// Run `f` (writing, printing) in one process only; every process returns its outcome.
    fn alone(&self, f: impl FnOnce() -> Result<bool, Error>) -> Result<bool, Self::Fail>;
    /// True in the process that prints.
    fn prints(&self) -> bool;
    /// The worker threads for `--threads`.
    fn threads(&self, threads: Option<usize>) -> Option<usize>;
    /// Whether a signal asks a run to stop after its step (a checkpoint) rather than killing it.
    fn interruptible(&self) -> bool;
    /// The execution context of the collective phases (the ranks that split the row passes).
    fn exec(&self) -> advreact::dist::Exec;
}

/// One process.
struct Local;

impl Phases for Local {
    type Fail = Error;
    fn agree<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r
    }
    fn alone(&self, f: impl FnOnce() -> Result<bool, Error>) -> Result<bool, Error> {
        f()
    }
    fn prints(&self) -> bool {
        true
    }
    fn threads(&self, threads: Option<usize>) -> Option<usize> {
        threads
    }
    fn interruptible(&self) -> bool {
        true
    }
    fn exec(&self) -> advreact::dist::Exec {
        advreact::dist::Exec::default()
    }
}

/// Run one command in this process; `Ok(false)` means it ran but ended badly (exit code 1).
fn dispatch(cmd: Cmd) -> Result<bool, Error> {
    dispatch_in(cmd, &Local)
}

/// Run one command with its phases joined by `p`. The commands with collective work (`uot`,
/// `compare`, `infer`, `forward`) compute in every process and write in one; the others run in
/// one process (`run` under MPI has its own code: src/mpi_main.rs).
fn dispatch_in<P: Phases>(cmd: Cmd, p: &P) -> Result<bool, P::Fail> {
    let interrupt = || p.interruptible().then(interrupt_flag);
    match cmd {
        Cmd::Run { file, seed, threads, out, force, steps, quiet, strict } => p.alone(|| {
            let opts =
                RunOptions { out, force, progress: !quiet, interrupt: interrupt(), ..Default::default() };
            cmd_run(&file, Overrides { seed, steps, strict }, threads, opts)
        }),
        Cmd::Resume { dir, force, threads, quiet } => p.alone(|| {
            set_threads(threads)?;
            let opts = RunOptions {
                out: None,
                force,
                progress: !quiet,
                interrupt: interrupt(),
                ..Default::default()
            };
            let mut ok = true;
            let r = resume_run(&dir, &opts, &mut |r| ok &= report(r, false))?;
            Ok(report_sweep(&r) && ok)
        }),
        Cmd::Uot { a, b, args, plan, out, force, threads } => {
            p.agree(set_threads(p.threads(threads)))?;
            let out = uot_out(&a, &b, out);
            p.agree(check_out(&out, Kind::Uot, force).map(|_| ()))?;
            // Every process reads and checks the inputs and solves (the row passes split over
            // the ranks: every rank ends with the same potentials); one writes the folder.
            let (ca, cb, mut opts) = p.agree(uot_inputs(&a, &b, &args))?;
            opts.exec = p.exec();
            let sol = p.agree(uot_solve(&ca, &cb, &args, &opts))?;
            p.alone(|| uot_write(&ca, &cb, &sol, &plan.export(), &out, force))
        }
        Cmd::Map(a) => {
            let exec = p.exec();
            p.alone(|| {
                set_threads(a.threads)?;
                maps::command::cmd_map_args(&a, &exec)
            })
        }
        Cmd::Bench { problem, n, m, d, features, reps, iters, threads, seed } => p.alone(|| {
            set_threads(threads)?;
            let problem = value_name(&problem);
            let spec = bench::BenchSpec { problem, n, m, d, features, reps, iters, seed };
            println!("{}", bench::run_bench(&spec)?);
            Ok(true)
        }),
        Cmd::Validate { file } => p.alone(|| {
            for sc in &scenario::load(&file, &Overrides::default())? {
                sc.build()?;
                let label = sc.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default();
                println!("{}{label}: ok", file.display());
            }
            Ok(true)
        }),
        Cmd::Compare { a, b, bandwidth, input, json } => {
            // Read first (an unreadable file is caught before any kernel pass), then compute
            // with the kernel sums split.
            let tables = p.agree(compare_inputs(&a, &b, &input))?;
            p.agree(cmd_compare(&tables, bandwidth, &input, json, p.prints(), &p.exec())).map(|_| true)
        }
        Cmd::Infer(a) => {
            p.agree(set_threads(p.threads(a.common.threads)))?;
            p.agree(check_out(&infer_out(&a), Kind::Infer, a.common.force).map(|_| ()))?;
            let series = p.agree(infer_load(&a))?;
            let (r, params) = p.agree(infer_compute(&a, &series, p.exec()))?;
            p.alone(|| infer_report(&a, &r, &params))
        }
        Cmd::Forward(a) if a.model.is_some() => p.alone(|| {
            set_threads(a.common.threads)?;
            let lm = forward_model_args(&a);
            advreact::learned::commands::cmd_forward_model(&a.data, &lm, &p.exec())
        }),
        Cmd::Forward(a) => {
            p.agree(set_threads(p.threads(a.common.threads)))?;
            p.agree(check_out(&forward_out(&a), Kind::Forward, a.common.force).map(|_| ()))?;
            let series = p.agree(forward_load(&a))?;
            let (r, params) = p.agree(forward_compute(&a, &series, p.exec()))?;
            p.alone(|| forward_report(&a, &r, &params))
        }
        Cmd::Fates(a) => p.alone(|| cmd_fates(&a)),
        Cmd::Results(a) => p.alone(|| cmd_results(&a)),
        Cmd::Fit(a) => p.alone(|| {
            set_threads(a.threads)?;
            advreact::learned::commands::cmd_fit(&a, &p.exec())
        }),
        Cmd::Field(a) => p.alone(|| advreact::learned::commands::cmd_field(&a)),
        Cmd::Plot { dir } => p.alone(|| cmd_plot(&dir)),
    }
}

#[cfg(test)]
mod tests {
    /// clap checks its definitions (conflicts naming existing flags, no duplicate names) only in
    /// debug builds: run those checks in every build.
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
