//! The `advreact map` command: fit a map between two CSV clouds and write the folder
//!
//! - `map.json`: the model ([`MapFile`]), applicable later (`advreact map --apply`);
//! - `mapped.csv`: `T(x_i)` of every source point (`id` first when the source has one, then
//!   `x1..xd`);
//! - `report.json`: method, cost, `γ`, `ε`, `τ`; displacement dimensionality (mean and per
//!   point) at the threshold `δ = 1e-2 ×` the source's median per-coordinate standard deviation
//!   (stated in the report), per-dimension displacement frequency and mean magnitude;
//!   feasibility `S_ε(T#μ, ν)` (debiased Sinkhorn divergence, `½|x − y|²`, balanced, the map's
//!   `ε`) and the `W1` of `T#μ` to `ν` ([`crate::metrics::wasserstein`]: exact while
//!   `n·m·d ≤` [`W1_EXACT_BUDGET`], above it entropic with its certified bracket and a warning,
//!   see [`feasibility_w1_solver`]); with `--tau` the
//!   per-point rescaling `ã_i/a_i` and transported mass `ã_i`; the solves' reports; seconds per
//!   phase;
//! - `displacement.png`: per dimension, the share of points moved and the mean `|T(x)_k − x_k|`
//!   (relative to its largest value);
//! - `arrows.png` (`d = 2` only): source, target and the arrows `x → T(x)`.
//!
//! The folder is written like every command's ([`crate::output::write_folder`]): refused if it
//! holds foreign files, replaced atomically.

use super::model::MapFile;
use super::sparse::{GammaChoice, SparseMapParams, SparsePenalty};
use super::{default_delta, fit_entropic, fit_sparse, Displacement, Fitted};
use crate::data::{csv_field, read_snapshot, Selection};
use crate::dist::Exec;
use crate::error::{ConfigError, Error, SimError};
use crate::metrics::wasserstein::{
    wasserstein, Estimator, Order, Solver, WassersteinOpts, WassersteinResult,
};
use crate::ot::{sinkhorn_divergence, Cost, DivergenceOptions, Penalty, SinkhornOptions};
use crate::output::{write_folder, Kind};
use crate::particles::Cloud;
use crate::plot::{plot_curves, plot_scatter, Colour, Layer, Panel};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--method`: which map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapMethod {
    /// The entropic (barycentric) map of `½|x − y|²` (elastic cost with `γ = 0`).
    Entropic,
    /// The entropic map of the elastic ℓ1 cost `½|z|² + γ|z|₁` (soft-thresholded: exact zeros).
    SparseL1,
    /// The parametric map `x + Θᵀφ(x)` fitted on `S_ε(T#μ, ν) + γ mean_i τ_ℓ0,σ(Δ(x_i))`
    /// ([`crate::maps::sparse`]), `γ` given or searched for a target dimensionality.
    SparseL0,
}

/// Random Fourier features of a `sparse-l0` map: `m = 50`, so `φ` has `p = 51 + d` functions
/// (the features, a constant, the `d` linear terms) and `Θ` is `p × d`.
pub const SPARSE_FEATURES: usize = 50;

/// What `advreact map` fits and how.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// The method.
    pub method: MapMethod,
    /// `γ` (`sparse-l1`: required; `sparse-l0`: this or `target_dims`).
    pub gamma: Option<f64>,
    /// `sparse-l0`: the mean displacement dimensionality `K` (`1 ≤ K ≤ d`) `γ` is searched for.
    pub target_dims: Option<f64>,
    /// `sparse-l0`: the width `σ` of the smoothed ℓ0 (`None`: 10 δ = 0.1 × the source's median
    /// per-coordinate standard deviation).
    pub sigma: Option<f64>,
    /// `ε` (`None`: [`default_eps`]).
    pub eps: Option<f64>,
    /// `τ` of the KL-unbalanced rescaling (`None`: balanced).
    pub tau: Option<f64>,
    /// Replace a folder of foreign files.
    pub force: bool,
    /// Where the passes run.
    pub exec: Exec,
}

fn cli(key: &str, msg: impl Into<String>) -> Error {
    ConfigError::new("<cli>", key, msg).into()
}

