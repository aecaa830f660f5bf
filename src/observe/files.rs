//! CSV sinks: `metrics.csv` (step, t, metrics…), `snapshots.csv` (step, t, id, parent, w,
//! x1..xd) and `lineage.csv` (step, event, id, parent: every birth and death — "which cells
//! died, and when"; original particles have ids `0..n0` and are their own parents).
//!
//! Each sink can reopen its file at a checkpointed length and append ([`CsvSink::resume_at`]), so a
//! resumed run writes exactly the bytes an uninterrupted run would have.

use super::{Observer, StepRecord};
use crate::error::Error;
use crate::format::{num, push_num};
use crate::particles::Particles;
use crate::stepper::Summary;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An append-only CSV file with a header, resumable at a byte length.
pub struct CsvSink {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    resume_len: Option<u64>,
}

impl CsvSink {
    /// A sink for the file at `path`, created when opened.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), out: None, resume_len: None }
    }
    /// Reopen an existing file, truncated to `len` bytes, instead of creating it.
    pub fn resume_at(mut self, len: u64) -> Self {
        self.resume_len = Some(len);
        self
    }
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Create (writing `header`) or reopen the file.
    pub fn open(&mut self, header: &str) -> Result<(), Error> {
        let e = |err| Error::io(&self.path, err);
        let out = match self.resume_len {
            Some(len) => {
                let mut f = OpenOptions::new().write(true).open(&self.path).map_err(e)?;
                f.set_len(len).map_err(e)?;
                f.seek(SeekFrom::End(0)).map_err(e)?;
                BufWriter::new(f)
            }
            None => {
                let mut f = BufWriter::new(File::create(&self.path).map_err(e)?);
                writeln!(f, "{header}").map_err(e)?;
                f
            }
        };
        self.out = Some(out);
        Ok(())
    }
    /// Append the row `s` and a newline (nothing before [`CsvSink::open`]).
    pub fn line(&mut self, s: &str) -> Result<(), Error> {
        if let Some(out) = self.out.as_mut() {
            writeln!(out, "{s}").map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
    /// Flush to the OS (durable across a kill of this process).
    pub fn flush(&mut self) -> Result<(), Error> {
        if let Some(out) = self.out.as_mut() {
            out.flush().map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
    /// Flush and close the file.
    pub fn close(&mut self) -> Result<(), Error> {
        self.flush()?;
        self.out = None;
        Ok(())
    }
}

/// `metrics.csv`: one row per reported step.
pub struct MetricsCsv(pub CsvSink);

impl Observer for MetricsCsv {
    fn on_start(&mut self, names: &[String], _p: &Particles) -> Result<(), Error> {
        self.0.open(&format!("step,t,{}", names.join(",")))
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if rec.reported {
            let mut s = format!("{},{}", rec.step, num(rec.t));
            for (_, v) in rec.metrics {
                s.push(',');
                push_num(&mut s, *v);
            }
            self.0.line(&s)?;
        }
        if rec.checkpoint {
            self.0.flush()?;
        }
        Ok(())
    }
    fn on_finish(&mut self, _s: &Summary, _p: &Particles) -> Result<(), Error> {
        self.0.close()
    }
}

/// `snapshots.csv`: the particles at steps that are multiples of `every` and at the last step.
/// At most about `max_particles` rows per snapshot: when there are more particles, a particle is
/// written if a hash of its id falls below `max/n`. The selections are nested (a smaller ratio
/// keeps a subset), so a particle's path stays visible from snapshot to snapshot.
pub struct SnapshotsCsv {
    /// The file written.
    pub sink: CsvSink,
    every: usize,
    max_particles: usize,
    last_written: Option<usize>,
}

impl SnapshotsCsv {
    /// Snapshots every `every` steps (at least 1), at most about `max_particles` rows each.
    pub fn new(sink: CsvSink, every: usize, max_particles: usize) -> Self {
        Self { sink, every: every.max(1), max_particles, last_written: None }
    }

    fn write(&mut self, step: usize, t: f64, p: &Particles) -> Result<(), Error> {
        if self.last_written == Some(step) {
            return Ok(());
        }
        let ratio = self.max_particles as f64 / p.len().max(1) as f64;
        let mut s = String::new();
        for i in 0..p.len() {
            if ratio < 1.0 && (crate::rng::mix(p.id[i]) as f64) >= ratio * 18_446_744_073_709_551_616.0 {
                continue;
            }
            s.clear();
            s.push_str(&format!("{step},{},{},{},{}", num(t), p.id[i], p.parent[i], num(p.logw[i].exp())));
            for v in p.point(i) {
                s.push(',');
                push_num(&mut s, *v);
            }
            self.sink.line(&s)?;
        }
        self.last_written = Some(step);
        Ok(())
    }
}

impl Observer for SnapshotsCsv {
    fn on_start(&mut self, _names: &[String], p: &Particles) -> Result<(), Error> {
        let xs: Vec<String> = (1..=p.dim).map(|k| format!("x{k}")).collect();
        self.sink.open(&format!("step,t,id,parent,w,{}", xs.join(",")))
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if rec.step.is_multiple_of(self.every) && !rec.checkpoint_only() {
            self.write(rec.step, rec.t, rec.particles)?;
        }
        if rec.checkpoint {
            self.sink.flush()?;
        }
        Ok(())
    }
    fn on_finish(&mut self, s: &Summary, p: &Particles) -> Result<(), Error> {
        if !p.is_empty() && s.stop_reason != crate::stepper::StopReason::NonFinite {
            self.write(s.steps, s.t, p)?;
        }
        self.sink.close()
    }
}

/// `lineage.csv`: `step,event,id,parent` for every birth and death.
pub struct LineageCsv(pub CsvSink);

impl Observer for LineageCsv {
    fn on_start(&mut self, _names: &[String], _p: &Particles) -> Result<(), Error> {
        self.0.open("step,event,id,parent")
    }
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if !rec.checkpoint_only() {
            for (child, parent) in &rec.events.births {
                self.0.line(&format!("{},birth,{child},{parent}", rec.step))?;
            }
            for id in &rec.events.deaths {
                self.0.line(&format!("{},death,{id},", rec.step))?;
            }
        }
        if rec.checkpoint {
            self.0.flush()?;
        }
        Ok(())
    }
    fn on_finish(&mut self, _s: &Summary, _p: &Particles) -> Result<(), Error> {
        self.0.close()
    }
}
