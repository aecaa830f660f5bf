//! Sampling of source and target distributions (validated specs → weighted clouds).
//!
//! - Gaussian `N(m, Σ)`: `x = m + L ξ`, `Σ = L Lᵀ` (Cholesky), `ξ ~ N(0, I)`;
//! - mixture: component `c` with probability `∝ weight_c`, then its Gaussian;
//! - ring of `k` Gaussians: centres `center + r (cos 2πc/k, sin 2πc/k, 0, …)`, sample `j` in
//!   component `j mod k`; optional weights `∝ exp(γ x₁)`;
//! - uniform box; CSV rows (optionally `n` drawn without replacement);
//! - synthetic perturbation cells ([`crate::synthetic`]): control, or `k` coordinates shifted.
//!
//! Every cloud is normalised to its total `mass`. Samples come from a keyed stream
//! `(seed, Sampling, role, 0)`, so a scenario and seed always give the same clouds.

use super::spec::{Check, Component, Distribution, Std};
use crate::data::{read_snapshot_with, ColumnSpec};
use crate::error::{ConfigError, Error};
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use crate::synthetic::PerturbationSpec;
use nalgebra::{DMatrix, DVector};
use rand::seq::index::sample;
use rand::Rng;
use rand_distr::{Distribution as _, StandardNormal};
use std::path::Path;

/// Dimension implied by a distribution (CSV: read from the file by the caller).
pub fn declared_dim(d: &Distribution) -> Option<usize> {
    match d {
        Distribution::Gaussian { mean, .. } => Some(mean.len()),
        Distribution::Mixture { components, .. } => components.first().map(|c| c.mean.len()),
        Distribution::RingOfGaussians { center, .. } => Some(center.as_ref().map_or(2, |c| c.len())),
        Distribution::Uniform { low, .. } => Some(low.len()),
        Distribution::Perturbation { dim, .. } => Some(*dim),
        Distribution::Csv { .. } => None,
    }
}

/// Lower Cholesky factor of a Gaussian's covariance (from `std` or `cov`).
fn factor(
    chk: &Check,
    path: &str,
    d: usize,
    std: &Option<Std>,
    cov: &Option<Vec<Vec<f64>>>,
) -> Result<DMatrix<f64>, ConfigError> {
    match (std, cov) {
        (Some(_), Some(_)) => Err(chk.err(path, "give either std or cov, not both")),
        (None, None) => Err(chk.err(&format!("{path}.std"), "missing: give std (or cov)")),
        (Some(Std::Scalar(s)), None) => {
            chk.non_negative(&format!("{path}.std"), *s)?;
            Ok(DMatrix::from_diagonal_element(d, d, *s))
        }
        (Some(Std::PerAxis(s)), None) => {
            let p = format!("{path}.std");
            chk.dim(&p, s, d)?;
            for &v in s {
                chk.non_negative(&p, v)?;
            }
            Ok(DMatrix::from_diagonal(&DVector::from_column_slice(s)))
        }
        (None, Some(c)) => {
            let p = format!("{path}.cov");
            if c.len() != d || c.iter().any(|r| r.len() != d) {
                return Err(chk.err(&p, format!("must be a {d}×{d} matrix")));
            }
            let flat: Vec<f64> = c.iter().flatten().copied().collect();
            chk.finite(&p, &flat)?;
            let m = DMatrix::from_row_slice(d, d, &flat);
            if (&m - m.transpose()).abs().max() > 1e-12 * m.abs().max().max(1.0) {
                return Err(chk.err(&p, "is not symmetric"));
            }
            m.cholesky().map(|ch| ch.l()).ok_or_else(|| chk.err(&p, "is not positive definite"))
        }
    }
}

fn gaussian_into(r: &mut impl Rng, mean: &[f64], l: &DMatrix<f64>, out: &mut Vec<f64>) {
    let d = mean.len();
    let xi: Vec<f64> = (0..d).map(|_| StandardNormal.sample(r)).collect();
    for k in 0..d {
        let mut v = mean[k];
        for q in 0..=k {
            v += l[(k, q)] * xi[q];
        }
        out.push(v);
    }
}

