//! Running a scenario into its output folder, atomically, with checkpoints and resume.
//!
//! A run writes into a hidden sibling folder `.<name>.partial` and renames it to `<name>` only
//! when everything — CSVs, `summary.json` and, last, the plots — is written. A run that fails before
//! that removes the partial folder (unless it holds a checkpoint to resume from), so a folder
//! named like a run is always complete. A run stopped by a numerical guard (NaN, population cap)
//! or by Ctrl-C still completes its folder, with the stop reason in `summary.json`.
//!
//! Folder contents: `scenario.resolved.toml` (every default filled in: rerunnable as is),
//! `source.csv`, `target.csv`, `metrics.csv`, `snapshots.csv`, `lineage.csv`, `summary.json`,
//! `trajectories.png`, `metrics.png`; `checkpoint.bin` while a run is unfinished or interrupted.

use crate::data::write_cloud;
use crate::error::{ConfigError, Error};
use crate::observe::{
    Checkpoint, CheckpointWriter, CsvSink, LineageCsv, MetricsCsv, Observer, ProgressBar, SnapshotsCsv,
};
use crate::scenario::spec::ReportSpec;
use crate::scenario::{self, Built, Overrides, Scenario};
use crate::stepper::{Simulation, StopReason, Summary};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output folder (default `output/<name>`, or `output/<name>/<label>` for a variant).
    pub out: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Set to stop after the current step (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
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

/// The hidden folder a run writes into before it is complete.
pub fn partial_dir(out: &Path) -> PathBuf {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    parent.join(format!(".{name}.partial"))
}

/// Removes the partial folder on early exit, unless it holds a checkpoint or is disarmed.
struct PartialGuard(Option<PathBuf>);

impl PartialGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if !p.join(crate::observe::checkpoint::FILE).exists() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Build and run one scenario (variant) into its output folder.
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let Built { sim, source, target, resolved } = sc.build()?;
    let out = opts.out.clone().unwrap_or_else(|| default_out(sc));
    let tmp = partial_dir(&out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let guard = PartialGuard(Some(tmp.clone()));
    let text = toml::to_string_pretty(&resolved)
        .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
    let p = tmp.join("scenario.resolved.toml");
    std::fs::write(&p, text).map_err(io(&p))?;
    let p = tmp.join("source.csv");
    write_cloud(&p, 0.0, &source).map_err(io(&p))?;
    if let Some(t) = &target {
        let p = tmp.join("target.csv");
        write_cloud(&p, sc.spec.time.steps as f64 * sc.spec.time.dt, t).map_err(io(&p))?;
    }
    let name = match &sc.label {
        Some(l) => format!("{}/{l}", sc.spec.meta.name),
        None => sc.spec.meta.name.clone(),
    };
    execute(sim, &resolved.report, &tmp, &out, None, &name, opts, guard)
}

/// Continue a killed or interrupted run from its last checkpoint. `dir` is the run's output
/// folder (`output/<name>`); its partial folder is used if the run was killed.
pub fn resume_run(dir: &Path, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let tmp = partial_dir(dir);
    let ck_file = crate::observe::checkpoint::FILE;
    if !tmp.join(ck_file).exists() {
        if dir.join(ck_file).exists() {
            // An interrupted run: its folder was completed; reopen it.
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
            }
            std::fs::rename(dir, &tmp).map_err(io(dir))?;
        } else {
            let why = if dir.join("summary.json").exists() {
                "the run is complete (no checkpoint left)"
            } else {
                "no checkpoint found (was report.checkpoint_every set?)"
            };
            return Err(ConfigError::new(dir.display().to_string(), "(resume)", why).into());
        }
    }
    let guard = PartialGuard(Some(tmp.clone()));
    let ck = Checkpoint::read(&tmp)?;
    let scs = scenario::load(&tmp.join("scenario.resolved.toml"), &Overrides::default())?;
    let sc = scs.into_iter().next().expect("a resolved scenario has one variant");
    let Built { mut sim, resolved, .. } = sc.build()?;
    if ck.particles.dim != sim.particles.dim {
        return Err(ConfigError::new(
            tmp.join(ck_file).display().to_string(),
            "(resume)",
            "checkpoint dimension does not match the scenario",
        )
        .into());
    }
    sim.particles = ck.particles.clone();
    sim.step = ck.step;
    sim.guards = ck.guards.clone();
    sim.last_metrics = ck.last_metrics.clone();
    sim.last_metrics_step = ck.step;
    sim.field.restore_state(&ck.field_state)?;
    let name = dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    execute(sim, &resolved.report, &tmp, dir, Some(&ck), &name, opts, guard)
}

/// Run `sim` writing into `tmp`, then finalise into `out`.
#[allow(clippy::too_many_arguments)]
fn execute(
    mut sim: Simulation,
    report: &ReportSpec,
    tmp: &Path,
    out: &Path,
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
        crate::plot::plot_run(tmp).map_err(|e| Error::io(tmp, std::io::Error::other(e.to_string())))?;
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(tmp, out).map_err(io(out))?;
    guard.disarm();
    Ok(RunOutcome { dir: out.to_path_buf(), summary })
}

/// After the variants of one scenario file ran: `comparison.csv` (one row per variant and reported
/// step: `variant,step,t,<metrics>`) and `comparison.png` (the first of mmd / mmd_normalized /
/// mass against the step, one curve per variant) in `dir`, the scenario's folder.
pub fn write_comparison(dir: &Path, runs: &[(String, PathBuf)]) -> Result<Vec<PathBuf>, Error> {
    let mut header: Option<String> = None;
    let mut rows = Vec::new();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut plotted: Option<String> = None;
    for (label, run) in runs {
        let p = run.join("metrics.csv");
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        let mut lines = text.lines();
        let h = lines.next().unwrap_or_default().to_string();
        let cols: Vec<&str> = h.split(',').collect();
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
                    .find(|m| cols.contains(m))
                    .unwrap_or("step")
                    .to_string()
            })
            .clone();
        let k = cols.iter().position(|c| *c == col).unwrap_or(0);
        let mut pts = Vec::new();
        for l in lines {
            rows.push(format!("{label},{l}"));
            let f: Vec<&str> = l.split(',').collect();
            if let (Some(step), Some(v)) = (f.first(), f.get(k)) {
                if let (Ok(a), Ok(b)) = (step.parse::<f64>(), v.parse::<f64>()) {
                    pts.push((a, b));
                }
            }
        }
        series.push((label.clone(), pts));
        header = Some(h);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let csv = dir.join("comparison.csv");
    let body = format!("variant,{}\n{}\n", header.unwrap_or_default(), rows.join("\n"));
    std::fs::write(&csv, body).map_err(io(&csv))?;
    let png = dir.join("comparison.png");
    let col = plotted.unwrap_or_default();
    let log = col.starts_with("mmd");
    let name = dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    crate::plot::plot_curves(&png, &format!("{col} against step — {name}"), "step", &col, log, &series)
        .map_err(|e| Error::io(&png, std::io::Error::other(e.to_string())))?;
    Ok(vec![csv, png])
}

/// Write a folder atomically: `fill` writes into the hidden partial folder of `out`, which is then
/// renamed to `out` (replacing an older one). On error nothing named `out` is left behind.
pub fn write_folder_atomically<T>(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<T, Error>,
) -> Result<T, Error> {
    let tmp = partial_dir(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let guard = PartialGuard(Some(tmp.clone()));
    let v = fill(&tmp)?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    guard.disarm();
    Ok(v)
}
