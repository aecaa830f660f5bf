//! Running a scenario into its output folder, atomically, with checkpoints and resume.
//!
//! The folder is an output folder of kind `run` ([`crate::output`]: checked before anything is
//! written, marker `.advreact-output`, never replacing foreign files without `--force`). A run
//! writes into the hidden sibling `.<name>.partial` and puts it in place only when everything —
//! CSVs, `summary.json` and, last, the plots — is written. A run that fails before that removes the
//! partial folder (unless it holds a checkpoint to resume from) and leaves an older output as it
//! was. A run stopped by a numerical guard (NaN, population cap) or interrupted (Ctrl-C, SIGTERM)
//! still completes its folder, with the stop reason in `summary.json`.
//!
//! Folder contents: `scenario.resolved.toml` (every default filled in: rerunnable as is),
//! `source.csv`, `target.csv`, `metrics.csv`, `snapshots.csv`, `lineage.csv`, `summary.json`,
//! `trajectories.png`, `metrics.png` (titled `meta.name`, `meta.name/label` for a variant);
//! `checkpoint.bin` while a run is unfinished or interrupted.
//!
//! A scenario file with `[[variants]]` ([`run_sweep`]) is one top folder holding `variants.json`
//! (the file's text and path and the `--seed`/`--steps` overrides, so `resume` needs nothing
//! else), one run folder per variant (`<label>/`) and, once all have finished,
//! `comparison.csv`/`comparison.png`. `resume <top>` finishes the interrupted variant, runs the
//! ones not yet run and writes the comparison.
//!
//! [`redraw`] (`advreact plot DIR`) draws the figures of a finished run or variant top folder
//! again, with the same titles, so the same bytes.

use crate::data::{csv_field, write_cloud, CsvReader};
use crate::error::{ConfigError, Error};
use crate::observe::{
    Checkpoint, CheckpointWriter, CsvSink, LineageCsv, MetricsCsv, Observer, ProgressBar, SnapshotsCsv,
};
use crate::output::{Kind, PartialGuard, Target};
use crate::scenario::spec::ReportSpec;
use crate::scenario::{self, Built, Overrides, Scenario};
use crate::stepper::{Simulation, StopReason, Summary};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output folder (default `output/<name>`, or `output/<name>/<label>` for a variant).
    pub out: Option<PathBuf>,
    /// Replace a folder with foreign files (never `.`, `..`, a parent of the current folder,
    /// `$HOME` or `/`; see [`crate::output`]).
    pub force: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Set to stop after the current step (Ctrl-C, SIGTERM).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Where the run's row passes go (default one process on the rayon pool; the MPI dispatcher
    /// gives its ranks), set on the simulation once it is built.
    pub exec: crate::dist::Exec,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The output folder.
    pub dir: PathBuf,
    /// The run's summary.
    pub summary: Summary,
}

/// The output files whose lengths a checkpoint records.
const CSVS: [&str; 3] = ["metrics.csv", "snapshots.csv", "lineage.csv"];

/// The default output folder of a scenario.
pub fn default_out(sc: &Scenario) -> PathBuf {
    let base = Path::new("output").join(&sc.spec.meta.name);
    match &sc.label {
        Some(l) => base.join(l),
        None => base,
    }
}

pub use crate::output::partial_dir;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// The title of a run's plots and progress bar: `meta.name`, or `meta.name/label` for a variant.
fn title(sc: &Scenario) -> String {
    match &sc.label {
        Some(l) => format!("{}/{l}", sc.spec.meta.name),
        None => sc.spec.meta.name.clone(),
    }
}

/// Build and run one scenario (variant) into its output folder.
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> Result<RunOutcome, Error> {
    run_built(sc, sc.build()?, opts)
}

