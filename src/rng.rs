//! Deterministic random streams keyed by `(seed, purpose, step, chunk)`.
//!
//! Every random draw in a run comes from a ChaCha8 stream whose 256-bit key is derived from the
//! run's seed, a fixed purpose tag (noise, branching, features, ...), the step number and a chunk
//! index. Particles are processed in fixed chunks of [`CHUNK`] particles, and chunk `c` always
//! uses stream `(seed, purpose, step, c)`, so the numbers do not depend on how many threads
//! process the chunks or in which order. ChaCha8 is a specified algorithm (not `StdRng`, whose
//! algorithm may change between `rand` versions), so results do not change with a dependency
//! upgrade either.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Particles per random-stream chunk. Changing it changes every noisy result: it is part of the
/// reproducibility contract.
pub const CHUNK: usize = 1024;

/// What a stream is used for; distinct purposes never share a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Brownian increments of Euler–Maruyama.
    Noise = 1,
    /// Birth–death branching and resampling.
    Branching = 2,
    /// Sampling of source and target distributions.
    Sampling = 3,
    /// Random features and other per-run field randomness.
    Features = 4,
    /// Anything in metrics or inference that needs randomness.
    Analysis = 5,
}

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream for `(seed, purpose, step, chunk)`.
pub fn stream(seed: u64, purpose: Purpose, step: u64, chunk: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    let mut h = mix(seed);
    for (i, v) in [purpose as u64, step, chunk, 0x5EED].into_iter().enumerate() {
        h = mix(h ^ v.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        key[i * 8..(i + 1) * 8].copy_from_slice(&h.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_keyed() {
        let a: u64 = stream(1, Purpose::Noise, 0, 0).random();
        let b: u64 = stream(1, Purpose::Noise, 0, 0).random();
        let c: u64 = stream(1, Purpose::Noise, 0, 1).random();
        let d: u64 = stream(1, Purpose::Noise, 1, 0).random();
        let e: u64 = stream(1, Purpose::Branching, 0, 0).random();
        let f: u64 = stream(2, Purpose::Noise, 0, 0).random();
        assert_eq!(a, b);
        for other in [c, d, e, f] {
            assert_ne!(a, other);
        }
    }
}
