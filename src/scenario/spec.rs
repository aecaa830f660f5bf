//! The scenario file's structure (TOML, `deny_unknown_fields`), with defaults, and its
//! validation: every check names the key path and the offending value.

use crate::error::ConfigError;
use crate::field::sobolev_fisher::SobolevFisherParams;
use crate::field::wfr::WfrParams;
use crate::param::{self, ParamError};
use crate::reaction::{Reaction, ReactionKind};
use crate::stepper::TimeCfg;
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// `[meta]`: name, seed, description.
    pub meta: Meta,
    /// `[source]`: the initial particles.
    pub source: Distribution,
    /// `[target]`: the target measure, if any.
    #[serde(default)]
    pub target: Option<Distribution>,
    /// `[field]`: velocity and growth.
    pub field: FieldSpec,
    /// `[reaction]`.
    #[serde(default)]
    pub reaction: ReactionSpec,
    /// `[time]`.
    pub time: TimeSpec,
    /// `[report]`: metrics, snapshots, plots, checkpoints.
    #[serde(default)]
    pub report: ReportSpec,
}

/// The `[meta]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Run name: the output folder is `output/<name>/`.
    pub name: String,
    /// Seed of every random stream.
    #[serde(default)]
    pub seed: u64,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Standard deviation: one number (isotropic) or one per coordinate.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Std {
    /// The same std on every axis.
    Scalar(f64),
    /// One std per axis.
    PerAxis(Vec<f64>),
}

/// One Gaussian of a mixture.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Mean (one entry per coordinate).
    pub mean: Vec<f64>,
    /// Standard deviation (or give `cov`).
    #[serde(default)]
    pub std: Option<Std>,
    /// Covariance matrix (or give `std`).
    #[serde(default)]
    pub cov: Option<Vec<Vec<f64>>>,
    /// Relative weight of the component.
    #[serde(default = "one")]
    pub weight: f64,
}

/// A source or target distribution; `n` samples carrying total mass `mass`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// `N(mean, std²I)` (or per-axis std, or a full covariance `cov`).
    Gaussian {
        /// Sample count.
        n: usize,
        /// Mean.
        mean: Vec<f64>,
        /// Standard deviation (or give `cov`).
        #[serde(default)]
        std: Option<Std>,
        /// Covariance matrix (or give `std`).
        #[serde(default)]
        cov: Option<Vec<Vec<f64>>>,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
    },
    /// A mixture of Gaussians, components chosen with probability ∝ weight.
    Mixture {
        /// Sample count.
        n: usize,
        /// The Gaussians.
        components: Vec<Component>,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
    },
    /// `k` isotropic Gaussians (std `std`) centred on a circle of radius `radius` around `center`
    /// in the first two coordinates; sample `j` belongs to component `j mod k`. Optional
    /// `weight_gradient` `γ`: sample weights ∝ `exp(γ x₁)` (a target with non-uniform weights).
    RingOfGaussians {
        /// Sample count.
        n: usize,
        /// Number of Gaussians.
        k: usize,
        /// Radius of the circle of centres.
        radius: f64,
        /// Standard deviation of each Gaussian.
        std: f64,
        /// Centre of the circle (default: the origin).
        #[serde(default)]
        center: Option<Vec<f64>>,
        /// Weight gradient `γ` (0: equal weights).
        #[serde(default)]
        weight_gradient: f64,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
    },
    /// Uniform in the box `[low, high]`.
    Uniform {
        /// Sample count.
        n: usize,
        /// Lower corner.
        low: Vec<f64>,
        /// Upper corner.
        high: Vec<f64>,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
    },
    /// Synthetic perturbation cells ([`crate::synthetic`]): `n` cells of `N(0, Σ)` in `dim`
    /// coordinates (unit variances, `blocks` correlated blocks of `block_size` coordinates with
    /// correlation `rho`), with `perturbed = true` the `k` coordinates of the seed's support
    /// shifted by `± shift` standard deviations. The support depends on `meta.seed`, `dim` and
    /// `k` only, so a control source and a perturbed target agree on it.
    Perturbation {
        /// Sample count.
        n: usize,
        /// Dimension.
        dim: usize,
        /// Number of shifted coordinates (≤ dim).
        k: usize,
        /// Shift in standard deviations.
        #[serde(default = "default_shift")]
        shift: f64,
        /// Shift the support (the perturbed population) or not (the control).
        #[serde(default)]
        perturbed: bool,
        /// Number of correlated blocks.
        #[serde(default)]
        blocks: usize,
        /// Coordinates per block.
        #[serde(default = "default_block_size")]
        block_size: usize,
        /// Within-block correlation in [0, 1).
        #[serde(default = "default_rho")]
        rho: f64,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
    },
    /// Rows of a snapshot CSV (`time,x1..xd[,w]`) at time `time`; optionally `n` rows drawn
    /// without replacement (at most the rows there are). Path relative to the scenario file.
    /// Coordinates are `x1..xd`, or the columns named in `columns`; `ignore_columns` are
    /// skipped; any other column without a role is an error (src/data.rs).
    Csv {
        /// The CSV file, relative to the scenario file.
        path: String,
        /// Rows with this time value (absent: all rows).
        #[serde(default)]
        time: Option<f64>,
        /// Draw this many rows without replacement (absent: all).
        #[serde(default)]
        n: Option<usize>,
        /// Total mass.
        #[serde(default = "one")]
        mass: f64,
        /// Coordinate columns (default: `x1..xd`).
        #[serde(default)]
        columns: Option<Vec<String>>,
        /// Columns to skip.
        #[serde(default)]
        ignore_columns: Vec<String>,
    },
}

