//! The command line end to end: every scenario runs, thread count does not change a byte, bad
//! input gives a one-line error naming file and key with a non-zero exit and no output folder.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn advreact(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run advreact")
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Every file in scenarios/ runs (a few steps) and produces a complete folder.
#[test]
fn every_scenario_runs() {
    let dir = tmp();
    let mut n = 0;
    for e in std::fs::read_dir(repo().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|s| s.to_str()) != Some("toml") {
            continue;
        }
        let out = dir.path().join(p.file_stem().unwrap());
        let o = advreact(
            &["run", p.to_str().unwrap(), "--steps", "4", "--out", out.to_str().unwrap(), "-q"],
            &repo(),
        );
        assert!(o.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
        // Single runs have summary.json at the top; variant files one per variant folder.
        let summaries: Vec<PathBuf> =
            walk(&out).into_iter().filter(|f| f.ends_with("summary.json")).collect();
        assert!(!summaries.is_empty(), "{}: no summary.json", p.display());
        for s in summaries {
            let run = s.parent().unwrap();
            for f in ["metrics.csv", "snapshots.csv", "lineage.csv", "scenario.resolved.toml"] {
                assert!(run.join(f).exists(), "{}: missing {f}", run.display());
            }
            // The resolved scenario reruns as is.
            let o = advreact(&["validate", run.join("scenario.resolved.toml").to_str().unwrap()], &repo());
            assert!(
                o.status.success(),
                "{}: resolved scenario invalid: {}",
                run.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        n += 1;
    }
    assert!(n >= 2, "expected scenarios, found {n}");
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let q = e.path();
            if q.is_dir() {
                out.extend(walk(&q));
            } else {
                out.push(q);
            }
        }
    }
    out
}

/// Same scenario, 1 and 2 threads: byte-identical metrics.csv and snapshots.csv (noise and
/// birth–death branching both draw random numbers).
#[test]
fn thread_count_does_not_change_a_byte() {
    let dir = tmp();
    for (sc, steps) in [
        ("scenarios/ou_relaxation.toml", "60"),
        ("scenarios/mass_growth.toml", "60"),
        ("scenarios/gaussian_to_ring.toml", "6"),
        ("scenarios/wfr_sinkhorn_ring.toml", "4"),
    ] {
        let mut files = vec![];
        for threads in ["1", "2"] {
            let out = dir.path().join(format!("t{threads}"));
            let o = advreact(
                &["run", sc, "--threads", threads, "--steps", steps, "--out", out.to_str().unwrap(), "-q"],
                &repo(),
            );
            assert!(o.status.success(), "{sc}: {}", String::from_utf8_lossy(&o.stderr));
            let mut got = vec![];
            for f in walk(&out) {
                let name = f.file_name().unwrap().to_str().unwrap().to_string();
                if name == "metrics.csv" || name == "snapshots.csv" || name == "lineage.csv" {
                    got.push((f.strip_prefix(&out).unwrap().to_path_buf(), std::fs::read(&f).unwrap()));
                }
            }
            got.sort();
            files.push(got);
        }
        assert!(files[0].len() >= 2);
        assert_eq!(files[0].len(), files[1].len());
        for ((p1, a), (p2, b)) in files[0].iter().zip(&files[1]) {
            assert_eq!(p1, p2);
            assert!(a == b, "{sc}: {} differs between 1 and 2 threads", p1.display());
        }
    }
}

const BASE: &str = r#"
[meta]
name = "bad"
seed = 1
[source]
type = "gaussian"
n = 50
mean = [0.0, 0.0]
std = 0.1
[field]
type = "ou"
theta = 1.0
mean = [0.0, 0.0]
[time]
dt = 0.1
steps = 5
"#;

