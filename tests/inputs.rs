//! Inputs of the data commands (issue 13, points 5, 7 and 8): columns are never guessed, R-style
//! quoted files read, string labels and ids carried to every per-cell output, silent coercions
//! are errors or warnings, and unit-weight snapshots work in `uot`.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn advreact(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run advreact")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, one line on stderr containing every `needle`, and no `out` folder.
fn fails_with(o: &Output, needles: &[&str], out: Option<&Path>) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    for n in needles {
        assert!(e.contains(n), "'{n}' not in: {e}");
    }
    if let Some(out) = out {
        assert!(!out.exists(), "{} written on error", out.display());
    }
}

fn succeeds(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Rows `(time, x1, x2)`: 12 cells at t = 0, 1, 2, on a deterministic spiral (no RNG).
fn cells() -> Vec<(usize, f64, f64, f64)> {
    let mut v = Vec::new();
    for t in 0..3 {
        for i in 0..12 {
            let a = i as f64 * 0.7 + t as f64;
            v.push((t, t as f64 + a.cos() * (1.0 + 0.1 * i as f64), a.sin(), 0.3 * i as f64));
        }
    }
    v
}

/// `time,x1,x2,label,g` with `id` first: the file of the issue (labels are strings, one with a
/// comma, quoted).
fn write_labelled(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("cells.csv");
    let mut s = String::from("id,time,x1,x2,label,g\n");
    for (k, (t, x, y, g)) in cells().into_iter().enumerate() {
        let label = if k % 3 == 0 { "\"stem, early\"" } else { "erythroid" };
        s += &format!("cell{k},{t},{x},{y},{label},{g}\n");
    }
    std::fs::write(&p, s).unwrap();
    p
}

/// The issue: `label` and `g` were read as coordinates x3, x4 by `fates` and `infer`. Now each
/// names the column and the fix; nothing is written.
#[test]
fn columns_without_a_role_are_errors_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_labelled(dir.path());
    let f = f.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    for args in [
        vec!["fates", f, "--from", "0", "--to", "2", "--out", o],
        vec!["infer", f, "--holdout", "1", "--out", o],
        vec!["forward", f, "--out", o],
        vec!["compare", f, f, "--time-a", "0", "--time-b", "1"],
        vec!["uot", f, f, "--time-a", "0", "--time-b", "1", "--eps", "1", "--out", o],
    ] {
        let r = advreact(&args, dir.path());
        fails_with(
            &r,
            &["cells.csv", "line 1", "column 'label' has no role", "--ignore-columns label"],
            Some(&out),
        );
    }
    // Naming only one of them is not enough: the other is still named.
    let r = advreact(
        &["fates", f, "--from", "0", "--to", "2", "--out", o, "--label-column", "label"],
        dir.path(),
    );
    fails_with(&r, &["column 'g' has no role"], Some(&out));
    // A named column that does not exist is an error too.
    let r =
        advreact(&["fates", f, "--from", "0", "--to", "2", "--out", o, "--ignore-columns", "gg"], dir.path());
    fails_with(&r, &["no ignored column 'gg'"], Some(&out));
}