/// Validate a distribution for dimension `d` and sample it. `rows`: a CSV distribution's rows,
/// read once by [`read_rows`]. `role` separates the random streams of source (0) and target (1).
pub fn sample_distribution(
    chk: &Check,
    path: &str,
    dist: &Distribution,
    rows: Option<Cloud>,
    d: usize,
    seed: u64,
    role: u64,
) -> Result<Cloud, Error> {
    let mut r = rng::stream(seed, Purpose::Sampling, role, 0);
    let key = |k: &str| format!("{path}.{k}");
    let (cloud, mass) = match dist {
        Distribution::Gaussian { n, mean, std, cov, mass } => {
            chk.count(&key("n"), *n)?;
            chk.dim(&key("mean"), mean, d)?;
            let l = factor(chk, path, d, std, cov)?;
            let mut x = Vec::with_capacity(n * d);
            (0..*n).for_each(|_| gaussian_into(&mut r, mean, &l, &mut x));
            (Cloud::uniform_unchecked(d, x, 1.0), *mass)
        }
        Distribution::Mixture { n, components, mass } => {
            chk.count(&key("n"), *n)?;
            if components.is_empty() {
                return Err(chk.err(&key("components"), "needs at least one component").into());
            }
            let mut factors = Vec::new();
            for (c, Component { mean, std, cov, weight }) in components.iter().enumerate() {
                let p = format!("{path}.components[{c}]");
                chk.dim(&format!("{p}.mean"), mean, d)?;
                chk.non_negative(&format!("{p}.weight"), *weight)?;
                factors.push(factor(chk, &p, d, std, cov)?);
            }
            let total: f64 = components.iter().map(|c| c.weight).sum();
            if total <= 0.0 {
                return Err(chk.err(&key("components"), "weights sum to 0").into());
            }
            let mut x = Vec::with_capacity(n * d);
            for _ in 0..*n {
                let u: f64 = r.random::<f64>() * total;
                let mut acc = 0.0;
                let mut c = components.len() - 1;
                for (k, comp) in components.iter().enumerate() {
                    acc += comp.weight;
                    if u < acc {
                        c = k;
                        break;
                    }
                }
                gaussian_into(&mut r, &components[c].mean, &factors[c], &mut x);
            }
            (Cloud::uniform_unchecked(d, x, 1.0), *mass)
        }
        Distribution::RingOfGaussians { n, k, radius, std, center, weight_gradient, mass } => {
            chk.count(&key("n"), *n)?;
            chk.count(&key("k"), *k)?;
            chk.non_negative(&key("radius"), *radius)?;
            chk.non_negative(&key("std"), *std)?;
            if d < 2 {
                return Err(chk.err(path, "ring_of_gaussians needs at least 2 dimensions").into());
            }
            let c0 = center.clone().unwrap_or_else(|| vec![0.0; d]);
            chk.dim(&key("center"), &c0, d)?;
            chk.finite(&key("weight_gradient"), &[*weight_gradient])?;
            let l = DMatrix::from_diagonal_element(d, d, *std);
            let mut x = Vec::with_capacity(n * d);
            for j in 0..*n {
                let a = 2.0 * std::f64::consts::PI * (j % k) as f64 / *k as f64;
                let mut m = c0.clone();
                m[0] += radius * a.cos();
                m[1] += radius * a.sin();
                gaussian_into(&mut r, &m, &l, &mut x);
            }
            let w: Vec<f64> = x.chunks_exact(d).map(|p| (weight_gradient * p[0]).exp()).collect();
            (Cloud::new_unchecked(d, x, w), *mass)
        }
        Distribution::Uniform { n, low, high, mass } => {
            chk.count(&key("n"), *n)?;
            chk.dim(&key("low"), low, d)?;
            chk.dim(&key("high"), high, d)?;
            if let Some(k) = (0..d).find(|&k| high[k] <= low[k]) {
                return Err(chk
                    .err(&key("high"), format!("entry {k} ({}) must exceed low ({})", high[k], low[k]))
                    .into());
            }
            let mut x = Vec::with_capacity(n * d);
            for _ in 0..*n {
                for k in 0..d {
                    x.push(low[k] + (high[k] - low[k]) * r.random::<f64>());
                }
            }
            (Cloud::uniform_unchecked(d, x, 1.0), *mass)
        }
        Distribution::Perturbation { n, dim, k, shift, perturbed, blocks, block_size, rho, mass } => {
            let spec = PerturbationSpec {
                n: *n,
                dim: *dim,
                k: *k,
                shift: *shift,
                blocks: *blocks,
                block_size: *block_size,
                rho: *rho,
            };
            spec.validate(chk.file, path)?;
            if *dim != d {
                let msg = format!("is {dim}, the scenario is {d}-dimensional (the source's dimension)");
                return Err(chk.err(&key("dim"), msg).into());
            }
            (Cloud::uniform_unchecked(d, spec.sample(seed, *perturbed, role), 1.0), *mass)
        }
        Distribution::Csv { path: file, time, n, mass, .. } => {
            let c = rows.ok_or_else(|| chk.err(&key("path"), "the file's rows were not read"))?;
            if c.dim != d {
                return Err(chk
                    .err(
                        &key("path"),
                        format!("{file} is {}-dimensional, the scenario is {d}-dimensional", c.dim),
                    )
                    .into());
            }
            let c = match n {
                Some(0) => return Err(chk.err(&key("n"), "must be ≥ 1, got 0").into()),
                Some(n) if *n > c.len() => {
                    let at = time.map(|t| format!(" at time {t}")).unwrap_or_default();
                    let msg = format!(
                        "asks for {n} rows but {file} has {} rows{at}; lower n, or remove it to use all rows",
                        c.len()
                    );
                    return Err(chk.err(&key("n"), msg).into());
                }
                Some(n) if *n < c.len() => {
                    let mut idx = sample(&mut r, c.len(), *n).into_vec();
                    idx.sort_unstable();
                    let x = idx.iter().flat_map(|&i| c.point(i).to_vec()).collect();
                    Cloud::new_unchecked(d, x, idx.iter().map(|&i| c.w[i]).collect())
                }
                _ => c,
            };
            (c, *mass)
        }
    };
    chk.positive(&key("mass"), mass)?;
    if cloud.mass() <= 0.0 || !cloud.mass().is_finite() {
        return Err(chk.err(path, "samples have zero or non-finite total weight").into());
    }
    Ok(cloud.with_mass(mass))
}