/// Run one scenario (variant) already built (by [`Scenario::build`]) into its output folder.
pub fn run_built(sc: &Scenario, built: Built, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let out = opts.out.clone().unwrap_or_else(|| default_out(sc));
    let target = Target::check(&out, Kind::Run, opts.force)?;
    let Built { mut sim, source, target: target_cloud, resolved } = built;
    sim.exec = opts.exec.clone();
    let tmp = target.begin()?;
    let guard = PartialGuard::new(&tmp);
    let text = toml::to_string_pretty(&resolved)
        .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
    let p = tmp.join("scenario.resolved.toml");
    std::fs::write(&p, text).map_err(io(&p))?;
    let p = tmp.join("source.csv");
    write_cloud(&p, 0.0, &source).map_err(io(&p))?;
    if let Some(t) = &target_cloud {
        let p = tmp.join("target.csv");
        write_cloud(&p, sc.spec.time.steps as f64 * sc.spec.time.dt, t).map_err(io(&p))?;
    }
    execute(sim, &resolved.report, &tmp, &target, None, &title(sc), opts, guard)
}

/// Continue a killed or interrupted run from its last checkpoint. `dir` is the folder given to
/// `run` (`output/<name>`); its partial folder is used if the run was killed. For a scenario
/// with variants this finishes the interrupted variant, runs the variants not yet run and
/// writes the comparison.
pub fn resume_run(
    dir: &Path,
    opts: &RunOptions,
    on_run: &mut dyn FnMut(&RunOutcome),
) -> Result<SweepOutcome, Error> {
    let target = Target::check_as(dir, Kind::Run, opts.force, "DIR")?;
    if target.partial().join(SWEEP).exists() || dir.join(SWEEP).exists() {
        return resume_sweep(&target, opts, on_run);
    }
    // A variant folder resumed on its own keeps its variant's title.
    let label = dir
        .parent()
        .filter(|p| p.join(SWEEP).exists())
        .and_then(|_| dir.file_name())
        .map(|s| s.to_string_lossy().to_string());
    let r = resume_one(&target, label.as_deref(), opts)?;
    on_run(&r);
    let interrupted = r.summary.stop_reason == StopReason::Interrupted;
    Ok(SweepOutcome { dir: r.dir.clone(), runs: vec![r], comparison: Vec::new(), interrupted })
}

/// Resume one run (no variants) whose output folder is `target`.
fn resume_one(target: &Target, label: Option<&str>, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let dir = &target.path;
    let tmp = target.partial();
    let ck_file = crate::observe::checkpoint::FILE;
    if !tmp.join(ck_file).exists() {
        if dir.join(ck_file).exists() {
            // An interrupted run: its folder was completed; reopen it (once its checkpoint reads:
            // an unreadable one leaves the folder where it is).
            Checkpoint::read(dir)?;
            target.reopen()?;
        } else {
            let why = if dir.join("summary.json").exists() {
                "the run is complete (no checkpoint left)"
            } else {
                "no checkpoint found (was report.checkpoint_every set?)"
            };
            return Err(ConfigError::new(dir.display().to_string(), "(resume)", why).into());
        }
    }
    let guard = PartialGuard::new(&tmp);
    let ck = Checkpoint::read(&tmp)?;
    let scs = scenario::load(&tmp.join("scenario.resolved.toml"), &Overrides::default())?;
    let mut sc = scs.into_iter().next().expect("a resolved scenario has one variant");
    sc.label = label.map(str::to_string);
    let Built { mut sim, resolved, .. } = sc.build()?;
    let mismatch = if ck.particles.dim != sim.particles.dim {
        Some(format!(
            "checkpoint dimension {} does not match the scenario's {}",
            ck.particles.dim, sim.particles.dim
        ))
    } else if ck.seed != sim.seed {
        Some(format!("checkpoint seed {} does not match the scenario's {}", ck.seed, sim.seed))
    } else {
        None
    };
    if let Some(why) = mismatch {
        return Err(ConfigError::new(tmp.join(ck_file).display().to_string(), "(resume)", why).into());
    }
    sim.particles = ck.particles.clone();
    sim.step = ck.step;
    sim.guards = ck.guards.clone();
    sim.last_metrics = ck.last_metrics.clone();
    sim.last_metrics_step = ck.step;
    sim.field.restore_state(ck.field_state.clone())?;
    execute(sim, &resolved.report, &tmp, target, Some(&ck), &title(&sc), opts, guard)
}

/// What a scenario file with variants keeps in its top folder so that `resume` can finish it
/// without the original file: the file's text, its path (relative paths inside it are anchored
/// there) and the command-line overrides.
const SWEEP: &str = "variants.json";

