//! One command line, consistent (issue 14 §6): `--eps` is ε in cost units for every command and
//! `--eps-rel` / `--tau-rel` the form relative to the mean cost; enum-like flags list their
//! possible values; conflicting flags are refused by the parser; `advreact plot DIR` redraws an
//! output folder's figures byte for byte, and only in the engine's own folders.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn advreact(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run advreact")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn succeeds(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// A usage error: exit code 2, stderr holding every one of `needles`, `out` not written.
fn refused(o: &Output, needles: &[&str], out: &Path) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let e = stderr(o);
    for n in needles {
        assert!(e.contains(n), "expected '{n}' in: {e}");
    }
    assert!(!out.exists(), "{} written", out.display());
}

fn three_gene() -> PathBuf {
    repo().join("../shared/data/three_gene_2d/three_gene_2d.csv")
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `infer`: the default is `--eps-rel 0.05 --tau-rel 10` (the same prediction as passing them);
/// `--eps E --tau T` with the ε and τ that default resolved to (in cost units, from the
/// diagnostics) gives the same prediction, and the params name what was given.
#[test]
fn infer_eps_in_cost_units_or_relative() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_gene();
    let infer = |out: &str, extra: &[&str]| -> serde_json::Value {
        let base = ["infer", data.to_str().unwrap(), "--holdout", "1", "--subsample", "60", "--out", out];
        succeeds(&advreact(&[&base[..], extra].concat(), dir.path()));
        json(&dir.path().join(out).join("metrics.json"))
    };
    let prediction = |out: &str| std::fs::read(dir.path().join(out).join("prediction.csv")).unwrap();
    let default = infer("d", &[]);
    let wot = &default["params"]["wot"];
    assert_eq!((wot["eps_rel"].as_f64(), wot["tau_rel"].as_f64()), (Some(0.05), Some(10.0)), "{wot}");
    assert!(wot.get("eps").is_none() && wot.get("tau").is_none(), "{wot}");
    infer("r", &["--eps-rel", "0.05", "--tau-rel", "10"]);
    assert_eq!(prediction("d"), prediction("r"));

    let diag = &default["result"]["info"]["diagnostics"];
    let (eps, tau) = (diag["eps"].as_f64().unwrap(), diag["tau"].as_f64().unwrap());
    assert!((tau / eps - 200.0).abs() < 1e-9, "τ/ε = 10/0.05 with one mean cost: {diag}");
    let abs = infer("a", &["--eps", &eps.to_string(), "--tau", &tau.to_string()]);
    let wot = &abs["params"]["wot"];
    assert_eq!((wot["eps"].as_f64(), wot["tau"].as_f64()), (Some(eps), Some(tau)), "{wot}");
    assert!(wot.get("eps_rel").is_none() && wot.get("tau_rel").is_none(), "{wot}");
    assert_eq!(prediction("d"), prediction("a"));
    // A different absolute ε is a different solve.
    let other = infer("o", &["--eps", &(4.0 * eps).to_string()]);
    assert_eq!(other["result"]["info"]["diagnostics"]["eps"].as_f64(), Some(4.0 * eps));

    let d = data.to_str().unwrap();
    for (args, needles) in [
        (
            vec!["--eps", "1", "--eps-rel", "0.1"],
            vec!["--eps <EPS>", "--eps-rel <EPS_REL>", "cannot be used"],
        ),
        (vec!["--tau", "1", "--tau-rel", "2"], vec!["--tau <TAU>", "--tau-rel <TAU_REL>", "cannot be used"]),
        (vec!["--eps", "0"], vec!["--eps", "must be finite and > 0, got 0"]),
        (vec!["--tau-rel", "inf"], vec!["--tau-rel", "must be finite and > 0, got inf"]),
    ] {
        let o = advreact(&[&["infer", d, "--holdout", "1", "--out", "bad"], &args[..]].concat(), dir.path());
        refused(&o, &needles, &dir.path().join("bad"));
    }
    // forward and fates take the same flags.
    for cmd in [vec!["forward", d], vec!["fates", d, "--from", "0", "--to", "1"]] {
        let o =
            advreact(&[&cmd[..], &["--eps", "1", "--eps-rel", "0.1", "--out", "bad"]].concat(), dir.path());
        refused(&o, &["cannot be used"], &dir.path().join("bad"));
    }
}

