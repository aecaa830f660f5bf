//! The command line under `mpirun -n K` (cargo feature `mpi`): every rank runs the same command
//! on the same (replicated) state, with the quadratic work split over the ranks (see
//! `advreact::dist`).
//!
//! - `run FILE`: one scenario is run by all ranks together; only rank 0 writes the output folder
//!   (and shows progress), the others run silently. A file with `[[variants]]` spreads the
//!   variants over the ranks round-robin (each variant on one rank, in its own folder), and rank 0
//!   writes `comparison.csv`/`.png` and prints one summary table at the end.
//! - `compare`: the kernel sums are split by rows; rank 0 prints.
//! - `uot`: the Sinkhorn row passes (log-sum-exp rows) are split by rows; rank 0 writes the folder.
//! - `infer`, `forward`: every rank runs the method (its Sinkhorn passes, Gram sums and kernel
//!   sums split over the ranks); rank 0 writes the folder and prints.
//! - `validate`, `resume`, `fates`, `results`, `bench`, `plot`: rank 0 alone (same result, no
//!   splitting); the others wait.
//!
//! Every command but `run` goes through the normal dispatcher (`dispatch_in` in main.rs) with
//! its phases joined over the ranks ([`Ranks`]).
//!
//! Errors: an error every rank agrees on (a bad scenario file, checked before any collective
//! work) is printed once, by rank 0, and every rank exits with code 2. An error on some ranks only
//! (an unreadable file on one node, an I/O failure while writing, a panic) prints
//! `error: rank R: …` and calls `MPI_Abort`, which stops every rank — no rank is left waiting in a
//! collective call.

use super::*;
use advreact::dist::{mpi::MpiComm, Comm, Exec, Par};
use advreact::scenario::Scenario;
use std::rc::Rc;

/// True when this process was started by `mpirun`/`mpiexec` (Open MPI, MPICH/PMI, PMIx, Slurm's
/// PMI): only then is MPI initialised, so the same binary run alone behaves like the default build.
pub fn launched_by_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// `MPI_Abort` on the world communicator, callable from anywhere (panic hook).
fn abort_world(code: i32) -> ! {
    // SAFETY: MPI is initialised for the whole life of `main` (the hook is installed after
    // initialisation); MPI_Abort does not return.
    unsafe {
        mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
    }
    std::process::exit(code)
}

pub fn main(cli: Cli) -> ExitCode {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        eprintln!("error: MPI initialisation failed");
        return ExitCode::from(2);
    };
    let comm = Rc::new(MpiComm::new(universe.world()));
    let (rank, size) = (comm.rank(), comm.size());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("error: rank {rank}: panic: {info}");
        if size > 1 {
            abort_world(3);
        }
        default_hook(info);
    }));
    let exec = Exec::new(Par::Rayon, comm.clone());
    let code = match dispatch(cli, &exec) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(Failure::Agreed(e)) => {
            if rank == 0 {
                eprintln!("error: {e}");
            }
            2
        }
        Err(Failure::Silent) => 2,
        Err(Failure::Local(e)) => {
            eprintln!("error: rank {rank}: {e}");
            if size > 1 {
                comm.abort(2);
            }
            2
        }
    };
    drop(exec);
    drop(comm);
    drop(universe); // MPI_Finalize
    ExitCode::from(code)
}

/// How a command failed.
enum Failure {
    /// Every rank failed the same way at a synchronisation point: rank 0 reports it.
    Agreed(Error),
    /// This rank failed alone (or at a point where the others may be waiting): abort all.
    Local(Error),
    /// Another rank reports the error; exit with code 2.
    Silent,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Local(e)
    }
}