#[derive(Debug, Serialize, Deserialize)]
struct SweepState {
    format: u32,
    file: PathBuf,
    seed: Option<u64>,
    steps: Option<usize>,
    /// `--strict` (absent in a file written before it existed: false).
    #[serde(default)]
    strict: bool,
    scenario: String,
}

impl SweepState {
    fn scenarios(&self) -> Result<Vec<Scenario>, Error> {
        scenario::load_str(
            &self.scenario,
            &self.file,
            &Overrides { seed: self.seed, steps: self.steps, strict: self.strict },
        )
    }
}

/// The top folder of a scenario file with variants: `out`, or `output/<meta.name>`.
pub fn sweep_out(scs: &[Scenario], out: Option<&Path>) -> PathBuf {
    out.map(Path::to_path_buf).unwrap_or_else(|| Path::new("output").join(&scs[0].spec.meta.name))
}

/// What `run` of a scenario file with variants, or `resume`, did: the runs made by this call
/// (for a file without variants, `resume` makes one).
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The top folder.
    pub dir: PathBuf,
    /// The variants run by this call, in order (the last one may be interrupted).
    pub runs: Vec<RunOutcome>,
    /// `comparison.csv` and `comparison.png` once every variant has completed.
    pub comparison: Vec<PathBuf>,
    /// A variant was interrupted (`resume` continues).
    pub interrupted: bool,
}

/// Run every variant of the scenario file `file` (loaded as `scs` with `ov`, built as `built`,
/// one per variant) into `<top>/<label>/`, then `comparison.csv`/`.png` into `<top>`. The top folder is one output
/// folder ([`Target`]): checked before any variant runs, written as `.<top>.partial` and put in
/// place when every variant has finished, or when one is interrupted (then `resume <top>`
/// continues). `on_run` sees each variant's outcome as it finishes.
pub fn run_sweep(
    file: &Path,
    ov: &Overrides,
    scs: &[Scenario],
    built: Vec<Built>,
    opts: &RunOptions,
    on_run: &mut dyn FnMut(&RunOutcome),
) -> Result<SweepOutcome, Error> {
    if built.len() != scs.len() {
        let msg = format!("{} variants but {} built", scs.len(), built.len());
        return Err(ConfigError::new(file.display().to_string(), "variants", msg).into());
    }
    let top = sweep_out(scs, opts.out.as_deref());
    let target = Target::check(&top, Kind::Run, opts.force)?;
    let text = std::fs::read_to_string(file).map_err(io(file))?;
    let abs = file.canonicalize().map_err(io(file))?;
    let state = SweepState {
        format: 1,
        file: abs,
        seed: ov.seed,
        steps: ov.steps,
        strict: ov.strict,
        scenario: text,
    };
    let tmp = target.begin()?;
    let guard = PartialGuard::new(&tmp);
    let p = tmp.join(SWEEP);
    let json = serde_json::to_string_pretty(&state).map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
    std::fs::write(&p, json + "\n").map_err(io(&p))?;
    let r = continue_sweep(&target, &tmp, scs, built.into_iter().map(Some).collect(), opts, on_run)?;
    guard.disarm();
    Ok(r)
}

/// Finish a sweep whose top folder is `target` (killed: its partial folder is used; interrupted:
/// the folder is reopened).
fn resume_sweep(
    target: &Target,
    opts: &RunOptions,
    on_run: &mut dyn FnMut(&RunOutcome),
) -> Result<SweepOutcome, Error> {
    let tmp = target.partial();
    if !tmp.join(SWEEP).exists() {
        if sweep_finished(&target.path)? {
            let why = "the run is complete (every variant finished, no checkpoint left)";
            return Err(ConfigError::new(target.path.display().to_string(), "(resume)", why).into());
        }
        target.reopen()?;
    }
    let scs = read_sweep(&tmp)?.scenarios()?;
    continue_sweep(target, &tmp, &scs, scs.iter().map(|_| None).collect(), opts, on_run)
}

fn read_sweep(dir: &Path) -> Result<SweepState, Error> {
    let p = dir.join(SWEEP);
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    serde_json::from_str(&text)
        .map_err(|e| ConfigError::new(p.display().to_string(), "(resume)", format!("unreadable: {e}")).into())
}

