//! # Trajectory inference from snapshots (SPEC §5)
//!
//! Given snapshots `X_{t0}` and `X_{t1}` of a population (one row per cell, each cell of mass 1,
//! so a snapshot's mass is its cell count), predict the population at an intermediate time
//! `t½ = t0 + s (t1 − t0)`:
//!
//! - [`Method::Wot`] (Waddington-OT, Schiebinger et al. 2019; [`wot`]): an unbalanced entropic
//!   coupling `π` (cost `|x − y|²`, `ε` and `τ` relative to the mean cost) with source weights
//!   `a_i = w_i e^{g_i Δt}` from a growth prior, growth re-estimated from the coupling's row
//!   marginals over a few outer iterations, then displacement interpolation: pairs `(i, j)`
//!   sampled `∝ π_ij (w_i / r_i)^{1−s}` (each pair weighted by its lineage's mass at `t½`, `r_i =
//!   Σ_j π_ij`) placed at `(1 − s) x_i + s y_j`.
//! - Flows ([`flow`]): run a field — the Unbalanced Sobolev Descent critic ([`Method::Usd`]), the
//!   WFR gradient flow of the MMD ([`Method::WfrMmd`]) or of the unbalanced Sinkhorn divergence
//!   ([`Method::WfrSinkhorn`]) — from `X_{t0}` toward `X_{t1}` and stop at the point of the descent
//!   that is a fraction `s` of the way, in MMD: the first state with
//!   `MMD(q, X_{t0}) / (MMD(q, X_{t0}) + MMD(q, X_{t1})) ≥ s` (for `s = ½`: `MMD to X_{t1} ≤ MMD
//!   to X_{t0}`, the USD paper's rule), interpolated linearly between the two steps around it.
//!
//! Metrics ([`evaluate`], SPEC §4) compare the prediction with the held-out snapshot on normalised
//! weights: exact `W1`, `W2` (network simplex), `MMD` (Gaussian kernel, bandwidth = median
//! distance within the truth), normalised `MMD(pred, X½) / MMD(X_{t0}, X_{t1})`; the mass error
//! `|M_pred − M_true| / M_true` is reported separately. Only in synthetic data (three_gene_2d)
//! are cell counts population sizes; elsewhere they reflect sampling depth.
//!
//! Also here: chained forward prediction ([`forward`]), fate matrices from a coupling
//! ([`fates`]), k-means ([`kmeans`]) and the `results/inference.md` report ([`report`]).

pub mod fates;
pub mod flow;
pub mod kmeans;
pub mod report;
pub mod wot;

