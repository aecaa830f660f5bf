//! Observers: sinks fed by the stepper after every step (metrics CSV, snapshots, lineage,
//! progress bar). They never change the state.
//!
//! Numbers are written with Rust's shortest round-trip formatting, so a CSV value read back is
//! the exact double that was computed, and identical runs give byte-identical files.

mod files;
mod progress;

pub use files::{LineageCsv, MetricsCsv, SnapshotsCsv};
pub use progress::ProgressBar;

use crate::error::Error;
use crate::particles::Particles;
use crate::reaction::ReactionEvents;
use crate::stepper::Summary;

/// The state after a step (or the initial state, step 0).
#[derive(Debug, Clone, Copy)]
pub struct StepRecord<'a> {
    /// Steps completed.
    pub step: usize,
    pub t: f64,
    pub particles: &'a Particles,
    /// The latest metrics (fresh when `reported`).
    pub metrics: &'a [(String, f64)],
    /// Whether metrics were computed at this step.
    pub reported: bool,
    /// What the reaction of this step did (empty at step 0).
    pub events: &'a ReactionEvents,
}

/// A sink for the run's progress.
pub trait Observer {
    fn on_start(&mut self, _metric_names: &[String], _particles: &Particles) -> Result<(), Error> {
        Ok(())
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error>;
    fn on_finish(&mut self, _summary: &Summary, _particles: &Particles) -> Result<(), Error> {
        Ok(())
    }
}
