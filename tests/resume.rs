//! Checkpoint and resume: a run killed with SIGKILL midway (or stopped with Ctrl-C or SIGTERM)
//! and resumed ends with every file byte-identical to an uninterrupted run into a folder of
//! another name (summary.json apart from its wall-clock `timings`), and so does a scenario file
//! with variants (a reduced copy of the default scenario) resumed from its top folder.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// Every file under `dir` (hidden ones included) → its bytes; summary.json without `timings`.
fn tree_without_timings(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = tree(dir);
    for (p, bytes) in out.iter_mut() {
        if p.file_name().is_some_and(|f| f == "summary.json") {
            let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            v.as_object_mut().unwrap().remove("timings");
            *bytes = v.to_string().into_bytes();
        }
    }
    out
}

/// `a` and `b` hold the same files with the same bytes.
fn assert_same_tree(a: &Path, b: &Path, what: &str) {
    let (ta, tb) = (tree_without_timings(a), tree_without_timings(b));
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ta), names(&tb), "{what}: different files");
    for (f, bytes) in &ta {
        assert!(*bytes == tb[f], "{what}: {} differs", f.display());
    }
}

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
        !cut.join("summary.json").exists() || signal != "-KILL",
        "run finished before the kill; make it longer"
    );
    if signal == "-KILL" {
        assert!(!status.success());
        assert!(!cut.exists(), "a killed run must not leave a complete-looking folder");
        assert!(partial.join("checkpoint.bin").exists());
    } else {
        // Ctrl-C or SIGTERM: a finished folder with stop reason `interrupted` and a checkpoint.
        let summary: serde_json::Value = serde_json::from_slice(&read(&cut, "summary.json")).unwrap();
        assert_eq!(summary["stop_reason"], "interrupted", "{summary}");
        assert!(summary["steps"].as_u64().unwrap() < 200);
        assert!(cut.join("checkpoint.bin").exists());
        assert_eq!(status.code(), Some(1));
    }
    let o = Command::new(bin()).args(["resume", cut.to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "resume: {}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&full, &cut, signal);
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

/// SIGTERM (what `timeout` and Slurm send) is treated like Ctrl-C: exit 1, stop reason
/// `interrupted`, a checkpoint, and `resume` completes the run to the byte.
#[test]
fn sigterm_then_resume_is_byte_identical() {
    interrupted_run_resumes_identically("-TERM", SCENARIO);
}

/// The shipped default scenario (three variants), with fewer particles and steps and a
/// checkpoint every 5 steps.
fn reduced_default_scenario() -> String {
    let text = std::fs::read_to_string(repo().join("scenarios/gaussian_to_ring.toml")).unwrap();
    let reduced = text
        .replace("n = 4000", "n = 800")
        .replace("steps = 400", "steps = 60")
        .replace("plots = true", "plots = true\ncheckpoint_every = 5");
    assert_eq!(reduced.matches("n = 800").count(), 2, "the default scenario changed; update this test");
    assert!(reduced.contains("steps = 60") && reduced.contains("checkpoint_every"));
    reduced
}

/// Run the default scenario's variants into `cut`, stop it with `signal` at a checkpoint of the
/// second variant, `resume cut`: the whole tree (three variant folders with their PNGs, the
/// comparison files, the top folder's state) is byte-identical to an uninterrupted run into
/// `full`.
fn sweep_resumes_identically(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("g.toml");
    std::fs::write(&sc, reduced_default_scenario()).unwrap();
    let full = dir.path().join("full");
    let o = Command::new(bin())
        .args(["run", sc.to_str().unwrap(), "-q", "--out", full.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["comparison.csv", "comparison.png", "variants.json", "usd_birth_death/trajectories.png"] {
        assert!(full.join(f).exists(), "missing {f}");
    }

    let cut = dir.path().join("cut");
    let top_partial = dir.path().join(".cut.partial");
    let ck = top_partial.join(".usd_weights.partial/checkpoint.bin");
    let mut child = Command::new(bin())
        .args(["run", sc.to_str().unwrap(), "-q", "--out", cut.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(&ck, Duration::from_secs(120)), "no checkpoint of the second variant appeared");
    let st = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    if signal == "-KILL" {
        assert!(ck.exists(), "the variant finished before the kill; make it longer");
        assert!(!cut.exists(), "a killed run must not leave a complete-looking folder");
        assert!(top_partial.join("sobolev_descent/summary.json").exists());
    } else {
        assert_eq!(status.code(), Some(1));
        let v = cut.join("usd_weights");
        let summary: serde_json::Value = serde_json::from_slice(&read(&v, "summary.json")).unwrap();
        assert_eq!(summary["stop_reason"], "interrupted", "{summary}");
        assert!(summary["steps"].as_u64().unwrap() < 60);
        assert!(v.join("checkpoint.bin").exists());
        assert!(!cut.join("comparison.csv").exists() && !cut.join("usd_birth_death").exists());
    }
    let o = Command::new(bin()).args(["resume", cut.to_str().unwrap(), "-q"]).output().unwrap();
    assert!(o.status.success(), "resume: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("comparison: "));
    assert_same_tree(&full, &cut, signal);
    assert!(!top_partial.exists());
    let o = Command::new(bin()).args(["resume", cut.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "resuming a complete run is an error");
}

#[test]
fn default_scenario_variants_killed_then_resumed_are_byte_identical() {
    sweep_resumes_identically("-KILL");
}

#[test]
fn default_scenario_variants_sigterm_then_resumed_are_byte_identical() {
    sweep_resumes_identically("-TERM");
}

/// Plot titles are the scenario's `meta.name`, not the output folder's name: a run into
/// `output/<name>` (the default) and one into `--out elsewhere` draw the same PNGs.
#[test]
fn plot_titles_do_not_depend_on_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("s.toml");
    let text = SCENARIO.replace("n = 100000", "n = 300").replace("plots = false", "plots = true");
    std::fs::write(&sc, text).unwrap();
    for out in [None, Some("elsewhere")] {
        let mut c = Command::new(bin());
        c.args(["run", "s.toml", "-q", "--steps", "20"]).current_dir(dir.path());
        if let Some(o) = out {
            c.args(["--out", o]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (dir.path().join("output/resumable"), dir.path().join("elsewhere"));
    for f in ["trajectories.png", "metrics.png"] {
        assert!(read(&a, f) == read(&b, f), "{f} depends on the folder name");
    }
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

/// A checkpoint of the hand-written format before the versioned one (magic `ADVRCKP2`), or a
/// corrupt one, in an interrupted run's folder: `resume` refuses it in one line naming the file
/// and leaves the folder as it was.
#[test]
fn old_or_corrupt_checkpoints_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let sc = repo().join("scenarios/ou_relaxation.toml");
    let args = ["run", sc.to_str().unwrap(), "--steps", "4", "--out", "ou", "-q"];
    let o = Command::new(bin()).args(args).current_dir(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("ou");
    for (bytes, why) in [
        (
            &b"ADVRCKP2\x01\0\0\0\0\0\0\0"[..],
            "written by an older version of advreact (format ADVRCKP2); re-run",
        ),
        (&b"ADVRCKPT\x01\0\0\0\x04"[..], "truncated"),
    ] {
        std::fs::write(out.join("checkpoint.bin"), bytes).unwrap();
        let before = tree(&out);
        let o = Command::new(bin()).args(["resume", "ou"]).current_dir(dir.path()).output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("checkpoint.bin: ") && e.contains(why), "{e}");
        assert_eq!(tree(&out), before, "the folder changed");
    }
}
