//! Checks shared by the fuzz targets: the properties of tests/properties.rs, as assertions (a
//! failed assertion is a crash libFuzzer reports and minimises).
#![allow(dead_code)]

use advreact::data::SnapshotTable;
use advreact::error::{DataError, Error};
use advreact::scenario::spec::Distribution;
use advreact::scenario::Scenario;

/// One line, no control characters: what a person reads on a terminal.
pub fn assert_one_line(msg: &str) {
    assert!(
        !msg.is_empty() && !msg.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
        "not one line: {msg:?}"
    );
}

/// A data error names `file`; a row problem names a line of `text` that exists and is not blank.
pub fn check_data_error(e: &DataError, file: &str, text: Option<&str>) {
    let msg = e.to_string();
    assert_one_line(&msg);
    assert!(msg.starts_with(&format!("{file}: ")), "file not named: {msg:?}");
    if let (DataError::Parse { line, .. }, Some(text)) = (e, text) {
        assert!(msg.contains(&format!(": line {line}: ")), "line not named: {msg:?}");
        let l = text.lines().nth(line.wrapping_sub(1));
        assert!(l.is_some_and(|l| !l.trim().is_empty()), "line {line} is blank or missing: {msg:?}");
    }
}

/// A parsed table is consistent and finite; every selection is a finite cloud of positive mass or
/// a one-line error naming the file.
pub fn check_table(t: &SnapshotTable, file: &str) {
    let n = t.len();
    assert!(t.dim >= 1 && t.dim == t.coords.len());
    assert!(n >= 1 && t.x.len() == n * t.dim);
    assert!(t.x.iter().all(|v| v.is_finite()));
    if let Some(time) = &t.time {
        assert!(time.len() == n && time.iter().all(|v| v.is_finite()));
    }
    if let Some(w) = &t.w {
        assert!(w.len() == n && w.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    let mut picks = vec![None, Some(f64::NAN)];
    picks.extend(t.times().iter().take(2).map(|&v| Some(v)));
    for pick in picks {
        match t.select(pick) {
            Ok(c) => {
                assert!(c.dim == t.dim && !c.is_empty() && c.x.len() == c.len() * c.dim);
                assert!(c.x.iter().all(|v| v.is_finite()));
                assert!(c.w.iter().all(|v| v.is_finite() && *v >= 0.0));
                assert!(c.mass() > 0.0 && c.mass().is_finite());
            }
            Err(e) => check_data_error(&e, file, None),
        }
    }
}

/// A scenario error: one line, starts with the file and a non-empty key path.
pub fn check_config_error(e: &Error, file: &str) {
    let msg = e.to_string();
    assert_one_line(&msg);
    match e {
        Error::Config(c) => {
            assert!(!c.path.trim().is_empty(), "empty key path: {msg:?}");
            assert!(msg.starts_with(&format!("{file}: {}: ", c.path)), "{msg:?}");
        }
        other => panic!("not a configuration error: {other:?}"),
    }
}

/// Largest cloud (points × dimension) the targets let `build()` sample. Beyond it build() tries
/// to allocate the whole cloud at once (n = 10¹² asks for 16 TB and aborts) until a
/// memory-estimate guard lands; remove this cap then.
pub const MAX_BUILD_VALUES: usize = 1_000_000;

/// Points × dimension of the largest cloud `build()` would sample (CSV: at most its rows).
pub fn build_values(sc: &Scenario) -> usize {
    let size = |d: &Distribution| match d {
        Distribution::Gaussian { n, mean, .. } => n.saturating_mul(mean.len().max(1)),
        Distribution::Mixture { n, components, .. } => {
            n.saturating_mul(components.first().map_or(1, |c| c.mean.len().max(1)))
        }
        Distribution::RingOfGaussians { n, center, .. } => {
            n.saturating_mul(center.as_ref().map_or(2, |c| c.len().max(2)))
        }
        Distribution::Uniform { n, low, .. } => n.saturating_mul(low.len().max(1)),
        Distribution::Csv { .. } => 0,
    };
    size(&sc.spec.source).max(sc.spec.target.as_ref().map_or(0, size))
}

/// True if every CSV distribution reads `data.csv` (the fixture beside the fuzzed file): other
/// paths could name anything on this machine (/dev/zero, a FIFO, a huge file).
pub fn csv_paths_are_safe(sc: &Scenario) -> bool {
    [Some(&sc.spec.source), sc.spec.target.as_ref()]
        .into_iter()
        .flatten()
        .all(|d| !matches!(d, Distribution::Csv { path, .. } if path != "data.csv"))
}
