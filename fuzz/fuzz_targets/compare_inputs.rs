//! `advreact compare` without the process: two snapshot tables, an optional bandwidth and time →
//! `compare_tables` gives finite numbers or a one-line error naming a file or the option.
//!
//! The input is structured (rows of arbitrary f64s rendered as CSV), so most cases get past the
//! parser and exercise the numerics: extreme coordinates, weights and bandwidths. Raw CSV text is
//! the `snapshot_csv` target's job.
#![no_main]

mod common;
/// The binary's `compare` (src/compare.rs is part of the binary, not of the library).
#[path = "../../src/compare.rs"]
mod compare;

use compare::compare_tables;
use advreact::data::parse_snapshot;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// `shape`: bits 0-1 the dimension − 1 (0..=2), bit 2 a time column, bit 3 a weight column,
/// bit 4 times as given (else rounded to 0 or 1, so selections match).
fn csv(shape: u8, rows: &[[f64; 5]]) -> String {
    let d = (shape & 3).min(2) as usize + 1;
    let (time, weight, raw_time) = (shape & 4 != 0, shape & 8 != 0, shape & 16 != 0);
    let mut cols: Vec<String> = (1..=d).map(|k| format!("x{k}")).collect();
    if time {
        cols.insert(0, "time".into());
    }
    if weight {
        cols.push("w".into());
    }
    let mut s = cols.join(",");
    for r in rows {
        let mut f: Vec<String> = r[1..=d].iter().map(f64::to_string).collect();
        if time {
            let t = if raw_time || !r[0].is_finite() { r[0] } else { (r[0].abs() % 2.0).floor() };
            f.insert(0, t.to_string());
        }
        if weight {
            f.push(r[4].to_string());
        }
        s.push('\n');
        s.push_str(&f.join(","));
    }
    s
}

type Input = (u8, u8, Vec<[f64; 5]>, Vec<[f64; 5]>, Option<f64>, Option<f64>);

fuzz_target!(|input: Input| {
    let (shape_a, shape_b, rows_a, rows_b, bandwidth, time) = input;
    let (a, b) = (csv(shape_a, &rows_a), csv(shape_b, &rows_b));
    let ta = match parse_snapshot(Path::new("a.csv"), &a) {
        Ok(t) => t,
        Err(e) => return common::check_data_error(&e, "a.csv", Some(&a)),
    };
    let tb = match parse_snapshot(Path::new("b.csv"), &b) {
        Ok(t) => t,
        Err(e) => return common::check_data_error(&e, "b.csv", Some(&b)),
    };
    match compare_tables(&ta, &tb, bandwidth, time) {
        Ok(c) => {
            let t = c.terms;
            for v in [c.bandwidth, t.xx, t.yy, t.xy, t.mmd2, c.mmd, c.a.mass(), c.b.mass()] {
                assert!(v.is_finite(), "not finite: {c:?}");
            }
            assert!(c.bandwidth > 0.0 && c.mmd >= 0.0);
            // MMD between a cloud and itself is zero (when its terms do not overflow: a of mass
            // 1e154 against itself is an error even if a against a lighter b is not).
            match compare_tables(&ta, &ta, Some(c.bandwidth), time) {
                Ok(same) => assert!(same.terms.mmd2 == 0.0, "{same:?}"),
                Err(e) => common::assert_one_line(&e.to_string()),
            }
        }
        Err(e) => {
            let msg = e.to_string();
            common::assert_one_line(&msg);
            assert!(
                ["a.csv: ", "b.csv: ", "<cli>: --bandwidth: "].iter().any(|f| msg.starts_with(f)),
                "names no file or option: {msg}"
            );
        }
    }
});