/// With the roles given, fates uses x1, x2 only (clusters.csv has 2 coordinates), clusters are
/// named by the label strings, and the ids reach descendants.csv and ancestors.csv row by row.
#[test]
fn fates_string_labels_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_labelled(dir.path());
    let out = dir.path().join("o");
    let r = advreact(
        &[
            "fates",
            f.to_str().unwrap(),
            "--from",
            "0",
            "--to",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--label-column",
            "label",
            "--growth-column",
            "g",
        ],
        dir.path(),
    );
    // --growth-column is not a fates option: clap refuses it (exit 2) rather than ignoring it.
    assert_eq!(r.status.code(), Some(2));
    let r = advreact(
        &[
            "fates",
            f.to_str().unwrap(),
            "--from",
            "0",
            "--to",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--label-column",
            "label",
            "--ignore-columns",
            "g",
        ],
        dir.path(),
    );
    succeeds(&r);
    let clusters = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert_eq!(clusters.lines().next().unwrap(), "time,cluster,cells,mass,x1,x2");
    assert_eq!(clusters.lines().count(), 1 + 4, "{clusters}"); // 2 clusters × 2 times
    assert!(clusters.contains("0,\"stem, early\",4,4,"), "{clusters}");
    assert!(clusters.contains("2,erythroid,8,8,"), "{clusters}");
    let desc = std::fs::read_to_string(out.join("descendants.csv")).unwrap();
    let mut lines = desc.lines();
    assert_eq!(lines.next().unwrap(), "cell,id,cluster,x1,x2,growth,to_erythroid,\"to_stem, early\"");
    for (i, l) in lines.enumerate() {
        assert!(l.starts_with(&format!("{i},cell{i},")), "{l}");
    }
    let anc = std::fs::read_to_string(out.join("ancestors.csv")).unwrap();
    let mut lines = anc.lines();
    assert_eq!(lines.next().unwrap(), "cell,id,cluster,x1,x2,from_erythroid,\"from_stem, early\"");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 12);
    for (j, l) in rows.iter().enumerate() {
        assert!(l.starts_with(&format!("{j},cell{},", 24 + j)), "{l}");
    }
}

