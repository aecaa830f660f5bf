//! Distributed runs (cargo feature `mpi`): `mpirun -n K advreact …` against the single-process
//! run. Needs Open MPI's `mpirun` on the PATH (or `ADVREACT_MPIRUN`); runs as root too.
#![cfg(feature = "mpi")]

mod common;

use common::{bin, repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small USD run: 5000 particles (3 Gram blocks, 5 random-stream chunks, so every rank of 4
/// owns rows), noise, free-mass birth–death (the population changes every step, and with it the
/// split), MMD every step.
const USD: &str = r#"
[meta]
name = "usd_mpi"
seed = 11
[source]
type = "gaussian"
n = 5000
mean = [0.0, 0.0]
std = 0.1
[target]
type = "ring_of_gaussians"
n = 3000
k = 8
radius = 0.75
std = 0.075
mass = 1.5
[field]
type = "sobolev_fisher"
features = 48
bandwidth = 0.2
alpha = 1.0
ridge = 1e-3
[reaction]
type = "birth_death"
[time]
dt = 0.1
steps = 4
noise = 0.05
[report]
every = 1
metrics = ["mmd", "mass", "n", "ess"]
snapshots = 4
snapshot_particles = 500
plots = false
"#;

const OUTPUTS: [&str; 3] = ["metrics.csv", "snapshots.csv", "lineage.csv"];

fn mpirun() -> String {
    std::env::var("ADVREACT_MPIRUN").unwrap_or_else(|_| "mpirun".into())
}

/// `mpirun -n k advreact args…` (one rayon thread per rank), killed after `limit`.
fn run_mpi(k: usize, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut c = Command::new(mpirun());
    c.args(["-n", &k.to_string(), "--oversubscribe"])
        .arg(bin())
        .args(args)
        .current_dir(repo())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child =
        c.spawn().unwrap_or_else(|e| panic!("cannot start {} (install openmpi-bin): {e}", mpirun()));
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "mpirun -n {k} {args:?} still running after {limit:?} (hang)\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_single(args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(repo()).output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn same_files(a: &Path, b: &Path, names: &[&str], what: &str) {
    for f in names {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x.len() > 20, "{what}: {f} is nearly empty");
        assert!(
            x == y,
            "{what}: {f} differs from the single-process run ({} vs {})",
            a.display(),
            b.display()
        );
    }
}

const LIMIT: Duration = Duration::from_secs(300);

/// The USD scenario gives byte-identical metrics, snapshots and lineage on 1, 2 and 4 ranks and
/// in a single process (any thread count).
#[test]
fn usd_is_byte_identical_on_1_2_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "usd.toml", USD);
    let sc = sc.to_str().unwrap();
    let single = dir.path().join("single");
    ok(&run_single(&["run", sc, "--out", single.to_str().unwrap(), "-q"]), "single process");
    let m = std::fs::read_to_string(single.join("metrics.csv")).unwrap();
    assert_eq!(m.lines().count(), 6, "{m}");
    for k in [1, 2, 4] {
        let out = dir.path().join(format!("k{k}"));
        let o = run_mpi(k, &["run", sc, "--out", out.to_str().unwrap(), "-q"], &[], LIMIT);
        ok(&o, &format!("{k} ranks"));
        same_files(&single, &out, &OUTPUTS, &format!("{k} ranks"));
    }
}

/// A WFR flow of the unbalanced Sinkhorn divergence (three OT problems re-solved every step,
/// warm-started): 700 particles and 600 target samples (11 and 10 row blocks of 64, so every rank
/// of 4 owns rows of each pass), free mass, noise; byte-identical on 1, 2 and 4 ranks.
const WFR_SINKHORN: &str = r#"
[meta]
name = "wfr_sinkhorn_mpi"
seed = 5
[source]
type = "gaussian"
n = 700
mean = [0.0, 0.0]
std = 0.1
[target]
type = "ring_of_gaussians"
n = 600
k = 8
radius = 0.75
std = 0.075
mass = 1.5
[field]
type = "wfr"
energy = "sinkhorn"
blur = 0.0025
reach = 1.0
alpha = 1.0
[reaction]
type = "weights"
conserve = false
[time]
dt = 0.2
steps = 3
noise = 0.02
[report]
every = 1
metrics = ["mmd", "mass", "ess"]
mmd_bandwidth = 0.1
snapshots = 3
snapshot_particles = 700
plots = false
"#;

#[test]
fn wfr_sinkhorn_is_byte_identical_on_1_2_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "wfr.toml", WFR_SINKHORN);
    let sc = sc.to_str().unwrap();
    let single = dir.path().join("single");
    ok(&run_single(&["run", sc, "--out", single.to_str().unwrap(), "-q"]), "single process");
    let m = std::fs::read_to_string(single.join("metrics.csv")).unwrap();
    assert_eq!(m.lines().count(), 5, "{m}");
    for k in [1, 2, 4] {
        let out = dir.path().join(format!("k{k}"));
        let o = run_mpi(k, &["run", sc, "--out", out.to_str().unwrap(), "-q"], &[], LIMIT);
        ok(&o, &format!("{k} ranks"));
        same_files(&single, &out, &["metrics.csv", "snapshots.csv"], &format!("{k} ranks"));
    }
}