/// Writes a scenario, runs it, and checks: exit code 2, one line on stderr naming the file and
/// `expect`, no output folder.
fn rejects(name: &str, text: &str, expect: &[&str]) {
    let dir = tmp();
    let file = dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let o = advreact(&["run", file.to_str().unwrap(), "-q"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: not one line: {err}");
    assert!(err.contains(file.to_str().unwrap()), "{name}: file not named: {err}");
    for e in expect {
        assert!(err.contains(e), "{name}: '{e}' not in: {err}");
    }
    assert!(!dir.path().join("output").exists(), "{name}: left an output folder");
    let o = advreact(&["validate", file.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2), "{name}: validate accepted it");
}

#[test]
fn bad_scenarios_are_one_line_errors() {
    rejects(
        "unknown_key",
        &BASE.replace("std = 0.1", "std = 0.1\nstdev = 2"),
        &["source.stdev", "unknown field"],
    );
    rejects("unknown_top", &format!("{BASE}\n[extra]\nx = 1\n"), &["extra", "unknown field"]);
    rejects(
        "mean_dim",
        &BASE.replace("theta = 1.0\nmean = [0.0, 0.0]", "theta = 1.0\nmean = [0.0, 0.0, 1.0]"),
        &["field.mean", "3 entries", "2-dimensional"],
    );
    rejects("neg_dt", &BASE.replace("dt = 0.1", "dt = -0.1"), &["time.dt", "must be > 0"]);
    rejects(
        "neg_bandwidth",
        &format!("{BASE}\n[target]\ntype = \"gaussian\"\nn = 10\nmean = [1.0, 0.0]\nstd = 0.1\n[report]\nmmd_bandwidth = -1.0\n"),
        &["report.mmd_bandwidth", "must be > 0, got -1"],
    );
    rejects("bad_type", &BASE.replace("type = \"ou\"", "type = \"ouu\""), &["field", "unknown variant"]);
    rejects("syntax", &BASE.replace("dt = 0.1", "dt = = 0.1"), &["line"]);
    let csv = |body: &str| {
        BASE.replace(
            "type = \"gaussian\"\nn = 50\nmean = [0.0, 0.0]\nstd = 0.1",
            &format!("type = \"csv\"\npath = \"{body}\""),
        )
    };
    rejects("missing_csv", &csv("nowhere.csv"), &["source.path", "no such file"]);
}

#[test]
fn bad_csv_files_are_one_line_errors() {
    for (name, body, expect) in [
        ("nan", "time,x1,x2\n0,1,2\n0,nan,1\n", "line 3"),
        ("ragged", "time,x1,x2\n0,1,2\n0,1\n", "line 3"),
        ("text", "time,x1,x2\n0,1,abc\n", "line 2"),
    ] {
        let dir = tmp();
        std::fs::write(dir.path().join("data.csv"), body).unwrap();
        let sc = BASE.replace(
            "type = \"gaussian\"\nn = 50\nmean = [0.0, 0.0]\nstd = 0.1",
            "type = \"csv\"\npath = \"data.csv\"\ntime = 0",
        );
        let file = dir.path().join("s.toml");
        std::fs::write(&file, sc).unwrap();
        let o = advreact(&["run", file.to_str().unwrap(), "-q"], dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        for e in ["s.toml", "source.path", "data.csv", expect] {
            assert!(err.contains(e), "{name}: '{e}' not in {err}");
        }
        assert!(!dir.path().join("output").exists());
        // compare names the data file too.
        let o = advreact(&["compare", "data.csv", "data.csv"], dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2));
        assert!(err.contains("data.csv") && err.contains(expect), "{name}: {err}");
    }
}

#[test]
fn compare_prints_mmd_of_two_clouds() {
    let dir = tmp();
    std::fs::write(dir.path().join("a.csv"), "x1,x2,w\n0,0,1\n1,0,1\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "x1,x2,w\n0,0,2\n").unwrap();
    let o = advreact(&["compare", "a.csv", "b.csv", "--bandwidth", "1", "--json"], dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // MMD² = (1 + 1 + 2e^{-1/2}) + 4 − 2·2·(1 + e^{-1/2}) = 2 − 2 e^{-1/2}.
    let want = 2.0 - 2.0 * (-0.5f64).exp();
    assert!((v["mmd2"].as_f64().unwrap() - want).abs() < 1e-14);
    assert_eq!(v["mass_a"].as_f64().unwrap(), 2.0);
    assert_eq!(v["mass_b"].as_f64().unwrap(), 2.0);
}

/// `uot`: report JSON on stdout, marginals on disk (the far point is destroyed), plan exports,
/// and a loud non-zero exit when the tolerance is not met.
#[test]
fn uot_command_reports_and_writes_marginals() {
    let dir = tmp();
    std::fs::write(dir.path().join("a.csv"), "x1,x2\n0,0\n1,0\n0,1\n6,6\n").unwrap();
    std::fs::write(dir.path().join("b.csv"), "x1,x2,w\n0.1,0,1\n1,0.2,1\n0.2,1,1\n").unwrap();
    let o = advreact(
        &[
            "uot",
            "a.csv",
            "b.csv",
            "--eps",
            "0.01",
            "--tau-a",
            "1",
            "--tau-b",
            "1",
            "--top-k",
            "2",
            "--barycentric",
            "--out",
            "u",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["converged"], true);
    assert!(r["marginal_error_a"].as_f64().unwrap() <= 1e-9);
    for f in ["report.json", "source.csv", "target.csv", "plan.csv", "barycentric.csv"] {
        assert!(dir.path().join("u").join(f).exists(), "missing {f}");
    }
    // The point at (6, 6) (cost ≥ 50 ≫ τ) keeps essentially none of its mass; the others most.
    let src = std::fs::read_to_string(dir.path().join("u/source.csv")).unwrap();
    let kept: Vec<f64> = src.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
    assert!(kept[3] < 1e-10, "outlier kept {}", kept[3]);
    assert!(kept[..3].iter().all(|k| *k > 0.9), "{kept:?}");
    // Too few iterations: outputs written, but exit 1 with a warning naming the errors.
    let o = advreact(
        &[
            "uot",
            "a.csv",
            "b.csv",
            "--eps",
            "0.001",
            "--tau-a",
            "1",
            "--tau-b",
            "1",
            "--max-iter",
            "2",
            "--out",
            "v",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not converged"));
    // Bad parameters: exit 2, nothing written.
    let o = advreact(&["uot", "a.csv", "b.csv", "--eps", "-1", "--out", "w"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--eps"));
    assert!(!dir.path().join("w").exists());
}

/// `bench`: one JSON line per problem with a positive time and a finite check value. `uot-iter`'s
/// ε is 0.05 × the median of the whole squared-distance matrix (n, m ≤ 2000), recomputed here from
/// the same clouds; an unknown problem is a usage error listing every known one.
#[test]
fn bench_uot_iter_and_sinkhorn_div_print_json() {
    let dir = tmp();
    let bench = |args: &[&str]| -> serde_json::Value {
        let o = advreact(&[&["bench"], args].concat(), dir.path());
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["median_s"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["check"].as_f64().unwrap().is_finite(), "{v}");
        v
    };
    let v = bench(&["uot-iter", "--n", "300", "--m", "300", "--d", "2", "--reps", "1"]);
    assert_eq!(v["problem"], "uot-iter");
    assert_eq!(v["eps_from"], "full");
    assert_eq!(v["iters"], 10);
    assert!(v["pairs_per_s"].as_f64().unwrap() > 0.0);
    // The same clouds as the documented problem (seed 0): the analysis stream of role 0 gives the
    // source points N(0, I), that of role 1 the target points N(0.5·1, I).
    let cloud = |shift: f64, role: u64| -> Vec<f64> {
        use rand_distr::{Distribution, StandardNormal};
        let mut r = advreact::rng::stream(0, advreact::rng::Purpose::Analysis, role, 0);
        (0..300 * 2).map(|_| Distribution::<f64>::sample(&StandardNormal, &mut r) + shift).collect()
    };
    let (x, y) = (cloud(0.0, 0), cloud(0.5, 1));
    let mut c: Vec<f64> = x
        .chunks(2)
        .flat_map(|p| y.chunks(2).map(move |q| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)))
        .collect();
    c.sort_by(f64::total_cmp);
    let median = 0.5 * (c[c.len() / 2 - 1] + c[c.len() / 2]);
    let eps = v["eps"].as_f64().unwrap();
    assert!((eps - 0.05 * median).abs() <= 1e-12 * eps, "eps {eps} vs 0.05 × median {median}");

    let v = bench(&["sinkhorn-div", "--n", "200", "--m", "200", "--d", "2", "--reps", "1"]);
    assert_eq!(v["problem"], "sinkhorn-div");
    assert_eq!(v["converged"], true, "{v}");
    assert!(v["check"].as_f64().unwrap() > 0.0, "S(α, β) of two distinct clouds is > 0: {v}");
    assert!(v["grad_norm"].as_f64().unwrap().is_finite());

    let o = advreact(&["bench", "nope"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for p in ["mmd", "usd-step", "uot-iter", "uot-solve", "sinkhorn-div", "sinkhorn-div-annealed"] {
        assert!(err.contains(p), "{err}");
    }
}