use crate::data::{read_snapshot, SnapshotTable};
use crate::error::{DataError, Error, SimError};
pub use crate::format::Diag;
use crate::metrics::mmd;
use crate::metrics::wasserstein::{wasserstein, Order, WassersteinOpts};
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use crate::scenario::median_distance;
pub use crate::stepper::Warning;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An interpolation / prediction method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Wot,
    Usd,
    WfrMmd,
    WfrSinkhorn,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Wot, Method::Usd, Method::WfrMmd, Method::WfrSinkhorn];
    pub fn name(self) -> &'static str {
        match self {
            Method::Wot => "wot",
            Method::Usd => "usd",
            Method::WfrMmd => "wfr_mmd",
            Method::WfrSinkhorn => "wfr_sinkhorn",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method '{s}' (expected wot, usd, wfr_mmd or wfr_sinkhorn)"))
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of every method (each uses its own part).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct InferParams {
    pub wot: wot::WotParams,
    pub flow: flow::FlowParams,
    /// Seed of the sampling streams (subsampling, pair sampling, random features).
    pub seed: u64,
}

/// A snapshot series: distinct times ascending, one cloud per time (cell mass 1 unless the file
/// has a weight column), and optional per-cell columns taken out of the coordinates.
#[derive(Debug, Clone)]
pub struct Series {
    pub file: PathBuf,
    pub times: Vec<f64>,
    pub clouds: Vec<Cloud>,
    /// Per-cell prior growth rates (a `--growth-column`), aligned with `clouds`.
    pub growth: Option<Vec<Vec<f64>>>,
    /// Per-cell labels (a `--label-column`), aligned with `clouds`.
    pub labels: Option<Vec<Vec<f64>>>,
}

/// Remove coordinate column `name` from a table and return its values.
fn take_column(t: &mut SnapshotTable, name: &str) -> Result<Vec<f64>, DataError> {
    let name = name.to_ascii_lowercase();
    let Some(k) = t.coords.iter().position(|c| *c == name) else {
        return Err(DataError::Invalid {
            file: t.file.clone(),
            msg: format!("no column '{name}' (coordinates: {})", t.coords.join(", ")),
        });
    };
    if t.dim < 2 {
        return Err(DataError::Invalid {
            file: t.file.clone(),
            msg: format!("column '{name}' is the only coordinate"),
        });
    }
    let d = t.dim;
    let n = t.len();
    let vals: Vec<f64> = (0..n).map(|i| t.x[i * d + k]).collect();
    let mut x = Vec::with_capacity(n * (d - 1));
    for i in 0..n {
        for c in 0..d {
            if c != k {
                x.push(t.x[i * d + c]);
            }
        }
    }
    t.x = x;
    t.dim = d - 1;
    t.coords.remove(k);
    Ok(vals)
}

/// Read a snapshot CSV as a [`Series`]; `growth_col` / `label_col` name per-cell columns that are
/// not coordinates.
pub fn load_series(path: &Path, growth_col: Option<&str>, label_col: Option<&str>) -> Result<Series, Error> {
    let mut t = read_snapshot(path)?;
    let growth = growth_col.map(|c| take_column(&mut t, c)).transpose()?;
    let labels = label_col.map(|c| take_column(&mut t, c)).transpose()?;
    let times = t.times();
    if t.time.is_none() || times.len() < 2 {
        return Err(DataError::Invalid {
            file: path.to_path_buf(),
            msg: "needs a time column with at least two time points".into(),
        }
        .into());
    }
    let row_t = t.time.clone().unwrap_or_default();
    let mut clouds = Vec::new();
    let (mut gs, mut ls) = (Vec::new(), Vec::new());
    for &tt in &times {
        clouds.push(t.select(Some(tt))?);
        let rows: Vec<usize> = (0..t.len()).filter(|&i| row_t[i] == tt).collect();
        if let Some(g) = &growth {
            gs.push(rows.iter().map(|&i| g[i]).collect());
        }
        if let Some(l) = &labels {
            ls.push(rows.iter().map(|&i| l[i]).collect());
        }
    }
    Ok(Series {
        file: path.to_path_buf(),
        times,
        clouds,
        growth: growth.map(|_| gs),
        labels: labels.map(|_| ls),
    })
}

impl Series {
    /// Index of time `t` (exact match, or within 1e-9 relative).
    pub fn index_of(&self, t: f64) -> Result<usize, Error> {
        self.times.iter().position(|&x| x == t || (x - t).abs() <= 1e-9 * x.abs().max(1.0)).ok_or_else(|| {
            DataError::Invalid {
                file: self.file.clone(),
                msg: format!(
                    "no time point {t}; times: {}",
                    self.times.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
                ),
            }
            .into()
        })
    }

    /// Keep at most `n` cells per time point (uniformly without replacement, seeded); kept cells
    /// carry weight `M/n_kept` so each snapshot keeps its mass.
    pub fn subsample(&self, n: usize, seed: u64) -> Series {
        let mut out = self.clone();
        for (k, c) in self.clouds.iter().enumerate() {
            if n == 0 || c.len() <= n {
                continue;
            }
            let idx = subsample_indices(c.len(), n, seed, k as u64);
            out.clouds[k] = pick(c, &idx).with_mass(c.mass());
            if let (Some(g), Some(og)) = (&mut out.growth, &self.growth) {
                g[k] = idx.iter().map(|&i| og[k][i]).collect();
            }
            if let (Some(l), Some(ol)) = (&mut out.labels, &self.labels) {
                l[k] = idx.iter().map(|&i| ol[k][i]).collect();
            }
        }
        out
    }
}

/// `n` sorted distinct indices out of `len`, from stream `(seed, Analysis, 1, tag)`.
pub fn subsample_indices(len: usize, n: usize, seed: u64, tag: u64) -> Vec<usize> {
    let mut r = rng::stream(seed, Purpose::Analysis, 1, tag);
    let mut idx = rand::seq::index::sample(&mut r, len, n.min(len)).into_vec();
    idx.sort_unstable();
    idx
}

/// The sub-cloud of the given points.
pub fn pick(c: &Cloud, idx: &[usize]) -> Cloud {
    let mut x = Vec::with_capacity(idx.len() * c.dim);
    for &i in idx {
        x.extend_from_slice(c.point(i));
    }
    Cloud::new(c.dim, x, idx.iter().map(|&i| c.w[i]).collect())
}

/// Pool two clouds (for scales).
pub fn pooled(a: &Cloud, b: &Cloud) -> Cloud {
    let mut x = a.x.clone();
    x.extend_from_slice(&b.x);
    let mut w = a.w.clone();
    w.extend_from_slice(&b.w);
    Cloud::new(a.dim, x, w)
}

fn normalised(c: &Cloud) -> Vec<f64> {
    let m = c.mass();
    c.w.iter().map(|w| w / m).collect()
}

/// Normalised-weight MMD with bandwidth `s`.
pub fn mmd_normalised(a: &Cloud, b: &Cloud, s: f64) -> f64 {
    mmd(a.dim, &a.x, &normalised(a), &b.x, &normalised(b), s)
}

/// Prediction-vs-truth metrics (module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub w1: f64,
    pub w2: f64,
    /// MMD between the normalised prediction and truth.
    pub mmd: f64,
    /// `MMD(pred, X½) / MMD(X_{t0}, X_{t1})` (normalised weights, same bandwidth).
    pub mmd_normalised: f64,
    /// Kernel bandwidth of both MMDs (median distance within the truth).
    pub bandwidth: f64,
    pub mass_pred: f64,
    pub mass_true: f64,
    /// `|M_pred − M_true| / M_true`.
    pub mass_error: f64,
    /// Whether the W distances are exact (network simplex) rather than entropic.
    pub exact: bool,
}