/// `uot` with its row passes split over 2 and 4 ranks: the same report on stdout and the same
/// files (marginals, potentials, top-k plan, barycentric map) as one process.
#[test]
fn uot_is_byte_identical_on_1_2_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let sc =
        write(dir.path(), "usd.toml", &USD.replace("steps = 4", "steps = 1").replace("n = 5000", "n = 900"));
    let run = dir.path().join("run");
    ok(&run_single(&["run", sc.to_str().unwrap(), "--out", run.to_str().unwrap(), "-q"]), "run");
    let (a, b) = (run.join("source.csv"), run.join("target.csv"));
    let args = |out: &Path| -> Vec<String> {
        [
            "uot",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--eps",
            "0.01",
            "--tau-a",
            "0.5",
            "--tau-b",
            "1",
            "--tol",
            "1e-8",
            "--top-k",
            "3",
            "--barycentric",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let single = dir.path().join("uot1");
    let sa = args(&single);
    let one = run_single(&sa.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&one, "single uot");
    let files = ["report.json", "source.csv", "target.csv", "plan.csv", "barycentric.csv"];
    for k in [2, 4] {
        let out = dir.path().join(format!("uot{k}"));
        let ka = args(&out);
        let o = run_mpi(k, &ka.iter().map(String::as_str).collect::<Vec<_>>(), &[], LIMIT);
        ok(&o, &format!("{k}-rank uot"));
        assert_eq!(String::from_utf8_lossy(&one.stdout), String::from_utf8_lossy(&o.stdout), "{k} ranks");
        same_files(&single, &out, &files, &format!("uot on {k} ranks"));
    }
}

/// A metrics JSON without its wall-clock `seconds` lines (it must hold a `w1`).
fn no_seconds(p: &Path) -> String {
    let t = std::fs::read_to_string(p).unwrap();
    assert!(t.contains("\"w1\""), "{t}");
    t.lines().filter(|l| !l.contains("\"seconds\"")).collect::<Vec<_>>().join("\n")
}

/// `words` followed by `--out OUT`.
fn with_out(words: &[&str], out: &Path) -> Vec<String> {
    words.iter().map(|s| s.to_string()).chain(["--out".into(), out.to_str().unwrap().to_string()]).collect()
}

/// `infer` (held-out interpolation on three_gene_2d, 300 cells per time point) with WOT couplings
/// and with the WFR–Sinkhorn flow, split over 2 and 4 ranks: the same predicted cloud, truth and
/// metrics (all but the wall-clock `seconds`) as one process.
#[test]
fn infer_is_identical_on_2_and_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo().join("../shared/data/three_gene_2d/three_gene_2d.csv");
    let data = data.to_str().unwrap();
    for method in ["wot", "wfr_sinkhorn"] {
        let args = |out: &Path| {
            with_out(&["infer", data, "--holdout", "2", "--method", method, "--subsample", "300"], out)
        };
        let single = dir.path().join(format!("{method}1"));
        let sa = args(&single);
        ok(&run_single(&sa.iter().map(String::as_str).collect::<Vec<_>>()), "single infer");
        for k in [2, 4] {
            let out = dir.path().join(format!("{method}{k}"));
            let ka = args(&out);
            let o = run_mpi(k, &ka.iter().map(String::as_str).collect::<Vec<_>>(), &[], LIMIT);
            ok(&o, &format!("{method} on {k} ranks"));
            same_files(&single, &out, &["prediction.csv", "truth.csv"], &format!("{method} on {k} ranks"));
            assert_eq!(
                no_seconds(&single.join("metrics.json")),
                no_seconds(&out.join("metrics.json")),
                "{method} on {k} ranks"
            );
        }
    }
}

/// `forward` (chained prediction on three_gene_2d, 200 cells per time point) with WOT couplings and
/// the WFR–MMD flow on 2 ranks: the same `forward.json` (all but the wall-clock `seconds`) and the
/// same printed metrics as one process.
#[test]
fn forward_is_identical_on_2_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo().join("../shared/data/three_gene_2d/three_gene_2d.csv");
    let data = data.to_str().unwrap();
    for method in ["wot", "wfr_mmd"] {
        let (one, two) = (dir.path().join(format!("{method}1")), dir.path().join(format!("{method}2")));
        let args = |out: &Path| {
            with_out(&["forward", data, "--method", method, "--subsample", "200", "--max-steps", "60"], out)
        };
        let (a1, a2) = (args(&one), args(&two));
        let o1 = run_single(&a1.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&o1, "single forward");
        let o2 = run_mpi(2, &a2.iter().map(String::as_str).collect::<Vec<_>>(), &[], LIMIT);
        ok(&o2, &format!("{method} forward on 2 ranks"));
        assert_eq!(no_seconds(&one.join("forward.json")), no_seconds(&two.join("forward.json")), "{method}");
        let rows = |o: &Output| {
            String::from_utf8_lossy(&o.stdout).lines().skip(1).map(String::from).collect::<Vec<_>>()
        };
        assert_eq!(rows(&o1), rows(&o2), "{method}: printed metrics");
    }
}