/// Two small clouds for `uot`.
fn uot_inputs(dir: &Path) {
    std::fs::write(dir.join("a.csv"), "x1,x2\n0,0\n1,0\n0,1\n3,3\n").unwrap();
    std::fs::write(dir.join("b.csv"), "x1,x2,w\n0.1,0,1\n1,0.2,2\n0.2,1,1\n").unwrap();
}

/// `uot --eps-rel r`: ε = r × the mean cost under the normalised product of A and B (halved
/// with `--cost half_sqeuclidean`), the same solve as `--eps` with that value.
#[test]
fn uot_eps_rel_is_relative_to_the_mean_cost() {
    let dir = tempfile::tempdir().unwrap();
    uot_inputs(dir.path());
    let a: [[f64; 2]; 4] = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]];
    let (b, wb) = ([[0.1, 0.0], [1.0, 0.2], [0.2, 1.0]], [1.0, 2.0, 1.0]);
    let mut mean = 0.0;
    for p in &a {
        for (q, w) in b.iter().zip(wb) {
            mean += w * ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2));
        }
    }
    mean /= 4.0 * 4.0;
    let uot = |out: &str, extra: &[&str]| -> serde_json::Value {
        let base = ["uot", "a.csv", "b.csv", "--tau-a", "1", "--tau-b", "1", "--out", out];
        let o = advreact(&[&base[..], extra].concat(), dir.path());
        succeeds(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    for (cost, c) in [("sqeuclidean", 1.0), ("half_sqeuclidean", 0.5)] {
        let rel = uot(&format!("r_{cost}"), &["--eps-rel", "0.1", "--cost", cost]);
        let eps = rel["eps"].as_f64().unwrap();
        assert!((eps - 0.1 * c * mean).abs() <= 1e-12 * eps, "{cost}: ε {eps} vs 0.1 × {c} × {mean}");
        let abs = uot(&format!("a_{cost}"), &["--eps", &eps.to_string(), "--cost", cost]);
        assert_eq!(rel, abs, "{cost}");
    }
    let o = advreact(&["uot", "a.csv", "b.csv", "--eps-rel", "-1", "--out", "bad"], dir.path());
    refused(&o, &["--eps-rel", "must be > 0, got -1"], &dir.path().join("bad"));
    let o = advreact(&["uot", "a.csv", "b.csv", "--out", "bad"], dir.path());
    refused(&o, &["--eps <EPS>"], &dir.path().join("bad"));
}

/// A bad value of an enum-like flag is refused by the parser, listing the possible values.
#[test]
fn enum_flags_list_their_values() {
    let dir = tempfile::tempdir().unwrap();
    uot_inputs(dir.path());
    let d = three_gene();
    let d = d.to_str().unwrap();
    let uot = ["uot", "a.csv", "b.csv", "--eps", "1", "--out", "bad"];
    for (args, values) in [
        ([&uot[..], &["--penalty", "l2"]].concat(), vec!["kl", "tv"]),
        ([&uot[..], &["--cost", "euclidean"]].concat(), vec!["sqeuclidean", "half_sqeuclidean"]),
        (
            vec!["infer", d, "--holdout", "1", "--method", "ot", "--out", "bad"],
            vec!["wot", "usd", "wfr_mmd", "wfr_sinkhorn"],
        ),
        (vec!["forward", d, "--method", "WOT", "--out", "bad"], vec!["wot", "wfr_sinkhorn"]),
        (vec!["results", "inferences", "--out", "bad"], vec!["inference"]),
        (vec!["results", "inference", "--methods", "wot,nope", "--out", "bad"], vec!["wfr_mmd"]),
        (vec!["bench", "uot"], vec!["uot-iter", "sinkhorn-div-annealed"]),
    ] {
        let o = advreact(&args, dir.path());
        let mut needles = vec!["invalid value", "possible values"];
        needles.extend(values);
        refused(&o, &needles, &dir.path().join("bad"));
    }
    // The accepted spellings still work.
    let o = advreact(
        &[&uot[..5], &["--penalty", "tv", "--tau-a", "1", "--tau-b", "1", "--out", "tv"]].concat(),
        dir.path(),
    );
    succeeds(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["marginal_a"]["type"], "tv", "{r}");
}

/// `--partial-mass` finds its own TV penalties: with --tau-a, --tau-b or --penalty it is refused
/// (it used to replace them silently).
#[test]
fn partial_mass_conflicts_with_penalties() {
    let dir = tempfile::tempdir().unwrap();
    uot_inputs(dir.path());
    let base = ["uot", "a.csv", "b.csv", "--eps", "0.5", "--partial-mass", "2", "--out", "bad"];
    for extra in [["--tau-a", "1"], ["--tau-b", "1"], ["--penalty", "kl"]] {
        let o = advreact(&[&base[..], &extra[..]].concat(), dir.path());
        refused(
            &o,
            &["--partial-mass <PARTIAL_MASS>", "cannot be used with", extra[0]],
            &dir.path().join("bad"),
        );
    }
    let o = advreact(&[&base[..7], &["--out", "ok"]].concat(), dir.path());
    succeeds(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((r["transported_mass"].as_f64().unwrap() - 2.0).abs() < 1e-5, "{r}");
}

/// Every PNG under `dir`, with its bytes.
fn pngs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(pngs(&p));
        } else if p.extension().is_some_and(|x| x == "png") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// Every file name under `dir` (hidden ones included).
fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.to_string_lossy().into_owned());
        if p.is_dir() {
            out.extend(names(&p));
        }
    }
    out.sort();
    out
}

