//! # Transport maps you can apply and read (SPEC §7)
//!
//! A map `T: ℝ^d → ℝ^d` from a source cloud `μ = Σ a_i δ_{x_i}` to a target `ν = Σ b_j δ_{y_j}`,
//! applicable to new points, with its displacement `T(x) − x` sparse when the cost asks for it:
//!
//! - [`entropic`]: the entropic map estimator `T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j))` of an
//!   elastic cost `h(z) = ½|z|² + γ τ(z)`; `γ = 0` is the barycentric map, ℓ1 gives exact zeros.
//! - **Unbalanced maps** (UOT-FM's Prop. 3.1, [`rescale_unbalanced`]): solve the KL-unbalanced
//!   coupling `π` (SPEC §3, `τ_a = τ_b = τ`) with the same cost, rescale `a → ã = π1`,
//!   `b → b̃ = πᵀ1` (equal masses: both are the plan's), then fit the balanced map between
//!   `(X, ã)` and `(Y, b̃)`. Points the coupling destroys (outliers) get `ã_i/a_i ≈ 0` and no
//!   longer pull the map.
//! - [`sparse`]: a parametric displacement-sparse map `T(x) = x + Θᵀφ(x)` fitted on
//!   `S_ε(T#μ, ν) + γ mean_i τ(Δ(x_i))` (smoothed ℓ0, or a smoothed ℓ1), for penalties without a
//!   usable prox, with `γ` adapted to a requested mean displacement dimensionality
//!   ([`fit_sparse`], `advreact map --method sparse-l0`).
//! - [`model`]: the versioned `map.json` (one enum variant per method) and [`command`]: the
//!   `advreact map` command (fit, report, plots; `--apply`).

pub mod command;
pub mod entropic;
pub mod model;
pub mod sparse;

use crate::error::SimError;
use crate::ot::{uot_clouds, Cost, Marginal, SinkhornOptions, UotReport};
use crate::particles::Cloud;
pub use entropic::EntropicMap;
pub use model::{MapFile, MapModel};

/// The rescaling of an unbalanced map (Prop. 3.1): the plan's marginals and what they say per
/// point.
#[derive(Debug, Clone)]
pub struct Rescaling {
    /// `ã_i = (π1)_i`: the source mass the coupling transports, per point.
    pub source_mass: Vec<f64>,
    /// `ã_i / a_i` (≈ 0: destroyed, an outlier; > 1: created).
    pub source_factor: Vec<f64>,
    /// `b̃_j = (πᵀ1)_j`.
    pub target_mass: Vec<f64>,
    /// `b̃_j / b_j`.
    pub target_factor: Vec<f64>,
    /// The unbalanced solve's report.
    pub report: UotReport,
}

/// Solve the KL-unbalanced coupling between `source` and `target` (`opts`'s cost and `ε`,
/// `τ_a = τ_b = tau`) and return both clouds reweighted by its marginals, with the
/// [`Rescaling`]. A point whose transported mass underflows to 0 keeps weight 0 (it no longer
/// counts in the balanced fit).
pub fn rescale_unbalanced(
    source: &Cloud,
    target: &Cloud,
    opts: &SinkhornOptions,
    tau: f64,
) -> Result<(Cloud, Cloud, Rescaling), SimError> {
    if !(tau > 0.0 && tau.is_finite()) {
        return Err(SimError::Invalid(format!("unbalanced map: tau must be finite and > 0, got {tau}")));
    }
    let mut o = opts.clone();
    o.marginal_a = Marginal::kl(tau);
    o.marginal_b = Marginal::kl(tau);
    let sol = uot_clouds(source, target, &o)?;
    let ratio =
        |m: &[f64], w: &[f64]| m.iter().zip(w).map(|(m, w)| if *w > 0.0 { m / w } else { 0.0 }).collect();
    let resc = Rescaling {
        source_factor: ratio(&sol.row_mass, &source.w),
        target_factor: ratio(&sol.col_mass, &target.w),
        source_mass: sol.row_mass,
        target_mass: sol.col_mass,
        report: sol.report,
    };
    let a = Cloud::new(source.dim, source.x.clone(), resc.source_mass.clone())
        .map_err(|e| SimError::Invalid(format!("unbalanced map: rescaled source: {e}")))?;
    let b = Cloud::new(target.dim, target.x.clone(), resc.target_mass.clone())
        .map_err(|e| SimError::Invalid(format!("unbalanced map: rescaled target: {e}")))?;
    Ok((a, b, resc))
}

/// A fitted map with how it was fitted.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The map.
    pub map: MapModel,
    /// The fit's report: the balanced solve's [`UotReport`] (entropic maps) or the parametric
    /// fit's `γ` rounds and work (sparse maps), as JSON.
    pub report: serde_json::Value,
    /// The `γ` of the map (the one the search chose for `--target-dims`).
    pub gamma: f64,
    /// The fit's warnings (caps, an unreached target dimensionality).
    pub warnings: Vec<String>,
    /// The unbalanced rescaling (with `--tau`).
    pub rescaling: Option<Rescaling>,
    /// Seconds of the unbalanced solve (0 without) and of the balanced fit.
    pub seconds: (f64, f64),
}