impl MapOptions {
    /// The elastic cost of the method (`γ` checked): for `sparse-l0` the smoothed-ℓ0 cost at the
    /// given `γ` (0 while a target dimensionality is searched for) and `σ` (`NaN` until the data
    /// gives the default). Flags of another method are errors.
    pub fn cost(&self) -> Result<Cost, Error> {
        if self.method != MapMethod::SparseL0 {
            for (flag, set) in
                [("--target-dims", self.target_dims.is_some()), ("--sigma", self.sigma.is_some())]
            {
                if set {
                    return Err(cli(flag, "is for --method sparse-l0"));
                }
            }
        }
        match (self.method, self.gamma) {
            (MapMethod::SparseL0, _) => {
                let gamma = match (self.gamma, self.target_dims) {
                    (Some(_), Some(_)) => {
                        return Err(cli("--target-dims", "cannot be used with --gamma (give one)"))
                    }
                    (None, None) => {
                        return Err(cli("--gamma", "or --target-dims is required with --method sparse-l0"))
                    }
                    (Some(g), None) if !(g.is_finite() && g >= 0.0) => {
                        return Err(cli("--gamma", format!("must be finite and ≥ 0, got {g}")))
                    }
                    (Some(g), None) => g,
                    (None, Some(k)) if !(k.is_finite() && k >= 1.0) => {
                        return Err(cli("--target-dims", format!("must be finite and ≥ 1, got {k}")))
                    }
                    (None, Some(_)) => 0.0,
                };
                let sigma = match self.sigma {
                    Some(s) if !(s.is_finite() && s > 0.0) => {
                        return Err(cli("--sigma", format!("must be finite and > 0, got {s}")))
                    }
                    Some(s) => s,
                    None => f64::NAN,
                };
                Ok(Cost::Elastic { gamma, penalty: Penalty::SmoothedL0 { sigma } })
            }
            (MapMethod::Entropic, Some(_)) => {
                Err(cli("--gamma", "is for --method sparse-l1 (entropic is γ = 0)"))
            }
            (MapMethod::Entropic, None) => Ok(Cost::Elastic { gamma: 0.0, penalty: Penalty::L1 }),
            (MapMethod::SparseL1, None) => Err(cli("--gamma", "is required with --method sparse-l1")),
            (MapMethod::SparseL1, Some(g)) if !(g.is_finite() && g >= 0.0) => {
                Err(cli("--gamma", format!("must be finite and ≥ 0, got {g}")))
            }
            (MapMethod::SparseL1, Some(g)) => Ok(Cost::Elastic { gamma: g, penalty: Penalty::L1 }),
        }
    }
}

/// The default `ε` of every map method: `0.05 ×` the mean of `½|x − y|²` under the normalised
/// product of `a` and `b` (closed form: `½(E|x|² + E|y|² − 2 E x · E y)`
/// `= ½ Σ_k (Var_a x_k + Var_b y_k + (E x_k − E y_k)²)`): a sum over the `d` coordinates, so `ε`
/// grows linearly with `d` (`0.05 d` for two unit-variance clouds), as the costs do.
pub fn default_eps(a: &Cloud, b: &Cloud) -> f64 {
    let moments = |c: &Cloud| {
        let (d, m) = (c.dim, c.mass());
        let mut mean = vec![0.0; d];
        let mut sq = 0.0;
        for (p, w) in c.x.chunks_exact(d).zip(&c.w) {
            for k in 0..d {
                mean[k] += w * p[k] / m;
                sq += w * p[k] * p[k] / m;
            }
        }
        (mean, sq)
    };
    let ((ma, sa), (mb, sb)) = (moments(a), moments(b));
    let dot: f64 = ma.iter().zip(&mb).map(|(u, v)| u * v).sum();
    0.05 * 0.5 * (sa + sb - 2.0 * dot)
}

/// The default `σ` of `sparse-l0`: `10 δ` ([`default_delta`]), i.e. 0.1 × the source's median
/// per-coordinate standard deviation: a displacement well below the spread of a coordinate is
/// counted as at rest.
pub fn default_sigma(src: &Cloud) -> f64 {
    10.0 * default_delta(src)
}

