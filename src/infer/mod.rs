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
//! weights: `W1`, `W2` (exact by the network simplex up to 5000² point pairs; above, entropic
//! with a certified error bound, see [`crate::metrics::wasserstein`]; [`Metrics::estimators`]
//! says which), `MMD` (Gaussian kernel, bandwidth = median
//! distance within the truth), normalised `MMD(pred, X½) / MMD(X_{t0}, X_{t1})`; the mass error
//! `|M_pred − M_true| / M_true` is reported separately. Only in synthetic data (three_gene_2d)
//! are cell counts population sizes; elsewhere they reflect sampling depth.
//!
//! Also here: chained forward prediction ([`forward`]), fate matrices from a coupling
//! ([`fates`]), k-means ([`kmeans`]) and the `results/inference.md` report ([`report`]).

pub mod commands;
pub mod fates;
pub mod flow;
pub mod kmeans;
pub mod report;
pub mod wot;

use crate::data::{pick_rows, read_snapshot_with, write_cloud_with_ids, ColumnSpec, IdColumn};
use crate::dist::Exec;
use crate::error::{DataError, Error, SimError};
pub use crate::format::Diag;
use crate::metrics::mmd;
use crate::metrics::wasserstein::{wasserstein, Estimator, Order, WassersteinOpts};
use crate::observe::Phase;
use crate::particles::Cloud;
use crate::rng::{self, Purpose};
use crate::scenario::median_distance;
pub use crate::stepper::Warning;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An interpolation / prediction method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Method {
    /// Waddington-OT (coupling and displacement interpolation).
    Wot,
    /// Unbalanced Sobolev Descent flow.
    Usd,
    /// WFR gradient flow of the MMD.
    WfrMmd,
    /// WFR gradient flow of the unbalanced Sinkhorn divergence.
    WfrSinkhorn,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 4] = [Method::Wot, Method::Usd, Method::WfrMmd, Method::WfrSinkhorn];
    /// The name used on the command line and in reports.
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
    /// WOT parameters.
    pub wot: wot::WotParams,
    /// Flow parameters.
    pub flow: flow::FlowParams,
    /// Seed of the sampling streams (subsampling, pair sampling, random features).
    pub seed: u64,
    /// Where the solves, flows and metrics run (ranks, parallelism); not part of the settings.
    #[serde(skip)]
    pub exec: Exec,
}

/// A snapshot series: distinct times ascending, one cloud per time (cell mass 1 unless the file
/// has a weight column), and optional per-cell columns (not coordinates), aligned with `clouds`.
#[derive(Debug, Clone)]
pub struct Series {
    /// The file read.
    pub file: PathBuf,
    /// The distinct times, ascending.
    pub times: Vec<f64>,
    /// One cloud per time.
    pub clouds: Vec<Cloud>,
    /// Per-cell prior growth rates (a `--growth-column`).
    pub growth: Option<Vec<Vec<f64>>>,
    /// Per-cell labels (a `--label-column`, any strings).
    pub labels: Option<Vec<Vec<String>>>,
    /// Per-cell ids (the file's `id` column).
    pub ids: Option<Vec<Vec<String>>>,
}