/// A variant folder is finished when it has its summary and no checkpoint.
fn variant_finished(dir: &Path) -> bool {
    dir.join("summary.json").exists() && !dir.join(crate::observe::checkpoint::FILE).exists()
}

/// True if every variant of the sweep in `dir` has finished.
fn sweep_finished(dir: &Path) -> Result<bool, Error> {
    let scs = read_sweep(dir)?.scenarios()?;
    Ok(scs.iter().all(|sc| variant_finished(&dir.join(sc.label.as_deref().unwrap_or_default()))))
}

/// Run the variants of `scs` not yet finished in the partial top folder `tmp` (from `built`
/// where given, else built here), then (all done) the comparison, then put `tmp` in place.
fn continue_sweep(
    target: &Target,
    tmp: &Path,
    scs: &[Scenario],
    built: Vec<Option<Built>>,
    opts: &RunOptions,
    on_run: &mut dyn FnMut(&RunOutcome),
) -> Result<SweepOutcome, Error> {
    let mut runs = Vec::new();
    let mut done = Vec::new();
    let mut interrupted = false;
    for (sc, built) in scs.iter().zip(built) {
        let label = sc.label.clone().unwrap_or_default();
        let sub = tmp.join(&label);
        if !variant_finished(&sub) {
            let o = RunOptions { out: Some(sub.clone()), force: false, ..opts.clone() };
            let ck = crate::observe::checkpoint::FILE;
            let r = if sub.join(ck).exists() || partial_dir(&sub).join(ck).exists() {
                resume_one(&Target::check(&sub, Kind::Run, false)?, Some(&label), &o)?
            } else {
                run_built(sc, built.map_or_else(|| sc.build(), Ok)?, &o)?
            };
            // Shown where it will be once the top folder is in place.
            let r = RunOutcome { dir: target.path.join(&label), ..r };
            on_run(&r);
            interrupted = r.summary.stop_reason == StopReason::Interrupted;
            runs.push(r);
            if interrupted {
                break;
            }
        }
        done.push((label, sub));
    }
    let mut comparison = Vec::new();
    if !interrupted && done.len() > 1 {
        comparison = write_comparison(tmp, &sc_name(scs), &done)?;
    }
    target.commit(tmp)?;
    let top = &target.path;
    let comparison = comparison.iter().filter_map(|p| p.file_name()).map(|f| top.join(f)).collect();
    Ok(SweepOutcome { dir: top.clone(), runs, comparison, interrupted })
}

fn sc_name(scs: &[Scenario]) -> String {
    scs.first().map(|s| s.spec.meta.name.clone()).unwrap_or_default()
}

/// Run `sim` writing into `tmp`, then finalise into `out`.
#[allow(clippy::too_many_arguments)]
fn execute(
    mut sim: Simulation,
    report: &ReportSpec,
    tmp: &Path,
    target: &Target,
    resume: Option<&Checkpoint>,
    name: &str,
    opts: &RunOptions,
    guard: PartialGuard,
) -> Result<RunOutcome, Error> {
    if let Some(flag) = &opts.interrupt {
        sim.interrupt = flag.clone();
    }
    let sink = |f: &str| -> Result<CsvSink, Error> {
        let s = CsvSink::new(tmp.join(f));
        Ok(match resume {
            Some(ck) => {
                let len = ck.files.iter().find(|(k, _)| k == f).map(|(_, v)| *v).ok_or_else(|| {
                    ConfigError::new(
                        tmp.join("checkpoint.bin").display().to_string(),
                        "(resume)",
                        format!("no length for {f}"),
                    )
                })?;
                s.resume_at(len)
            }
            None => s,
        })
    };
    let steps = sim.time.steps;
    let snap_every = steps.checked_div(report.snapshots).map_or(usize::MAX, |v| v.max(1));
    let mut observers: Vec<Box<dyn Observer>> = vec![
        Box::new(MetricsCsv(sink(CSVS[0])?)),
        Box::new(SnapshotsCsv::new(sink(CSVS[1])?, snap_every, report.snapshot_particles)),
        Box::new(LineageCsv(sink(CSVS[2])?)),
    ];
    if opts.progress {
        observers.push(Box::new(ProgressBar::new(steps, name)));
    }
    observers.push(Box::new(CheckpointWriter {
        dir: tmp.to_path_buf(),
        files: CSVS.iter().map(|s| s.to_string()).collect(),
        seed: sim.seed,
    }));
    let summary = sim.run(&mut observers)?;
    drop(observers);
    if summary.stop_reason != StopReason::Interrupted {
        let ck = tmp.join(crate::observe::checkpoint::FILE);
        if ck.exists() {
            std::fs::remove_file(&ck).map_err(io(&ck))?;
        }
    }
    // summary.json before the plots: the trajectory legend reads the final population from it.
    let p = tmp.join("summary.json");
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
    std::fs::write(&p, json + "\n").map_err(io(&p))?;
    if report.plots {
        crate::plot::plot_run_titled(tmp, name)
            .map_err(|e| Error::io(tmp, std::io::Error::other(e.to_string())))?;
    }
    target.commit(tmp)?;
    guard.disarm();
    Ok(RunOutcome { dir: target.path.clone(), summary })
}

