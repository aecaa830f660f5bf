//! Transport maps that can be read and applied out of sample (SPEC §7).

pub mod sparse;
