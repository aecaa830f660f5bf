//! Scenario files: TOML → parse (unknown keys rejected) → validate → build a [`Simulation`].
//!
//! Every error is one line naming the file and the key path (`field.bandwidth: must be > 0, got
//! -1`). A file may list `[[variants]]`: tables deep-merged over the base scenario, each with a
//! `label`, run one after the other into `output/<name>/<label>/` (a comparison of algorithms or
//! a parameter sweep in one file).

pub mod distribution;
pub mod memory;
pub mod spec;

pub use spec::ScenarioSpec;

use crate::dist::Exec;
use crate::error::{ConfigError, Error};
use crate::field::learned::{LearnedField, TimeShifted};
use crate::field::map::MapField;
use crate::field::sobolev_fisher::SobolevFisher;
use crate::field::wfr::Growth;
use crate::field::{analytic, Field, SumField};
use crate::learned::model::ModelFile;
use crate::maps::command::{fit_clouds, MapOptions};
use crate::maps::MapFile;
use crate::metrics::{self, Metric};
use crate::particles::{Cloud, Particles};
use crate::stepper::{Simulation, TimeCfg};
use distribution::{declared_dim, read_rows, sample_distribution};
use spec::{Check, Distribution, FieldSpec, METRICS};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// A parsed and validated scenario (one variant).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The parsed scenario (overrides applied).
    pub spec: ScenarioSpec,
    /// The file it came from (for messages and relative paths).
    pub file: PathBuf,
    /// Variant label (`None` for a file without variants).
    pub label: Option<String>,
    /// `spec.time`, validated ([`spec::TimeSpec::check`]).
    pub time: TimeCfg,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--seed`: replaces `meta.seed`.
    pub seed: Option<u64>,
    /// `--steps`: replaces `time.steps`.
    pub steps: Option<usize>,
    /// `--strict`: sets `time.strict` (kept in the resolved scenario, so `resume` inherits it).
    pub strict: bool,
}

/// What `build` produces: the simulation plus what the output writer needs.
pub struct Built {
    /// The simulation, ready to run.
    pub sim: Simulation,
    /// The sampled source.
    pub source: Cloud,
    /// The sampled target, if any.
    pub target: Option<Cloud>,
    /// The fully resolved spec (defaults and derived values filled in).
    pub resolved: ScenarioSpec,
}

fn file_label(file: &Path) -> String {
    file.display().to_string()
}

/// Deep-merge `over` into `base` (tables merge key by key; anything else replaces). A variant
/// that changes a part's `type` replaces that part's table instead of merging into it.
fn merge(base: &mut Table, over: &Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Table(b)), Value::Table(o))
                if !o.contains_key("type") || o.get("type") == b.get("type") =>
            {
                merge(b, o)
            }
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Turn a serde error from deserialising a value into a one-line `ConfigError` with a key path.
fn de_error(file: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let mut path = e.path().to_string();
    let msg = e.inner().message().trim().to_string();
    // Unknown keys inside tagged tables: append the key to the path (plain structs have it).
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some(key) = rest.split('`').next() {
            path = if path == "." || path.is_empty() {
                key.to_string()
            } else if path.rsplit('.').next() == Some(key) {
                path
            } else {
                format!("{path}.{key}")
            };
        }
    }
    if path == "." || path.is_empty() {
        path = "(top level)".into();
    }
    ConfigError::new(file, path, msg.replace('\n', " "))
}

/// Read a scenario file: one scenario per variant (just one without `[[variants]]`).
pub fn load(file: &Path, ov: &Overrides) -> Result<Vec<Scenario>, Error> {
    let fl = file_label(file);
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::new(&fl, "(file)", format!("cannot read: {e}")))?;
    load_str(&text, file, ov)
}