/// The source cloud (unit weights unless a `w` column) with its ids.
fn read_cloud(path: &Path) -> Result<(Cloud, Option<Vec<String>>), Error> {
    Ok(read_snapshot(path)?.select_as(Selection { time: None, normalize: false })?)
}

/// Fit the map `o` asks for from `src` to `tgt` (same dimension): the cost of the method, `ε`
/// (`o.eps`, or [`default_eps`]), the optional unbalanced rescaling `o.tau`; returns the fit and
/// the `ε` used. Errors name the CLI flag.
pub fn fit_clouds(src: &Cloud, tgt: &Cloud, o: &MapOptions) -> Result<(Fitted, f64), Error> {
    let cost = o.cost()?;
    if let Some(k) = o.target_dims {
        if k > src.dim as f64 {
            return Err(cli("--target-dims", format!("must be ≤ the dimension {}, got {k}", src.dim)));
        }
    }
    let eps = o.eps.unwrap_or_else(|| default_eps(src, tgt));
    if !(eps.is_finite() && eps > 0.0) {
        return Err(cli("--eps", format!("must be finite and > 0, got {eps} (the clouds coincide?)")));
    }
    if let Some(t) = o.tau {
        if !(t.is_finite() && t > 0.0) {
            return Err(cli("--tau", format!("must be finite and > 0, got {t}")));
        }
    }
    let mut sopts = SinkhornOptions::kl(eps, f64::INFINITY, f64::INFINITY, cost);
    sopts.exec = o.exec.clone();
    sopts.eps_scaling = Some(crate::ot::EpsScaling::default());
    if o.method != MapMethod::SparseL0 {
        return Ok((fit_entropic(src, tgt, cost, o.tau, &sopts)?, eps));
    }
    let params = SparseMapParams {
        penalty: SparsePenalty::SmoothedL0 { sigma: o.sigma.unwrap_or_else(|| default_sigma(src)) },
        gamma: match o.target_dims {
            Some(k) => GammaChoice::TargetDims(k),
            None => GammaChoice::Fixed(o.gamma.unwrap_or(0.0)),
        },
        eps,
        features: SPARSE_FEATURES,
        ..SparseMapParams::default()
    };
    Ok((fit_sparse(src, tgt, &params, o.tau, &sopts)?, eps))
}

/// What a `map` run computed (also returned to the caller).
#[derive(Debug, Clone)]
pub struct MapRun {
    /// The fit.
    pub fitted: Fitted,
    /// `T(x_i)` of the source points.
    pub mapped: Vec<f64>,
    /// Displacement statistics at `δ`.
    pub displacement: Displacement,
    /// `S_ε(T#μ, ν)`.
    pub divergence: f64,
    /// `W1(T#μ, ν)`.
    pub w1: f64,
}

