//! The snapshot CSV reader on arbitrary bytes: a table with consistent, finite values (and
//! selections of it), or a one-line error naming the file and, for a row, an existing line.
#![no_main]

mod common;

use advreact::data::parse_snapshot;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const FILE: &str = "fuzz.csv";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_snapshot(Path::new(FILE), &text) {
        Ok(t) => common::check_table(&t, FILE),
        Err(e) => common::check_data_error(&e, FILE, Some(&text)),
    }
});
