//! The checkpoint decoder on arbitrary bytes: a checkpoint that passes validation and re-encodes
//! to itself, or a one-line error naming the file (tests/checkpoint_fuzz.rs is the seeded,
//! stable-toolchain version of this target). Seed it with `checkpoint.bin` files of real runs.
#![no_main]

mod common;

use advreact::observe::Checkpoint;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const FILE: &str = "checkpoint.bin";

fuzz_target!(|data: &[u8]| {
    match Checkpoint::decode(Path::new(FILE), data) {
        Ok(ck) => {
            assert_eq!(ck.validate(), Ok(()));
            assert_eq!(Checkpoint::decode(Path::new(FILE), &ck.encode()).as_ref().ok(), Some(&ck));
        }
        Err(e) => common::check_data_error(&e, FILE, None),
    }
});