/// A sweep of three variants on two ranks: the same folders and comparison as one process, and
/// one summary table.
#[test]
fn variants_spread_over_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[variants]]\nlabel = \"a\"\n[[variants]]\nlabel = \"b\"\nreaction = {{ type = \"weights\" }}\n\
         [[variants]]\nlabel = \"c\"\nfield = {{ alpha = 0.0 }}\n",
        USD.replace("n = 5000", "n = 1500").replace("n = 3000", "n = 1000")
    );
    let sc = write(dir.path(), "sweep.toml", &text);
    let sc = sc.to_str().unwrap();
    let single = dir.path().join("single");
    ok(&run_single(&["run", sc, "--out", single.to_str().unwrap(), "-q"]), "single process");
    let out = dir.path().join("k2");
    let o = run_mpi(2, &["run", sc, "--out", out.to_str().unwrap(), "-q"], &[], LIMIT);
    ok(&o, "2 ranks");
    for l in ["a", "b", "c"] {
        same_files(&single.join(l), &out.join(l), &OUTPUTS, &format!("variant {l}"));
    }
    same_files(&single, &out, &["comparison.csv"], "comparison");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("variant\tstop").count(), 1, "{stdout}");
    assert!(stdout.contains("3 variants on 2 ranks"), "{stdout}");
}

/// `compare` split over ranks prints what the single process prints.
#[test]
fn compare_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "usd.toml", &USD.replace("steps = 4", "steps = 1"));
    let out = dir.path().join("run");
    ok(&run_single(&["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]), "run");
    let (a, b) = (out.join("source.csv"), out.join("target.csv"));
    let args = ["compare", a.to_str().unwrap(), b.to_str().unwrap(), "--json"];
    let one = run_single(&args);
    ok(&one, "single compare");
    let two = run_mpi(2, &args, &[], LIMIT);
    ok(&two, "2-rank compare");
    assert_eq!(String::from_utf8_lossy(&one.stdout), String::from_utf8_lossy(&two.stdout));
}

/// A rank failing in the middle of a run stops every rank (no hang), with an error naming it.
#[test]
fn a_failing_rank_stops_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "usd.toml", &USD.replace("steps = 4", "steps = 50"));
    let out = dir.path().join("k2");
    let o = run_mpi(
        2,
        &["run", sc.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"],
        &[("ADVREACT_TEST_FAIL_RANK", "1"), ("ADVREACT_TEST_FAIL_CALL", "12")],
        Duration::from_secs(120),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rank 1") && err.contains("injected failure"), "{err}");
    assert!(!out.exists(), "a failed run left an output folder");
}

/// A bad scenario file is one agreed error, printed once, exit code 2 on every rank.
#[test]
fn bad_input_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "bad.toml", &USD.replace("bandwidth = 0.2", "bandwidth = -1.0"));
    let o = run_mpi(2, &["run", sc.to_str().unwrap(), "-q"], &[], LIMIT);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("bandwidth"), "{err}");
}

/// The commands rank 0 runs alone go through the normal dispatcher: `validate` and `plot` on two
/// ranks print once what one process prints (and `plot` redraws the same bytes); `plot` of a
/// folder that is no output folder is one error, exit code 2.
#[test]
fn rank0_commands_print_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = USD.replace("steps = 4", "steps = 1").replace("plots = false", "plots = true");
    let sc = write(dir.path(), "usd.toml", &text);
    let out = dir.path().join("run");
    let (sc, run) = (sc.to_str().unwrap(), out.to_str().unwrap());
    ok(&run_single(&["run", sc, "--out", run, "-q"]), "run");
    let pngs = ["trajectories.png", "metrics.png"];
    let drawn: Vec<Vec<u8>> = pngs.iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    for args in [vec!["validate", sc], vec!["plot", run]] {
        let one = run_single(&args);
        ok(&one, "single process");
        let two = run_mpi(2, &args, &[], LIMIT);
        ok(&two, "2 ranks");
        assert!(!one.stdout.is_empty());
        assert_eq!(String::from_utf8_lossy(&one.stdout), String::from_utf8_lossy(&two.stdout), "{args:?}");
    }
    let redrawn: Vec<Vec<u8>> = pngs.iter().map(|f| std::fs::read(out.join(f)).unwrap()).collect();
    assert!(drawn == redrawn, "plot under mpirun changed the figures");
    let o = run_mpi(2, &["plot", dir.path().to_str().unwrap()], &[], LIMIT);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains(".advreact-output"), "{err}");
}