/// Read a snapshot CSV as a [`Series`]; `spec` gives the column roles (coordinates, ignored
/// columns, label and growth columns; [`crate::data`]).
pub fn load_series(path: &Path, spec: &ColumnSpec) -> Result<Series, Error> {
    let phase = Phase::start_quiet(format!("loading {}", path.display()));
    let t = read_snapshot_with(path, spec)?;
    phase.finish(&format!("{} cells", t.len()));
    let times = t.times();
    if t.time.is_none() || times.len() < 2 {
        return Err(DataError::Invalid {
            file: path.to_path_buf(),
            msg: "needs a time column with at least two time points".into(),
        }
        .into());
    }
    let mut clouds = Vec::new();
    let (mut gs, mut ls, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for &tt in &times {
        let rows = t.rows_at(Some(tt))?;
        clouds.push(t.cloud(&rows)?);
        gs.extend(t.growth.as_deref().map(|g| pick_rows(g, &rows)));
        ls.extend(t.labels.as_deref().map(|l| pick_rows(l, &rows)));
        ids.extend(t.id.as_deref().map(|l| pick_rows(l, &rows)));
    }
    Ok(Series {
        file: path.to_path_buf(),
        times,
        clouds,
        growth: t.growth.is_some().then_some(gs),
        labels: t.labels.is_some().then_some(ls),
        ids: t.id.is_some().then_some(ids),
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
                g[k] = pick_rows(&og[k], &idx);
            }
            if let (Some(l), Some(ol)) = (&mut out.labels, &self.labels) {
                l[k] = pick_rows(&ol[k], &idx);
            }
            if let (Some(l), Some(ol)) = (&mut out.ids, &self.ids) {
                l[k] = pick_rows(&ol[k], &idx);
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

/// The split-half noise floor of a snapshot (SPEC §8): the median, over `splits` random splits
/// into two halves of ⌊n/2⌋ and ⌈n/2⌉ cells (split `s` from stream `(seed, Analysis, 1, 1000 + s)`),
/// of the W1 (normalised weights) between the halves. It estimates the W1 between two samples of
/// n/2 cells of the same population, so it overstates the floor for n cells.
pub fn split_half_floor(
    c: &Cloud,
    splits: usize,
    seed: u64,
    opts: &WassersteinOpts,
) -> Result<f64, SimError> {
    let n = c.len();
    if n < 2 || splits == 0 {
        return Err(SimError::Invalid(format!(
            "split-half floor: needs at least 2 cells and 1 split, got {n} cells and {splits} splits"
        )));
    }
    let mut w1 = Vec::with_capacity(splits);
    for s in 0..splits {
        let first = subsample_indices(n, n / 2, seed, 1000 + s as u64);
        let mut in_first = vec![false; n];
        first.iter().for_each(|&i| in_first[i] = true);
        let second: Vec<usize> = (0..n).filter(|&i| !in_first[i]).collect();
        w1.push(wasserstein(&pick(c, &first), &pick(c, &second), Order::W1, opts)?.value);
    }
    w1.sort_by(f64::total_cmp);
    let h = splits / 2;
    Ok(if splits % 2 == 1 { w1[h] } else { 0.5 * (w1[h - 1] + w1[h]) })
}

/// The sub-cloud of the given points.
pub fn pick(c: &Cloud, idx: &[usize]) -> Cloud {
    let mut x = Vec::with_capacity(idx.len() * c.dim);
    for &i in idx {
        x.extend_from_slice(c.point(i));
    }
    Cloud::new_unchecked(c.dim, x, idx.iter().map(|&i| c.w[i]).collect())
}

/// Pool two clouds (for scales).
pub fn pooled(a: &Cloud, b: &Cloud) -> Cloud {
    let mut x = a.x.clone();
    x.extend_from_slice(&b.x);
    let mut w = a.w.clone();
    w.extend_from_slice(&b.w);
    Cloud::new_unchecked(a.dim, x, w)
}

fn normalised(c: &Cloud) -> Vec<f64> {
    let m = c.mass();
    c.w.iter().map(|w| w / m).collect()
}

/// Normalised-weight MMD with bandwidth `s`.
pub fn mmd_normalised(exec: &Exec, a: &Cloud, b: &Cloud, s: f64) -> f64 {
    mmd(exec, a.dim, &a.x, &normalised(a), &b.x, &normalised(b), s)
}

/// Prediction-vs-truth metrics (module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Wasserstein-1 distance.
    pub w1: f64,
    /// Wasserstein-2 distance.
    pub w2: f64,
    /// MMD between the normalised prediction and truth.
    pub mmd: f64,
    /// `MMD(pred, X½) / MMD(X_{t0}, X_{t1})` (normalised weights, same bandwidth).
    pub mmd_normalised: f64,
    /// Kernel bandwidth of both MMDs (median distance within the truth).
    pub bandwidth: f64,
    /// Predicted total mass.
    pub mass_pred: f64,
    /// True total mass.
    pub mass_true: f64,
    /// `|M_pred − M_true| / M_true`.
    pub mass_error: f64,
    /// Whether the W distances are exact (network simplex) rather than entropic.
    pub exact: bool,
    /// Which estimator produced each number (exact, or entropic with its ε and certified error
    /// bound; see [`crate::metrics::wasserstein`]).
    pub estimators: Estimators,
}

/// The estimator of each metric in [`Metrics`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimators {
    /// Of W1.
    pub w1: Estimator,
    /// Of W2.
    pub w2: Estimator,
    /// The MMDs are exact: closed-form double sums over all pairs.
    pub mmd: &'static str,
}

/// Compare `pred` with `truth`; `x0`, `x1` are the neighbouring snapshots (for the normalised MMD;
/// `None` leaves it NaN).
pub fn evaluate(pred: &Cloud, truth: &Cloud, ends: Option<(&Cloud, &Cloud)>) -> Result<Metrics, SimError> {
    evaluate_with(pred, truth, ends, &WassersteinOpts::default())
}

/// [`evaluate`] as a reported phase (start and end lines on stderr, the W distances' own
/// phases inside when they are entropic), its passes run in `exec`.
fn evaluate_phase(
    exec: &Exec,
    pred: &Cloud,
    truth: &Cloud,
    ends: Option<(&Cloud, &Cloud)>,
) -> Result<Metrics, SimError> {
    let phase = Phase::start(format!("metrics: W1, W2, MMD ({} vs {} points)", pred.len(), truth.len()));
    let opts = WassersteinOpts { exec: exec.clone(), ..WassersteinOpts::default() };
    let m = evaluate_with(pred, truth, ends, &opts)?;
    phase.finish(if m.exact { "W1, W2 exact" } else { "W1, W2 entropic, with certified bounds" });
    Ok(m)
}

/// [`evaluate`] with the given Wasserstein options (e.g. another exact-solver limit); the MMDs
/// run in `opts.exec` too.
pub fn evaluate_with(
    pred: &Cloud,
    truth: &Cloud,
    ends: Option<(&Cloud, &Cloud)>,
    opts: &WassersteinOpts,
) -> Result<Metrics, SimError> {
    let w1 = wasserstein(pred, truth, Order::W1, opts)?;
    let w2 = wasserstein(pred, truth, Order::W2, opts)?;
    let s = median_distance(truth);
    let m = mmd_normalised(&opts.exec, pred, truth, s);
    let norm = ends.map_or(f64::NAN, |(a, b)| m / mmd_normalised(&opts.exec, a, b, s));
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
        exact: w1.estimator.is_exact() && w2.estimator.is_exact(),
        estimators: Estimators { w1: w1.estimator, w2: w2.estimator, mmd: "exact" },
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
    predict_traced(method, x0, x1, s, dt, growth0, params).map(|(c, info, _)| (c, info))
}

/// Where each predicted point comes from, to carry the input cells' ids to `prediction.csv`.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// WOT: point `k` lies between source cell `i` and target cell `j` (`pairs[k] = (i, j)`).
    Pairs(Vec<(usize, usize)>),
    /// Flows: point `k` is source cell `k`, moved.
    Sources,
}

/// [`predict`], also returning the [`Origin`] of the predicted points.
pub fn predict_traced(
    method: Method,
    x0: &Cloud,
    x1: &Cloud,
    s: f64,
    dt: f64,
    growth0: Option<&[f64]>,
    params: &InferParams,
) -> Result<(Cloud, PredictInfo, Origin), SimError> {
    if !(s > 0.0 && s < 1.0) {
        return Err(SimError::Invalid(format!("interpolation fraction must be in (0, 1), got {s}")));
    }
    match method {
        Method::Wot => wot::interpolate(x0, x1, s, dt, growth0, params)
            .map(|(c, info, pairs)| (c, info, Origin::Pairs(pairs))),
        m => flow::interpolate(m, x0, x1, s, &params.flow, params.seed, &params.exec)
            .map(|(c, info)| (c, info, Origin::Sources)),
    }
}

/// One held-out interpolation: prediction, metrics, timing.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutResult {
    /// Data set name.
    pub data: String,
    /// The method.
    pub method: Method,
    /// Start time.
    pub t0: f64,
    /// The held-out time.
    pub holdout: f64,
    /// End time.
    pub t1: f64,
    /// Fraction `s` of the way from `t0` to `t1`.
    pub s: f64,
    /// Cells per snapshot used (after subsampling): t0, held-out, t1.
    pub cells: [usize; 3],
    /// Prediction against the held-out snapshot.
    pub metrics: Metrics,
    /// Seconds of the prediction (fit and interpolation).
    pub seconds: f64,
    /// Diagnostics and warnings of the prediction.
    pub info: PredictInfo,
    /// The predicted cloud.
    #[serde(skip)]
    pub prediction: Cloud,
    /// The held-out snapshot.
    #[serde(skip)]
    pub truth: Cloud,
    /// Id columns of `prediction.csv` (file with an `id` column; [`prediction_ids`]).
    #[serde(skip)]
    pub prediction_ids: Vec<IdColumn>,
    /// Id column of `truth.csv` (the held-out cells' ids).
    #[serde(skip)]
    pub truth_ids: Vec<IdColumn>,
}

