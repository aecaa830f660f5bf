//! Weighted k-means (Lloyd's algorithm, k-means++ seeding; Arthur & Vassilvitskii 2007):
//! minimise `Σ_i w_i |x_i − c_{k(i)}|²`. Deterministic for a seed (stream `(seed, Analysis, 3,
//! 0)`); clusters are renumbered by their centre's first coordinate (then the second, ...), so
//! labels read left to right in a plot.

use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use rand::Rng;

/// A clustering: label per point and centres (`k·d`).
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// Number of clusters.
    pub k: usize,
    /// Cluster of each point, in `0..k`.
    pub labels: Vec<usize>,
    /// Cluster centres, particle-contiguous (`k·d`).
    pub centers: Vec<f64>,
}

fn sq(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// `k`-means of the cloud (weights as point masses), at most `iters` Lloyd iterations. `k` is
/// clamped to `1..=n`; an empty cloud has no cluster (`k = 0`).
pub fn kmeans(c: &Cloud, k: usize, iters: usize, seed: u64) -> Clusters {
    let (n, d) = (c.len(), c.dim);
    if n == 0 {
        return Clusters { k: 0, labels: Vec::new(), centers: Vec::new() };
    }
    let k = k.clamp(1, n.max(1));
    let mut r = rng::stream(seed, Purpose::Analysis, 3, 0);
    // k-means++ seeding.
    let mut centers: Vec<f64> = Vec::with_capacity(k * d);
    let first = r.random_range(0..n);
    centers.extend_from_slice(c.point(first));
    let mut dist: Vec<f64> = (0..n).map(|i| sq(c.point(i), c.point(first))).collect();
    while centers.len() < k * d {
        let v: Vec<f64> = dist.iter().zip(&c.w).map(|(d, w)| d * w).collect();
        let total: f64 = v.iter().sum();
        let pick = if total > 0.0 {
            let mut u = r.random::<f64>() * total;
            let mut p = n - 1;
            for (i, x) in v.iter().enumerate() {
                if u < *x {
                    p = i;
                    break;
                }
                u -= x;
            }
            p
        } else {
            r.random_range(0..n)
        };
        let cp = c.point(pick).to_vec();
        centers.extend_from_slice(&cp);
        for (i, di) in dist.iter_mut().enumerate() {
            *di = di.min(sq(c.point(i), &cp));
        }
    }
    let mut labels = vec![0usize; n];
    for it in 0..iters.max(1) {
        let mut changed = false;
        for (i, l) in labels.iter_mut().enumerate() {
            let p = c.point(i);
            let best = (0..k)
                .min_by(|&a, &b| {
                    sq(p, &centers[a * d..(a + 1) * d]).total_cmp(&sq(p, &centers[b * d..(b + 1) * d]))
                })
                .unwrap_or(0);
            if best != *l || it == 0 {
                changed |= best != *l;
                *l = best;
            }
        }
        let mut sums = vec![0.0; k * d];
        let mut mass = vec![0.0; k];
        for (i, &l) in labels.iter().enumerate() {
            mass[l] += c.w[i];
            for (s, x) in sums[l * d..(l + 1) * d].iter_mut().zip(c.point(i)) {
                *s += c.w[i] * x;
            }
        }
        for l in 0..k {
            if mass[l] > 0.0 {
                for q in 0..d {
                    centers[l * d + q] = sums[l * d + q] / mass[l];
                }
            }
        }
        if !changed && it > 0 {
            break;
        }
    }
    // Renumber by centre coordinates.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (&centers[a * d..(a + 1) * d], &centers[b * d..(b + 1) * d]);
        ca.iter()
            .zip(cb)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut rank = vec![0; k];
    for (new, &old) in order.iter().enumerate() {
        rank[old] = new;
    }
    let centers = order.iter().flat_map(|&o| centers[o * d..(o + 1) * d].to_vec()).collect();
    Clusters { k, labels: labels.iter().map(|&l| rank[l]).collect(), centers }
}

/// Clusters from labels (a label column, any strings): distinct values become `0..k`, in
/// numeric order when every label is a number, else in text order; centres are the weighted
/// means. Returns the clustering and the distinct label values.
pub fn from_labels(c: &Cloud, labels: &[String]) -> (Clusters, Vec<String>) {
    let mut vals: Vec<String> = labels.to_vec();
    if vals.iter().all(|v| v.parse::<f64>().is_ok()) {
        let num = |v: &String| v.parse::<f64>().unwrap_or(0.0);
        vals.sort_by(|a, b| num(a).total_cmp(&num(b)).then(a.cmp(b)));
    } else {
        vals.sort();
    }
    vals.dedup();
    let k = vals.len();
    let d = c.dim;
    let lab: Vec<usize> = labels.iter().map(|v| vals.iter().position(|u| u == v).unwrap_or(0)).collect();
    let mut centers = vec![0.0; k * d];
    let mut mass = vec![0.0; k];
    for (i, &l) in lab.iter().enumerate() {
        mass[l] += c.w[i];
        for q in 0..d {
            centers[l * d + q] += c.w[i] * c.point(i)[q];
        }
    }
    for l in 0..k {
        for q in 0..d {
            centers[l * d + q] /= mass[l].max(f64::MIN_POSITIVE);
        }
    }
    (Clusters { k, labels: lab, centers }, vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty cloud is valid input (`Cloud::new` accepts it): no cluster, no panic. `k` larger
    /// than the points is clamped, each point its own cluster, numbered left to right.
    #[test]
    fn empty_cloud_and_large_k() {
        let empty = Cloud::new_unchecked(2, vec![], vec![]);
        assert_eq!(kmeans(&empty, 3, 10, 0), Clusters { k: 0, labels: vec![], centers: vec![] });
        let c = Cloud::new_unchecked(1, vec![5.0, -1.0], vec![1.0, 1.0]);
        let cl = kmeans(&c, 9, 10, 0);
        assert_eq!((cl.k, cl.labels, cl.centers), (2, vec![1, 0], vec![-1.0, 5.0]));
    }
}
