//! The `advreact infer` and `advreact forward` commands (SPEC §5): their command-line arguments
//! ([`InferArgs`], [`ForwardArgs`], with the options shared by the inference commands in
//! [`InferCommon`]) and their phases, public so that the binary (one process or the ranks of an
//! `mpirun` job) and the Python package run the same code.
//!
//! - `infer DATA --holdout T --method M`: predict the held-out snapshot `X_T` from its neighbours
//!   `X_{t0}`, `X_{t1}` at `s = (T − t0)/(t1 − t0)` ([`super::holdout`]) and write
//!   `prediction.csv`, `truth.csv`, `metrics.json` ([`super::write_holdout`]);
//! - `forward DATA --method M`: chain the method from the first snapshot through every later
//!   time ([`super::forward`]) and write `forward.json`; `forward DATA --model MODEL` simulates a
//!   fitted model instead ([`crate::learned::commands::cmd_forward_model`]).
//!
//! Each command is split into phases — check the output folder, load (read and subsample, no
//! collective work), compute (kernel passes split over [`Exec`]), report (write and print) —
//! so that under MPI every rank computes and one writes; [`cmd_infer`] and [`cmd_forward`] run
//! the phases in this process. WOT's `ε`, `τ` are relative to the mean cost `mean_ij |x_i − y_j|²`
//! of each pair of snapshots unless given in cost units (`--eps`, `--tau`).

use crate::data::ColumnSpec;
use crate::dist::Exec;
use crate::error::Error;
use crate::output::{write_folder, Kind, Target};
use std::path::{Path, PathBuf};

/// How the data commands read a snapshot file's columns (src/data.rs).
#[derive(clap::Args, Clone, Default)]
pub struct ColumnArgs {
    /// Coordinate columns, in order (default: the x1..xd columns).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Columns to skip (a column with no role is an error).
    #[arg(long, value_delimiter = ',')]
    pub ignore_columns: Vec<String>,
}

impl ColumnArgs {
    /// The column spec of these flags, with the label and growth columns of the command.
    pub fn spec(&self, label: Option<&str>, growth: Option<&str>) -> ColumnSpec {
        ColumnSpec {
            columns: self.columns.clone(),
            ignore: self.ignore_columns.clone(),
            label: label.map(str::to_string),
            growth: growth.map(str::to_string),
            ..ColumnSpec::default()
        }
    }
}

/// Options shared by the inference commands.
#[derive(clap::Args, Clone)]
pub struct InferCommon {
    /// Keep at most N cells per time point (uniform, seeded; kept cells carry the snapshot's mass).
    /// 0: all; otherwise ≥ 2 (one cell has no spread: the metrics' bandwidth is 0).
    #[arg(long, default_value_t = 0, value_parser = subsample_size)]
    pub subsample: usize,
    /// Seed of the subsample and of the methods' sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// WOT: entropic ε in cost units (|x−y|²).
    #[arg(long, conflicts_with = "eps_rel", value_parser = positive)]
    pub eps: Option<f64>,
    /// WOT: entropic ε relative to the mean cost of each pair of snapshots.
    #[arg(long, default_value_t = 0.05, value_parser = positive)]
    pub eps_rel: f64,
    /// WOT: marginal penalty τ in cost units.
    #[arg(long, conflicts_with = "tau_rel", value_parser = positive)]
    pub tau: Option<f64>,
    /// WOT: marginal penalty τ relative to the mean cost.
    #[arg(long, default_value_t = 10.0, value_parser = positive)]
    pub tau_rel: f64,
    /// WOT: outer solves (growth re-estimated from the row marginals between them).
    #[arg(long, default_value_t = 3)]
    pub growth_iters: usize,
    /// Flows: step cap per segment (≥ 1).
    #[arg(long, default_value_t = 1500, value_parser = count_at_least_one)]
    pub max_steps: usize,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace an output folder holding foreign files (never ., .., a parent of the current
    /// folder, $HOME or /).
    #[arg(long)]
    pub force: bool,
    /// Which columns of the data file are coordinates.
    #[command(flatten)]
    pub columns: ColumnArgs,
}

/// A count flag that must be ≥ 1 (0 would silently do nothing or be replaced).
pub fn count_at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>().map_err(|e| e.to_string())? {
        0 => Err("must be ≥ 1, got 0".into()),
        n => Ok(n),
    }
}

/// A real flag that must be finite and > 0.
pub fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>().map_err(|e| e.to_string())? {
        v if v.is_finite() && v > 0.0 => Ok(v),
        v => Err(format!("must be finite and > 0, got {v}")),
    }
}

/// `--subsample`: 0 (all cells) or at least 2.
pub fn subsample_size(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if n == 1 {
        return Err("must be 0 (all cells) or ≥ 2: one cell per time point has no spread (the MMD \
                    bandwidth, the median distance, is 0)"
            .into());
    }
    Ok(n)
}