/// `advreact map SOURCE TARGET --out DIR`: fit, apply to the source, evaluate, write the folder.
pub fn cmd_map(source: &Path, target: &Path, out: &Path, o: &MapOptions) -> Result<MapRun, Error> {
    let cost = o.cost()?;
    let t_start = Instant::now();
    let (src, ids) = read_cloud(source)?;
    let (tgt, _) = read_cloud(target)?;
    if src.dim != tgt.dim {
        return Err(cli(
            "TARGET",
            format!("{} is {}-D, {} is {}-D", target.display(), tgt.dim, source.display(), src.dim),
        ));
    }
    crate::output::Target::check_as(out, Kind::Map, o.force, "--out")?;
    let t_read = t_start.elapsed().as_secs_f64();
    let (mut fitted, eps) = fit_clouds(&src, &tgt, o)?;
    // sparse-l0: the smoothed-ℓ0 elastic cost at the γ and σ used
    let cost = match cost {
        Cost::Elastic { penalty: Penalty::SmoothedL0 { .. }, .. } => Cost::Elastic {
            gamma: fitted.gamma,
            penalty: Penalty::SmoothedL0 { sigma: o.sigma.unwrap_or_else(|| default_sigma(&src)) },
        },
        c => c,
    };
    let t0 = Instant::now();
    let mapped = fitted.map.apply(&src.x, &o.exec)?;
    let t_apply = t0.elapsed().as_secs_f64();
    let d = src.dim;
    let delta = default_delta(&src);
    let displacement = Displacement::of(d, &src.x, &mapped, delta);
    // Feasibility: the pushed (rescaled) source against the (rescaled) target, unit masses.
    let t0 = Instant::now();
    let (wa, wb) = match &fitted.rescaling {
        Some(r) => (r.source_mass.clone(), r.target_mass.clone()),
        None => (src.w.clone(), tgt.w.clone()),
    };
    let pushed = unit_cloud(d, mapped.clone(), wa)?;
    let target_w = unit_cloud(d, tgt.x.clone(), wb)?;
    let dopts = DivergenceOptions {
        eps,
        rho: None,
        cost: Cost::HalfSqEuclidean,
        exec: o.exec.clone(),
        tol: 1e-6,
        ..DivergenceOptions::default()
    };
    let divergence = sinkhorn_divergence(&pushed, &target_w, &dopts, None)?.value;
    let t_div = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let (w1r, w1_warn) = feasibility_w1(&pushed, &target_w, W1_EXACT_BUDGET, &o.exec)?;
    let t_w1 = t0.elapsed().as_secs_f64();
    fitted.warnings.extend(w1_warn);
    let fitted_gamma = fitted.gamma;
    let run = MapRun { fitted, mapped, displacement, divergence, w1: w1r.value };
    let report = json!({
        "method": o.method,
        "cost": cost,
        "gamma": fitted_gamma,
        "eps": eps,
        "tau": o.tau,
        "n": src.len(), "m": tgt.len(), "d": d,
        "displacement": {
            "delta": delta,
            "delta_rule": "1e-2 × the median over coordinates of the source's standard deviation",
            "mean_dims": run.displacement.mean_dims(),
            "per_point_dims": run.displacement.dims,
            "frequency_per_dim": run.displacement.frequency,
            "mean_abs_per_dim": run.displacement.magnitude,
        },
        "feasibility": {
            "sinkhorn_divergence": run.divergence,
            "divergence_cost": "half_sqeuclidean", "divergence_eps": eps, "divergence_balanced": true,
            "w1": run.w1,
            "w1_method": format!("{:?}", w1r.method),
            "w1_estimator": w1r.estimator,
            "w1_exact_budget": W1_EXACT_BUDGET,
        },
        "target_dims": o.target_dims,
        "sigma": cost.elastic().and_then(|(_, p)| match p {
            Penalty::SmoothedL0 { sigma } => Some(sigma),
            Penalty::L1 => None,
        }),
        "solve": run.fitted.report,
        "gamma_rounds": run.fitted.report.get("rounds"),
        "warnings": run.fitted.warnings,
        "unbalanced": run.fitted.rescaling.as_ref().map(|r| json!({
            "source_rescaling": r.source_factor,
            "source_transported_mass": r.source_mass,
            "target_rescaling": r.target_factor,
            "report": r.report,
        })),
        "seconds": {
            "read": t_read,
            "unbalanced": run.fitted.seconds.0,
            "fit": run.fitted.seconds.1,
            "apply": t_apply,
            "divergence": t_div,
            "w1": t_w1,
            "total": t_start.elapsed().as_secs_f64(),
        },
    });
    let file = MapFile::new(run.fitted.map.clone());
    write_folder(out, Kind::Map, o.force, |dir| {
        file.write(&dir.join("map.json"))?;
        write_points(&dir.join("mapped.csv"), d, &run.mapped, ids.as_deref())?;
        let text = serde_json::to_string_pretty(&report).expect("report serialises");
        std::fs::write(dir.join("report.json"), text + "\n").map_err(|e| Error::io(dir, e))?;
        plot_displacement(&dir.join("displacement.png"), &run.displacement).map_err(plot_err)?;
        if d == 2 {
            plot_arrows(&dir.join("arrows.png"), &src, &tgt, &run.mapped).map_err(plot_err)?;
        }
        Ok(())
    })?;
    Ok(run)
}

/// The exact feasibility `W1` is solved while `n·m·d ≤` this many pair·coordinates (and
/// `n·m ≤ 5000²`, [`WassersteinOpts::exact_max_points`]); above it, the entropic `W1` with its
/// certified bracket ([`feasibility_w1_solver`]).
pub const W1_EXACT_BUDGET: u128 = 250_000_000;

