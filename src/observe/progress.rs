//! A progress bar on stderr (step, t, mass, MMD), hidden when stderr is not a terminal.

use super::{Observer, StepRecord};
use crate::error::Error;
use crate::particles::Particles;
use crate::stepper::Summary;
use indicatif::{ProgressBar as Bar, ProgressDrawTarget, ProgressStyle};

pub struct ProgressBar {
    bar: Bar,
}

impl ProgressBar {
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