/// The id columns of a prediction whose points come from `origin`, given the ids of the source
/// and target cells: `source_id,target_id` for WOT (the pair each point was placed between),
/// `source_id` for flows (each point is a source cell, moved). Empty without ids.
pub fn prediction_ids(origin: &Origin, ids0: Option<&[String]>, ids1: Option<&[String]>) -> Vec<IdColumn> {
    let (Some(i0), Some(i1)) = (ids0, ids1) else { return Vec::new() };
    match origin {
        Origin::Pairs(p) => vec![
            ("source_id".into(), p.iter().map(|&(i, _)| i0[i].clone()).collect()),
            ("target_id".into(), p.iter().map(|&(_, j)| i1[j].clone()).collect()),
        ],
        Origin::Sources => vec![("source_id".into(), i0.to_vec())],
    }
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
    let phase =
        Phase::start(format!("predict: {method} t = {t0} → {t1} ({} → {} cells)", x0.len(), x1.len()));
    let start = Instant::now();
    let (pred, info, origin) = predict_traced(method, x0, x1, s, t1 - t0, growth0, params)?;
    let ids = |k: usize| series.ids.as_ref().map(|v| v[k].as_slice());
    let seconds = start.elapsed().as_secs_f64();
    phase.finish(&format!("{} predicted points", pred.len()));
    let metrics = evaluate_phase(&params.exec, &pred, xh, Some((x0, x1)))?;
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
        prediction_ids: prediction_ids(&origin, ids(k - 1), ids(k + 1)),
        truth_ids: ids(k).map(|v| vec![("id".to_string(), v.to_vec())]).unwrap_or_default(),
    })
}