/// The solver of `map`'s feasibility `W1` between `n` and `m` points in `d` dimensions.
///
/// The network simplex prices every candidate arc by its `d`-dimensional distance, so its cost
/// grows like `pivots × d`, while `Solver::Auto` counts pairs only (`n·m ≤ 5000²`, any `d`).
/// At `n = m = 4000`, `d = 1000` (1.6·10¹⁰ pair·coordinates) the exact `W1` had not finished
/// after 15 CPU-min, 99.7 % of it in the simplex (`results/performance.md`, "The full `map` at
/// d = 1000"). So `map` solves exactly while `n·m·d ≤` [`W1_EXACT_BUDGET`] `= 2.5·10⁸`
/// (`5000²` pairs at `d = 10`: for `d ≤ 10` this is `Solver::Auto`'s rule unchanged; at
/// `d = 100` up to `n = m = 1581`, e.g. `results/sparse_maps.md`'s `d = 100`, `n = 1000`) and
/// uses the entropic `W1` (`Solver::Sinkhorn`, [`crate::metrics::wasserstein`]) above it, with a
/// warning naming the method and the certified error bound ([`feasibility_w1`]). Only `map` uses
/// this rule; every other caller keeps `Solver::Auto`.
pub fn feasibility_w1_solver(n: usize, m: usize, d: usize, budget: u128) -> Solver {
    if (n as u128) * (m as u128) * (d as u128) <= budget {
        Solver::Auto
    } else {
        Solver::Sinkhorn
    }
}

/// `W1(a, b)` by [`feasibility_w1_solver`] with the pair·coordinate `budget` (`map` uses
/// [`W1_EXACT_BUDGET`]), and for an entropic value the warning naming the method, `ε`, the
/// certified bracket of the exact `W1` and its error bound (`None` for an exact value).
pub fn feasibility_w1(
    a: &Cloud,
    b: &Cloud,
    budget: u128,
    exec: &Exec,
) -> Result<(WassersteinResult, Option<String>), Error> {
    let solver = feasibility_w1_solver(a.len(), b.len(), a.dim, budget);
    let wopts = WassersteinOpts { solver, exec: exec.clone(), ..WassersteinOpts::default() };
    let r = wasserstein(a, b, Order::W1, &wopts)?;
    let warning = match r.estimator {
        Estimator::Entropic { eps, iterations, value_lower, value_upper, error_bound, .. } => Some(format!(
            "feasibility W1 is entropic (n·m·d = {:.3e} > the exact budget {:.3e}): ε = {eps:.3e}, \
             {iterations} iterations, W1 = {:.6e}, the exact W1 lies in [{value_lower:.6e}, \
             {value_upper:.6e}] (certified error bound {error_bound:.3e})",
            (a.len() as f64) * (b.len() as f64) * (a.dim as f64),
            budget as f64,
            r.value
        )),
        _ => None,
    };
    Ok((r, warning))
}

fn unit_cloud(d: usize, x: Vec<f64>, w: Vec<f64>) -> Result<Cloud, Error> {
    let m: f64 = w.iter().sum();
    Ok(Cloud::new(d, x, w.iter().map(|v| v / m).collect())?)
}

fn plot_err(e: crate::plot::PlotError) -> Error {
    SimError::Invalid(e.to_string()).into()
}

