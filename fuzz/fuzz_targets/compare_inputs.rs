//! `advreact compare` without the process: two CSV texts, an optional bandwidth and time →
//! `compare_tables` gives finite numbers or a one-line error naming a file or the option.
#![no_main]

mod common;

use advreact::compare::compare_tables;
use advreact::data::parse_snapshot;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (&str, &str, Option<f64>, Option<f64>)| {
    let (a, b, bandwidth, time) = input;
    let ta = match parse_snapshot(Path::new("a.csv"), a) {
        Ok(t) => t,
        Err(e) => return common::check_data_error(&e, "a.csv", Some(a)),
    };
    let tb = match parse_snapshot(Path::new("b.csv"), b) {
        Ok(t) => t,
        Err(e) => return common::check_data_error(&e, "b.csv", Some(b)),
    };
    match compare_tables(&ta, &tb, bandwidth, time) {
        Ok(c) => {
            let t = c.terms;
            for v in [c.bandwidth, t.xx, t.yy, t.xy, t.mmd2, c.mmd, c.a.mass(), c.b.mass()] {
                assert!(v.is_finite(), "not finite: {c:?}");
            }
            assert!(c.bandwidth > 0.0 && c.mmd >= 0.0);
            // MMD between a cloud and itself is zero.
            let same = compare_tables(&ta, &ta, Some(c.bandwidth), time).unwrap();
            assert!(same.terms.mmd2.abs() <= 1e-12 * (1.0 + c.a.mass() * c.a.mass()), "{same:?}");
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