/// R's write.csv: quoted header, a row-name column named "", quoted numbers and strings. It
/// reads exactly as the plain file does.
#[test]
fn quoted_r_files_read_like_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (mut plain, mut r) = (String::from("time,x1,x2\n"), String::from("\"\",\"time\",\"x1\",\"x2\"\n"));
    for (k, (t, x, y, _)) in cells().into_iter().enumerate() {
        plain += &format!("{t},{x},{y}\n");
        r += &format!("\"{}\",{t},\"{x}\",{y}\n", k + 1);
    }
    std::fs::write(dir.path().join("plain.csv"), plain).unwrap();
    std::fs::write(dir.path().join("r.csv"), r).unwrap();
    let run = |f: &str| {
        let o = advreact(&["compare", f, f, "--time-a", "0", "--time-b", "2", "--json"], dir.path());
        succeeds(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let (a, b) = (run("plain.csv"), run("r.csv"));
    assert!(a.contains("\"mmd\":"), "{a}");
    assert_eq!(a, b);
}

/// `--columns` names the coordinates (any names) and their order; the command's coordinates are
/// exactly those. A scenario csv source takes the same as keys.
#[test]
fn columns_option_and_scenario_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("t,pc2,pc1,batch\n");
    let mut swapped = String::from("time,x1,x2\n");
    for (t, x, y, _) in cells() {
        s += &format!("{t},{y},{x},b{t}\n");
        swapped += &format!("{t},{x},{y}\n");
    }
    std::fs::write(dir.path().join("pcs.csv"), s).unwrap();
    std::fs::write(dir.path().join("xy.csv"), swapped).unwrap();
    let cmp = |args: &[&str]| {
        let o = advreact(args, dir.path());
        succeeds(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let a = cmp(&[
        "compare",
        "pcs.csv",
        "pcs.csv",
        "--time-a",
        "0",
        "--time-b",
        "1",
        "--columns",
        "pc1,pc2",
        "--ignore-columns",
        "batch",
        "--json",
    ]);
    let b = cmp(&["compare", "xy.csv", "xy.csv", "--time-a", "0", "--time-b", "1", "--json"]);
    assert_eq!(a, b);
    let o = advreact(&["compare", "pcs.csv", "pcs.csv", "--time", "0", "--columns", "pc1,pc1"], dir.path());
    fails_with(&o, &["--columns names 'pc1' twice"], None);
    // Scenario csv source with the keys.
    let scenario = |extra: &str| {
        format!(
            "[meta]\nname = \"from_pcs\"\n[source]\ntype = \"csv\"\npath = \"pcs.csv\"\ntime = 0\n{extra}\n\
             [field]\ntype = \"zero\"\n[reaction]\ntype = \"none\"\n[time]\ndt = 0.1\nsteps = 2\n"
        )
    };
    std::fs::write(
        dir.path().join("ok.toml"),
        scenario("columns = [\"pc1\", \"pc2\"]\nignore_columns = [\"batch\"]"),
    )
    .unwrap();
    succeeds(&advreact(&["validate", "ok.toml"], dir.path()));
    std::fs::write(dir.path().join("bad.toml"), scenario("columns = [\"pc1\", \"pc2\"]")).unwrap();
    let o = advreact(&["validate", "bad.toml"], dir.path());
    fails_with(
        &o,
        &["bad.toml", "source.path", "column 'batch' has no role", "source.ignore_columns batch"],
        None,
    );
}

/// Point 7: a csv source asking for more rows than there are was silently cut to the rows.
#[test]
fn scenario_csv_n_above_the_rows_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("time,x1\n");
    for i in 0..5 {
        s += &format!("0,{i}\n");
    }
    std::fs::write(dir.path().join("d.csv"), s).unwrap();
    let toml = |n: usize| {
        format!(
            "[meta]\nname = \"n\"\n[source]\ntype = \"csv\"\npath = \"d.csv\"\ntime = 0\nn = {n}\n\
             [field]\ntype = \"zero\"\n[reaction]\ntype = \"none\"\n[time]\ndt = 0.1\nsteps = 2\n"
        )
    };
    std::fs::write(dir.path().join("s.toml"), toml(5000)).unwrap();
    let o = advreact(&["validate", "s.toml"], dir.path());
    fails_with(&o, &["s.toml", "source.n", "asks for 5000 rows but d.csv has 5 rows at time 0"], None);
    std::fs::write(dir.path().join("s.toml"), toml(5)).unwrap();
    succeeds(&advreact(&["validate", "s.toml"], dir.path()));
}

/// `infer` carries ids: truth.csv has the held-out cells' ids in order; WOT's prediction.csv
/// names the (source, target) pair of each point, flows the source cell.
#[test]
fn infer_carries_ids() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_labelled(dir.path());
    let f = f.to_str().unwrap();
    for (method, head) in [("wot", "source_id,target_id,time,x1,x2,w"), ("usd", "source_id,time,x1,x2,w")] {
        let out = dir.path().join(method);
        let o = advreact(
            &[
                "infer",
                f,
                "--holdout",
                "1",
                "--method",
                method,
                "--ignore-columns",
                "label,g",
                "--out",
                out.to_str().unwrap(),
                "--max-steps",
                "50",
            ],
            dir.path(),
        );
        succeeds(&o);
        let truth = std::fs::read_to_string(out.join("truth.csv")).unwrap();
        let ids: Vec<&str> = truth.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
        let want: Vec<String> = (12..24).map(|k| format!("cell{k}")).collect();
        assert_eq!(ids, want);
        let pred = std::fs::read_to_string(out.join("prediction.csv")).unwrap();
        assert_eq!(pred.lines().next().unwrap(), head);
        for l in pred.lines().skip(1) {
            let v: Vec<&str> = l.split(',').collect();
            let src: usize = v[0].strip_prefix("cell").unwrap().parse().unwrap();
            assert!(src < 12, "{l}");
            if method == "wot" {
                let tgt: usize = v[1].strip_prefix("cell").unwrap().parse().unwrap();
                assert!((24..36).contains(&tgt), "{l}");
            }
        }
        if method == "usd" {
            let src: Vec<&str> = pred.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
            let want: Vec<String> = (0..12).map(|k| format!("cell{k}")).collect();
            assert_eq!(src, want);
        }
    }
}