/// Synchronise on a per-rank result: if every rank succeeded, `Ok`; if every rank failed, the
/// error is agreed (rank 0 reports it); otherwise the failing ranks abort with their error and the
/// others wait to be stopped.
fn agree<T>(comm: &dyn Comm, r: Result<T, Error>) -> Result<T, Failure> {
    let failed = comm.all_gather_u64(&[u64::from(r.is_err())]);
    let nfail = failed.iter().sum::<u64>() as usize;
    match r {
        Ok(v) if nfail == 0 => Ok(v),
        Err(e) if nfail == comm.size() => Err(Failure::Agreed(e)),
        Err(e) => Err(Failure::Local(e)),
        Ok(_) => {
            // Another rank failed and is aborting the job; wait for it.
            comm.barrier();
            unreachable!("a failing rank aborts the job")
        }
    }
}

/// Rayon threads per rank when `--threads` is not given: the cores shared by the ranks on this
/// node (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`).
fn threads_per_rank(threads: Option<usize>) -> Option<usize> {
    threads.or_else(|| {
        let local: usize = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE").ok()?.parse().ok()?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        (local > 1).then(|| (cores / local).max(1))
    })
}

/// The ranks of the job, joined at each phase of a command ([`agree`], [`rank0_only`]); the
/// collective phases run in the job's context.
struct Ranks<'a>(&'a Exec);

impl Phases for Ranks<'_> {
    type Fail = Failure;
    fn agree<T>(&self, r: Result<T, Error>) -> Result<T, Failure> {
        agree(&*self.0.comm, r)
    }
    fn alone(&self, f: impl FnOnce() -> Result<bool, Error>) -> Result<bool, Failure> {
        rank0_only(&*self.0.comm, f)
    }
    fn prints(&self) -> bool {
        self.0.comm.rank() == 0
    }
    fn threads(&self, threads: Option<usize>) -> Option<usize> {
        threads_per_rank(threads)
    }
    fn interruptible(&self) -> bool {
        false
    }
    fn exec(&self) -> Exec {
        self.0.clone()
    }
}

/// `run` has its own distributed code ([`run`]); every other command goes through the normal
/// dispatcher with its phases joined over the ranks.
fn dispatch(cli: Cli, exec: &Exec) -> Result<bool, Failure> {
    let comm = &*exec.comm;
    match cli.cmd {
        Cmd::Run { file, seed, threads, out, force, steps, quiet, strict } => {
            agree(comm, set_threads(threads_per_rank(threads)))?;
            run(exec, &file, &Overrides { seed, steps, strict }, out, force, quiet)
        }
        other => dispatch_in(other, &Ranks(exec)),
    }
}

/// Run `f` on rank 0 alone (no splitting: `f` is given no communicator, its passes run in
/// single-process contexts); every rank returns its outcome.
fn rank0_only(comm: &dyn Comm, f: impl FnOnce() -> Result<bool, Error>) -> Result<bool, Failure> {
    let r = if comm.rank() == 0 { Some(f()) } else { None };
    let code = match &r {
        Some(Ok(true)) => 0,
        Some(Ok(false)) => 1,
        Some(Err(_)) => 2,
        None => 0,
    };
    let code = comm.all_gather_u64(&[code])[0];
    match (r, code) {
        (Some(Err(e)), _) => Err(Failure::Agreed(e)),
        (_, 2) => Err(Failure::Silent),
        (_, c) => Ok(c == 0),
    }
}

