//! Shared test helpers: fixtures, simulation builders, the CLI binary.
#![allow(dead_code)]

use advreact::field::Field;
use advreact::metrics::{Mass, Metric};
use advreact::reaction::{Reaction, ReactionKind};
use advreact::stepper::{Simulation, TimeCfg};
use advreact::{Cloud, Particles};
use std::path::PathBuf;

/// `../shared/fixtures/<name>` parsed as JSON.
pub fn fixture(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// A list of rows → particle-contiguous array.
pub fn rows(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().flat_map(f64s).collect()
}

/// A simulation with no target and the mass metric.
#[allow(clippy::too_many_arguments)]
pub fn sim(
    source: &Cloud,
    field: Box<dyn Field>,
    kind: ReactionKind,
    conserve: bool,
    dt: f64,
    steps: usize,
    noise: f64,
    seed: u64,
) -> Simulation {
    let mut s = Simulation::new(
        Particles::from_cloud(source),
        Cloud::new(source.dim, vec![], vec![]).unwrap(),
        field,
        Reaction { kind, conserve, ..Default::default() },
        TimeCfg { dt, steps, noise, max_displacement: None },
        seed,
    );
    s.metrics = vec![Box::new(Mass) as Box<dyn Metric>];
    s.report_every = steps.max(1);
    s
}

/// Path of the built `advreact` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_advreact"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively, hidden ones included) → its bytes.
pub fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
