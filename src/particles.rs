//! Particle state (SPEC §0): positions `x_i ∈ R^d` stored particle-contiguous (`x[i*d + k]`),
//! log-weights `ℓ_i = log w_i`, ids and parent ids.
//!
//! Weights are stored as logarithms so that the exact weight ODE `w ← w e^{g dt}` never
//! underflows to 0 or overflows: `ℓ ← ℓ + g dt`. The total mass `M = Σ_i w_i` and the effective
//! sample size `ESS = (Σ w)² / Σ w²` are computed with a log-sum-exp shift.

/// A weighted point cloud `Σ_j b_j δ_{y_j}` (targets, data snapshots).
#[derive(Debug, Clone, PartialEq)]
pub struct Cloud {
    pub dim: usize,
    /// Positions, particle-contiguous: `x[j*dim + k]`.
    pub x: Vec<f64>,
    /// Non-negative weights (masses).
    pub w: Vec<f64>,
}

impl Cloud {
    pub fn new(dim: usize, x: Vec<f64>, w: Vec<f64>) -> Self {
        assert_eq!(x.len(), dim * w.len(), "Cloud: positions and weights disagree");
        Self { dim, x, w }
    }
    /// Equal weights summing to `mass`.
    pub fn uniform(dim: usize, x: Vec<f64>, mass: f64) -> Self {
        let n = x.len() / dim.max(1);
        Self::new(dim, x, vec![mass / n as f64; n])
    }
    pub fn len(&self) -> usize {
        self.w.len()
    }
    pub fn is_empty(&self) -> bool {
        self.w.is_empty()
    }
    pub fn mass(&self) -> f64 {
        self.w.iter().sum()
    }
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
    pub fn len(&self) -> usize {
        self.logw.len()
    }
    pub fn is_empty(&self) -> bool {
        self.logw.is_empty()
    }
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
        Cloud::new(self.dim, self.x.clone(), self.weights())
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
        let c = Cloud::new(1, vec![0.0, 1.0, 2.0], vec![1.0, 1.0, 2.0]);
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
        let c = Cloud::uniform(1, vec![0.0, 1.0, 2.0], 3.0);
        let mut p = Particles::from_cloud(&c);
        p.resample_from(&[0, 0, 2, 2, 2], vec![0.0; 5]);
        assert_eq!(p.id, vec![0, 3, 2, 4, 5]);
        assert_eq!(p.parent, vec![0, 0, 2, 2, 2]);
        assert_eq!(p.x, vec![0.0, 0.0, 2.0, 2.0, 2.0]);
    }
}