/// `advreact plot DIR` redraws, byte for byte, what `run` (a single run, a scenario with variants
/// and one of its variants) and `fates` drew, deleted first; it leaves no temporary file and
/// changes nothing else. A folder without the marker of a run or fates output is refused.
#[test]
fn plot_redraws_the_figures_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let sc = |name: &str| repo().join("scenarios").join(name).to_string_lossy().into_owned();
    succeeds(&advreact(&["run", &sc("ou_relaxation.toml"), "--steps", "4", "--out", "ou", "-q"], t));
    succeeds(&advreact(&["run", &sc("mass_growth.toml"), "--steps", "4", "--out", "mg", "-q"], t));
    let d = three_gene();
    let fates =
        ["fates", d.to_str().unwrap(), "--from", "0", "--to", "1", "--subsample", "60", "--clusters", "3"];
    succeeds(&advreact(&[&fates[..], &["--out", "fa"]].concat(), t));
    let variant =
        std::fs::read_dir(t.join("mg")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_dir()).unwrap();
    for (folder, expected) in [
        (t.join("ou"), vec!["metrics.png", "trajectories.png"]),
        (t.join("mg"), vec!["comparison.png", "metrics.png", "trajectories.png"]),
        (variant.clone(), vec!["metrics.png", "trajectories.png"]),
        (t.join("fa"), vec!["fates.png"]),
    ] {
        let before = pngs(&folder);
        let mut found: Vec<String> =
            before.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        found.sort();
        found.dedup();
        assert_eq!(found, expected, "{}", folder.display());
        let files = names(&folder);
        for (p, _) in &before {
            std::fs::remove_file(p).unwrap();
        }
        let o = advreact(&["plot", folder.to_str().unwrap()], t);
        succeeds(&o);
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), before.len(), "one line per figure");
        assert_eq!(pngs(&folder), before, "{}: redrawn figures differ", folder.display());
        assert_eq!(names(&folder), files, "{}: other files appeared or went", folder.display());
    }
    // Not ours: a plain folder, a folder of another command, a missing folder.
    std::fs::create_dir(t.join("plain")).unwrap();
    std::fs::write(t.join("plain/metrics.csv"), "step,t,mass\n0,0,1\n").unwrap();
    uot_inputs(t);
    succeeds(&advreact(&["uot", "a.csv", "b.csv", "--eps", "1", "--normalize", "--out", "u"], t));
    for folder in ["plain", "u", "missing"] {
        let before = if t.join(folder).exists() { names(&t.join(folder)) } else { vec![] };
        let o = advreact(&["plot", folder], t);
        assert_eq!(o.status.code(), Some(2), "{folder}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(folder) && e.contains(".advreact-output"), "{e}");
        let after = if t.join(folder).exists() { names(&t.join(folder)) } else { vec![] };
        assert_eq!(before, after, "{folder} touched");
    }
}
