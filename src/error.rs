//! Typed errors, one per layer: configuration (scenario files, CLI parameters), data (snapshot
//! files) and simulation (numerical failures during a run). Every message is one line and names
//! where the problem is: the file and key path, the file and line, or the step, quantity and
//! particle.

use std::path::PathBuf;
use thiserror::Error;

/// A scenario or parameter problem: `path` is the key path (`field.bandwidth`).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{file}: {path}: {msg}")]
pub struct ConfigError {
    /// The file the key came from (or `<cli>` / `<builder>` for parameters given in code).
    pub file: String,
    /// Dotted key path, e.g. `source.mean`.
    pub path: String,
    /// What is wrong, with the offending value.
    pub msg: String,
}

impl ConfigError {
    pub fn new(file: impl Into<String>, path: impl Into<String>, msg: impl Into<String>) -> Self {
        Self { file: file.into(), path: path.into(), msg: msg.into() }
    }
}

/// A problem reading or writing a data file (snapshot CSV and friends).
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{file}: cannot read: {source}")]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{file}: line {line}: {msg}")]
    Parse { file: PathBuf, line: usize, msg: String },
    #[error("{file}: {msg}")]
    Invalid { file: PathBuf, msg: String },
}

/// A failure during a simulation or a numerical solve.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SimError {
    /// A NaN or infinity appeared. `particle` is the index within the current population.
    #[error("step {step}: non-finite {quantity} at particle {particle} (value {value})")]
    NonFinite { step: usize, quantity: String, particle: usize, value: f64 },
    /// A numerical routine failed (factorisation, divergence, ...).
    #[error("step {step}: {what}")]
    Numerical { step: usize, what: String },
    /// A guard limit was hit (population cap, memory estimate, ...).
    #[error("step {step}: {what}")]
    Limit { step: usize, what: String },
    /// Shapes or parameters that do not fit together.
    #[error("{0}")]
    Invalid(String),
}

/// Anything the library can fail with.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