/// `id` (if any), then `x1..xd`, one row per point.
fn write_points(path: &Path, d: usize, x: &[f64], ids: Option<&[String]>) -> Result<(), Error> {
    let io = |e| Error::io(path, e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut head: Vec<String> = ids.map(|_| vec!["id".to_string()]).unwrap_or_default();
    head.extend((1..=d).map(|k| format!("x{k}")));
    writeln!(f, "{}", head.join(",")).map_err(io)?;
    for (i, p) in x.chunks_exact(d).enumerate() {
        if let Some(ids) = ids {
            write!(f, "{},", csv_field(&ids[i])).map_err(io)?;
        }
        writeln!(f, "{}", crate::format::nums(p)).map_err(io)?;
    }
    f.flush().map_err(io)
}

/// Per dimension: the share of points moved by more than `δ`, and the mean `|T(x)_k − x_k|`
/// divided by its largest value over the dimensions.
fn plot_displacement(path: &Path, s: &Displacement) -> Result<(), crate::plot::PlotError> {
    let top = s.magnitude.iter().fold(0.0f64, |a, &b| a.max(b));
    let freq: Vec<(f64, f64)> = s.frequency.iter().enumerate().map(|(k, v)| ((k + 1) as f64, *v)).collect();
    let mag: Vec<(f64, f64)> = s
        .magnitude
        .iter()
        .enumerate()
        .map(|(k, v)| ((k + 1) as f64, if top > 0.0 { v / top } else { 0.0 }))
        .collect();
    plot_curves(
        path,
        &format!("displacement per dimension (δ = {:.3e})", s.delta),
        "dimension k",
        "share / relative magnitude",
        false,
        &[
            ("share of points with |T(x)_k − x_k| > δ".into(), freq),
            (format!("mean |T(x)_k − x_k| / {top:.3e}"), mag),
        ],
    )
}

/// `d = 2`: source (grey), target, and at most 150 arrows `x → T(x)` (every ⌈n/150⌉-th point).
fn plot_arrows(path: &Path, src: &Cloud, tgt: &Cloud, t: &[f64]) -> Result<(), crate::plot::PlotError> {
    let pts = |x: &[f64]| x.chunks_exact(2).map(|p| (p[0], p[1])).collect::<Vec<_>>();
    let step = src.len().div_ceil(150).max(1);
    let arrows: Vec<Vec<(f64, f64)>> = src
        .x
        .chunks_exact(2)
        .zip(t.chunks_exact(2))
        .step_by(step)
        .map(|(a, b)| {
            // A shaft and a two-stroke head at the image.
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let (hx, hy) = (-0.12 * dx, -0.12 * dy);
            let (c, s) = (0.94f64, 0.34f64);
            vec![
                (a[0], a[1]),
                (b[0], b[1]),
                (b[0] + c * hx - s * hy, b[1] + s * hx + c * hy),
                (b[0], b[1]),
                (b[0] + c * hx + s * hy, b[1] - s * hx + c * hy),
            ]
        })
        .collect();
    let panel = Panel {
        caption: "x → T(x)".into(),
        layers: vec![
            Layer {
                name: "source".into(),
                points: pts(&src.x),
                colour: Some(Colour::Grey),
                ..Layer::default()
            },
            Layer {
                name: "target".into(),
                points: pts(&tgt.x),
                colour: Some(Colour::Series(1)),
                ..Layer::default()
            },
            Layer { name: "map".into(), paths: arrows, colour: Some(Colour::Series(0)), ..Layer::default() },
        ],
    };
    plot_scatter(path, "transport map", (1000, 900), &[panel])
}

/// `advreact map --apply MAP NEW.csv --out F.csv`: `T` of every point of `NEW.csv` (`id`, then
/// `x1..xd`). `F.csv` is written to a temporary sibling and renamed into place; an existing file
/// is replaced only with `force`.
pub fn cmd_apply(map: &Path, input: &Path, out: &Path, force: bool, exec: &Exec) -> Result<usize, Error> {
    let file = MapFile::read(map)?;
    let (c, ids) = read_cloud(input)?;
    if c.dim != file.dim {
        return Err(cli(
            "NEW",
            format!("{} is {}-D, the map {} is {}-D", input.display(), c.dim, map.display(), file.dim),
        ));
    }
    if out.is_dir() {
        return Err(cli("--out", format!("{} is a folder (give a file name)", out.display())));
    }
    if out.exists() && !force {
        return Err(cli("--out", format!("{} exists (use --force to replace it)", out.display())));
    }
    let t = file.apply(&c.x, exec)?;
    let name =
        out.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "mapped.csv".into());
    let tmp = out.with_file_name(format!(".{name}.partial"));
    let r = write_points(&tmp, c.dim, &t, ids.as_deref())
        .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e)));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map(|()| c.len())
}

