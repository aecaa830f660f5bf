//! # Synthetic perturbation data (issue 16): control cells and perturbed cells with a known support
//!
//! A stand-in for a control population and a perturbed one (a drug, a knockout) in `d`
//! expression-like coordinates, where exactly `k` coordinates respond:
//!
//! ```text
//! control:    x = L ξ,                ξ ~ N(0, I_d)
//! perturbed:  y = L ξ' + s,           ξ' ~ N(0, I_d) independent of ξ,
//!             s_k = ± shift for k ∈ S (|S| = k, random signs),  s_k = 0 otherwise.
//! ```
//!
//! **Covariance** `Σ = L Lᵀ`: unit variance in every coordinate (so `shift` is in standard
//! deviations), independent coordinates except `blocks` correlated blocks of `block_size`
//! consecutive coordinates (the first `blocks · block_size` coordinates), each with constant
//! within-block correlation `ρ`: `x_k = √ρ z_b + √(1 − ρ) ξ_k` for `k` in block `b`, one shared
//! `z_b ~ N(0, 1)` per cell and block (a few co-expressed programmes, as in expression PCs).
//! `blocks = 0` is `N(0, I)`.
//!
//! **Support** `S`: `k` coordinates drawn uniformly without replacement, and a sign per coordinate,
//! from the stream `(seed, Sampling, SUPPORT_STREAM, 0)` — it depends on `(seed, dim, k)` only,
//! so a scenario's source and target (sampled from the streams `(seed, Sampling, 0 | 1, 0)`)
//! agree on it. The perturbed cells are an independent sample: outside `S` they follow the
//! control law exactly (unchanged in distribution, different cells: sampling noise only), and
//! inside `S` their mean moves by `± shift` with the same spread. The ideal map moves the `k`
//! coordinates of `S` by `s_k` and leaves the other `d − k` at rest.

pub mod results;

use crate::error::ConfigError;
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use rand::seq::index::sample;
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};
use serde::{Deserialize, Serialize};

/// The step index of the support's random stream (apart from the source's 0 and target's 1).
pub const SUPPORT_STREAM: u64 = 0x5_0000_0001;

/// The law of the synthetic cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbationSpec {
    /// Cells per population.
    pub n: usize,
    /// Dimension `d`.
    pub dim: usize,
    /// Number of shifted coordinates `k ≤ d`.
    pub k: usize,
    /// Shift of each coordinate of the support, in standard deviations (sign random).
    pub shift: f64,
    /// Number of correlated blocks.
    pub blocks: usize,
    /// Coordinates per block.
    pub block_size: usize,
    /// Within-block correlation `ρ ∈ [0, 1)`.
    pub rho: f64,
}

impl PerturbationSpec {
    /// `n` cells in `dim` coordinates, `k` shifted by 1.5 sd, no correlated blocks.
    pub fn new(n: usize, dim: usize, k: usize) -> Self {
        Self { n, dim, k, shift: 1.5, blocks: 0, block_size: 10, rho: 0.5 }
    }

    /// Check every setting; `prefix` names the keys (`source`, `target`, `perturbation`, …).
    pub fn validate(&self, file: &str, prefix: &str) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| ConfigError::new(file, format!("{prefix}.{key}"), msg);
        if self.n == 0 {
            return Err(err("n", "must be ≥ 1, got 0".into()));
        }
        if self.dim == 0 {
            return Err(err("dim", "must be ≥ 1, got 0".into()));
        }
        if self.k > self.dim {
            return Err(err("k", format!("must be ≤ dim ({}), got {}", self.dim, self.k)));
        }
        if !(self.shift.is_finite() && self.shift >= 0.0) {
            return Err(err("shift", format!("must be finite and ≥ 0, got {}", self.shift)));
        }
        if !(self.rho.is_finite() && (0.0..1.0).contains(&self.rho)) {
            return Err(err("rho", format!("must be in [0, 1), got {}", self.rho)));
        }
        if self.blocks > 0 && self.block_size == 0 {
            return Err(err("block_size", "must be ≥ 1 with blocks > 0, got 0".into()));
        }
        if self.blocks.saturating_mul(self.block_size) > self.dim && self.blocks > 0 {
            return Err(err(
                "blocks",
                format!(
                    "{} blocks of {} coordinates exceed dim ({})",
                    self.blocks, self.block_size, self.dim
                ),
            ));
        }
        Ok(())
    }

    /// The true support and shift vector for `seed` (module doc).
    pub fn support(&self, seed: u64) -> Support {
        let mut r = rng::stream(seed, Purpose::Sampling, SUPPORT_STREAM, 0);
        let mut dims = sample(&mut r, self.dim, self.k).into_vec();
        dims.sort_unstable();
        let mut shift = vec![0.0; self.dim];
        for &k in &dims {
            shift[k] = if r.random::<bool>() { self.shift } else { -self.shift };
        }
        Support { dims, shift }
    }

    /// `n` cells (row-major `n × d`) of `N(mean, Σ)` from `r`.
    pub fn sample_cells(&self, mean: &[f64], r: &mut impl Rng) -> Vec<f64> {
        let d = self.dim;
        let (a, b) = (self.rho.sqrt(), (1.0 - self.rho).sqrt());
        let blocked = self.blocks * self.block_size;
        let mut x = Vec::with_capacity(self.n * d);
        let mut z = vec![0.0; self.blocks];
        for _ in 0..self.n {
            z.iter_mut().for_each(|v| *v = StandardNormal.sample(r));
            for (k, m) in mean.iter().enumerate() {
                let xi: f64 = StandardNormal.sample(r);
                let v = if k < blocked { a * z[k / self.block_size] + b * xi } else { xi };
                x.push(m + v);
            }
        }
        x
    }

    /// The control (`perturbed = false`) or perturbed cells of `seed`, drawn from the stream
    /// `(seed, Sampling, role, 0)`.
    pub fn sample(&self, seed: u64, perturbed: bool, role: u64) -> Vec<f64> {
        let mean = if perturbed { self.support(seed).shift } else { vec![0.0; self.dim] };
        self.sample_cells(&mean, &mut rng::stream(seed, Purpose::Sampling, role, 0))
    }
}

/// The shifted coordinates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Support {
    /// The `k` shifted coordinates (0-based, increasing).
    pub dims: Vec<usize>,
    /// The shift `s` (length `d`; `± shift` on `dims`, 0 elsewhere).
    pub shift: Vec<f64>,
}

/// A control and a perturbed population with the truth.
#[derive(Debug, Clone)]
pub struct Perturbation {
    /// Control cells (unit total mass, equal weights).
    pub control: Cloud,
    /// Perturbed cells (unit total mass, equal weights).
    pub perturbed: Cloud,
    /// The true support.
    pub support: Support,
}

/// The control (role 0) and perturbed (role 1) cells of `seed`: the same clouds as a scenario
/// with `meta.seed = seed` and source / target `type = "perturbation"` of this law.
pub fn perturbation(spec: &PerturbationSpec, seed: u64) -> Result<Perturbation, ConfigError> {
    spec.validate("<builder>", "perturbation")?;
    let cloud = |x| Cloud::uniform_unchecked(spec.dim, x, 1.0);
    Ok(Perturbation {
        control: cloud(spec.sample(seed, false, 0)),
        perturbed: cloud(spec.sample(seed, true, 1)),
        support: spec.support(seed),
    })
}
