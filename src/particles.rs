//! Particle state (SPEC §0): positions `x_i ∈ R^d` stored particle-contiguous (`x[i*d + k]`),
//! log-weights `ℓ_i = log w_i`, ids and parent ids.
//!
//! Weights are stored as logarithms so that the exact weight ODE `w ← w e^{g dt}` never
//! underflows to 0 or overflows: `ℓ ← ℓ + g dt`. The total mass `M = Σ_i w_i` and the effective
//! sample size `ESS = (Σ w)² / Σ w²` are computed with a log-sum-exp shift.
//!
//! [`Cloud`] is the weighted point set `Σ_j w_j δ_{x_j}` every public function takes (targets,
//! data snapshots, both sides of a transport problem); [`Particles`] is the simulated population.

use crate::error::CloudError;
use crate::ot::MeasureRef;

/// A weighted point cloud `Σ_j b_j δ_{y_j}` in `R^d`: the one weighted point set type at the API
/// boundary (sources, targets, data snapshots, both sides of a transport problem).
///
/// Invariants, checked by [`Cloud::new`]: `dim ≥ 1`, `x.len() = dim · w.len()`, every
/// coordinate finite, every weight finite and `≥ 0`. An empty cloud (no points, `dim ≥ 1`) is
/// valid. [`Cloud::view`] borrows it as the solvers' [`MeasureRef`].
///
/// ```
/// use advreact::Cloud;
///
/// let c = Cloud::new(2, vec![0.0, 0.0, 1.0, 2.0], vec![1.0, 3.0])?;
/// assert_eq!((c.len(), c.mass()), (2, 4.0));
/// assert_eq!(c.point(1), &[1.0, 2.0]);
/// assert_eq!(c.mean(), vec![0.75, 1.5]);
/// // Bad input is an error, not a panic.
/// let e = Cloud::new(2, vec![0.0, 0.0, 1.0], vec![1.0]).unwrap_err();
/// assert_eq!(e.to_string(), "cloud: 3 coordinates are not a multiple of the dimension 2");
/// assert!(Cloud::new(1, vec![0.0], vec![-1.0]).is_err());
/// # Ok::<(), advreact::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Cloud {
    /// Dimension `d` of the points.
    pub dim: usize,
    /// Positions, particle-contiguous: `x[j*dim + k]`.
    pub x: Vec<f64>,
    /// Non-negative weights (masses).
    pub w: Vec<f64>,
}

impl Cloud {
    /// The cloud `Σ_j w_j δ_{x_j}`, checked (see the type's invariants).
    pub fn new(dim: usize, x: Vec<f64>, w: Vec<f64>) -> Result<Self, CloudError> {
        check_cloud(dim, &x, &w)?;
        Ok(Self { dim, x, w })
    }
    /// [`Cloud::new`] without the checks, for callers that guarantee the invariants.
    pub(crate) fn new_unchecked(dim: usize, x: Vec<f64>, w: Vec<f64>) -> Self {
        debug_assert!(x.len() == dim * w.len(), "Cloud: positions and weights disagree");
        Self { dim, x, w }
    }
    /// The points of `x` with equal weights summing to `mass` (finite, `≥ 0`), checked like
    /// [`Cloud::new`].
    pub fn uniform(dim: usize, x: Vec<f64>, mass: f64) -> Result<Self, CloudError> {
        if !(mass.is_finite() && mass >= 0.0) {
            return Err(CloudError::Mass { value: mass });
        }
        if dim == 0 {
            return Err(CloudError::ZeroDim);
        }
        let n = x.len() / dim;
        Self::new(dim, x, vec![mass / n as f64; n])
    }
    /// [`Cloud::uniform`] without the checks, for callers that guarantee the invariants.
    pub(crate) fn uniform_unchecked(dim: usize, x: Vec<f64>, mass: f64) -> Self {
        let n = x.len() / dim.max(1);
        Self::new_unchecked(dim, x, vec![mass / n as f64; n])
    }
    /// A borrowed view `(dim, x, w)`, as the OT solvers take it.
    pub fn view(&self) -> MeasureRef<'_> {
        MeasureRef::new(self.dim, &self.x, &self.w)
    }
    /// Number of points.
    pub fn len(&self) -> usize {
        self.w.len()
    }
    /// No points.
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
    /// Total mass `Σ_j w_j`.
    pub fn mass(&self) -> f64 {
        self.w.iter().sum()
    }
    /// Position of point `j` (`dim` coordinates).
    pub fn point(&self, j: usize) -> &[f64] {
        &self.x[j * self.dim..(j + 1) * self.dim]
    }
    /// Weighted mean (normalised weights).
    pub fn mean(&self) -> Vec<f64> {
        weighted_mean(self.dim, &self.x, &self.w)
    }
    /// Rescale weights so they sum to `mass`.
    pub fn with_mass(mut self, mass: f64) -> Self {
        let m = self.mass();
        if m > 0.0 {
            self.w.iter_mut().for_each(|b| *b *= mass / m);
        }
        self
    }
}

