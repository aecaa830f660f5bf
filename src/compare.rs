//! `advreact compare`: the MMD between two snapshot tables (SPEC §4). Part of the binary, not of
//! the library; tests/properties.rs and the `compare_inputs` fuzz target include this file
//! (`#[path]`) so they run the same code as the command line.

use advreact::data::{Selection, SnapshotTable};
use advreact::dist::Exec;
use advreact::error::{ConfigError, DataError, Error};
use advreact::metrics::{mmd_between_on, MmdTerms};
use advreact::particles::Cloud;
use advreact::scenario::median_distance;

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
#[allow(dead_code)] // the binary calls compare_selected; the tests and the fuzz target call this
pub fn compare_tables(
    a: &SnapshotTable,
    b: &SnapshotTable,
    bandwidth: Option<f64>,
    time: Option<f64>,
) -> Result<Comparison, Error> {
    let sel = Selection { time, normalize: false };
    compare_selected(a, b, bandwidth, (sel, sel), &Exec::default())
}

/// [`compare_tables`] with a row selection per table (`--time-a`, `--time-b`, `--normalize`),
/// the kernel sums run in `exec` (split over its ranks).
pub fn compare_selected(
    a: &SnapshotTable,
    b: &SnapshotTable,
    bandwidth: Option<f64>,
    (sel_a, sel_b): (Selection, Selection),
    exec: &Exec,
) -> Result<Comparison, Error> {
    let (ca, _) = a.select_as(sel_a)?;
    let (cb, _) = b.select_as(sel_b)?;
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
    // The kernel's exponent is −|x − y|²/(2s²): with s² rounded to 0 or ∞ (or subnormal) the
    // factor 1/(2s²) is ±∞ or 0 and the sums turn into NaN, even for identical points.
    if !(s * s).is_normal() {
        let range = "s² must be a normal number, about 1.5e-154 ≤ s ≤ 1.3e154";
        return Err(match bandwidth {
            Some(_) => ConfigError::new("<cli>", "--bandwidth", format!("{range}, got {s:e}")),
            None => ConfigError::new(
                b.file.display().to_string(),
                "(bandwidth)",
                format!("the median distance between its points is {s:e}: {range}; give --bandwidth"),
            ),
        }
        .into());
    }
    let terms = mmd_between_on(exec, &ca, &cb, s)?;
    if ![terms.xx, terms.yy, terms.xy, terms.mmd2].iter().all(|v| v.is_finite()) {
        return Err(DataError::Invalid {
            file: a.file.clone(),
            msg: format!(
                "MMD² against {} is not finite ({}; masses {:e} and {:e}): the weights are too large",
                b.file.display(),
                terms.mmd2,
                ca.mass(),
                cb.mass()
            ),
        }
        .into());
    }
    let mmd = terms.mmd2.max(0.0).sqrt();
    Ok(Comparison { a: ca, b: cb, bandwidth: s, terms, mmd })
}

#[cfg(test)]
mod tests {
    use super::*;
    use advreact::data::parse_snapshot;
    use std::path::Path;

    fn table(name: &str, text: &str) -> SnapshotTable {
        parse_snapshot(Path::new(name), text).unwrap()
    }

    /// Found by tests/properties.rs: `compare --bandwidth 1e-300` (s² = 0) printed MMD² = NaN
    /// and MMD = 0 with exit 0, even for two copies of one point.
    #[test]
    fn bandwidth_whose_square_is_not_normal_is_an_error() {
        let (a, b) = (table("a.csv", "x1,w\n0,0.75\n"), table("b.csv", "x1,w\n0,1.5\n"));
        for s in [1e-300, 1e-155, 1e155, 1e300] {
            let e = compare_tables(&a, &b, Some(s), None).unwrap_err().to_string();
            assert!(e.starts_with("<cli>: --bandwidth: s² must be a normal number"), "{e}");
        }
        for s in [1e-150, 1.0, 1e150] {
            let c = compare_tables(&a, &b, Some(s), None).unwrap();
            assert_eq!(c.terms.mmd2, 0.75f64.powi(2), "bandwidth {s}: {c:?}");
        }
        // The default bandwidth: the median distance within b.
        let b = table("b.csv", "x1\n0\n1e-160\n");
        let e = compare_tables(&a, &b, None, None).unwrap_err().to_string();
        assert!(e.starts_with("b.csv: (bandwidth): the median distance between its points is 9.99"), "{e}");
        assert!(compare_tables(&a, &b, Some(1.0), None).unwrap().terms.mmd2.is_finite());
    }

    /// Finite masses whose products overflow: an error, not NaN.
    #[test]
    fn overflowing_terms_are_an_error() {
        let (a, b) = (table("a.csv", "x1,w\n0,1e300\n"), table("b.csv", "x1,w\n5,1e300\n"));
        let e = compare_tables(&a, &b, Some(1.0), None).unwrap_err().to_string();
        assert!(e.starts_with("a.csv: MMD² against b.csv is not finite"), "{e}");
    }
}
