//! Figures: PNG plots of a run's output folder and two general-purpose plots.
//!
//! - [`plot_run`] reads `metrics.csv`, `snapshots.csv` and `target.csv` from a run folder and
//!   writes `trajectories.png` (particle paths coloured by time, final particles sized by weight,
//!   target samples) and `metrics.png` (MMD on a log axis, mass, particle counts, means).
//! - [`plot_heatmap`]: a labelled matrix with a colour scale and the values written in the cells
//!   (e.g. a fate matrix: mass flowing from source cluster `i` to target cluster `j`).
//! - [`plot_curves`]: several named curves on one plot, linear or log `y`.
//! - [`plot_scatter`]: panels of weighted point clouds and paths (learned dynamics).
//!
//! Drawing uses `plotters` with an embedded font (DejaVu Sans, registered once), so no system
//! fonts are needed. Odd input never panics: empty files, a single snapshot, zero weights and
//! degenerate ranges give a figure (with a note where there is nothing to show); malformed files
//! give a [`PlotError`] naming the file.

mod canvas;
mod curves;
mod heatmap;
mod metrics;
mod read;
mod scatter;
mod text;
mod trajectories;

#[cfg(test)]
mod tests;

pub use curves::plot_curves;
pub use heatmap::plot_heatmap;
pub use scatter::{plot_scatter, Colour, Layer, Panel};

use crate::error::DataError;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Figure size in pixels of the run figures.
pub const FIGURE_SIZE: (u32, u32) = (1000, 800);

/// A plotting failure; every variant names the file it concerns.
#[derive(Debug, Error)]
pub enum PlotError {
    /// An input file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("{file}: cannot write: {source}")]
    Write {
        /// The file.
        file: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A malformed input line.
    #[error("{file}: line {line}: {msg}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// Input that cannot be plotted (bad shapes, a missing folder, ...).
    #[error("{file}: {msg}")]
    Invalid {
        /// The file or folder.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The drawing library failed while drawing `file`.
    #[error("{file}: drawing failed: {msg}")]
    Draw {
        /// The figure being drawn.
        file: PathBuf,
        /// The drawing library's message.
        msg: String,
    },
}

impl From<DataError> for PlotError {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Io { file, source } => PlotError::Read { file, source },
            DataError::Parse { file, line, msg } => PlotError::Parse { file, line, msg },
            DataError::Invalid { file, msg } => PlotError::Invalid { file, msg },
            DataError::Cloud(e) => PlotError::Invalid { file: PathBuf::new(), msg: e.to_string() },
        }
    }
}

/// The run's name: the folder name.
fn run_name(dir: &Path) -> String {
    // A run is plotted inside its partial folder `.<name>.partial` (see `crate::run`): show <name>.
    let named = |p: &Path| {
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .map(|s| match s.strip_prefix('.').and_then(|r| r.strip_suffix(".partial")) {
                Some(inner) if !inner.is_empty() => inner.to_string(),
                _ => s,
            })
            .filter(|s| !s.is_empty())
    };
    named(dir)
        .filter(|s| s != "." && s != "..")
        .or_else(|| dir.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| dir.display().to_string())
}

/// Plot a run folder: writes `trajectories.png` (when `snapshots.csv` exists) and `metrics.png`
/// (when `metrics.csv` exists) into `dir`, and returns the paths written.
///
/// `target.csv` (`time,x1..xd,w`), when present, is drawn in the trajectories figure. Particle
/// paths are drawn per id between consecutive snapshots; a clone's first appearance joins to its
/// parent's (or nearest recorded ancestor's) last position. For `d = 1` the figure shows `x`
/// against `t`; for `d > 2` the first two principal components of the initial and final
/// particles (each snapshot weighted to the same total).
///
/// Errors when `dir` is not a folder, holds neither file, or a file is malformed. Empty files give
/// a figure saying there is nothing to show.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    plot_run_titled(dir, &run_name(dir))
}

/// [`plot_run`] with the plots titled `name` (a run's `meta.name`, `meta.name/label` for a
/// variant), whatever the folder is called.
pub fn plot_run_titled(dir: &Path, name: &str) -> Result<Vec<PathBuf>, PlotError> {
    if !dir.is_dir() {
        return Err(PlotError::Invalid { file: dir.to_path_buf(), msg: "is not a folder".into() });
    }
    let snaps = dir.join("snapshots.csv");
    let metrics = dir.join("metrics.csv");
    if !snaps.is_file() && !metrics.is_file() {
        return Err(PlotError::Invalid {
            file: dir.to_path_buf(),
            msg: "has neither metrics.csv nor snapshots.csv to plot".into(),
        });
    }
    let mut written = Vec::new();
    if snaps.is_file() {
        let target_path = dir.join("target.csv");
        let target = read::read_samples(&target_path)?;
        let out = dir.join("trajectories.png");
        trajectories::draw(&snaps, target.as_ref(), &target_path, name, &out)?;
        written.push(out);
    }
    if metrics.is_file() {
        let out = dir.join("metrics.png");
        metrics::draw(&metrics, name, &out)?;
        written.push(out);
    }
    Ok(written)
}