impl Distribution {
    /// The `type` key of this distribution.
    pub fn type_name(&self) -> &'static str {
        match self {
            Distribution::Gaussian { .. } => "gaussian",
            Distribution::Mixture { .. } => "mixture",
            Distribution::RingOfGaussians { .. } => "ring_of_gaussians",
            Distribution::Uniform { .. } => "uniform",
            Distribution::Csv { .. } => "csv",
            Distribution::Perturbation { .. } => "perturbation",
        }
    }
}

/// The field driving the particles.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldSpec {
    /// No motion, no growth.
    Zero,
    /// Ornstein–Uhlenbeck drift `u = −θ(x − m)`.
    Ou {
        /// Rate `θ ≥ 0`.
        theta: f64,
        /// Mean `m`.
        mean: Vec<f64>,
    },
    /// `g = rate`.
    ConstantGrowth {
        /// The rate.
        rate: f64,
    },
    /// `g = rate + slope·x`.
    AffineGrowth {
        /// Constant part.
        rate: f64,
        /// Slope (one per coordinate).
        slope: Vec<f64>,
    },
    /// `u = −∇V`, `V = ½ stiffness |x − center|²`.
    Quadratic {
        /// Stiffness ≥ 0.
        stiffness: f64,
        /// Centre.
        center: Vec<f64>,
    },
    /// `u = −∇V`, `V = height ((x₁² − a²)/a²)² + ½ stiffness Σ_{k≥2} x_k²`, `a = separation`.
    DoubleWell {
        /// Barrier height.
        height: f64,
        /// Half distance `a` between the wells.
        separation: f64,
        /// Stiffness of the other coordinates.
        #[serde(default = "one")]
        stiffness: f64,
    },
    /// A sum of fields.
    Sum {
        /// The fields summed.
        terms: Vec<FieldSpec>,
    },
    /// The kernel Sobolev–Fisher critic of Unbalanced Sobolev Descent (SPEC §2.1); `conserve`
    /// absent means `reaction.conserve`.
    SobolevFisher(SobolevFisherParams),
    /// Wasserstein–Fisher–Rao gradient flow of an energy (SPEC §2.2): `u = −∇φ`, `g = −α φ`
    /// (free) or `−α(φ − φ̄)` (conserving); `conserve` absent means `reaction.conserve`.
    Wfr(WfrParams),
    /// A fitted model of learned dynamics (SPEC §6; `advreact fit`'s model.json): `u(x, t₀ + t)`,
    /// `g(x, t₀ + t)`, `t` the scenario's time.
    Learned {
        /// The model file, relative to the scenario file.
        model: String,
        /// The model time `t₀` of the scenario's `t = 0` (absent: the model's first training
        /// time, or 0 when it has none).
        #[serde(default)]
        start_time: Option<f64>,
    },
    /// A transport map (SPEC §7) moving the particles along its constant-speed displacement
    /// interpolation `x₀ + min(t/D, 1) (T(x₀) − x₀)` ([`crate::field::map`]): read from `model`
    /// (`advreact map`'s map.json, relative to the scenario file), or, without `model`, fitted
    /// from the scenario's source to its `[target]` when the scenario is built, by `method`
    /// (`entropic`, or `sparse-l1` with `gamma`, or `sparse-l0` with `gamma` or `target_dims`;
    /// `eps` and `tau` as `advreact map`'s flags).
    Map {
        /// The map file.
        #[serde(default)]
        model: Option<String>,
        /// The method of a map fitted at build time.
        #[serde(default)]
        method: Option<crate::maps::command::MapMethod>,
        /// `γ` of `sparse-l1` / `sparse-l0`.
        #[serde(default)]
        gamma: Option<f64>,
        /// `sparse-l0` only, instead of `gamma`: the mean displacement dimensionality `K`
        /// (`1 ≤ K ≤ d`) `γ` is searched for (`advreact map --target-dims`).
        #[serde(default)]
        target_dims: Option<f64>,
        /// `ε` of the fit (absent: `advreact map`'s default, written back).
        #[serde(default)]
        eps: Option<f64>,
        /// `τ` of the unbalanced rescaling (absent: balanced).
        #[serde(default)]
        tau: Option<f64>,
        /// The duration `D` of the interpolation (default 1): a multiple of `time.dt`.
        #[serde(default = "one")]
        duration: f64,
    },
}

