//! `advreact compare`: the MMD between two snapshot tables (SPEC §4), kept in the library so the
//! command line, the tests and the fuzz targets run the same code.

use crate::data::SnapshotTable;
use crate::error::{ConfigError, Error};
use crate::metrics::{mmd_terms, MmdTerms};
use crate::particles::Cloud;
use crate::scenario::median_distance;

/// The clouds compared and their MMD.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub a: Cloud,
    pub b: Cloud,
    /// Kernel bandwidth `s` of `exp(−|x − y|²/(2s²))`.
    pub bandwidth: f64,
    pub terms: MmdTerms,
    /// `sqrt(max(MMD², 0))`.
    pub mmd: f64,
}

/// MMD between the rows of `a` and `b` at time `time` (all rows of a file with at most one time
/// when `None`), with bandwidth `bandwidth` (default: the median distance within `b`).
pub fn compare_tables(
    a: &SnapshotTable,
    b: &SnapshotTable,
    bandwidth: Option<f64>,
    time: Option<f64>,
) -> Result<Comparison, Error> {
    let ca = a.select(time)?;
    let cb = b.select(time)?;
    if ca.dim != cb.dim {
        return Err(ConfigError::new(
            b.file.display().to_string(),
            "(columns)",
            format!("is {}-dimensional, {} is {}-dimensional", cb.dim, a.file.display(), ca.dim),
        )
        .into());
    }
    if let Some(s) = bandwidth {
        if !(s.is_finite() && s > 0.0) {
            return Err(ConfigError::new("<cli>", "--bandwidth", format!("must be > 0, got {s}")).into());
        }
    }
    let s = bandwidth.unwrap_or_else(|| median_distance(&cb));
    let terms = mmd_terms(ca.dim, &ca.x, &ca.w, &cb.x, &cb.w, s);
    let mmd = terms.mmd2.max(0.0).sqrt();
    Ok(Comparison { a: ca, b: cb, bandwidth: s, terms, mmd })
}
