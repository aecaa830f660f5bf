//! Memory estimate of a scenario, checked before anything is allocated: a scenario whose particle
//! count, dimension or feature count cannot fit fails at once with the estimate in the message,
//! instead of being killed by the operating system halfway through.
//!
//! Per particle: positions, velocity and the coordinate-major copy used by kernel sums
//! (3·d f64), plus log-weight, weight, growth, id, parent and scratch (6 words). Per target
//! sample: positions twice (row- and coordinate-major) and a weight. Per Sobolev–Fisher critic with
//! `m` features: four m×m matrices (Gramians, system, factor) and the d×m frequencies. A learned
//! field holds its model (p coefficients per output, p·d frequencies: kilobytes to a few MB) and
//! one workspace per chunk of particles: negligible beside the particles, not counted.

use super::spec::{Distribution, FieldSpec};
use super::ScenarioSpec;

/// Bytes available to this process: `MemAvailable` from /proc/meminfo, or `None` if unknown.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn samples(d: &Distribution) -> Option<usize> {
    match d {
        Distribution::Gaussian { n, .. }
        | Distribution::Mixture { n, .. }
        | Distribution::RingOfGaussians { n, .. }
        | Distribution::Uniform { n, .. }
        | Distribution::Perturbation { n, .. } => Some(*n),
        Distribution::Csv { n, .. } => *n,
    }
}

fn field_bytes(f: &FieldSpec, d: f64) -> f64 {
    match f {
        FieldSpec::SobolevFisher(p) => {
            let m = p.features as f64;
            4.0 * m * m * 8.0 + m * d * 8.0
        }
        FieldSpec::Sum { terms } => terms.iter().map(|t| field_bytes(t, d)).sum(),
        _ => 0.0,
    }
}

/// The estimate, with the key that dominates it: `(bytes, key path)`.
pub fn estimate(s: &ScenarioSpec, dim: usize) -> (f64, &'static str) {
    let d = dim as f64;
    let n = samples(&s.source).unwrap_or(0) as f64;
    let parts = [
        (n * (3.0 * d + 6.0) * 8.0, "source.n"),
        (s.target.as_ref().and_then(samples).unwrap_or(0) as f64 * (2.0 * d + 1.0) * 8.0, "target.n"),
        (field_bytes(&s.field, d), "field.features"),
    ];
    let total = parts.iter().map(|p| p.0).sum();
    let key = parts.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map_or("source.n", |p| p.1);
    (total, key)
}

/// Human-readable bytes.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}