/// Both clouds at unit mass, then, with `tau`, rescaled by the KL-unbalanced coupling of `opts`
/// ([`rescale_unbalanced`]); with the seconds this took.
fn prepare(
    source: &Cloud,
    target: &Cloud,
    tau: Option<f64>,
    opts: &SinkhornOptions,
) -> Result<(Cloud, Cloud, Option<Rescaling>, f64), SimError> {
    let unit = |c: &Cloud| -> Result<Cloud, SimError> {
        let m = c.mass();
        Cloud::new(c.dim, c.x.clone(), c.w.iter().map(|w| w / m).collect())
            .map_err(|e| SimError::Invalid(format!("map: {e}")))
    };
    let (a, b) = (unit(source)?, unit(target)?);
    let t0 = std::time::Instant::now();
    let (a, b, rescaling) = match tau {
        None => (a, b, None),
        Some(t) => {
            let (a, b, r) = rescale_unbalanced(&a, &b, opts, t)?;
            (a, b, Some(r))
        }
    };
    Ok((a, b, rescaling, t0.elapsed().as_secs_f64()))
}

/// Fit the entropic map of the elastic `cost` between `source` and `target`, both normalised to
/// unit mass first (the map does not depend on the scale of either); with `tau` the coupling
/// first rescales them ([`rescale_unbalanced`]). `opts` gives ε, tolerances and execution; its
/// cost and marginals are replaced.
pub fn fit_entropic(
    source: &Cloud,
    target: &Cloud,
    cost: Cost,
    tau: Option<f64>,
    opts: &SinkhornOptions,
) -> Result<Fitted, SimError> {
    let mut o = opts.clone();
    o.cost = cost;
    let (a, b, rescaling, t1) = prepare(source, target, tau, &o)?;
    let t0 = std::time::Instant::now();
    let (map, report) = EntropicMap::fit(&a, &b, &o)?;
    Ok(Fitted {
        map: MapModel::Entropic(map),
        report: serde_json::to_value(&report).expect("a report serialises"),
        gamma: cost.elastic().map_or(0.0, |(g, _)| g),
        warnings: Vec::new(),
        rescaling,
        seconds: (t1, t0.elapsed().as_secs_f64()),
    })
}

/// Fit the parametric sparse map ([`sparse::fit_sparse_map`], settings `params`) between
/// `source` and `target`, both at unit mass and, with `tau`, first rescaled by the KL-unbalanced
/// coupling of `½|x − y|²` at `params.eps` (`opts`: tolerances and execution).
pub fn fit_sparse(
    source: &Cloud,
    target: &Cloud,
    params: &sparse::SparseMapParams,
    tau: Option<f64>,
    opts: &SinkhornOptions,
) -> Result<Fitted, crate::error::Error> {
    let mut o = opts.clone();
    o.cost = Cost::Elastic { gamma: 0.0, penalty: crate::ot::Penalty::L1 };
    o.eps = params.eps;
    let (a, b, rescaling, t1) = prepare(source, target, tau, &o)?;
    let t0 = std::time::Instant::now();
    let fit = sparse::fit_sparse_map(&a, &b, params, &o.exec)?;
    let report = serde_json::json!({
        "penalty": params.penalty,
        "gamma_choice": params.gamma,
        "gamma": fit.gamma,
        "features": params.features,
        "parameters": fit.map.theta.len(),
        "divergence": fit.divergence,
        "dims": fit.dims,
        "delta": fit.delta,
        "rounds": fit.rounds,
        "work": fit.work,
    });
    Ok(Fitted {
        gamma: fit.gamma,
        warnings: fit.warnings,
        map: MapModel::Sparse(fit.map),
        report,
        rescaling,
        seconds: (t1, t0.elapsed().as_secs_f64()),
    })
}

/// Displacement statistics of `T` at the points `x` (SPEC §7): a coordinate `k` of point `i`
/// moves when `|T(x_i)_k − x_ik| > δ`.
#[derive(Debug, Clone, PartialEq)]
pub struct Displacement {
    /// The threshold `δ`.
    pub delta: f64,
    /// Per point: the number of moved coordinates.
    pub dims: Vec<usize>,
    /// Per coordinate: the share of points that move it.
    pub frequency: Vec<f64>,
    /// Per coordinate: the mean `|T(x)_k − x_k|`.
    pub magnitude: Vec<f64>,
}

impl Displacement {
    /// The statistics of the images `t` of `x` (both `n·d`) at threshold `delta`.
    pub fn of(d: usize, x: &[f64], t: &[f64], delta: f64) -> Self {
        let n = x.len() / d;
        let (mut dims, mut count, mut mag) = (vec![0; n], vec![0usize; d], vec![0.0; d]);
        for i in 0..n {
            for k in 0..d {
                let m = (t[i * d + k] - x[i * d + k]).abs();
                mag[k] += m;
                if m > delta {
                    dims[i] += 1;
                    count[k] += 1;
                }
            }
        }
        let frequency = count.iter().map(|&c| c as f64 / n as f64).collect();
        Self { delta, dims, frequency, magnitude: mag.iter().map(|m| m / n as f64).collect() }
    }
    /// The mean number of moved coordinates.
    pub fn mean_dims(&self) -> f64 {
        self.dims.iter().sum::<usize>() as f64 / self.dims.len().max(1) as f64
    }
}

/// `δ = 1e-2 ×` the median over coordinates of the source's (unweighted) standard deviation.
pub fn default_delta(c: &Cloud) -> f64 {
    let (d, n) = (c.dim, c.len() as f64);
    let mut sd: Vec<f64> = (0..d)
        .map(|k| {
            let v: Vec<f64> = c.x.iter().skip(k).step_by(d).copied().collect();
            let mean = v.iter().sum::<f64>() / n;
            (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
        })
        .collect();
    sd.sort_by(f64::total_cmp);
    let med = if d % 2 == 1 { sd[d / 2] } else { 0.5 * (sd[d / 2 - 1] + sd[d / 2]) };
    1e-2 * med
}