fn run(
    exec: &Exec,
    file: &Path,
    ov: &Overrides,
    out: Option<PathBuf>,
    force: bool,
    quiet: bool,
) -> Result<bool, Failure> {
    let comm = &*exec.comm;
    let (rank, size) = (comm.rank(), comm.size());
    // Parsing and validation involve no collective work: every rank reads the file, and a bad
    // file is one agreed error.
    let scs = agree(comm, scenario::load(file, ov))?;
    let out_of = |sc: &Scenario| match (&out, &sc.label) {
        (Some(o), Some(l)) => Some(o.join(l)),
        (Some(o), None) => Some(o.clone()),
        _ => None,
    };
    if scs.len() == 1 {
        // One run, split over every rank. It is built once, on each rank alone (a build has no
        // collective work: it is given no communicator, the same bits as a single process), so
        // that a bad input is one agreed error; the run below is split over the ranks (`exec`),
        // so from there on an error aborts the job.
        let sc = &scs[0];
        let dir = out_of(sc).unwrap_or_else(|| advreact::run::default_out(sc));
        agree(comm, check_out(&dir, Kind::Run, force).map(|_| ()))?;
        let mut built = agree(comm, sc.build())?;
        if rank == 0 {
            let opts =
                RunOptions { out: out_of(sc), force, progress: !quiet, interrupt: None, exec: exec.clone() };
            let r = run_built(sc, built, &opts)?;
            if size > 1 {
                println!("({} ranks)", size);
            }
            Ok(report(&r, true))
        } else {
            // The other ranks run the same simulation, split over the ranks, writing nothing.
            built.sim.exec = exec.clone();
            Ok(finished_well(&built.sim.run(&mut [])?))
        }
    } else {
        // A sweep: variant i on rank i mod K, alone. Each rank builds its variants first, so a
        // bad variant fails (on every rank, agreed) before anything is written.
        // The top folder is checked before any variant runs (the variants' folders are written
        // in place by their ranks; `resume` of a sweep is not distributed).
        let top = sweep_out(&scs, out.as_deref());
        agree(comm, check_out(&top, Kind::Run, force).map(|_| ()))?;
        let mine: Vec<usize> = (0..scs.len()).filter(|i| i % size == rank).collect();
        let built = agree(comm, mine.iter().map(|&i| scs[i].build()).collect::<Result<Vec<_>, _>>())?;
        let mut rows: Vec<u64> = Vec::new();
        for (&i, built) in mine.iter().zip(built) {
            let sc = &scs[i];
            // This variant on this rank alone: a single-process context.
            let progress = !quiet && rank == 0;
            let opts = RunOptions { out: out_of(sc), force, progress, interrupt: None, exec: exec.local() };
            let r = run_built(sc, built, &opts)?;
            let ok = report(&r, true);
            let s = &r.summary;
            let line = format!(
                "{}\t{}\t{}\t{}",
                sc.label.clone().unwrap_or_default(),
                s.stop_reason,
                s.steps,
                s.final_metrics.iter().map(|(k, v)| format!("{k}={v:.6e}")).collect::<Vec<_>>().join(" ")
            );
            rows.push(i as u64);
            rows.push(u64::from(ok));
            rows.push(line.len() as u64);
            rows.extend(line.bytes().map(u64::from));
        }
        // Everything each rank ran, in rank order; rank 0 puts it back in variant order.
        let all = comm.all_gather_u64(&rows);
        let mut table: Vec<(usize, bool, String)> = Vec::new();
        let mut k = 0;
        while k < all.len() {
            let (i, ok, len) = (all[k] as usize, all[k + 1] == 1, all[k + 2] as usize);
            let line: Vec<u8> = all[k + 3..k + 3 + len].iter().map(|b| *b as u8).collect();
            table.push((i, ok, String::from_utf8_lossy(&line).into_owned()));
            k += 3 + len;
        }
        table.sort_by_key(|r| r.0);
        let ok = table.iter().all(|r| r.1);
        if rank == 0 {
            let done: Vec<(String, PathBuf)> = scs
                .iter()
                .filter_map(|sc| {
                    let l = sc.label.clone()?;
                    Some((l, out_of(sc).unwrap_or_else(|| advreact::run::default_out(sc))))
                })
                .collect();
            if done.len() > 1 && done.len() == scs.len() {
                advreact::output::write_marker(&top, Kind::Run)?;
                let files = advreact::run::write_comparison(&top, &scs[0].spec.meta.name, &done)?;
                println!(
                    "comparison: {}",
                    files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
            }
            println!("variant\tstop\tsteps\tfinal metrics   ({} variants on {size} ranks)", scs.len());
            for (_, _, line) in &table {
                println!("{line}");
            }
        }
        Ok(ok)
    }
}
