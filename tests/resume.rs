//! Checkpoint and resume: a run killed with SIGKILL midway (or stopped with Ctrl-C) and resumed
//! ends with byte-identical metrics.csv, snapshots.csv and lineage.csv to an uninterrupted run.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
[meta]
name = "resumable"
seed = 42
[source]
type = "gaussian"
n = 100000
mean = [0.0, 0.0, 0.0]
std = 0.5
[field]
type = "sum"
terms = [
  { type = "ou", theta = 1.0, mean = [1.0, 0.0, 0.0] },
  { type = "affine_growth", rate = 0.1, slope = [0.5, 0.0, 0.0] },
]
[reaction]
type = "birth_death"
conserve = true
[time]
dt = 0.01
steps = 200
noise = 0.3
[report]
every = 5
metrics = ["mass", "n", "ess", "mean"]
snapshots = 20
snapshot_particles = 300
checkpoint_every = 10
plots = false
"#;

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
}

fn wait_for(p: &Path, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn interrupted_run_resumes_identically(signal: &str, scenario: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("s.toml");
    std::fs::write(&sc, scenario).unwrap();
    let full = dir.path().join("full");
    let o = Command::new(bin())
        .args(["run", sc.to_str().unwrap(), "-q", "--out", full.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let cut = dir.path().join("cut");
    let partial = dir.path().join(".cut.partial");
    let mut child = Command::new(bin())
        .args(["run", sc.to_str().unwrap(), "-q", "--out", cut.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(&partial.join("checkpoint.bin"), Duration::from_secs(60)), "no checkpoint appeared");
    // Let it run past a few checkpoints, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    let st = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(
        !cut.join("summary.json").exists() || signal == "-INT",
        "run finished before the kill; make it longer"
    );
    if signal == "-KILL" {
        assert!(!status.success());
        assert!(!cut.exists(), "a killed run must not leave a complete-looking folder");
        assert!(partial.join("checkpoint.bin").exists());
    } else {
        // Ctrl-C: a finished folder with stop reason `interrupted` and a checkpoint.
        let summary: serde_json::Value = serde_json::from_slice(&read(&cut, "summary.json")).unwrap();
        assert_eq!(summary["stop_reason"], "interrupted", "{summary}");
        assert!(summary["steps"].as_u64().unwrap() < 200);
        assert!(cut.join("checkpoint.bin").exists());
        assert_eq!(status.code(), Some(1));
    }
    let o = Command::new(bin()).args(["resume", cut.to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "resume: {}", String::from_utf8_lossy(&o.stderr));
    for f in ["metrics.csv", "snapshots.csv", "lineage.csv"] {
        assert!(read(&full, f) == read(&cut, f), "{signal}: {f} differs after resume");
    }
    assert!(!cut.join("checkpoint.bin").exists());
    assert!(!partial.exists());
    let o = Command::new(bin()).args(["resume", cut.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "resuming a complete run is an error");
}

#[test]
fn sigkill_then_resume_is_byte_identical() {
    interrupted_run_resumes_identically("-KILL", SCENARIO);
}

#[test]
fn ctrl_c_then_resume_is_byte_identical() {
    interrupted_run_resumes_identically("-INT", SCENARIO);
}

/// WFR–Sinkhorn warm-starts each step's solves from the previous potentials: the checkpoint must
/// carry them for the resumed run to match to the byte.
const WFR: &str = r#"
[meta]
name = "wfr_resumable"
seed = 9
[source]
type = "gaussian"
n = 400
mean = [0.0, 0.0]
std = 0.1
[target]
type = "ring_of_gaussians"
n = 400
k = 4
radius = 0.5
std = 0.05
mass = 1.3
[field]
type = "wfr"
energy = "sinkhorn"
blur = 0.01
reach = 1.0
tol = 1e-5
[reaction]
type = "weights"
[time]
dt = 0.2
steps = 200
noise = 0.01
[report]
every = 5
metrics = ["mmd", "mass"]
mmd_bandwidth = 0.2
snapshots = 10
snapshot_particles = 200
checkpoint_every = 3
plots = false
"#;

#[test]
fn wfr_sinkhorn_resumes_identically() {
    interrupted_run_resumes_identically("-KILL", WFR);
}