/// Compare `pred` with `truth`; `x0`, `x1` are the neighbouring snapshots (for the normalised MMD;
/// `None` leaves it NaN).
pub fn evaluate(pred: &Cloud, truth: &Cloud, ends: Option<(&Cloud, &Cloud)>) -> Result<Metrics, SimError> {
    let opts = WassersteinOpts::default();
    let w1 = wasserstein(pred, truth, Order::W1, &opts)?;
    let w2 = wasserstein(pred, truth, Order::W2, &opts)?;
    let s = median_distance(truth);
    let m = mmd_normalised(pred, truth, s);
    let norm = ends.map_or(f64::NAN, |(a, b)| m / mmd_normalised(a, b, s));
    let (mp, mt) = (pred.mass(), truth.mass());
    Ok(Metrics {
        w1: w1.value,
        w2: w2.value,
        mmd: m,
        mmd_normalised: norm,
        bandwidth: s,
        mass_pred: mp,
        mass_true: mt,
        mass_error: (mp - mt).abs() / mt,
        exact: matches!(w1.method, crate::metrics::wasserstein::Method::Exact),
    })
}

/// What a prediction method returns besides the cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PredictInfo {
    /// Free-form diagnostics (name → value in JSON): iterations, transported mass, steps, ...
    #[serde(serialize_with = "crate::format::pairs_as_map")]
    pub diagnostics: Vec<(String, Diag)>,
    /// Everything that changed or limited the result (a flow's step cap, displacement cap or
    /// growth clipping; a Sinkhorn solve short of its tolerance); empty when nothing did.
    pub warnings: Vec<Warning>,
}

impl PredictInfo {
    /// Append diagnostics.
    pub fn diag<V: Into<Diag>>(&mut self, items: impl IntoIterator<Item = (&'static str, V)>) {
        self.diagnostics.extend(items.into_iter().map(|(k, v)| (k.to_string(), v.into())));
    }
}

/// Predict the population at fraction `s ∈ (0, 1)` of the way from `x0` (time `t0`) to `x1`
/// (time `t1`). `growth0`: per-cell prior growth rates of `x0` (WOT only).
pub fn predict(
    method: Method,
    x0: &Cloud,
    x1: &Cloud,
    s: f64,
    dt: f64,
    growth0: Option<&[f64]>,
    params: &InferParams,
) -> Result<(Cloud, PredictInfo), SimError> {
    if !(s > 0.0 && s < 1.0) {
        return Err(SimError::Invalid(format!("interpolation fraction must be in (0, 1), got {s}")));
    }
    match method {
        Method::Wot => wot::interpolate(x0, x1, s, dt, growth0, &params.wot, params.seed),
        m => flow::interpolate(m, x0, x1, s, &params.flow, params.seed),
    }
}

/// One held-out interpolation: prediction, metrics, timing.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutResult {
    pub data: String,
    pub method: Method,
    pub t0: f64,
    pub holdout: f64,
    pub t1: f64,
    pub s: f64,
    /// Cells per snapshot used (after subsampling): t0, held-out, t1.
    pub cells: [usize; 3],
    pub metrics: Metrics,
    pub seconds: f64,
    pub info: PredictInfo,
    #[serde(skip)]
    pub prediction: Cloud,
    #[serde(skip)]
    pub truth: Cloud,
}

