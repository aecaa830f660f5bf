//! Metrics of the particle measure against the target (SPEC §4), reported every `k` steps.
//!
//! A metric is anything implementing [`Metric`]; it may produce several columns (the mean has one
//! per coordinate).

pub mod mmd;
pub mod wasserstein;

#[cfg(test)]
use mmd::witness_in;
pub(crate) use mmd::{mmd, mmd_terms};
pub use mmd::{witness_between, MmdTerms};

use crate::dist::Exec;
use crate::error::SimError;
use crate::particles::{weighted_mean, Cloud};
use std::sync::OnceLock;

/// The Gaussian-kernel `MMD²` between two clouds and its three terms (see [`mod@mmd`]): `a` and `b`
/// must have one dimension, `bandwidth` `s` of `exp(−|x − y|²/(2s²))` a positive finite number
/// whose square is a normal double. `MMD(a, a) = 0` exactly.
pub fn mmd_between(a: &Cloud, b: &Cloud, bandwidth: f64) -> Result<MmdTerms, SimError> {
    mmd_between_on(&Exec::default(), a, b, bandwidth)
}

/// [`mmd_between`] with its Gaussian sums run in `exec` (split over its ranks: every rank gets the
/// same bits).
pub fn mmd_between_on(exec: &Exec, a: &Cloud, b: &Cloud, bandwidth: f64) -> Result<MmdTerms, SimError> {
    mmd::check_pair("mmd", a, b, bandwidth)?;
    Ok(mmd_terms(exec, a.dim, &a.x, &a.w, &b.x, &b.w, bandwidth))
}

/// What a metric sees: the particles as a weighted cloud and the target.
#[derive(Debug, Clone, Copy)]
pub struct MetricCtx<'a> {
    /// Dimension `d`.
    pub dim: usize,
    /// Particle positions, particle-contiguous (n·d).
    pub x: &'a [f64],
    /// Particle weights `w_i`.
    pub w: &'a [f64],
    /// Total mass `Σ w_i`.
    pub mass: f64,
    /// Effective sample size `(Σ w)² / Σ w²`.
    pub ess: f64,
    /// The target measure (empty when the run has none).
    pub target: &'a Cloud,
    /// Where the metric's row passes run (the simulation's context: every rank computes the
    /// same metrics, in the same order).
    pub exec: &'a Exec,
}

/// A quantity computed from the particles (and the target).
pub trait Metric: Send + Sync {
    /// Column names this metric writes.
    fn names(&self, dim: usize) -> Vec<String>;
    /// One value per name.
    fn compute(&self, ctx: &MetricCtx) -> Result<Vec<f64>, SimError>;
}

/// Gaussian-kernel MMD to the target, unnormalised (`normalized = false`) or between the
/// probability measures (both weight vectors divided by their totals).
/// The target's own term `Σ b b' k` is computed once and reused (the target is fixed in a run).
#[derive(Debug)]
pub struct MmdMetric {
    bandwidth: f64,
    normalized: bool,
    target_term: OnceLock<f64>,
}

impl MmdMetric {
    /// MMD with kernel bandwidth `bandwidth`, between the normalised measures if `normalized`.
    pub fn new(bandwidth: f64, normalized: bool) -> Self {
        Self { bandwidth, normalized, target_term: OnceLock::new() }
    }
}

impl Metric for MmdMetric {
    fn names(&self, _dim: usize) -> Vec<String> {
        vec![if self.normalized { "mmd_normalized".into() } else { "mmd".into() }]
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        let t = c.target;
        let s = self.bandwidth;
        let (a, b): (Vec<f64>, Vec<f64>) = if self.normalized {
            let tm = t.mass();
            (c.w.iter().map(|v| v / c.mass).collect(), t.w.iter().map(|v| v / tm).collect())
        } else {
            (c.w.to_vec(), t.w.clone())
        };
        let e = c.exec;
        let yy = *self.target_term.get_or_init(|| mmd::cross(e, c.dim, &t.x, &b, &t.x, &b, s));
        let xx = mmd::cross(e, c.dim, c.x, &a, c.x, &a, s);
        let xy = mmd::cross(e, c.dim, c.x, &a, &t.x, &b, s);
        Ok(vec![(xx + yy - 2.0 * xy).max(0.0).sqrt()])
    }
}

/// Total mass `M = Σ w_i`.
#[derive(Debug, Clone)]
pub struct Mass;

impl Metric for Mass {
    fn names(&self, _dim: usize) -> Vec<String> {
        vec!["mass".into()]
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        Ok(vec![c.mass])
    }
}

/// Number of particles.
#[derive(Debug, Clone)]
pub struct Count;