impl InferCommon {
    /// Read the data file as a series (columns per `--columns` / `--ignore-columns`), subsampled.
    pub fn load(
        &self,
        data: &Path,
        label: Option<&str>,
        growth: Option<&str>,
    ) -> Result<super::Series, Error> {
        Ok(super::load_series(data, &self.columns.spec(label, growth))?.subsample(self.subsample, self.seed))
    }

    /// The inference parameters of these flags (`exec` left at its default).
    pub fn params(&self) -> super::InferParams {
        let mut p = super::InferParams { seed: self.seed, ..Default::default() };
        // An absolute value replaces the relative one (whose default is then unused).
        (p.wot.eps, p.wot.eps_rel) = (self.eps, self.eps.is_none().then_some(self.eps_rel));
        (p.wot.tau, p.wot.tau_rel) = (self.tau, self.tau.is_none().then_some(self.tau_rel));
        p.wot.growth_iters = self.growth_iters;
        p.flow.max_steps = self.max_steps;
        p
    }
}

/// `--strict` of `infer` and `forward`.
#[derive(clap::Args, Clone)]
pub struct StrictArg {
    /// Any warning (a flow's step cap, displacement cap or growth clipping; a Sinkhorn solve
    /// short of its tolerance) is an error: the output is written, the exit code is 1.
    #[arg(long)]
    pub strict: bool,
}

/// `advreact infer`: predict a held-out time point from its neighbours.
// The field docs are the command line's help text (kept as `--help` prints them).
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(clap::Args, Clone)]
pub struct InferArgs {
    /// Snapshot CSV (time,x1..xd[,w]).
    pub data: PathBuf,
    /// The held-out time point (an interior time of the file).
    #[arg(long)]
    pub holdout: f64,
    /// The inference method.
    #[arg(long, value_enum, default_value_t = super::Method::Wot)]
    pub method: super::Method,
    /// Output folder (default output/infer/<data>_<method>_t<T>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// WOT: a column of per-cell prior growth rates (not a coordinate).
    #[arg(long)]
    pub growth_column: Option<String>,
    /// WOT: sample pairs ∝ π_ij instead of weighting them by their lineage's mass at T.
    #[arg(long)]
    pub no_lineage: bool,
    /// The options shared by the inference commands.
    #[command(flatten)]
    pub common: InferCommon,
    /// `--strict`.
    #[command(flatten)]
    pub strict: StrictArg,
}

/// `advreact forward`: forward prediction from the first snapshot, chaining a method between
/// consecutive snapshots (or simulating a fitted `--model`).
// The field docs are the command line's help text (kept as `--help` prints them).
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(clap::Args, Clone)]
pub struct ForwardArgs {
    /// Snapshot CSV (time,x1..xd[,w]).
    pub data: PathBuf,
    /// The inference method.
    #[arg(long, value_enum, default_value_t = super::Method::Wot)]
    pub method: super::Method,
    /// Simulate a fitted model (`advreact fit`'s model.json) instead of a --method.
    #[arg(long, conflicts_with = "method")]
    pub model: Option<PathBuf>,
    /// Output folder (default output/infer/<data>_<method>_forward).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The options shared by the inference commands.
    #[command(flatten)]
    pub common: InferCommon,
    /// `--strict`.
    #[command(flatten)]
    pub strict: StrictArg,
}

/// Print an inference command's warnings on stderr; false (exit code 1) if there are any and
/// `strict` is set.
pub fn warn(out: &Path, warnings: &[super::Warning], strict: bool) -> bool {
    for w in warnings {
        eprintln!("warning: {}: {w}", out.display());
    }
    if strict && !warnings.is_empty() {
        eprintln!(
            "error: {}: --strict: {} warning(s) (listed above and in the JSON)",
            out.display(),
            warnings.len()
        );
        return false;
    }
    true
}

/// A time as it appears in folder names (`1`, `2.5`).
pub fn fmt_t(t: f64) -> String {
    t.to_string()
}

/// The `infer` command's data (read and subsampled; no collective work).
pub fn infer_load(a: &InferArgs) -> Result<super::Series, Error> {
    a.common.load(&a.data, None, a.growth_column.as_deref())
}

/// The `infer` command's prediction (its kernel passes split over the ranks of the current
/// communicator).
pub fn infer_compute(
    a: &InferArgs,
    series: &super::Series,
    exec: Exec,
) -> Result<(super::HoldoutResult, super::InferParams), Error> {
    let mut params = a.common.params();
    params.exec = exec;
    params.wot.lineage_weighting = !a.no_lineage;
    let r = super::holdout(series, a.holdout, a.method, &params)?;
    Ok((r, params))
}

/// The `infer` output folder: `--out`, or `output/infer/<data>_<method>_t<T>`.
pub fn infer_out(a: &InferArgs) -> PathBuf {
    a.out.clone().unwrap_or_else(|| {
        let data = super::data_name(&a.data);
        Path::new("output/infer").join(format!("{data}_{}_t{}", a.method, fmt_t(a.holdout)))
    })
}