/// Like [`load`], from text (`file` names it and anchors relative paths).
pub fn load_str(text: &str, file: &Path, ov: &Overrides) -> Result<Vec<Scenario>, Error> {
    let fl = file_label(file);
    let mut table: Table = text.parse::<Table>().map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
        let at = line.map_or(String::new(), |l| format!("line {l}"));
        ConfigError::new(
            &fl,
            if at.is_empty() { "(syntax)".into() } else { at },
            e.message().trim().replace('\n', " "),
        )
    })?;
    let variants = match table.remove("variants") {
        None => vec![(None, Table::new())],
        Some(Value::Array(vs)) => {
            let mut out = Vec::new();
            for (i, v) in vs.into_iter().enumerate() {
                let Value::Table(mut t) = v else {
                    return Err(ConfigError::new(&fl, format!("variants[{i}]"), "must be a table").into());
                };
                let label = match t.remove("label") {
                    Some(Value::String(s)) if !s.is_empty() && !s.contains(['/', '\\']) => s,
                    _ => {
                        return Err(ConfigError::new(
                            &fl,
                            format!("variants[{i}].label"),
                            "missing: each variant needs a label (a folder name, no slashes)",
                        )
                        .into())
                    }
                };
                out.push((Some(label), t));
            }
            if out.is_empty() {
                return Err(ConfigError::new(&fl, "variants", "is empty").into());
            }
            out
        }
        Some(_) => {
            return Err(ConfigError::new(&fl, "variants", "must be an array of tables ([[variants]])").into())
        }
    };
    let mut labels: Vec<&Option<String>> = variants.iter().map(|(l, _)| l).collect();
    labels.sort();
    if labels.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConfigError::new(&fl, "variants", "labels must be distinct").into());
    }
    let mut out = Vec::new();
    for (label, over) in variants {
        let mut t = table.clone();
        merge(&mut t, &over);
        let spec: ScenarioSpec =
            serde_path_to_error::deserialize(Value::Table(t)).map_err(|e| de_error(&fl, e))?;
        let mut spec = spec;
        if let Some(s) = ov.seed {
            spec.meta.seed = s;
        }
        if let Some(s) = ov.steps {
            spec.time.steps = s;
        }
        spec.time.strict |= ov.strict;
        out.push(Scenario::from_spec(spec, file, label)?);
    }
    Ok(out)
}

impl Scenario {
    /// A scenario from a spec built in code (or parsed): the same checks as [`load`] (time,
    /// names, report). `file` names the scenario in messages and anchors relative paths;
    /// `label` is the variant's label (`None` for a single scenario).
    pub fn from_spec(spec: ScenarioSpec, file: &Path, label: Option<String>) -> Result<Self, ConfigError> {
        let time = spec.time.check(&Check { file: &file_label(file) })?;
        let sc = Scenario { spec, file: file.to_path_buf(), label, time };
        sc.validate_static()?;
        Ok(sc)
    }

