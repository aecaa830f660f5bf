//! CSV sinks: `metrics.csv` (step, t, metrics…), `snapshots.csv` (step, t, id, parent, w,
//! x1..xd) and `lineage.csv` (id, parent, born, died: every particle that ever lived).

use super::{Observer, StepRecord};
use crate::error::Error;
use crate::particles::Particles;
use crate::stepper::Summary;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

fn create(path: &Path) -> Result<BufWriter<File>, Error> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| Error::io(path, e))
}

/// Writes a line, mapping I/O errors to the file.
fn line(out: &mut BufWriter<File>, path: &Path, s: &str) -> Result<(), Error> {
    writeln!(out, "{s}").map_err(|e| Error::io(path, e))
}

/// `metrics.csv`: one row per reported step.
pub struct MetricsCsv {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl MetricsCsv {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            out: None,
        }
    }
}

impl Observer for MetricsCsv {
    fn on_start(&mut self, names: &[String], _p: &Particles) -> Result<(), Error> {
        let mut out = create(&self.path)?;
        line(&mut out, &self.path, &format!("step,t,{}", names.join(",")))?;
        self.out = Some(out);
        Ok(())
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if !rec.reported {
            return Ok(());
        }
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let mut s = format!("{},{}", rec.step, rec.t);
        for (_, v) in rec.metrics {
            s.push_str(&format!(",{v}"));
        }
        line(out, &self.path, &s)
    }
    fn on_finish(&mut self, _s: &Summary, _p: &Particles) -> Result<(), Error> {
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// `snapshots.csv`: the particles at chosen steps. At most `max_particles` rows per snapshot
/// (every ⌈n/max⌉-th particle when there are more).
pub struct SnapshotsCsv {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Write at steps that are multiples of `every` (and at the last step).
    every: usize,
    max_particles: usize,
    last_written: Option<usize>,
}

impl SnapshotsCsv {
    pub fn new(path: impl Into<PathBuf>, every: usize, max_particles: usize) -> Self {
        Self {
            path: path.into(),
            out: None,
            every: every.max(1),
            max_particles,
            last_written: None,
        }
    }

    fn write(&mut self, step: usize, t: f64, p: &Particles) -> Result<(), Error> {
        if self.last_written == Some(step) {
            return Ok(());
        }
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let stride = p.len().div_ceil(self.max_particles.max(1)).max(1);
        let mut s = String::new();
        for i in (0..p.len()).step_by(stride) {
            s.clear();
            s.push_str(&format!(
                "{step},{t},{},{},{}",
                p.id[i],
                p.parent[i],
                p.logw[i].exp()
            ));
            for v in p.point(i) {
                s.push_str(&format!(",{v}"));
            }
            line(out, &self.path, &s)?;
        }
        self.last_written = Some(step);
        Ok(())
    }
}

impl Observer for SnapshotsCsv {
    fn on_start(&mut self, _names: &[String], p: &Particles) -> Result<(), Error> {
        let mut out = create(&self.path)?;
        let xs: Vec<String> = (1..=p.dim).map(|k| format!("x{k}")).collect();
        line(
            &mut out,
            &self.path,
            &format!("step,t,id,parent,w,{}", xs.join(",")),
        )?;
        self.out = Some(out);
        Ok(())
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if rec.step % self.every == 0 {
            self.write(rec.step, rec.t, rec.particles)?;
        }
        Ok(())
    }
    fn on_finish(&mut self, s: &Summary, p: &Particles) -> Result<(), Error> {
        if !p.is_empty() && s.error.is_none() {
            self.write(s.steps, s.t, p)?;
        }
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}

/// `lineage.csv`: every particle that ever lived, with its parent, the step it was born at (0 for
/// the originals) and the step it died at (empty while alive). Answers "which cells died".
pub struct LineageCsv {
    path: PathBuf,
    /// id → (parent, born, died)
    rows: BTreeMap<u64, (u64, usize, Option<usize>)>,
}

impl LineageCsv {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            rows: BTreeMap::new(),
        }
    }
}

impl Observer for LineageCsv {
    fn on_start(&mut self, _names: &[String], p: &Particles) -> Result<(), Error> {
        for (id, parent) in p.id.iter().zip(&p.parent) {
            self.rows.insert(*id, (*parent, 0, None));
        }
        Ok(())
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        for (child, parent) in &rec.events.births {
            self.rows.insert(*child, (*parent, rec.step, None));
        }
        for id in &rec.events.deaths {
            if let Some(r) = self.rows.get_mut(id) {
                r.2 = Some(rec.step);
            }
        }
        Ok(())
    }
    fn on_finish(&mut self, _s: &Summary, _p: &Particles) -> Result<(), Error> {
        let mut out = create(&self.path)?;
        line(&mut out, &self.path, "id,parent,born,died")?;
        for (id, (parent, born, died)) in &self.rows {
            let died = died.map(|d| d.to_string()).unwrap_or_default();
            line(
                &mut out,
                &self.path,
                &format!("{id},{parent},{born},{died}"),
            )?;
        }
        out.flush().map_err(|e| Error::io(&self.path, e))
    }
}