/// Write the `infer` folder and print its metrics row.
pub fn infer_report(
    a: &InferArgs,
    r: &super::HoldoutResult,
    params: &super::InferParams,
) -> Result<bool, Error> {
    let out = infer_out(a);
    super::write_holdout(&out, a.common.force, r, params)?;
    let m = &r.metrics;
    println!("{}: data,method,holdout,w1,w2,mmd,mmd_normalised,mass_error,seconds", out.display());
    println!(
        "{},{},{},{},{},{},{},{},{:.3}",
        r.data, r.method, r.holdout, m.w1, m.w2, m.mmd, m.mmd_normalised, m.mass_error, r.seconds
    );
    Ok(warn(&out, &r.info.warnings, a.strict.strict))
}

/// The `forward` command's data (no collective work).
pub fn forward_load(a: &ForwardArgs) -> Result<super::Series, Error> {
    a.common.load(&a.data, None, None)
}

/// The `forward` command's predictions (kernel passes split over the ranks).
pub fn forward_compute(
    a: &ForwardArgs,
    series: &super::Series,
    exec: Exec,
) -> Result<(super::ForwardResult, super::InferParams), Error> {
    let mut params = a.common.params();
    params.exec = exec;
    let r = super::forward(series, a.method, &params)?;
    Ok((r, params))
}

/// The `forward` output folder: `--out`, or `output/infer/<data>_<method>_forward`.
pub fn forward_out(a: &ForwardArgs) -> PathBuf {
    a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!("{}_{}_forward", super::data_name(&a.data), a.method))
    })
}

/// `forward --model`: the model file, output folder (`--out`, or
/// `output/infer/<data>_learned_forward`) and data options.
pub fn forward_model_args(a: &ForwardArgs) -> crate::learned::commands::ForwardModelArgs {
    let model = a.model.clone().unwrap_or_default();
    let out = a.out.clone().unwrap_or_else(|| {
        Path::new("output/infer").join(format!("{}_learned_forward", super::data_name(&a.data)))
    });
    crate::learned::commands::ForwardModelArgs {
        model,
        out,
        force: a.common.force,
        subsample: a.common.subsample,
        seed: a.common.seed,
        columns: a.common.columns.spec(None, None),
    }
}

/// Write the `forward` folder and print its table.
pub fn forward_report(
    a: &ForwardArgs,
    r: &super::ForwardResult,
    params: &super::InferParams,
) -> Result<bool, Error> {
    let out = forward_out(a);
    write_folder(&out, Kind::Forward, a.common.force, |dir| {
        let p = dir.join("forward.json");
        let v = serde_json::json!({ "result": r, "params": params, "warnings": r.warnings });
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        std::fs::write(&p, text + "\n").map_err(|e| Error::io(&p, e))
    })?;
    println!("{}: t,w1,w2,mmd,mass_pred,mass_true,mass_error", out.display());
    for (t, m) in r.times.iter().zip(&r.metrics) {
        println!("{t},{},{},{},{},{},{}", m.w1, m.w2, m.mmd, m.mass_pred, m.mass_true, m.mass_error);
    }
    Ok(warn(&out, &r.warnings, a.strict.strict))
}

/// Check the folder for `--out` of `kind` (refused before any computation, named as the flag).
pub fn check_out(path: &Path, kind: Kind, force: bool) -> Result<Target, Error> {
    Target::check_as(path, kind, force, "--out")
}

/// `advreact infer` in this process (threads: the current rayon pool): check the output folder,
/// load, predict with the passes on `exec`, write the folder and print its metrics row. `Ok(false)`:
/// written, but `--strict` and warnings (exit code 1).
pub fn cmd_infer(a: &InferArgs, exec: &Exec) -> Result<bool, Error> {
    check_out(&infer_out(a), Kind::Infer, a.common.force)?;
    let series = infer_load(a)?;
    let (r, params) = infer_compute(a, &series, exec.clone())?;
    infer_report(a, &r, &params)
}

/// `advreact forward` in this process: with `--model`, the fitted model's simulation
/// ([`crate::learned::commands::cmd_forward_model`]); otherwise check the output folder, load,
/// chain the `--method`, write `forward.json` and print the table. `Ok(false)` as [`cmd_infer`].
pub fn cmd_forward(a: &ForwardArgs, exec: &Exec) -> Result<bool, Error> {
    if a.model.is_some() {
        return crate::learned::commands::cmd_forward_model(&a.data, &forward_model_args(a), exec);
    }
    check_out(&forward_out(a), Kind::Forward, a.common.force)?;
    let series = forward_load(a)?;
    let (r, params) = forward_compute(a, &series, exec.clone())?;
    forward_report(a, &r, &params)
}