/// `advreact map`'s command-line arguments (the binary's `map` subcommand and the Python
/// package's `map` / `apply_map` parse these).
// The field docs are the command line's help text (kept as `--help` prints them).
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
#[derive(clap::Args, Debug, Clone)]
pub struct MapArgs {
    /// SOURCE.csv (with --apply: the points to map).
    pub source: PathBuf,
    /// TARGET.csv (not with --apply).
    #[arg(required_unless_present = "apply")]
    pub target: Option<PathBuf>,
    /// entropic (½|x−y|², γ = 0); sparse-l1: the entropic map of the elastic cost ½|z|² + γ|z|₁
    /// (soft-thresholded: exact zeros); sparse-l0: the parametric map x + Θᵀφ(x) fitted on
    /// S_ε(T#μ, ν) + γ·smoothed-ℓ0 of the displacement (γ given or searched for --target-dims).
    #[arg(long, value_enum, default_value_t = MapMethod::Entropic)]
    pub method: MapMethod,
    /// The sparsity strength γ ≥ 0 (sparse-l1: required; sparse-l0: this or --target-dims).
    #[arg(long, allow_negative_numbers = true)]
    pub gamma: Option<f64>,
    /// sparse-l0: search γ (bisection on log γ) for this mean displacement dimensionality
    /// 1 ≤ K ≤ d (a warning when not reached).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "gamma")]
    pub target_dims: Option<f64>,
    /// sparse-l0: width σ of the smoothed ℓ0 1 − exp(−z²/2σ²) (default 0.1 × the source's median
    /// per-coordinate standard deviation).
    #[arg(long, allow_negative_numbers = true)]
    pub sigma: Option<f64>,
    /// Entropic regularisation ε (default 0.05 × the mean of ½|x−y|² over all pairs: ∝ d).
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// Rescale both clouds by the KL-unbalanced coupling (τ_a = τ_b = τ) before fitting.
    #[arg(long, allow_negative_numbers = true)]
    pub tau: Option<f64>,
    /// Apply this map.json to SOURCE and write --out (a CSV file).
    #[arg(long, conflicts_with_all = ["target", "gamma", "target_dims", "sigma", "eps", "tau"])]
    pub apply: Option<PathBuf>,
    /// Output folder (default output/map/<source>__<target>); with --apply the CSV file
    /// (required).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an output folder holding foreign files (or, with --apply, an existing file).
    #[arg(long)]
    pub force: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The `map` output folder: `--out`, or `output/map/<source stem>__<target stem>`.
pub fn map_out(a: &MapArgs) -> Option<PathBuf> {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    match (&a.out, &a.target) {
        (Some(out), _) => Some(out.clone()),
        (None, Some(target)) => {
            Some(Path::new("output/map").join(format!("{}__{}", stem(&a.source), stem(target))))
        }
        (None, None) => None,
    }
}

/// `advreact map` from its arguments: with `--apply`, [`cmd_apply`] (prints the count);
/// otherwise [`cmd_map`] into [`map_out`] (the folder checked before any computation; prints the
/// displacement dimensionality, `S_ε(T#μ, ν)` and `W1`).
pub fn cmd_map_args(a: &MapArgs, exec: &Exec) -> Result<bool, Error> {
    if let Some(map) = &a.apply {
        let out =
            a.out.as_ref().ok_or_else(|| cli("--out", "is required with --apply (the CSV to write)"))?;
        let n = cmd_apply(map, &a.source, out, a.force, exec)?;
        println!("mapped {n} points → {}", out.display());
        return Ok(true);
    }
    let target = a.target.as_ref().ok_or_else(|| cli("TARGET", "is required (without --apply)"))?;
    let out = map_out(a).unwrap_or_default();
    let o = MapOptions {
        method: a.method,
        gamma: a.gamma,
        target_dims: a.target_dims,
        sigma: a.sigma,
        eps: a.eps,
        tau: a.tau,
        force: a.force,
        exec: exec.clone(),
    };
    crate::output::Target::check_as(&out, Kind::Map, a.force, "--out")?;
    let r = cmd_map(&a.source, target, &out, &o)?;
    for w in &r.fitted.warnings {
        eprintln!("warning: map: {w}");
    }
    println!(
        "map: mean displacement dims {:.3} (δ = {:.3e}), S_ε(T#μ, ν) = {:.6e}, W1 = {:.6e} → {}",
        r.displacement.mean_dims(),
        r.displacement.delta,
        r.divergence,
        r.w1,
        out.display()
    );
    Ok(true)
}