    fn check(&self) -> Check<'_> {
        Check { file: self.file.to_str().unwrap_or("<scenario>") }
    }

    fn base_dir(&self) -> PathBuf {
        self.file.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Checks that need no data besides the time's: names, report.
    fn validate_static(&self) -> Result<(), ConfigError> {
        let c = self.check();
        let s = &self.spec;
        let name = &s.meta.name;
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(
                c.err("meta.name", format!("must be a non-empty folder name without slashes, got '{name}'"))
            );
        }
        c.count("report.every", s.report.every)?;
        c.count("report.snapshot_particles", s.report.snapshot_particles)?;
        if let Some(b) = s.report.mmd_bandwidth {
            c.positive("report.mmd_bandwidth", b)?;
        }
        if let Some(ms) = &s.report.metrics {
            for (i, m) in ms.iter().enumerate() {
                if !METRICS.contains(&m.as_str()) {
                    return Err(c.err(
                        &format!("report.metrics[{i}]"),
                        format!("unknown metric '{m}'; known: {}", METRICS.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The scenario's dimension: the source's, declared or (CSV) that of its `rows`.
    fn dim(&self, rows: Option<&Cloud>) -> Result<usize, ConfigError> {
        let d = declared_dim(&self.spec.source).or(rows.map(|r| r.dim)).unwrap_or(0);
        if d == 0 {
            return Err(self.check().err("source", "has dimension 0"));
        }
        Ok(d)
    }

    /// Fail before allocating if the estimated memory exceeds what is available (or, when the
    /// system does not say, 1 TiB).
    pub fn check_memory(&self, d: usize) -> Result<(), ConfigError> {
        let (need, key) = memory::estimate(&self.spec, d);
        let avail = memory::available_bytes().map_or(1024f64.powi(4), |b| b as f64);
        if need > avail {
            return Err(self.check().err(
                key,
                format!(
                    "the run would need about {} of memory (estimate), more than the {} available",
                    memory::fmt_bytes(need),
                    memory::fmt_bytes(avail)
                ),
            ));
        }
        Ok(())
    }

    /// Validate everything against the data and build the simulation. A CSV source or target
    /// is read here, once; the run needs nothing else from the files.
    pub fn build(&self) -> Result<Built, Error> {
        let c = self.check();
        let s = &self.spec;
        let base = self.base_dir();
        let rows = read_rows(&c, "source", &base, &s.source)?;
        let d = self.dim(rows.as_ref())?;
        self.check_memory(d)?;
        let seed = s.meta.seed;
        let source = sample_distribution(&c, "source", &s.source, rows, d, seed, 0)?;
        let target = match &s.target {
            Some(t) => {
                let rows = read_rows(&c, "target", &base, t)?;
                Some(sample_distribution(&c, "target", t, rows, d, seed, 1)?)
            }
            None => None,
        };
        let mut resolved = s.clone();
        let ctx = FieldCtx {
            dim: d,
            target: target.as_ref(),
            seed,
            conserve: s.reaction.conserve,
            base: &base,
            source: &source,
            dt: self.time.dt,
        };
        let field = build_field(&c, "field", &mut resolved.field, &ctx)?;
        // CSV paths become absolute, so the resolved scenario reruns from the output folder.
        for dist in [Some(&mut resolved.source), resolved.target.as_mut()].into_iter().flatten() {
            if let Distribution::Csv { path, .. } = dist {
                if let Ok(abs) = base.join(&*path).canonicalize() {
                    *path = abs.display().to_string();
                }
            }
        }
        // Metrics.
        let names: Vec<String> = s.report.metrics.clone().unwrap_or_else(|| {
            let v: &[&str] = if target.is_some() { &["mmd", "mass", "n"] } else { &["mass", "n", "mean"] };
            v.iter().map(|m| m.to_string()).collect()
        });
        let bandwidth = match (s.report.mmd_bandwidth, &target) {
            (Some(b), _) => Some(b),
            (None, Some(t)) => Some(median_distance(t)),
            (None, None) => None,
        };
        let mut ms: Vec<Box<dyn Metric>> = Vec::new();
        for (i, m) in names.iter().enumerate() {
            let needs_target = m.starts_with("mmd");
            if needs_target && target.is_none() {
                return Err(c.err(&format!("report.metrics[{i}]"), format!("'{m}' needs a [target]")).into());
            }
            ms.push(match m.as_str() {
                "mmd" | "mmd_normalized" => {
                    Box::new(metrics::MmdMetric::new(bandwidth.unwrap_or(1.0), m == "mmd_normalized"))
                }
                "mass" => Box::new(metrics::Mass),
                "n" => Box::new(metrics::Count),
                "ess" => Box::new(metrics::Ess),
                "moved_dims" => Box::new(metrics::MovedDims::default()),
                _ => Box::new(metrics::Mean),
            });
        }
        resolved.report.metrics = Some(names);
        resolved.report.mmd_bandwidth = bandwidth;
        let reaction = s.reaction.check(&c, source.len())?;
        resolved.reaction.max_particles = Some(reaction.max_particles);
        let mut sim = Simulation::new(
            Particles::from_cloud(&source),
            target.clone().unwrap_or_else(|| Cloud::new_unchecked(d, vec![], vec![])),
            field,
            reaction,
            self.time.clone(),
            seed,
        );
        sim.metrics = ms;
        sim.report_every = s.report.every;
        sim.strict = s.time.strict;
        sim.checkpoint_every = s.report.checkpoint_every;
        Ok(Built { sim, source, target, resolved })
    }
}

/// Median pairwise distance of (up to 1000 of) the cloud's points: the default MMD bandwidth.
pub fn median_distance(c: &Cloud) -> f64 {
    let n = c.len().min(1000);
    let stride = (c.len() / n.max(1)).max(1);
    let idx: Vec<usize> = (0..n).map(|i| i * stride).collect();
    let mut d2 = Vec::with_capacity(n * (n - 1) / 2);
    for (a, &i) in idx.iter().enumerate() {
        for &j in &idx[a + 1..] {
            let v: f64 = c.point(i).iter().zip(c.point(j)).map(|(p, q)| (p - q) * (p - q)).sum();
            d2.push(v);
        }
    }
    if d2.is_empty() {
        return 1.0;
    }
    let mid = d2.len() / 2;
    d2.select_nth_unstable_by(mid, f64::total_cmp);
    let m = d2[mid].sqrt();
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// What building a field needs besides its own spec.
#[derive(Debug, Clone, Copy)]
pub struct FieldCtx<'a> {
    /// Dimension of the scenario.
    pub dim: usize,
    /// The target, if the scenario has one.
    pub target: Option<&'a Cloud>,
    /// Seed of the field's random streams.
    pub seed: u64,
    /// `reaction.conserve` (the default of a field's own `conserve`).
    pub conserve: bool,
    /// The scenario file's folder (files a field names are relative to it).
    pub base: &'a Path,
    /// The source (a map field fitted at build time maps it).
    pub source: &'a Cloud,
    /// The time step `time.dt`.
    pub dt: f64,
}

/// Build a field from its spec, checking every parameter; defaults that depend on the rest of the
/// scenario are written back into `f` (for the resolved scenario).
pub fn build_field(c: &Check, path: &str, f: &mut FieldSpec, cx: &FieldCtx) -> Result<Box<dyn Field>, Error> {
    let key = |k: &str| format!("{path}.{k}");
    let d = cx.dim;
    Ok(match f {
        FieldSpec::Zero => Box::new(SumField { terms: vec![] }),
        FieldSpec::Ou { theta, mean } => {
            c.non_negative(&key("theta"), *theta)?;
            c.dim(&key("mean"), mean, d)?;
            Box::new(analytic::OrnsteinUhlenbeck { theta: *theta, mean: mean.clone() })
        }
        FieldSpec::ConstantGrowth { rate } => {
            c.finite(&key("rate"), &[*rate])?;
            Box::new(analytic::AffineGrowth { rate: *rate, slope: vec![0.0; d] })
        }
        FieldSpec::AffineGrowth { rate, slope } => {
            c.finite(&key("rate"), &[*rate])?;
            c.dim(&key("slope"), slope, d)?;
            Box::new(analytic::AffineGrowth { rate: *rate, slope: slope.clone() })
        }
        FieldSpec::Quadratic { stiffness, center } => {
            c.non_negative(&key("stiffness"), *stiffness)?;
            c.dim(&key("center"), center, d)?;
            Box::new(analytic::QuadraticPotential { stiffness: *stiffness, center: center.clone() })
        }
        FieldSpec::DoubleWell { height, separation, stiffness } => {
            c.non_negative(&key("height"), *height)?;
            c.positive(&key("separation"), *separation)?;
            c.non_negative(&key("stiffness"), *stiffness)?;
            Box::new(analytic::DoubleWell { height: *height, separation: *separation, stiffness: *stiffness })
        }
        FieldSpec::Sum { terms } => {
            if terms.is_empty() {
                return Err(c.err(&key("terms"), "needs at least one field").into());
            }
            let mut fs = Vec::new();
            for (i, t) in terms.iter_mut().enumerate() {
                fs.push(build_field(c, &format!("{path}.terms[{i}]"), t, cx)?);
            }
            Box::new(SumField { terms: fs })
        }
        FieldSpec::SobolevFisher(p) => {
            let target = cx.target.ok_or_else(|| c.err(path, "sobolev_fisher needs a [target]"))?;
            let cfg = p.check(cx.conserve).map_err(c.at(path))?;
            p.conserve = Some(cfg.conserve);
            let field =
                SobolevFisher::new(cfg, d, target, cx.seed).map_err(|e| c.err(path, e.to_string()))?;
            Box::new(field)
        }
        FieldSpec::Wfr(p) => {
            if cx.target.is_none() {
                return Err(c.err(path, "wfr needs a [target]").into());
            }
            let field = p.check(cx.conserve).map_err(c.at(path))?;
            p.conserve = Some(field.growth == Growth::Conserving);
            Box::new(field)
        }
        FieldSpec::Learned { model, start_time } => {
            let file = cx.base.join(&*model);
            let mf = ModelFile::read(&file).map_err(|e| c.err(&key("model"), e))?;
            if mf.model.dim() != d {
                return Err(c
                    .err(
                        &key("model"),
                        format!(
                            "{}: the model is {}-dimensional, the scenario {d}-dimensional",
                            file.display(),
                            mf.model.dim()
                        ),
                    )
                    .into());
            }
            let t0 = match *start_time {
                Some(t) => {
                    c.finite(&key("start_time"), &[t])?;
                    t
                }
                None => mf.data.times.first().copied().unwrap_or(0.0),
            };
            // The resolved scenario names the file absolutely and the start time it used.
            if let Ok(abs) = file.canonicalize() {
                *model = abs.display().to_string();
            }
            *start_time = Some(t0);
            let field = LearnedField::new(mf.model).map_err(|e| c.err(&key("model"), e.to_string()))?;
            Box::new(TimeShifted { inner: field, t0 })
        }
        FieldSpec::Map { model, method, gamma, target_dims, eps, tau, duration } => {
            c.positive(&key("duration"), *duration)?;
            let steps = *duration / cx.dt;
            if (steps - steps.round()).abs() > 1e-9 * steps.max(1.0) {
                return Err(c
                    .err(
                        &key("duration"),
                        format!("must be a multiple of time.dt = {}, got {duration}", cx.dt),
                    )
                    .into());
            }
            let map = match (model.as_deref(), *method) {
                (Some(_), Some(_)) => {
                    return Err(c.err(path, "give either model or method, not both").into())
                }
                (None, None) => {
                    return Err(c
                        .err(path, "needs model (a map.json) or method (fit from source to target)")
                        .into())
                }
                (Some(m), None) => {
                    for (k, v) in [("gamma", gamma), ("target_dims", target_dims), ("eps", eps), ("tau", tau)]
                    {
                        if v.is_some() {
                            return Err(c.err(&key(k), "is only for a map fitted here (method)").into());
                        }
                    }
                    let file = cx.base.join(m);
                    let mf = MapFile::read(&file).map_err(|e| c.err(&key("model"), e.to_string()))?;
                    if mf.dim != d {
                        return Err(c
                            .err(
                                &key("model"),
                                format!(
                                    "{}: the map is {}-dimensional, the scenario {d}-dimensional",
                                    file.display(),
                                    mf.dim
                                ),
                            )
                            .into());
                    }
                    if let Ok(abs) = file.canonicalize() {
                        *model = Some(abs.display().to_string());
                    }
                    mf.model
                }
                (None, Some(method)) => {
                    let target = cx
                        .target
                        .ok_or_else(|| c.err(path, "a map fitted here (method) needs a [target]"))?;
                    let o = MapOptions {
                        method,
                        gamma: *gamma,
                        target_dims: *target_dims,
                        sigma: None,
                        eps: *eps,
                        tau: *tau,
                        force: false,
                        exec: Exec::default(),
                    };
                    // The CLI flag a fit error names becomes this table's key.
                    let (fitted, used) = fit_clouds(cx.source, target, &o).map_err(|e| match e {
                        Error::Config(ce) if ce.file == "<cli>" => {
                            let k = ce.path.trim_start_matches("--").replace('-', "_");
                            let known = ["gamma", "target_dims", "eps", "tau"].contains(&k.as_str());
                            c.err(&if known { key(&k) } else { path.to_string() }, ce.msg)
                        }
                        e => c.err(path, e.to_string()),
                    })?;
                    *eps = Some(used);
                    fitted.map
                }
            };
            Box::new(MapField::new(map, *duration).map_err(|e| c.err(path, e.to_string()))?)
        }
    })
}
