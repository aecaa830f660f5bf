//! The map file `map.json`: a versioned, self-contained model that `advreact map --apply`
//! (or [`MapFile::apply`]) evaluates on new points.
//!
//! ```text
//! {"format": 2, "dim": d, "model": {"method": "entropic" | "sparse", ...the method's fields...}}
//! ```
//!
//! `model` is a [`MapModel`], internally tagged by `method`: one variant per kind of map (the
//! entropic estimator of an elastic cost, [`EntropicMap`]; the parametric sparse map
//! `x + Θᵀφ(x)`, [`SparseMap`]). Reading checks the format, the tag and the model's own
//! invariants; an error names the file, the key and the reason.
//!
//! Versions: format 1 (entropic maps only) is read unchanged (its model is format 2's
//! `entropic`); format 2 added `sparse`. A build writes [`MAP_FORMAT`].

use super::sparse::SparseMap;
use super::EntropicMap;
use crate::dist::Exec;
use crate::error::{ConfigError, Error, SimError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `format` this build writes (it reads 1 and 2).
pub const MAP_FORMAT: u32 = 2;

/// The oldest `format` this build reads.
pub const MAP_FORMAT_OLDEST: u32 = 1;

/// The fitted model, by method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum MapModel {
    /// `T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j))` (`--method entropic` is `γ = 0`, `sparse-l1`
    /// the ℓ1 elastic cost).
    Entropic(EntropicMap),
    /// `T(x) = x + Θᵀφ(x)` (`--method sparse-l0`; format ≥ 2).
    Sparse(SparseMap),
}

impl MapModel {
    /// The dimension the model maps.
    pub fn dim(&self) -> usize {
        match self {
            MapModel::Entropic(m) => m.dim,
            MapModel::Sparse(m) => m.dim(),
        }
    }
    /// `T(x)` at the points `x` (point-contiguous).
    pub fn apply(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        match self {
            MapModel::Entropic(m) => m.apply(x, exec),
            MapModel::Sparse(m) => m.apply_in(x, exec),
        }
    }
    fn validate(&self) -> Result<(), SimError> {
        match self {
            MapModel::Entropic(m) => m.validate(),
            MapModel::Sparse(m) => m.check(),
        }
    }
}

/// The content of `map.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapFile {
    /// [`MAP_FORMAT`].
    pub format: u32,
    /// Dimension `d` of the points.
    pub dim: usize,
    /// The model.
    pub model: MapModel,
}

impl MapFile {
    /// A file for `model`.
    pub fn new(model: MapModel) -> Self {
        Self { format: MAP_FORMAT, dim: model.dim(), model }
    }

    /// Write as JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string(self).expect("a map serialises");
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }

    /// Read and check `path` (format, method, dimension, the model's invariants).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ConfigError::new(&file, "<json>", format!("not JSON: {e}")))?;
        match v.get("format").and_then(|f| f.as_u64()) {
            Some(f) if (MAP_FORMAT_OLDEST as u64..=MAP_FORMAT as u64).contains(&f) => {}
            Some(f) => {
                return Err(ConfigError::new(
                    &file,
                    "format",
                    format!("is {f}; this build reads {MAP_FORMAT_OLDEST} to {MAP_FORMAT}"),
                )
                .into())
            }
            None => {
                return Err(ConfigError::new(&file, "format", "missing (not an advreact map file?)").into())
            }
        }
        let m: MapFile =
            serde_json::from_value(v).map_err(|e| ConfigError::new(&file, "model", e.to_string()))?;
        m.model.validate().map_err(|e| ConfigError::new(&file, "model", e.to_string()))?;
        if m.format < 2 && matches!(m.model, MapModel::Sparse(_)) {
            return Err(
                ConfigError::new(&file, "model.method", "sparse needs format ≥ 2, the file says 1").into()
            );
        }
        if m.dim != m.model.dim() {
            return Err(ConfigError::new(
                &file,
                "dim",
                format!("is {}, the model's is {}", m.dim, m.model.dim()),
            )
            .into());
        }
        Ok(m)
    }

    /// `T(x)` at the points `x` (point-contiguous, dimension [`MapFile::dim`]).
    pub fn apply(&self, x: &[f64], exec: &Exec) -> Result<Vec<f64>, SimError> {
        self.model.apply(x, exec)
    }
}