fn default_shift() -> f64 {
    1.5
}

fn default_block_size() -> usize {
    10
}

fn default_rho() -> f64 {
    0.5
}

fn one() -> f64 {
    1.0
}

/// The `[reaction]` table: the parameters of [`Reaction`], validated by [`ReactionSpec::check`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionSpec {
    /// Which reaction (`none`, `weights`, `birth_death`).
    #[serde(rename = "type", default)]
    pub kind: ReactionKind,
    /// Keep the total mass fixed (and, for birth–death, the particle count).
    #[serde(default)]
    pub conserve: bool,
    /// Bound on `|g dt|` per step (clipped and counted).
    #[serde(default = "one")]
    pub max_growth_step: f64,
    /// Population cap for birth–death (default: 100 × the initial count).
    #[serde(default)]
    pub max_particles: Option<usize>,
    /// Weights only: resample when the ESS falls below this fraction of n (0 = never).
    #[serde(default)]
    pub resample_ess: f64,
}

impl Default for ReactionSpec {
    fn default() -> Self {
        Self {
            kind: ReactionKind::None,
            conserve: false,
            max_growth_step: 1.0,
            max_particles: None,
            resample_ess: 0.0,
        }
    }
}

impl ReactionSpec {
    /// The validated reaction; `max_particles` defaults to 100 × the initial count `n0`.
    pub fn check(&self, c: &Check, n0: usize) -> Result<Reaction, ConfigError> {
        c.positive("reaction.max_growth_step", self.max_growth_step)?;
        if !(0.0..=1.0).contains(&self.resample_ess) {
            return Err(
                c.err("reaction.resample_ess", format!("must be in [0, 1], got {}", self.resample_ess))
            );
        }
        if let Some(m) = self.max_particles {
            c.count("reaction.max_particles", m)?;
        }
        Ok(Reaction {
            kind: self.kind,
            conserve: self.conserve,
            max_growth_step: self.max_growth_step,
            max_particles: self.max_particles.unwrap_or(100 * n0),
            resample_ess: self.resample_ess,
        })
    }
}