/// Forward prediction: from the first snapshot, predict every later one by chaining the
/// method between consecutive snapshots (the predicted population at `t_k` is the start of
/// segment `k`; mass is carried by the weights).
#[derive(Debug, Clone, Serialize)]
pub struct ForwardResult {
    /// Data set name.
    pub data: String,
    /// The method.
    pub method: Method,
    /// One entry per predicted time `t_1 ..`.
    pub times: Vec<f64>,
    /// Metrics per predicted time.
    pub metrics: Vec<Metrics>,
    /// Seconds of the whole chain.
    pub seconds: f64,
    /// Diagnostics per segment.
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
        let (t0, t1) = (series.times[k - 1], series.times[k]);
        let phase = Phase::start(format!(
            "predict: {method} t = {t0} → {t1} ({} → {} cells)",
            cur.len(),
            target.len()
        ));
        let (next, info) = match method {
            Method::Wot => wot::push_forward(&cur, target, dt, &params.wot, &params.exec)?,
            m => flow::push_forward(
                m,
                &cur,
                target,
                &params.flow,
                params.seed.wrapping_add(k as u64),
                &params.exec,
            )?,
        };
        phase.finish("");
        metrics.push(evaluate_phase(&params.exec, &next, target, None)?);
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

/// Write a held-out result: `prediction.csv`, `truth.csv` (time, x1..xd, w; led by the id
/// columns of [`prediction_ids`] / `id` when the data has ids) and `metrics.json`.
/// `force`: replace a folder with foreign files (see [`crate::output`]).
pub fn write_holdout(out: &Path, force: bool, r: &HoldoutResult, params: &InferParams) -> Result<(), Error> {
    crate::output::write_folder(out, crate::output::Kind::Infer, force, |dir| {
        let p = dir.join("prediction.csv");
        write_cloud_with_ids(&p, r.holdout, &r.prediction, &r.prediction_ids)
            .map_err(|e| Error::io(&p, e))?;
        let p = dir.join("truth.csv");
        write_cloud_with_ids(&p, r.holdout, &r.truth, &r.truth_ids).map_err(|e| Error::io(&p, e))?;
        let p = dir.join("metrics.json");
        let v = serde_json::json!({ "result": r, "params": params, "warnings": r.info.warnings });
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split-half floor: zero for a cloud of one repeated point, exactly the distance for two
    /// points (every split puts one in each half), the same bits for the same seed, and W1 between
    /// halves of two well-separated equal clusters ≈ 0 when each half holds half of each cluster
    /// on average (the median over splits is small against the cluster gap).
    #[test]
    fn split_half_floor_is_the_median_w1_between_halves() {
        let o = WassersteinOpts::default();
        let same = Cloud::new(2, vec![0.5; 40], vec![1.0; 20]).unwrap();
        assert_eq!(split_half_floor(&same, 5, 1, &o).unwrap(), 0.0);
        let two = Cloud::new(1, vec![0.0, 3.0], vec![1.0, 1.0]).unwrap();
        assert!((split_half_floor(&two, 7, 1, &o).unwrap() - 3.0).abs() < 1e-12);
        let x: Vec<f64> = (0..200).map(|i| if i % 2 == 0 { 0.0 } else { 10.0 } + (i as f64) * 1e-3).collect();
        let c = Cloud::new(1, x, vec![1.0; 200]).unwrap();
        let a = split_half_floor(&c, 20, 3, &o).unwrap();
        assert_eq!(a, split_half_floor(&c, 20, 3, &o).unwrap());
        // an unbalanced split of the two clusters by k cells moves k/100 of the mass across the gap 10:
        // the median imbalance of a hypergeometric split is a few cells, so the floor is well below 10
        // but above the within-cluster spread
        assert!(a > 0.05 && a < 2.0, "{a}");
        assert!(split_half_floor(&Cloud::new(1, vec![0.0], vec![1.0]).unwrap(), 3, 1, &o).is_err());
    }
}
