//! Running a scenario into its output folder, atomically.
//!
//! The run writes into a sibling temporary folder `<out>.partial-<pid>` and renames it to
//! `<out>` only when everything — CSVs, plots and, last, `summary.json` — is written. A run that
//! fails before that (bad input, I/O error) removes the temporary folder, so a folder named like a
//! run is always complete. A run stopped by a numerical guard (NaN, population cap) still
//! completes its folder, with the stop reason and error in `summary.json`, and reports failure.
//!
//! Folder contents: `scenario.resolved.toml` (every default filled in: rerunnable as is),
//! `source.csv`, `target.csv`, `metrics.csv`, `snapshots.csv`, `lineage.csv`, `summary.json`,
//! `trajectories.png`, `metrics.png`.

use crate::data::write_cloud;
use crate::error::Error;
use crate::observe::{LineageCsv, MetricsCsv, Observer, ProgressBar, SnapshotsCsv};
use crate::scenario::{Built, Scenario};
use crate::stepper::Summary;
use std::path::{Path, PathBuf};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output folder (default `output/<name>`, or `output/<name>/<label>` for a variant).
    pub out: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
}

/// The default output folder of a scenario.
pub fn default_out(sc: &Scenario) -> PathBuf {
    let base = Path::new("output").join(&sc.spec.meta.name);
    match &sc.label {
        Some(l) => base.join(l),
        None => base,
    }
}

/// Removes the temporary folder unless disarmed.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Build and run one scenario (variant) into its output folder.
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let Built {
        mut sim,
        source,
        target,
        resolved,
    } = sc.build()?;
    let out = opts.out.clone().unwrap_or_else(|| default_out(sc));
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let fname = out
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "run".into());
    let tmp = parent.join(format!(".{fname}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let guard = TempDir(Some(tmp.clone()));

    let resolved_toml = toml::to_string_pretty(&resolved)
        .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
    let p = tmp.join("scenario.resolved.toml");
    std::fs::write(&p, resolved_toml).map_err(io(&p))?;
    let p = tmp.join("source.csv");
    write_cloud(&p, 0.0, &source).map_err(io(&p))?;
    if let Some(t) = &target {
        let p = tmp.join("target.csv");
        write_cloud(&p, sc.spec.time.steps as f64 * sc.spec.time.dt, t).map_err(io(&p))?;
    }
    let steps = sim.time.steps;
    let snap_every = steps
        .checked_div(resolved.report.snapshots)
        .map_or(usize::MAX, |v| v.max(1));
    let mut observers: Vec<Box<dyn Observer>> = vec![
        Box::new(MetricsCsv::new(tmp.join("metrics.csv"))),
        Box::new(SnapshotsCsv::new(
            tmp.join("snapshots.csv"),
            snap_every,
            resolved.report.snapshot_particles,
        )),
        Box::new(LineageCsv::new(tmp.join("lineage.csv"))),
    ];
    if opts.progress {
        let name = match &sc.label {
            Some(l) => format!("{}/{l}", sc.spec.meta.name),
            None => sc.spec.meta.name.clone(),
        };
        observers.push(Box::new(ProgressBar::new(steps, &name)));
    }
    let summary = sim.run(&mut observers)?;
    drop(observers);
    if resolved.report.plots {
        crate::plot::plot_run(&tmp)
            .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
    }
    let p = tmp.join("summary.json");
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::io(&p, std::io::Error::other(e)))?;
    std::fs::write(&p, json + "\n").map_err(io(&p))?;
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(io(&out))?;
    }
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    guard.disarm();
    Ok(RunOutcome { dir: out, summary })
}