impl Metric for Count {
    fn names(&self, _dim: usize) -> Vec<String> {
        vec!["n".into()]
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        Ok(vec![c.w.len() as f64])
    }
}

/// `moved_dims`: the mean over particles of the number of coordinates that moved by more than
/// `δ` since the first evaluation, `mean_i #{k : |x_ik − x_ik(0)| > δ}` with `δ = 10⁻² ×` the
/// median per-coordinate standard deviation of the first positions (SPEC §7's displacement
/// dimensionality, [`crate::maps::default_delta`]). The first positions are those of this
/// process's first evaluation (a resumed run measures from where it resumed); a population that
/// changes size (birth–death) is an error.
#[derive(Debug, Default)]
pub struct MovedDims {
    start: OnceLock<(Vec<f64>, f64)>,
}

impl Metric for MovedDims {
    fn names(&self, _dim: usize) -> Vec<String> {
        vec!["moved_dims".into()]
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        let (x0, delta) = self.start.get_or_init(|| {
            let cloud = Cloud::new_unchecked(c.dim, c.x.to_vec(), vec![1.0; c.w.len()]);
            (c.x.to_vec(), crate::maps::default_delta(&cloud))
        });
        if x0.len() != c.x.len() {
            return Err(SimError::Invalid(format!(
                "metric moved_dims: the population changed from {} to {} particles",
                x0.len() / c.dim.max(1),
                c.w.len()
            )));
        }
        let moved = c.x.iter().zip(x0).filter(|(x, x0)| (*x - *x0).abs() > *delta).count();
        Ok(vec![moved as f64 / c.w.len().max(1) as f64])
    }
}

/// Effective sample size `(Σ w)² / Σ w²`.
#[derive(Debug, Clone)]
pub struct Ess;

impl Metric for Ess {
    fn names(&self, _dim: usize) -> Vec<String> {
        vec!["ess".into()]
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        Ok(vec![c.ess])
    }
}

/// Weighted mean `Σ w x / Σ w`, one column per coordinate.
#[derive(Debug, Clone)]
pub struct Mean;

impl Metric for Mean {
    fn names(&self, dim: usize) -> Vec<String> {
        (1..=dim).map(|k| format!("mean_{k}")).collect()
    }
    fn compute(&self, c: &MetricCtx) -> Result<Vec<f64>, SimError> {
        Ok(weighted_mean(c.dim, c.x, c.w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mmd_between` is `mmd_terms` on the clouds' data, bit for bit; mismatched dimensions and
    /// bandwidths whose square is not a normal double are errors, not NaN.
    #[test]
    fn mmd_between_checks_then_sums() {
        let a = Cloud::new_unchecked(2, vec![0.0, 0.0, 1.0, 0.5], vec![0.5, 1.0]);
        let b = Cloud::new_unchecked(2, vec![0.2, 0.1], vec![2.0]);
        let t = mmd_between(&a, &b, 0.7).unwrap();
        assert_eq!(t, mmd_terms(&Exec::default(), 2, &a.x, &a.w, &b.x, &b.w, 0.7));
        assert!(t.mmd2 > 0.0);
        let line = Cloud::new_unchecked(1, vec![0.0], vec![1.0]);
        assert!(mmd_between(&a, &line, 1.0).unwrap_err().to_string().contains("dimension 2 and 1"));
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-160, 1e160] {
            assert!(mmd_between(&a, &b, s).is_err(), "bandwidth {s}");
            assert!(witness_between(&[0.0, 0.0], &a, &b, s).is_err(), "bandwidth {s}");
        }
    }

    /// `witness_between` is `witness` on the clouds' data, bit for bit; a ragged `z` or clouds of
    /// different dimensions are errors.
    #[test]
    fn witness_between_checks_then_sums() {
        let a = Cloud::new_unchecked(2, vec![0.0, 0.0, 1.0, 0.5], vec![0.5, 1.0]);
        let b = Cloud::new_unchecked(2, vec![0.2, 0.1], vec![2.0]);
        let z = [0.3, -0.2, 1.0, 1.0, 0.0, 0.0];
        let (phi, grad) = witness_between(&z, &a, &b, 0.7).unwrap();
        assert_eq!((phi.len(), grad.len()), (3, 6));
        assert_eq!((phi, grad), witness_in(&Exec::default(), 2, &z, &a.x, &a.w, &b.x, &b.w, 0.7));
        let e = witness_between(&z[..5], &a, &b, 0.7).unwrap_err().to_string();
        assert!(e.contains("5 coordinates are not a multiple of the dimension 2"), "{e}");
        let line = Cloud::new_unchecked(1, vec![0.0], vec![1.0]);
        assert!(witness_between(&z, &a, &line, 1.0).unwrap_err().to_string().contains("dimension 2 and 1"));
    }
}
