//! Observers: sinks fed by the stepper after every step (metrics CSV, snapshots, lineage,
//! progress bar; [`Phase`] reports the long phases of the inference commands). They never change
//! the state.
//!
//! Numbers are written with Rust's shortest round-trip formatting, so a CSV value read back is
//! the exact double that was computed, and identical runs give byte-identical files.

pub mod checkpoint;
mod files;
mod progress;

pub use checkpoint::{Checkpoint, CheckpointWriter};
pub use files::{CsvSink, LineageCsv, MetricsCsv, SnapshotsCsv};
pub use progress::{Phase, ProgressBar};

use crate::error::Error;
use crate::field::Field;
use crate::particles::Particles;
use crate::reaction::ReactionEvents;
use crate::stepper::{GuardCounts, Summary};

/// The state after a step (or the initial state, step 0).
#[derive(Clone, Copy)]
pub struct StepRecord<'a> {
    /// Steps completed.
    pub step: usize,
    /// Time after the step.
    pub t: f64,
    /// The particles after the step.
    pub particles: &'a Particles,
    /// The latest metrics (fresh when `reported`).
    pub metrics: &'a [(String, f64)],
    /// Whether metrics were computed at this step.
    pub reported: bool,
    /// Whether observers should make their output durable now (flush files) and checkpoint.
    pub checkpoint: bool,
    /// The step was already observed (a repeat record sent only to checkpoint).
    pub stale: bool,
    /// What the reaction of this step did (empty at step 0).
    pub events: &'a ReactionEvents,
    /// Guard counts so far.
    pub guards: &'a GuardCounts,
    /// The field (for its checkpointable state).
    pub field: &'a dyn Field,
}

impl StepRecord<'_> {
    /// A record emitted only to checkpoint (after an interrupt): nothing new happened.
    pub fn checkpoint_only(&self) -> bool {
        self.stale
    }
}

/// A sink for the run's progress.
pub trait Observer {
    /// Before the first step (or the first step after a resume): the metric columns and the
    /// initial particles.
    fn on_start(&mut self, _metric_names: &[String], _particles: &Particles) -> Result<(), Error> {
        Ok(())
    }
    /// After every step, and once for the initial state (step 0).
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error>;
    /// After the run, with its summary and the final particles.
    fn on_finish(&mut self, _summary: &Summary, _particles: &Particles) -> Result<(), Error> {
        Ok(())
    }
}
