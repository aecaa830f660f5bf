//! `advreact` command line: run scenarios, validate them, compare point clouds.

use advreact::data::read_snapshot;
use advreact::error::{ConfigError, Error};
use advreact::metrics::mmd_terms;
use advreact::run::{resume_run, run_scenario, write_comparison, RunOptions, RunOutcome};
use advreact::scenario::{self, median_distance, Overrides};
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

/// Print a one-line report of a finished run; true if it ended well.
fn report(r: &RunOutcome) -> bool {
    let s = &r.summary;
    let metrics: Vec<String> = s.final_metrics.iter().map(|(k, v)| format!("{k}={v:.6e}")).collect();
    println!(
        "{}: {:?} after {} steps (t = {}), n = {}, {}",
        r.dir.display(),
        s.stop_reason,
        s.steps,
        s.t,
        s.n,
        metrics.join(", ")
    );
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
) -> Result<bool, Error> {
    set_threads(threads)?;
    let flag = interrupt_flag();
    let scs = scenario::load(file, &Overrides { seed, steps })?;
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
fn cmd_compare(
    a: &Path,
    b: &Path,
    bandwidth: Option<f64>,
    time: Option<f64>,
    json: bool,
    print: bool,
) -> Result<(), Error> {
    let ca = read_snapshot(a)?.select(time)?;
    let cb = read_snapshot(b)?.select(time)?;
    if ca.dim != cb.dim {
        return Err(ConfigError::new(
            b.display().to_string(),
            "(columns)",
            format!("is {}-dimensional, {} is {}-dimensional", cb.dim, a.display(), ca.dim),
        )
        .into());
    }
    if let Some(s) = bandwidth {
        if !(s.is_finite() && s > 0.0) {
            return Err(ConfigError::new("<cli>", "--bandwidth", format!("must be > 0, got {s}")).into());
        }
    }
    let s = bandwidth.unwrap_or_else(|| median_distance(&cb));
    let t = mmd_terms(ca.dim, &ca.x, &ca.w, &cb.x, &cb.w, s);
    let mmd = t.mmd2.max(0.0).sqrt();
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

#[cfg(feature = "mpi")]
mod mpi_main;

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "mpi")]
    if mpi_main::launched_by_mpirun() {
        return mpi_main::main(cli);
    }
    let result = match cli.cmd {
        Cmd::Run { file, seed, threads, out, steps, quiet } => {
            cmd_run(&file, seed, threads, out, steps, quiet)
        }
        Cmd::Resume { dir, threads, quiet } => set_threads(threads).and_then(|_| {
            let opts = RunOptions { out: None, progress: !quiet, interrupt: Some(interrupt_flag()) };
            resume_run(&dir, &opts).map(|r| report(&r))
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
            cmd_compare(&a, &b, bandwidth, time, json, true).map(|_| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