#[cfg(test)]
thread_local! {
    /// CSV files read by [`read_rows`] on this thread (the test that a run reads each once).
    pub(crate) static CSV_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The rows of a CSV distribution `dist` at key `path` (file relative to the scenario's folder
/// `base_dir`; columns per its `columns` / `ignore_columns` keys); `None` for the other types.
pub fn read_rows(
    chk: &Check,
    path: &str,
    base_dir: &Path,
    dist: &Distribution,
) -> Result<Option<Cloud>, Error> {
    let Distribution::Csv { path: file, time, columns, ignore_columns, .. } = dist else {
        return Ok(None);
    };
    #[cfg(test)]
    CSV_READS.with(|n| n.set(n.get() + 1));
    let spec = ColumnSpec {
        columns: columns.clone(),
        ignore: ignore_columns.clone(),
        options: (format!("{path}.columns"), format!("{path}.ignore_columns")),
        ..ColumnSpec::default()
    };
    let time = *time;
    let p = base_dir.join(file);
    if !p.exists() {
        return Err(chk.err(&format!("{path}.path"), format!("no such file: {}", p.display())).into());
    }
    let key = format!("{path}.path");
    let table = read_snapshot_with(&p, &spec).map_err(|e| chk.err(&key, e.to_string()))?;
    Ok(Some(table.select(time).map_err(|e| chk.err(&key, e.to_string()))?))
}