/// `uot` carries ids to source.csv, target.csv and plan.csv, and couples two times of one file.
#[test]
fn uot_ids_and_two_times_of_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_labelled(dir.path());
    let f = f.to_str().unwrap();
    let out = dir.path().join("o");
    let o = advreact(
        &[
            "uot",
            f,
            f,
            "--time-a",
            "0",
            "--time-b",
            "2",
            "--eps",
            "0.5",
            "--ignore-columns",
            "label,g",
            "--top-k",
            "2",
            "--barycentric",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    succeeds(&o);
    let bary = std::fs::read_to_string(out.join("barycentric.csv")).unwrap();
    assert!(bary.starts_with("i,id,t1,t2\n0,cell0,"), "{bary}");
    assert_eq!(bary.lines().count(), 13);
    let src = std::fs::read_to_string(out.join("source.csv")).unwrap();
    assert!(src.starts_with("i,id,w,row_mass,kept,f\n0,cell0,"), "{src}");
    let tgt = std::fs::read_to_string(out.join("target.csv")).unwrap();
    assert!(tgt.starts_with("j,id,w,col_mass,reached,g\n0,cell24,"), "{tgt}");
    let plan = std::fs::read_to_string(out.join("plan.csv")).unwrap();
    let mut lines = plan.lines();
    assert_eq!(lines.next().unwrap(), "i,j,id_a,id_b,pi");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 24);
    for l in rows {
        let v: Vec<&str> = l.split(',').collect();
        let (i, j): (usize, usize) = (v[0].parse().unwrap(), v[1].parse().unwrap());
        assert_eq!((v[2], v[3]), (format!("cell{i}").as_str(), format!("cell{}", 24 + j).as_str()));
    }
    // --top-k above the targets: every entry, and a warning saying so.
    let o = advreact(
        &[
            "uot",
            f,
            f,
            "--time-a",
            "0",
            "--time-b",
            "2",
            "--eps",
            "0.5",
            "--ignore-columns",
            "label,g",
            "--top-k",
            "13",
        ],
        dir.path(),
    );
    succeeds(&o);
    assert!(stderr(&o).contains("warning: --top-k 13: B has 12 points"), "{}", stderr(&o));
    // --time and --time-a together: a conflict, not one silently winning.
    let o = advreact(&["uot", f, f, "--time", "0", "--time-a", "1", "--eps", "1"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// Point 7: count flags that were silently coerced are errors naming the flag.
#[test]
fn silent_coercions_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_labelled(dir.path());
    let f = f.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let ig = ["--ignore-columns", "label,g"];
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["bench", "mmd", "--n", "10", "--m", "10", "--reps", "0"], vec!["--reps", "must be ≥ 1, got 0"]),
        (vec!["infer", f, "--holdout", "1", "--subsample", "1", "--out", o], vec!["--subsample", "≥ 2"]),
        (vec!["infer", f, "--holdout", "1", "--max-steps", "0", "--out", o], vec!["--max-steps", "≥ 1"]),
        (
            vec![
                "uot",
                f,
                f,
                "--time-a",
                "0",
                "--time-b",
                "1",
                "--eps",
                "1",
                "--top-k",
                "3",
                "--threshold",
                "0.1",
                "--out",
                o,
            ],
            vec!["--top-k", "--threshold", "cannot be used with"],
        ),
        (
            vec!["uot", f, f, "--time-a", "0", "--time-b", "1", "--eps", "1", "--top-k", "0", "--out", o],
            vec!["--top-k", "must be ≥ 1, got 0"],
        ),
        (
            vec![
                "uot",
                f,
                f,
                "--time-a",
                "0",
                "--time-b",
                "1",
                "--eps",
                "1",
                "--threshold",
                "1e3",
                "--out",
                o,
            ],
            vec!["--threshold", "no plan entry is ≥ 1000", "largest entry"],
        ),
        (
            vec!["fates", f, "--from", "0", "--to", "2", "--clusters", "0", "--out", o],
            vec!["--clusters", "≥ 1, got 0"],
        ),
        (
            vec!["fates", f, "--from", "0", "--to", "2", "--clusters", "100000", "--out", o],
            vec!["--clusters", "100000 clusters for 12 cells at time 0"],
        ),
    ];
    for (mut args, needles) in cases {
        if args[0] != "bench" {
            args.extend(ig);
        }
        let r = advreact(&args, dir.path());
        let e = stderr(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {e}");
        for n in needles {
            assert!(e.contains(n), "{args:?}: '{n}' not in {e}");
        }
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
}

/// Point 7: k-means clusters that end with no cells are a warning naming them.
#[test]
fn empty_clusters_are_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("two.csv"), "time,x1\n0,0\n0,0\n0,10\n0,10\n1,0\n1,0\n1,10\n1,10\n")
        .unwrap();
    let o = advreact(
        &["fates", "two.csv", "--from", "0", "--to", "1", "--clusters", "3", "--out", "o"],
        dir.path(),
    );
    succeeds(&o);
    let e = stderr(&o);
    assert!(e.contains("warning: --clusters 3: 1 of the clusters at time 0 ended with no cells (A3)"), "{e}");
    assert!(e.contains("at time 1 ended with no cells (B3)"), "{e}");
    let o = advreact(
        &["fates", "two.csv", "--from", "0", "--to", "1", "--clusters", "2", "--out", "o"],
        dir.path(),
    );
    succeeds(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

/// Point 8 on real unit-weight snapshots (three_gene_2d: 400 cells at t = 0, 442 at t = 1).
fn three_gene() -> String {
    repo().join("../shared/data/three_gene_2d/three_gene_2d.csv").to_str().unwrap().to_string()
}

/// Balanced `uot` on unequal masses: the error states the cause and the three fixes; with
/// `--normalize` it solves (both masses 1).
#[test]
fn balanced_uot_on_unit_weights_explains_and_normalize_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let d = three_gene();
    let base = ["uot", &d, &d, "--time-a", "0", "--time-b", "1", "--eps", "0.5", "--out", "o"];
    let o = advreact(&base, dir.path());
    fails_with(
        &o,
        &["needs equal masses, got 400 (A) and 442 (B)", "--normalize", "--tau-a/--tau-b", "--partial-mass"],
        Some(&dir.path().join("o")),
    );
    let mut args = base.to_vec();
    args.push("--normalize");
    let o = advreact(&args, dir.path());
    succeeds(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["mass_a", "mass_b", "transported_mass"] {
        assert!((r[k].as_f64().unwrap() - 1.0).abs() < 1e-8, "{k}: {r}");
    }
    // compare --normalize: both masses 1.
    let o =
        advreact(&["compare", &d, &d, "--time-a", "0", "--time-b", "1", "--normalize", "--json"], dir.path());
    succeeds(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        (r["mass_a"].as_f64().unwrap() - 1.0).abs() < 1e-12
            && (r["mass_b"].as_f64().unwrap() - 1.0).abs() < 1e-12
    );
    assert_eq!((r["n_a"].as_u64(), r["n_b"].as_u64()), (Some(400), Some(442)));
}

/// `--partial-mass 300` between 400 and 442 unit-weight cells failed for every mass with a floor
/// (31722) above both masses. It now moves 300 cells' worth of mass.
#[test]
fn partial_mass_on_unit_weight_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let d = three_gene();
    let o = advreact(
        &[
            "uot",
            &d,
            &d,
            "--time-a",
            "0",
            "--time-b",
            "1",
            "--eps",
            "0.1",
            "--partial-mass",
            "300",
            "--out",
            "o",
        ],
        dir.path(),
    );
    succeeds(&o);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = r["transported_mass"].as_f64().unwrap();
    assert!((m - 300.0).abs() <= 1e-6 * 300.0 + 1e-9, "{m}");
    assert_eq!((r["mass_a"].as_f64(), r["mass_b"].as_f64()), (Some(400.0), Some(442.0)));
    // source.csv's row masses sum to the transported mass; destroyed mass is the rest of A.
    let src = std::fs::read_to_string(dir.path().join("o/source.csv")).unwrap();
    let rows: f64 = src.lines().skip(1).map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap()).sum();
    assert!((rows - m).abs() < 1e-9 * m, "{rows} vs {m}");
    assert!((r["destroyed_mass_a"].as_f64().unwrap() - (400.0 - m)).abs() < 1e-6);
    // Below the τ → 0 floor: the error gives the floor in the caller's units (cells), a number
    // between M and both masses, and the fix.
    let o = advreact(
        &[
            "uot",
            &d,
            &d,
            "--time-a",
            "0",
            "--time-b",
            "1",
            "--eps",
            "0.1",
            "--partial-mass",
            "1",
            "--out",
            "p",
        ],
        dir.path(),
    );
    fails_with(
        &o,
        &["mass 1 is below the smallest reachable at this eps (", "a smaller --eps"],
        Some(&dir.path().join("p")),
    );
    let e = stderr(&o);
    let floor: f64 = e.split("at this eps (").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(floor > 1.0 && floor < 400.0, "{e}");
}
