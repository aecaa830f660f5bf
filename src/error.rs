//! Typed errors, one per layer: configuration (scenario files, CLI parameters), data (snapshot
//! files) and simulation (numerical failures during a run). Every message is one line and names
//! where the problem is: the file and key path, the file and line, or the step, quantity and
//! particle.

use std::fmt::Display;
use std::path::PathBuf;
use thiserror::Error;

/// `s` with its control characters (newline, carriage return, tab, escape, NUL, ...) and line or
/// paragraph separators written as escapes (`\n`, `\u{1b}`): a message that quotes a file's content
/// or a user's string stays one line, and cannot move the terminal's cursor.
pub fn one_line(s: impl Display) -> String {
    let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    let s = s.to_string();
    if !s.contains(breaks) {
        return s;
    }
    s.chars().map(|c| if breaks(c) { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A scenario or parameter problem: `path` is the key path (`field.bandwidth`).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{}: {}: {}", one_line(.file), one_line(.path), one_line(.msg))]
pub struct ConfigError {
    /// The file the key came from (or `<cli>` / `<builder>` for parameters given in code).
    pub file: String,
    /// Dotted key path, e.g. `source.mean`.
    pub path: String,
    /// What is wrong, with the offending value.
    pub msg: String,
}

impl ConfigError {
    /// The error at key `path` of `file`, saying `msg`.
    pub fn new(file: impl Into<String>, path: impl Into<String>, msg: impl Into<String>) -> Self {
        Self { file: file.into(), path: path.into(), msg: msg.into() }
    }
}

/// Why positions and weights do not make a [`Cloud`](crate::particles::Cloud) (what
/// [`Cloud::new`](crate::particles::Cloud::new) checks). The first violated invariant, with the
/// offending index and value.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CloudError {
    /// The dimension is 0.
    #[error("cloud: the dimension must be ≥ 1, got 0")]
    ZeroDim,
    /// The number of coordinates is not a multiple of the dimension.
    #[error("cloud: {len} coordinates are not a multiple of the dimension {dim}")]
    Ragged {
        /// Number of coordinates given.
        len: usize,
        /// The dimension.
        dim: usize,
    },
    /// The numbers of points and of weights differ.
    #[error("cloud: {points} points but {weights} weights")]
    Count {
        /// Points (coordinates / dimension).
        points: usize,
        /// Weights given.
        weights: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("cloud: point {point}, coordinate {coord} is not finite ({value})")]
    Coordinate {
        /// Index of the point.
        point: usize,
        /// Index of the coordinate within the point.
        coord: usize,
        /// The value found.
        value: f64,
    },
    /// A weight is negative, NaN or infinite.
    #[error("cloud: weight {point} must be finite and ≥ 0, got {value}")]
    Weight {
        /// Index of the point.
        point: usize,
        /// The value found.
        value: f64,
    },
    /// The total mass asked of [`Cloud::uniform`](crate::particles::Cloud::uniform) is negative,
    /// NaN or infinite.
    #[error("cloud: the mass must be finite and ≥ 0, got {value}")]
    Mass {
        /// The value given.
        value: f64,
    },
}

/// A problem reading or writing a data file (snapshot CSV and friends), or building a cloud.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{}: cannot read: {}", one_line(.file.display()), one_line(.source))]
    Io {
        /// The file.
        file: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A malformed line.
    #[error("{}: line {line}: {}", one_line(.file.display()), one_line(.msg))]
    Parse {
        /// The file.
        file: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong, quoting the offending text.
        msg: String,
    },
    /// Well-formed content that cannot be used (no rows at a time, bad shapes, ...).
    #[error("{}: {}", one_line(.file.display()), one_line(.msg))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Positions and weights that do not make a cloud.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// A failure during a simulation or a numerical solve.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SimError {
    /// A NaN or infinity appeared. `particle` is the index within the current population.
    #[error("step {step}: non-finite {quantity} at particle {particle} (value {value})")]
    NonFinite {
        /// The step (or solver iteration) it appeared at.
        step: usize,
        /// What was not finite (`position`, `weight`, `velocity`, ...).
        quantity: String,
        /// Index of the particle (or point).
        particle: usize,
        /// The value found.
        value: f64,
    },
    /// A numerical routine failed (factorisation, divergence, ...).
    #[error("step {step}: {what}")]
    Numerical {
        /// The step it failed at.
        step: usize,
        /// What failed.
        what: String,
    },
    /// A guard limit was hit (population cap, memory estimate, ...).
    #[error("step {step}: {what}")]
    Limit {
        /// The step it was hit at.
        step: usize,
        /// Which limit, with the numbers.
        what: String,
    },
    /// Shapes or parameters that do not fit together.
    #[error("{0}")]
    Invalid(String),
}

/// Anything the library can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A scenario or parameter problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A data file problem, or a bad cloud.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A numerical failure.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Reading or writing `path` failed.
    #[error("{}: {}", one_line(.path.display()), one_line(.source))]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

impl From<CloudError> for Error {
    fn from(e: CloudError) -> Self {
        Error::Data(e.into())
    }
}

impl Error {
    /// [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by tests/properties.rs: a TOML string with an escaped newline or tab (`"x\ny"`), or a
    /// CSV field with a NUL or a lone carriage return, was echoed raw into a "one-line" message.
    #[test]
    fn messages_quoting_user_text_stay_one_line() {
        let e = ConfigError::new("a\nb.toml", "meta.name", "got 'x\ny\t\r\u{1b}[31m\u{2028}'");
        assert_eq!(e.to_string(), "a\\nb.toml: meta.name: got 'x\\ny\\t\\r\\u{1b}[31m\\u{2028}'");
        let e = DataError::Parse { file: "f.csv".into(), line: 2, msg: "not a number: '\0\r0'".into() };
        assert_eq!(e.to_string(), "f.csv: line 2: not a number: '\\u{0}\\r0'");
        let e = DataError::Invalid { file: "f\n.csv".into(), msg: "is empty".into() };
        assert_eq!(e.to_string(), "f\\n.csv: is empty");
        // Plain text is untouched, unicode included.
        assert_eq!(one_line("σ ≥ 0, got −1 ✓"), "σ ≥ 0, got −1 ✓");
    }
}