/// The checks of [`Cloud::new`]: the first violated invariant.
fn check_cloud(dim: usize, x: &[f64], w: &[f64]) -> Result<(), CloudError> {
    if dim == 0 {
        return Err(CloudError::ZeroDim);
    }
    if !x.len().is_multiple_of(dim) {
        return Err(CloudError::Ragged { len: x.len(), dim });
    }
    if x.len() / dim != w.len() {
        return Err(CloudError::Count { points: x.len() / dim, weights: w.len() });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(CloudError::Coordinate { point: i / dim, coord: i % dim, value: x[i] });
    }
    if let Some(j) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(CloudError::Weight { point: j, value: w[j] });
    }
    Ok(())
}

/// Weighted mean `Σ w_i x_i / Σ w_i` of a particle-contiguous array.
pub fn weighted_mean(dim: usize, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut m = vec![0.0; dim];
    let total: f64 = w.iter().sum();
    for (p, &wi) in x.chunks_exact(dim.max(1)).zip(w) {
        for (mk, pk) in m.iter_mut().zip(p) {
            *mk += wi * pk;
        }
    }
    if total > 0.0 {
        m.iter_mut().for_each(|v| *v /= total);
    }
    m
}

/// `log Σ exp(l_i)`, stable; `-inf` for an empty or all-`-inf` input.
pub fn log_sum_exp(l: &[f64]) -> f64 {
    let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if mx == f64::NEG_INFINITY || !mx.is_finite() {
        return mx;
    }
    mx + l.iter().map(|&v| (v - mx).exp()).sum::<f64>().ln()
}

/// The simulated population.
#[derive(Debug, Clone, PartialEq)]
pub struct Particles {
    /// Dimension `d` of the positions.
    pub dim: usize,
    /// Positions, particle-contiguous: `x[i*dim + k]`.
    pub x: Vec<f64>,
    /// Log-weights `log w_i`.
    pub logw: Vec<f64>,
    /// Unique ids; originals are `0..n0`, clones get fresh ids from `next_id`.
    pub id: Vec<u64>,
    /// Parent id (an original particle is its own parent).
    pub parent: Vec<u64>,
    /// The next unused id.
    pub next_id: u64,
}