/// After the variants of one scenario file ran: `comparison.csv` (one row per variant and reported
/// step: `variant,step,t,<metrics>`) and `comparison.png` (the first of mmd / mmd_normalized /
/// mass against the step, one curve per variant) in `dir`, the scenario's folder.
pub fn write_comparison(dir: &Path, name: &str, runs: &[(String, PathBuf)]) -> Result<Vec<PathBuf>, Error> {
    let c = read_comparison(runs)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let csv = dir.join("comparison.csv");
    std::fs::write(&csv, &c.csv).map_err(io(&csv))?;
    Ok(vec![csv, plot_comparison(dir, name, &c)?])
}

/// The variants' metrics gathered for the comparison: `comparison.csv`'s text and the plotted
/// column's curves.
struct Comparison {
    csv: String,
    col: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draw `comparison.png` into `dir`; its path.
fn plot_comparison(dir: &Path, name: &str, c: &Comparison) -> Result<PathBuf, Error> {
    let png = dir.join("comparison.png");
    let (col, log) = (&c.col, c.col.starts_with("mmd"));
    crate::plot::plot_curves(&png, &format!("{col} against step — {name}"), "step", col, log, &c.series)
        .map_err(|e| Error::io(&png, std::io::Error::other(e.to_string())))?;
    Ok(png)
}

/// Read the variants' `metrics.csv` ([`write_comparison`]).
fn read_comparison(runs: &[(String, PathBuf)]) -> Result<Comparison, Error> {
    let mut header: Option<String> = None;
    let mut rows = Vec::new();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut plotted: Option<String> = None;
    for (label, run) in runs {
        let p = run.join("metrics.csv");
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        let reader = CsvReader::new(&p, &text)?;
        let cols: Vec<String> = reader.as_ref().map(|r| r.header().to_vec()).unwrap_or_default();
        let h = join_fields(&cols);
        if header.as_ref().is_some_and(|x| *x != h) {
            return Err(Error::io(
                &p,
                std::io::Error::other("variants report different metrics; no comparison"),
            ));
        }
        let col = plotted
            .get_or_insert_with(|| {
                ["mmd", "mmd_normalized", "mass"]
                    .into_iter()
                    .find(|m| cols.iter().any(|c| c == m))
                    .unwrap_or("step")
                    .to_string()
            })
            .clone();
        let k = cols.iter().position(|c| *c == col).unwrap_or(0);
        let mut pts = Vec::new();
        for row in reader.into_iter().flatten() {
            let f = row?.fields;
            rows.push(format!("{label},{}", join_fields(&f)));
            if let (Some(step), Some(v)) = (f.first(), f.get(k)) {
                if let (Ok(a), Ok(b)) = (step.parse::<f64>(), v.parse::<f64>()) {
                    pts.push((a, b));
                }
            }
        }
        series.push((label.clone(), pts));
        header = Some(h);
    }
    let csv = format!("variant,{}\n{}\n", header.unwrap_or_default(), rows.join("\n"));
    Ok(Comparison { csv, col: plotted.unwrap_or_default(), series })
}

/// CSV fields joined into a line (quoted where needed: [`csv_field`]).
fn join_fields(f: &[String]) -> String {
    f.iter().map(|v| csv_field(v)).collect::<Vec<_>>().join(",")
}

/// `advreact plot DIR` for a `run` output folder: redraw the figures of a run folder
/// (`trajectories.png`, `metrics.png`, titled as the run titled them) or of a variant top folder
/// (each finished variant's, then `comparison.png` if every variant has finished). Returns the
/// files written. Each PNG is replaced atomically; nothing else is touched.
pub fn redraw(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let plot = |run: &Path, title: &str| {
        crate::plot::plot_run_titled(run, title)
            .map_err(|e| Error::io(run, std::io::Error::other(e.to_string())))
    };
    if !dir.join(SWEEP).exists() {
        let resolved = dir.join("scenario.resolved.toml");
        let text = std::fs::read_to_string(&resolved).map_err(io(&resolved))?;
        let spec: toml::Value = toml::from_str(&text).map_err(|e| {
            ConfigError::new(resolved.display().to_string(), "(plot)", format!("unreadable: {e}"))
        })?;
        let name = spec.get("meta").and_then(|m| m.get("name")).and_then(|n| n.as_str()).unwrap_or_default();
        // A variant's folder (its parent a variant top folder) is titled meta.name/label.
        let label = dir.parent().filter(|p| p.join(SWEEP).exists()).and_then(|_| dir.file_name());
        let title = match label {
            Some(l) => format!("{name}/{}", l.to_string_lossy()),
            None => name.to_string(),
        };
        return plot(dir, &title);
    }
    let scs = read_sweep(dir)?.scenarios()?;
    let mut written = Vec::new();
    let mut done = Vec::new();
    for sc in &scs {
        let sub = dir.join(sc.label.as_deref().unwrap_or_default());
        if variant_finished(&sub) {
            written.extend(plot(&sub, &title(sc))?);
            done.push((sc.label.clone().unwrap_or_default(), sub));
        }
    }
    if done.len() > 1 && done.len() == scs.len() {
        written.push(plot_comparison(dir, &sc_name(&scs), &read_comparison(&done)?)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::particles::Cloud;
    use crate::scenario::distribution::CSV_READS;

    /// A scenario whose source and target are CSV files reads each file once per run: `build`
    /// reads both (the source's dimension comes from the rows it sampled), and the run of the
    /// built scenario needs neither (it completes after they are removed).
    #[test]
    fn a_csv_source_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..30).map(|i| format!("0,{},{}\n", i as f64 * 0.1, (i % 7) as f64)).collect();
        std::fs::write(dir.path().join("a.csv"), format!("time,x1,x2\n{rows}")).unwrap();
        std::fs::write(dir.path().join("b.csv"), format!("time,x1,x2\n{rows}")).unwrap();
        let text = "[meta]\nname = \"csv_once\"\n[source]\ntype = \"csv\"\npath = \"a.csv\"\nn = 20\n\
                    [target]\ntype = \"csv\"\npath = \"b.csv\"\n[field]\ntype = \"ou\"\ntheta = 1.0\n\
                    mean = [0.0, 0.0]\n[time]\ndt = 0.1\nsteps = 3\n[report]\nplots = false\n";
        let file = dir.path().join("s.toml");
        let sc = scenario::load_str(text, &file, &Overrides::default()).unwrap().remove(0);
        let before = CSV_READS.with(|n| n.get());
        let built = sc.build().unwrap();
        assert_eq!(CSV_READS.with(|n| n.get()) - before, 2, "one read per file");
        assert_eq!((built.source.len(), built.target.as_ref().map(Cloud::len)), (20, Some(30)));
        std::fs::remove_file(dir.path().join("a.csv")).unwrap();
        std::fs::remove_file(dir.path().join("b.csv")).unwrap();
        let opts = RunOptions { out: Some(dir.path().join("out")), ..RunOptions::default() };
        let r = run_built(&sc, built, &opts).unwrap();
        assert_eq!((r.summary.stop_reason, r.summary.steps), (StopReason::Completed, 3));
        assert_eq!(CSV_READS.with(|n| n.get()) - before, 2, "the run read no file");
        assert!(r.dir.join("source.csv").exists() && r.dir.join("target.csv").exists());
    }
}