/// The `[time]` table: the parameters of [`TimeCfg`] (validated by [`TimeSpec::check`]) and
/// strict mode.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// Step `dt`.
    pub dt: f64,
    /// Step cap.
    pub steps: usize,
    /// Noise amplitude σ of `dX = u dt + σ dW`.
    #[serde(default)]
    pub noise: f64,
    /// Cap on `|u dt|` per step.
    #[serde(default)]
    pub max_displacement: Option<f64>,
    /// Any guard intervention (growth clipping, displacement cap) stops the run with stop reason
    /// `guard` (exit code 1) instead of a warning.
    #[serde(default)]
    pub strict: bool,
}

impl TimeSpec {
    /// The validated time parameters of the run.
    pub fn check(&self, c: &Check) -> Result<TimeCfg, ConfigError> {
        c.positive("time.dt", self.dt)?;
        c.non_negative("time.noise", self.noise)?;
        if let Some(v) = self.max_displacement {
            c.positive("time.max_displacement", v)?;
        }
        Ok(TimeCfg {
            dt: self.dt,
            steps: self.steps,
            noise: self.noise,
            max_displacement: self.max_displacement,
        })
    }
}

/// The `[report]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// Metrics every `every` steps (and at the start and end).
    #[serde(default = "ten")]
    pub every: usize,
    /// Metric names: mmd, mmd_normalized, mass, n, ess, mean.
    #[serde(default)]
    pub metrics: Option<Vec<String>>,
    /// MMD bandwidth (default: median distance between target samples).
    #[serde(default)]
    pub mmd_bandwidth: Option<f64>,
    /// Number of snapshots over the run (0 = only the first and last).
    #[serde(default = "forty")]
    pub snapshots: usize,
    /// At most this many particles per snapshot.
    #[serde(default = "two_thousand")]
    pub snapshot_particles: usize,
    /// Draw trajectories.png and metrics.png.
    #[serde(default = "yes")]
    pub plots: bool,
    /// Write a checkpoint every this many steps (0 = never); `advreact resume` continues from it.
    #[serde(default)]
    pub checkpoint_every: usize,
}

fn ten() -> usize {
    10
}
fn forty() -> usize {
    40
}
fn two_thousand() -> usize {
    2000
}

impl Default for ReportSpec {
    fn default() -> Self {
        Self {
            every: 10,
            metrics: None,
            mmd_bandwidth: None,
            snapshots: 40,
            snapshot_particles: 2000,
            plots: true,
            checkpoint_every: 0,
        }
    }
}

/// The metric names a scenario may ask for.
pub const METRICS: [&str; 7] = ["mmd", "mmd_normalized", "mass", "n", "ess", "mean", "moved_dims"];

/// Validation helpers: the rules of [`crate::param`], each error a [`ConfigError`] naming
/// `file` and the key path.
pub struct Check<'a> {
    /// The scenario file, as messages name it.
    pub file: &'a str,
}

impl Check<'_> {
    /// An error at key path `path`.
    pub fn err(&self, path: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, path, msg)
    }
    /// A [`ParamError`] of the table at `prefix` as an error of this file.
    pub fn at(&self, prefix: &str) -> impl Fn(ParamError) -> ConfigError + '_ {
        let prefix = prefix.to_string();
        move |e| e.within(self.file, &prefix)
    }
    /// [`param::positive`].
    pub fn positive(&self, path: &str, v: f64) -> Result<(), ConfigError> {
        param::positive(path, v).map_err(self.at(""))
    }
    /// [`param::non_negative`].
    pub fn non_negative(&self, path: &str, v: f64) -> Result<(), ConfigError> {
        param::non_negative(path, v).map_err(self.at(""))
    }
    /// [`param::finite`].
    pub fn finite(&self, path: &str, v: &[f64]) -> Result<(), ConfigError> {
        param::finite(path, v).map_err(self.at(""))
    }
    /// [`param::count`].
    pub fn count(&self, path: &str, n: usize) -> Result<(), ConfigError> {
        param::count(path, n).map_err(self.at(""))
    }
    /// A vector of dimension `d`.
    pub fn dim(&self, path: &str, v: &[f64], d: usize) -> Result<(), ConfigError> {
        self.finite(path, v)?;
        if v.len() != d {
            Err(self.err(path, format!("has {} entries, the scenario is {d}-dimensional", v.len())))
        } else {
            Ok(())
        }
    }
}