impl Particles {
    /// Particles at the cloud's points with the cloud's weights; ids `0..n`.
    pub fn from_cloud(c: &Cloud) -> Self {
        let n = c.len() as u64;
        Self {
            dim: c.dim,
            x: c.x.clone(),
            logw: c.w.iter().map(|w| w.ln()).collect(),
            id: (0..n).collect(),
            parent: (0..n).collect(),
            next_id: n,
        }
    }
    /// Number of particles.
    pub fn len(&self) -> usize {
        self.logw.len()
    }
    /// No particle left.
    pub fn is_empty(&self) -> bool {
        self.logw.is_empty()
    }
    /// Position of particle `i` (`dim` coordinates).
    pub fn point(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// `log M`.
    pub fn log_mass(&self) -> f64 {
        log_sum_exp(&self.logw)
    }
    /// Total mass `M = Σ w_i` (the plain sum of the weights, as the metrics see them).
    pub fn mass(&self) -> f64 {
        self.logw.iter().map(|l| l.exp()).sum()
    }
    /// Weights `w_i = exp(ℓ_i)` into `out` (resized).
    pub fn weights_into(&self, out: &mut Vec<f64>) {
        out.clear();
        out.extend(self.logw.iter().map(|l| l.exp()));
    }
    /// Weights `w_i = exp(ℓ_i)`.
    pub fn weights(&self) -> Vec<f64> {
        let mut w = Vec::new();
        self.weights_into(&mut w);
        w
    }
    /// Effective sample size `(Σ w)² / Σ w²`, computed from log-weights.
    pub fn ess(&self) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let l2: Vec<f64> = self.logw.iter().map(|l| 2.0 * l).collect();
        (2.0 * self.log_mass() - log_sum_exp(&l2)).exp()
    }
    /// The particles as a weighted cloud.
    pub fn to_cloud(&self) -> Cloud {
        Cloud::new_unchecked(self.dim, self.x.clone(), self.weights())
    }
    /// Keep the particles listed in `src` (with repeats; a repeat becomes a clone with a new id
    /// whose parent is the copied particle's id) and give them log-weights `logw`.
    pub fn resample_from(&mut self, src: &[usize], logw: Vec<f64>) {
        let d = self.dim;
        let mut x = Vec::with_capacity(src.len() * d);
        let mut id = Vec::with_capacity(src.len());
        let mut parent = Vec::with_capacity(src.len());
        let mut prev = usize::MAX;
        for &i in src {
            x.extend_from_slice(self.point(i));
            if i == prev {
                id.push(self.next_id);
                parent.push(self.id[i]);
                self.next_id += 1;
            } else {
                id.push(self.id[i]);
                parent.push(self.parent[i]);
            }
            prev = i;
        }
        self.x = x;
        self.id = id;
        self.parent = parent;
        self.logw = logw;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_and_ess_from_log_weights() {
        let c = Cloud::new(1, vec![0.0, 1.0, 2.0], vec![1.0, 1.0, 2.0]).unwrap();
        let p = Particles::from_cloud(&c);
        assert!((p.mass() - 4.0).abs() < 1e-15);
        assert!((p.ess() - 16.0 / 6.0).abs() < 1e-14);
        // Weights beyond the f64 range stay representable as log-weights.
        let mut q = p.clone();
        q.logw.iter_mut().for_each(|l| *l += 800.0);
        assert!((q.log_mass() - (800.0 + 4f64.ln())).abs() < 1e-12);
        assert!((q.ess() - 16.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn resample_records_parents() {
        let c = Cloud::uniform(1, vec![0.0, 1.0, 2.0], 3.0).unwrap();
        let mut p = Particles::from_cloud(&c);
        p.resample_from(&[0, 0, 2, 2, 2], vec![0.0; 5]);
        assert_eq!(p.id, vec![0, 3, 2, 4, 5]);
        assert_eq!(p.parent, vec![0, 0, 2, 2, 2]);
        assert_eq!(p.x, vec![0.0, 0.0, 2.0, 2.0, 2.0]);
    }

    /// Every invariant of `Cloud::new` is checked, the first violation named with its index and
    /// value; valid input (an empty cloud included) is kept as given.
    #[test]
    fn cloud_new_rejects_each_bad_input() {
        let err = |d: usize, x: Vec<f64>, w: Vec<f64>| Cloud::new(d, x, w).unwrap_err();
        assert_eq!(err(0, vec![], vec![]), CloudError::ZeroDim);
        assert_eq!(err(2, vec![0.0; 3], vec![1.0]), CloudError::Ragged { len: 3, dim: 2 });
        assert_eq!(err(2, vec![0.0; 4], vec![1.0]), CloudError::Count { points: 2, weights: 1 });
        let e = err(2, vec![0.0, 0.0, 1.0, f64::NAN], vec![1.0, 1.0]);
        assert!(matches!(e, CloudError::Coordinate { point: 1, coord: 1, value } if value.is_nan()));
        assert_eq!(err(1, vec![0.0, 1.0], vec![1.0, -0.5]), CloudError::Weight { point: 1, value: -0.5 });
        let e = err(1, vec![0.0], vec![f64::INFINITY]);
        assert_eq!(e.to_string(), "cloud: weight 0 must be finite and ≥ 0, got inf");
        assert_eq!(Cloud::uniform(1, vec![0.0], f64::NAN).unwrap_err().to_string().lines().count(), 1);
        assert!(matches!(Cloud::uniform(1, vec![0.0], -1.0), Err(CloudError::Mass { .. })));
        assert_eq!(Cloud::uniform(0, vec![], 1.0), Err(CloudError::ZeroDim));
        let empty = Cloud::new(3, vec![], vec![]).unwrap();
        assert!(empty.is_empty() && empty.mass() == 0.0);
        let c = Cloud::uniform(2, vec![0.0, 1.0, 2.0, 3.0], 4.0).unwrap();
        assert_eq!(c.w, vec![2.0, 2.0]);
        let v = c.view();
        assert_eq!((v.dim, v.x, v.w), (2, &c.x[..], &c.w[..]));
        // `?` turns it into the library's error.
        let f = || -> Result<Cloud, crate::Error> { Ok(Cloud::new(1, vec![0.0], vec![-1.0])?) };
        assert!(matches!(f(), Err(crate::Error::Data(crate::DataError::Cloud(_)))));
    }
}
