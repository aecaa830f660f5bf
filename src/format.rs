//! How numbers and named values are written to output files: [`num`], the one float format of
//! every CSV the crate writes; [`pairs_as_map`], which writes a `(name, value)` list as a JSON
//! object; [`Diag`], a diagnostic that is a number or a boolean.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

/// Shortest round-trip text of `v`: plain decimal for `1e-4 ≤ |v| < 1e16` (and 0), exponent
/// otherwise (`8.8e299`, `1.5e-7`, `5e-324`). Parsing the text back with `str::parse::<f64>` gives
/// the same bits (`-0` stays `-0`; `NaN`, `inf` and `-inf` are written as such).
pub fn num(v: f64) -> String {
    let mut s = String::new();
    push_num(&mut s, v);
    s
}

/// Append [`num`]`(v)` to `s` (no allocation).
pub fn push_num(s: &mut String, v: f64) {
    let a = v.abs();
    let plain = a == 0.0 || !a.is_finite() || (1e-4..1e16).contains(&a);
    let _ = if plain { write!(s, "{v}") } else { write!(s, "{v:e}") };
}

/// `vals` written with [`num`], comma-separated.
pub fn nums(vals: &[f64]) -> String {
    let mut s = String::new();
    for (k, v) in vals.iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        push_num(&mut s, *v);
    }
    s
}

/// A diagnostic value: a number or a yes/no (`converged`), written to JSON as such.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Diag {
    /// A number.
    Num(f64),
    /// A yes/no.
    Flag(bool),
}

impl Diag {
    /// The number (a flag as 0 or 1), for arithmetic on diagnostics.
    pub fn value(self) -> f64 {
        match self {
            Diag::Num(v) => v,
            Diag::Flag(b) => f64::from(u8::from(b)),
        }
    }
}

impl From<f64> for Diag {
    fn from(v: f64) -> Self {
        Diag::Num(v)
    }
}

impl From<bool> for Diag {
    fn from(v: bool) -> Self {
        Diag::Flag(v)
    }
}

/// Serialise a `(name, value)` list as a JSON object `{name: value, ...}` in list order (for
/// `#[serde(serialize_with = "...")]`).
pub fn pairs_as_map<K: Serialize, V: Serialize, S: Serializer>(
    pairs: &[(K, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn round_trips(v: f64) {
        let s = num(v);
        let back: f64 = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(back.to_bits(), v.to_bits(), "{v:?} written as {s}");
    }

    #[test]
    fn large_and_small_magnitudes_use_an_exponent() {
        assert_eq!(num(8.8e299), "8.8e299");
        assert_eq!(num(1e300), "1e300");
        assert_eq!(num(-6.8e195), "-6.8e195");
        assert_eq!(num(1.5e-7), "1.5e-7");
        assert_eq!(num(5e-324), "5e-324");
        assert_eq!(num(1e16), "1e16");
        assert_eq!(num(9999999999999998.0), "9999999999999998");
        assert_eq!(num(0.001), "0.001");
        assert_eq!(num(0.0001), "0.0001");
        assert_eq!(num(0.00009), "9e-5");
        assert_eq!(num(7.6), "7.6");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0), "-0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::NEG_INFINITY), "-inf");
        // No value is longer than the exponent form needs.
        assert!(num(f64::MAX).len() <= 24, "{}", num(f64::MAX));
    }

    #[test]
    fn every_double_round_trips_exactly() {
        for v in [0.0, -0.0, 1e300, -1e300, 8.8e299, f64::MAX, f64::MIN_POSITIVE, 5e-324, 1e-4, 1e16] {
            round_trips(v);
        }
        round_trips(f64::INFINITY);
        round_trips(f64::NEG_INFINITY);
        let mut r = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..200_000 {
            // Random bit patterns cover every exponent, subnormals included.
            let v = f64::from_bits(r.random::<u64>());
            if !v.is_nan() {
                round_trips(v);
            }
        }
        // Subnormals specifically.
        for _ in 0..10_000 {
            round_trips(f64::from_bits(r.random::<u64>() & 0x000f_ffff_ffff_ffff));
        }
    }

    #[test]
    fn pairs_serialise_as_an_ordered_object() {
        #[derive(Serialize)]
        struct T {
            #[serde(serialize_with = "pairs_as_map")]
            m: Vec<(String, f64)>,
        }
        let t = T { m: vec![("z".into(), 1.5), ("a".into(), 2.0)] };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"m":{"z":1.5,"a":2.0}}"#);
    }
}
