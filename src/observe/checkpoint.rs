//! Checkpoints: the full state of a run at a step, written atomically (`checkpoint.bin.tmp`, fsync,
//! rename to `checkpoint.bin`), so `advreact resume` continues a killed or interrupted run and
//! ends with byte-identical output.
//!
//! What is saved: the step, the particles (positions and log-weights as exact f64 bits, ids,
//! parents, next id), guard counts, the last reported metrics, the field's own state
//! ([`crate::field::Field::save_state`]) and the byte length of every output CSV at that step.
//! Random streams need no saving: they are keyed by `(seed, step, chunk)` (see [`crate::rng`]).
//!
//! Format (little-endian): magic `ADVRCKP2`, then u64/f64 fields and length-prefixed arrays.

use super::{Observer, StepRecord};
use crate::error::{DataError, Error};
use crate::particles::Particles;
use crate::stepper::GuardCounts;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ADVRCKP2";
pub const FILE: &str = "checkpoint.bin";

/// Everything needed to continue a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub step: usize,
    pub particles: Particles,
    pub guards: GuardCounts,
    pub last_metrics: Vec<(String, f64)>,
    pub field_state: Vec<f64>,
    /// (file name, byte length) of each output file at the checkpoint.
    pub files: Vec<(String, u64)>,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f(&mut self, v: f64) {
        self.u(v.to_bits());
    }
    fn fs(&mut self, v: &[f64]) {
        self.u(v.len() as u64);
        v.iter().for_each(|x| self.f(*x));
    }
    fn us(&mut self, v: &[u64]) {
        self.u(v.len() as u64);
        v.iter().for_each(|x| self.u(*x));
    }
    fn s(&mut self, v: &str) {
        self.u(v.len() as u64);
        self.0.extend_from_slice(v.as_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    file: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, what: &str) -> DataError {
        DataError::Invalid { file: self.file.to_path_buf(), msg: format!("corrupt checkpoint: {what}") }
    }
    fn u(&mut self) -> Result<u64, DataError> {
        if self.b.len() < 8 {
            return Err(self.bad("truncated"));
        }
        let (h, t) = self.b.split_at(8);
        self.b = t;
        Ok(u64::from_le_bytes(h.try_into().expect("8 bytes")))
    }
    fn len(&mut self, elem: usize) -> Result<usize, DataError> {
        let n = self.u()? as usize;
        if n.checked_mul(elem).is_none_or(|b| b > self.b.len()) {
            return Err(self.bad("array length beyond the file"));
        }
        Ok(n)
    }
    fn f(&mut self) -> Result<f64, DataError> {
        Ok(f64::from_bits(self.u()?))
    }
    fn fs(&mut self) -> Result<Vec<f64>, DataError> {
        let n = self.len(8)?;
        (0..n).map(|_| self.f()).collect()
    }
    fn us(&mut self) -> Result<Vec<u64>, DataError> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u()).collect()
    }
    fn s(&mut self) -> Result<String, DataError> {
        let n = self.len(1)?;
        let (h, t) = self.b.split_at(n);
        self.b = t;
        String::from_utf8(h.to_vec()).map_err(|_| self.bad("bad text"))
    }
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(MAGIC.to_vec());
        let p = &self.particles;
        w.u(self.step as u64);
        w.u(p.dim as u64);
        w.u(p.next_id);
        w.fs(&p.x);
        w.fs(&p.logw);
        w.us(&p.id);
        w.us(&p.parent);
        let g = &self.guards;
        for v in [g.growth_clipped, g.displacement_capped, g.resamplings, g.births, g.deaths] {
            w.u(v);
        }
        w.f(g.growth_log_mass_removed);
        w.f(g.displacement_removed);
        w.u(self.last_metrics.len() as u64);
        for (k, v) in &self.last_metrics {
            w.s(k);
            w.f(*v);
        }
        w.fs(&self.field_state);
        w.u(self.files.len() as u64);
        for (k, v) in &self.files {
            w.s(k);
            w.u(*v);
        }
        w.0
    }

    pub fn decode(file: &Path, b: &[u8]) -> Result<Self, DataError> {
        let mut r = Reader { b, file };
        if r.b.len() < 8 || &r.b[..8] != MAGIC {
            return Err(r.bad("not a checkpoint (bad magic)"));
        }
        r.b = &r.b[8..];
        let step = r.u()? as usize;
        let dim = r.u()? as usize;
        let next_id = r.u()?;
        let (x, logw, id, parent) = (r.fs()?, r.fs()?, r.us()?, r.us()?);
        let n = logw.len();
        if x.len() != n * dim || id.len() != n || parent.len() != n {
            return Err(r.bad("inconsistent particle arrays"));
        }
        let mut guards = GuardCounts {
            growth_clipped: r.u()?,
            displacement_capped: r.u()?,
            resamplings: r.u()?,
            births: r.u()?,
            deaths: r.u()?,
            ..GuardCounts::default()
        };
        guards.growth_log_mass_removed = r.f()?;
        guards.displacement_removed = r.f()?;
        let nm = r.len(16)?;
        let mut last_metrics = Vec::with_capacity(nm);
        for _ in 0..nm {
            last_metrics.push((r.s()?, r.f()?));
        }
        let field_state = r.fs()?;
        let nf = r.len(16)?;
        let mut files = Vec::with_capacity(nf);
        for _ in 0..nf {
            files.push((r.s()?, r.u()?));
        }
        Ok(Self {
            step,
            particles: Particles { dim, x, logw, id, parent, next_id },
            guards,
            last_metrics,
            field_state,
            files,
        })
    }

    /// Write `dir/checkpoint.bin` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let fin = dir.join(FILE);
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&self.encode()).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))
    }

    /// Read `dir/checkpoint.bin`.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let p = dir.join(FILE);
        let b = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        Ok(Self::decode(&p, &b)?)
    }
}

/// Writes a checkpoint whenever a record asks for one. Must come after the file observers (they
/// flush on the same record), so the recorded file lengths include everything up to the step.
pub struct CheckpointWriter {
    pub dir: PathBuf,
    /// Output files whose lengths are recorded.
    pub files: Vec<String>,
}

impl Observer for CheckpointWriter {
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), Error> {
        if !rec.checkpoint {
            return Ok(());
        }
        let mut files = Vec::new();
        for f in &self.files {
            let p = self.dir.join(f);
            let len = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
            files.push((f.clone(), len));
        }
        Checkpoint {
            step: rec.step,
            particles: rec.particles.clone(),
            guards: rec.guards.clone(),
            last_metrics: rec.metrics.to_vec(),
            field_state: rec.field.save_state(),
            files,
        }
        .write(&self.dir)
    }
}
