//! A progress bar on stderr (step, t, mass, MMD), hidden when stderr is not a terminal, and the
//! [`Phase`] lines of long commands.

use super::{Observer, StepRecord};
use crate::error::Error;
use crate::particles::Particles;
use crate::stepper::Summary;
use indicatif::{ProgressBar as Bar, ProgressDrawTarget, ProgressStyle};

/// An observer drawing a progress bar of the run's steps on stderr (hidden when stderr is not a
/// terminal), with `t`, the mass and the MMD as its message.
pub struct ProgressBar {
    bar: Bar,
}

impl ProgressBar {
    /// A bar for a run of `steps` steps, prefixed by `name`.
    pub fn new(steps: usize, name: &str) -> Self {
        let bar = Bar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps  {msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_string());
        Self { bar }
    }
}

impl Observer for ProgressBar {
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        self.bar.set_position(rec.step as u64);
        if rec.reported {
            let get = |k: &str| rec.metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            let mut msg = format!("t={:.4} n={}", rec.t, rec.particles.len());
            if let Some(m) = get("mass") {
                msg.push_str(&format!(" mass={m:.5}"));
            }
            if let Some(m) = get("mmd") {
                msg.push_str(&format!(" mmd={m:.3e}"));
            }
            self.bar.set_message(msg);
        }
        Ok(())
    }
    fn on_finish(&mut self, _s: &Summary, _p: &Particles) -> Result<(), Error> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// A long phase of a command (loading, solving, metrics) reported on stderr: a start line and an
/// end line with the elapsed time are always printed (also when stderr is a file, e.g. a batch
/// log); in a terminal a spinner in between shows the elapsed time and the latest message
/// (iteration counts). Reporting only: nothing computed depends on it.
pub struct Phase {
    bar: Bar,
    label: String,
    start: std::time::Instant,
}

impl Phase {
    /// Print `label …` and start the spinner.
    pub fn start(label: impl Into<String>) -> Self {
        Self::begin(label.into(), true)
    }
    /// Start the spinner without a start line: for a phase whose failure is the command's error
    /// (reading an input file), so that a bad input still gives exactly one line on stderr.
    pub fn start_quiet(label: impl Into<String>) -> Self {
        Self::begin(label.into(), false)
    }
    fn begin(label: String, announce: bool) -> Self {
        let bar = Bar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(label.clone());
        if announce {
            bar.suspend(|| eprintln!("{label} …"));
        }
        if !bar.is_hidden() {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        Self { bar, label, start: std::time::Instant::now() }
    }
    /// Replace the spinner's message (shown in a terminal only).
    pub fn message(&self, msg: String) {
        self.bar.set_message(msg);
    }
    /// Clear the spinner and print `label: done in T s (detail)`.
    pub fn finish(self, detail: &str) {
        self.bar.finish_and_clear();
        let secs = self.start.elapsed().as_secs_f64();
        if detail.is_empty() {
            eprintln!("{}: done in {secs:.1} s", self.label);
        } else {
            eprintln!("{}: done in {secs:.1} s ({detail})", self.label);
        }
    }
}

impl Drop for Phase {
    /// A phase left by an error clears its spinner (a terminal only), so the error stands alone.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