/// The data set name of a file (its stem).
pub fn data_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into())
}

/// Predict held-out time `holdout` (an interior time point) from its neighbours.
pub fn holdout(
    series: &Series,
    holdout: f64,
    method: Method,
    params: &InferParams,
) -> Result<HoldoutResult, Error> {
    let k = series.index_of(holdout)?;
    if k == 0 || k + 1 == series.times.len() {
        return Err(DataError::Invalid {
            file: series.file.clone(),
            msg: format!("held-out time {holdout} has no neighbour on both sides (first and last times cannot be interpolated)"),
        }
        .into());
    }
    let (t0, t1) = (series.times[k - 1], series.times[k + 1]);
    let (x0, xh, x1) = (&series.clouds[k - 1], &series.clouds[k], &series.clouds[k + 1]);
    let s = (holdout - t0) / (t1 - t0);
    let growth0 = series.growth.as_ref().map(|g| g[k - 1].as_slice());
    let start = Instant::now();
    let (pred, info) = predict(method, x0, x1, s, t1 - t0, growth0, params)?;
    let seconds = start.elapsed().as_secs_f64();
    let metrics = evaluate(&pred, xh, Some((x0, x1)))?;
    Ok(HoldoutResult {
        data: data_name(&series.file),
        method,
        t0,
        holdout,
        t1,
        s,
        cells: [x0.len(), xh.len(), x1.len()],
        metrics,
        seconds,
        info,
        prediction: pred,
        truth: xh.clone(),
    })
}

/// Forward prediction: from the first snapshot, predict every later one by chaining the
/// method between consecutive snapshots (the predicted population at `t_k` is the start of
/// segment `k`; mass is carried by the weights).
#[derive(Debug, Clone, Serialize)]
pub struct ForwardResult {
    pub data: String,
    pub method: Method,
    /// One entry per predicted time `t_1 ..`.
    pub times: Vec<f64>,
    pub metrics: Vec<Metrics>,
    pub seconds: f64,
    pub info: Vec<PredictInfo>,
    /// The segments' warnings, each message prefixed with its segment (`t0 → t1`).
    pub warnings: Vec<Warning>,
}

/// See [`ForwardResult`].
pub fn forward(series: &Series, method: Method, params: &InferParams) -> Result<ForwardResult, Error> {
    let start = Instant::now();
    let mut cur = series.clouds[0].clone();
    let (mut metrics, mut infos, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for k in 1..series.times.len() {
        let target = &series.clouds[k];
        let dt = series.times[k] - series.times[k - 1];
        let (next, info) = match method {
            Method::Wot => wot::push_forward(&cur, target, dt, &params.wot)?,
            m => flow::push_forward(m, &cur, target, &params.flow, params.seed.wrapping_add(k as u64))?,
        };
        metrics.push(evaluate(&next, target, None)?);
        let seg = format!("segment t = {} → {}", series.times[k - 1], series.times[k]);
        warnings.extend(
            info.warnings.iter().map(|w| Warning { message: format!("{seg}: {}", w.message), ..w.clone() }),
        );
        infos.push(info);
        cur = next;
    }
    Ok(ForwardResult {
        data: data_name(&series.file),
        method,
        times: series.times[1..].to_vec(),
        metrics,
        seconds: start.elapsed().as_secs_f64(),
        info: infos,
        warnings,
    })
}

/// Write a folder atomically: fill `.<name>.partial` with `fill`, then rename it to `out`
/// (replacing an older folder).
pub fn write_atomically(out: &Path, fill: impl FnOnce(&Path) -> Result<(), Error>) -> Result<(), Error> {
    let tmp = crate::run::partial_dir(out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
}

/// Write a held-out result: `prediction.csv`, `truth.csv` (time, x1..xd, w) and `metrics.json`.
pub fn write_holdout(out: &Path, r: &HoldoutResult, params: &InferParams) -> Result<(), Error> {
    write_atomically(out, |dir| {
        let p = dir.join("prediction.csv");
        crate::data::write_cloud(&p, r.holdout, &r.prediction).map_err(|e| Error::io(&p, e))?;
        let p = dir.join("truth.csv");
        crate::data::write_cloud(&p, r.holdout, &r.truth).map_err(|e| Error::io(&p, e))?;
        let p = dir.join("metrics.json");
        let v = serde_json::json!({ "result": r, "params": params, "warnings": r.info.warnings });
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))
    })
}
