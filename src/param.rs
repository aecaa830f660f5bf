//! The value rules every parameter check uses (linfa's params → valid params): a field's params,
//! read from a scenario's `[field]` table or built in code
//! ([`crate::field::sobolev_fisher::SobolevFisherParams::check`],
//! [`crate::field::wfr::WfrParams::check`]), and the time and reaction settings of a scenario
//! ([`crate::scenario`]) all go through these functions, so one rule has one message
//! wherever it is applied. Each returns a [`ParamError`] naming the key (relative to its table)
//! and the reason; the caller places the key (`file: field.bandwidth: …` for a scenario,
//! `sobolev_fisher: bandwidth: …` in code).

use crate::error::{ConfigError, SimError};

/// A refused parameter: its key (relative to the table it is in) and why, with the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The key, e.g. `bandwidth` or `components[1].weight`.
    pub key: String,
    /// What is wrong, with the offending value (`must be > 0, got -1`).
    pub reason: String,
}

impl ParamError {
    /// A refusal of `key` for `reason`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }

    /// As a [`ConfigError`] of `file`, the key under `prefix` (`field` → `field.bandwidth`; an
    /// empty key names the table itself).
    pub fn within(self, file: &str, prefix: &str) -> ConfigError {
        let path = match (prefix.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{}", self.key),
        };
        ConfigError::new(file, path, self.reason)
    }
}

impl std::fmt::Display for ParamError {
    /// `key: reason`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// A refusal in code as a [`SimError::Invalid`] of the object `what`
/// (`wfr field: bandwidth: must be > 0, got -1`).
pub fn invalid(what: &str) -> impl Fn(ParamError) -> SimError + '_ {
    move |e| SimError::Invalid(format!("{what}: {e}"))
}

/// `v` finite and `> 0`.
pub fn positive(key: &str, v: f64) -> Result<(), ParamError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(ParamError::new(key, format!("must be > 0, got {v}")))
    }
}

/// `v` finite and `≥ 0`.
pub fn non_negative(key: &str, v: f64) -> Result<(), ParamError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ParamError::new(key, format!("must be ≥ 0, got {v}")))
    }
}

/// Every entry finite.
pub fn finite(key: &str, v: &[f64]) -> Result<(), ParamError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(ParamError::new(key, format!("entry {i} is not finite ({})", v[i]))),
        None => Ok(()),
    }
}

/// A count `≥ 1`.
pub fn count(key: &str, n: usize) -> Result<(), ParamError> {
    if n == 0 {
        Err(ParamError::new(key, "must be ≥ 1, got 0"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule, one message; placed under a scenario key or read as `key: reason` in code.
    #[test]
    fn rules_name_the_key_and_the_value() {
        assert_eq!(positive("dt", -1.0).unwrap_err().to_string(), "dt: must be > 0, got -1");
        assert!(positive("dt", f64::INFINITY).is_err() && positive("dt", 0.5).is_ok());
        assert_eq!(non_negative("alpha", f64::NAN).unwrap_err().reason, "must be ≥ 0, got NaN");
        assert!(non_negative("alpha", 0.0).is_ok());
        assert_eq!(count("n", 0).unwrap_err().reason, "must be ≥ 1, got 0");
        assert_eq!(finite("mean", &[0.0, f64::NAN]).unwrap_err().reason, "entry 1 is not finite (NaN)");
        let e = positive("bandwidth", 0.0).unwrap_err().within("s.toml", "field");
        assert_eq!(e.to_string(), "s.toml: field.bandwidth: must be > 0, got 0");
        assert_eq!(ParamError::new("", "needs a [target]").within("s.toml", "field").path, "field");
    }
}
