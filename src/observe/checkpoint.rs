//! Checkpoints: the full state of a run at a step, written atomically (`checkpoint.bin.tmp`, fsync,
//! rename to `checkpoint.bin`), so `advreact resume` continues a killed or interrupted run and
//! ends with byte-identical output.
//!
//! What is saved ([`Checkpoint`]): the step, its time and the run's seed, the particles
//! (positions and log-weights as exact f64 bits, ids, parents, next id), guard counts, the last
//! reported metrics, the field's typed state ([`FieldState`], from
//! [`crate::field::Field::save_state`]) and the byte length of every output CSV at that step.
//! Random streams need no saving: they are keyed by `(seed, step, chunk)` (see [`crate::rng`]).
//!
//! Format: the 8 bytes `ADVRCKPT`, the format version ([`FORMAT_VERSION`], u32 little-endian),
//! then the [`Checkpoint`] encoded with postcard (its fields in declaration order; lengths are
//! varint integers). Decoding ([`Checkpoint::decode`]) never panics and never allocates more
//! than the input can fill (postcard reads each element from the input, and serde caps what a
//! length prefix preallocates); any problem is a one-line [`DataError`] naming the file: not a
//! checkpoint, written by an older version (`ADVRCKP1`/`ADVRCKP2`: re-run), a newer format
//! version, truncated, corrupt, trailing bytes, or a decoded checkpoint that fails
//! [`Checkpoint::validate`]. `tests/checkpoint_fuzz.rs` mutates valid checkpoints to hold it to
//! that.

use super::{Observer, StepRecord};
use crate::error::{DataError, Error};
use crate::field::FieldState;
use crate::particles::Particles;
use crate::stepper::GuardCounts;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first 8 bytes of a checkpoint.
const MAGIC: &[u8; 8] = b"ADVRCKPT";
/// The magics of the hand-written formats before [`FORMAT_VERSION`] 1.
const OLD_MAGICS: [&[u8; 8]; 2] = [b"ADVRCKP1", b"ADVRCKP2"];
/// The version of the postcard body this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The checkpoint's file name in a run folder.
pub const FILE: &str = "checkpoint.bin";

/// Everything needed to continue a run. The field order is the encoded order (module doc):
/// changing it, or a type in it, needs a new [`FORMAT_VERSION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Steps completed.
    pub step: usize,
    /// The time after `step` steps.
    pub t: f64,
    /// The run's seed (a resume checks it against the scenario's).
    pub seed: u64,
    /// The particles after `step` steps.
    #[serde(with = "ParticlesV1")]
    pub particles: Particles,
    /// Guard counts so far.
    #[serde(with = "GuardsV1")]
    pub guards: GuardCounts,
    /// The last reported metrics (name, value).
    pub last_metrics: Vec<(String, f64)>,
    /// The field's state.
    pub field_state: FieldState,
    /// (file name, byte length) of each output file at the checkpoint.
    pub files: Vec<(String, u64)>,
}

/// [`Particles`] as format version 1 encodes it.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Particles")]
struct ParticlesV1 {
    dim: usize,
    x: Vec<f64>,
    logw: Vec<f64>,
    id: Vec<u64>,
    parent: Vec<u64>,
    next_id: u64,
}

/// [`GuardCounts`] as format version 1 encodes it.
#[derive(Serialize, Deserialize)]
#[serde(remote = "GuardCounts")]
struct GuardsV1 {
    growth_clipped: u64,
    growth_log_mass_removed: f64,
    displacement_capped: u64,
    displacement_removed: f64,
    resamplings: u64,
    births: u64,
    deaths: u64,
}

impl Checkpoint {
    /// The file's bytes: header, then the postcard body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        // Serializing into a Vec fails only for types postcard cannot encode (none here).
        postcard::to_extend(self, out).expect("a checkpoint always encodes")
    }

    /// Decode and validate the bytes of `file` (module doc); never panics.
    pub fn decode(file: &Path, b: &[u8]) -> Result<Self, DataError> {
        let bad = |msg: String| DataError::Invalid { file: file.to_path_buf(), msg };
        let magic = b.get(..8).unwrap_or(b);
        if let Some(old) = OLD_MAGICS.iter().find(|m| m.as_slice() == magic) {
            return Err(bad(format!(
                "written by an older version of advreact (format {}); re-run the scenario",
                String::from_utf8_lossy(old.as_slice())
            )));
        }
        if magic != MAGIC {
            return Err(bad(format!("not a checkpoint (no {} header)", String::from_utf8_lossy(MAGIC))));
        }
        let version = b.get(8..12).ok_or_else(|| bad("truncated (no format version)".into()))?;
        let version = u32::from_le_bytes(version.try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            let age = if version > FORMAT_VERSION { "newer" } else { "older" };
            return Err(bad(format!("format version {version} is {age} than this build ({FORMAT_VERSION})")));
        }
        let (ck, rest): (Self, _) = postcard::take_from_bytes(&b[12..]).map_err(|e| match e {
            postcard::Error::DeserializeUnexpectedEnd => bad("truncated".into()),
            e => bad(format!("corrupt ({e})")),
        })?;
        if !rest.is_empty() {
            return Err(bad(format!("corrupt ({} bytes after the end)", rest.len())));
        }
        ck.validate().map_err(|m| bad(format!("corrupt ({m})")))?;
        Ok(ck)
    }

    /// What decoding cannot check: particle arrays consistent with the dimension and count,
    /// finite positions, time and guard totals, log-weights neither NaN nor `+∞`, ids and parents
    /// below `next_id`, finite metrics, a valid field state ([`FieldState::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.particles;
        let n = p.logw.len();
        if p.dim == 0 || p.x.len() != n.saturating_mul(p.dim) || p.id.len() != n || p.parent.len() != n {
            return Err(format!(
                "particle arrays disagree: dimension {}, {} coordinates, {} log-weights, {} ids, {} parents",
                p.dim,
                p.x.len(),
                n,
                p.id.len(),
                p.parent.len()
            ));
        }
        if let Some(i) = p.x.iter().position(|v| !v.is_finite()) {
            return Err(format!("particle {} has a non-finite coordinate {}", i / p.dim, p.x[i]));
        }
        if let Some(i) = p.logw.iter().position(|v| v.is_nan() || *v == f64::INFINITY) {
            return Err(format!("particle {i} has log-weight {}", p.logw[i]));
        }
        if let Some(i) = p.id.iter().chain(&p.parent).position(|&v| v >= p.next_id) {
            return Err(format!("particle {} has an id or parent ≥ next id {}", i % n.max(1), p.next_id));
        }
        let g = &self.guards;
        let totals = [("time", self.t), ("growth_log_mass_removed", g.growth_log_mass_removed)];
        let totals = totals.into_iter().chain([("displacement_removed", g.displacement_removed)]);
        let metrics = self.last_metrics.iter().map(|(k, v)| (k.as_str(), *v));
        if let Some((k, v)) = totals.chain(metrics).find(|(_, v)| !v.is_finite()) {
            return Err(format!("{k} is {v}"));
        }
        self.field_state.validate()
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
    /// The run folder the checkpoint and the output files are in.
    pub dir: PathBuf,
    /// Output files whose lengths are recorded.
    pub files: Vec<String>,
    /// The run's seed, recorded in the checkpoint.
    pub seed: u64,
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
            t: rec.t,
            seed: self.seed,
            particles: rec.particles.clone(),
            guards: rec.guards.clone(),
            last_metrics: rec.metrics.to_vec(),
            field_state: rec.field.save_state(),
            files,
        }
        .write(&self.dir)
    }
}
