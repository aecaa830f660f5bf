//! `advreact map` end to end: the folder (map.json, mapped.csv with ids, report.json,
//! displacement.png, arrows.png in 2-D), `--apply` reproducing mapped.csv byte for byte, the
//! ℓ1 map moving only the shifted coordinate, `--tau`'s per-point rescaling, one-line errors
//! naming the key, and the output-folder rules of every command (foreign folders and other
//! commands' folders refused and untouched; own folder replaced).

mod common;
use common::bin;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn advreact(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run advreact")
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// One line on stderr, exit 2, containing every `want`.
fn refused(o: &Output, want: &[&str]) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    for w in want {
        assert!(e.contains(w), "expected '{w}' in: {e}");
    }
}

/// `n` points on a deterministic pseudo-random grid in `d` dimensions, coordinate 1 shifted by
/// `shift`; with ids `c0, c1, …` when `ids`.
fn csv(n: usize, d: usize, shift: f64, seed: u64, ids: bool) -> String {
    let mut s = seed;
    let mut u = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut head: Vec<String> = if ids { vec!["id".into()] } else { vec![] };
    head.extend((1..=d).map(|k| format!("x{k}")));
    let mut out = head.join(",") + "\n";
    for i in 0..n {
        let mut row: Vec<String> = if ids { vec![format!("c{i}")] } else { vec![] };
        row.extend((0..d).map(|k| format!("{}", u() + if k == 0 { shift } else { 0.0 })));
        out += &(row.join(",") + "\n");
    }
    out
}

/// `displacement.frequency_per_dim` of a report.
fn frequency(r: &Value) -> Vec<f64> {
    r["displacement"]["frequency_per_dim"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn two_d_folder_and_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("s.csv"), csv(150, 2, 0.0, 1, true)).unwrap();
    std::fs::write(cwd.join("t.csv"), csv(160, 2, 1.5, 2, false)).unwrap();
    std::fs::write(cwd.join("new.csv"), csv(30, 2, 0.2, 3, false)).unwrap();
    ok(&advreact(&["map", "s.csv", "t.csv", "--out", "o"], cwd));
    let o = cwd.join("o");
    for f in ["map.json", "mapped.csv", "report.json", "displacement.png", "arrows.png", ".advreact-output"] {
        assert!(o.join(f).is_file(), "{f} missing");
    }
    let mapped = std::fs::read_to_string(o.join("mapped.csv")).unwrap();
    assert!(mapped.starts_with("id,x1,x2\nc0,"), "{}", &mapped[..40]);
    assert_eq!(mapped.lines().count(), 151);
    let r = report(&o);
    assert_eq!(r["method"], "entropic");
    assert_eq!(r["gamma"], 0.0);
    assert!(r["feasibility"]["sinkhorn_divergence"].as_f64().unwrap().is_finite());
    assert!(r["feasibility"]["w1"].as_f64().unwrap() < 0.5, "{}", r["feasibility"]);
    assert!(r["displacement"]["delta"].as_f64().unwrap() > 0.0);
    assert_eq!(r["displacement"]["per_point_dims"].as_array().unwrap().len(), 150);
    // The mean displacement of coordinate 1 is about the shift.
    let mean_x1 = r["displacement"]["mean_abs_per_dim"][0].as_f64().unwrap();
    assert!((mean_x1 - 1.5).abs() < 0.3, "{mean_x1}");
    // --apply on the source gives mapped.csv byte for byte; on new points, a file of theirs.
    ok(&advreact(&["map", "--apply", "o/map.json", "s.csv", "--out", "again.csv"], cwd));
    assert_eq!(std::fs::read_to_string(cwd.join("again.csv")).unwrap(), mapped);
    ok(&advreact(&["map", "--apply", "o/map.json", "new.csv", "--out", "f.csv"], cwd));
    let f = std::fs::read_to_string(cwd.join("f.csv")).unwrap();
    assert!(f.starts_with("x1,x2\n") && f.lines().count() == 31);
    // An existing file is replaced only with --force.
    let e = advreact(&["map", "--apply", "o/map.json", "new.csv", "--out", "f.csv"], cwd);
    refused(&e, &["--out", "exists", "--force"]);
    ok(&advreact(&["map", "--apply", "o/map.json", "new.csv", "--out", "f.csv", "--force"], cwd));
    // Rerunning into its own folder replaces it.
    ok(&advreact(&["map", "s.csv", "t.csv", "--out", "o", "--tau", "2"], cwd));
    let r = report(&o);
    let resc = r["unbalanced"]["source_rescaling"].as_array().unwrap();
    assert_eq!(resc.len(), 150);
    assert!(resc.iter().all(|v| v.as_f64().unwrap() > 0.0));
    assert_eq!(r["unbalanced"]["source_transported_mass"].as_array().unwrap().len(), 150);
}

/// d = 5, the target shifted in coordinate 1 only (other coordinates: the same points): the ℓ1
/// map moves coordinate 1 of every point and no other coordinate of any point.
#[test]
fn sparse_l1_moves_only_the_shifted_coordinate() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let s = csv(120, 5, 0.0, 7, false);
    std::fs::write(cwd.join("s.csv"), &s).unwrap();
    std::fs::write(cwd.join("t.csv"), shifted(&s, &[0], 1.0)).unwrap();
    ok(&advreact(
        &["map", "s.csv", "t.csv", "--method", "sparse-l1", "--gamma", "0.3", "--eps", "0.1", "--out", "o"],
        cwd,
    ));
    let r = report(&cwd.join("o"));
    assert_eq!(r["gamma"], 0.3);
    assert_eq!(r["displacement"]["mean_dims"], 1.0, "{}", r["displacement"]);
    assert_eq!(frequency(&r), vec![1.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(!cwd.join("o/arrows.png").exists(), "arrows are drawn in 2-D only");
    // The plain entropic map blurs every coordinate.
    ok(&advreact(&["map", "s.csv", "t.csv", "--eps", "0.1", "--out", "e"], cwd));
    let r = report(&cwd.join("e"));
    assert!(r["displacement"]["mean_dims"].as_f64().unwrap() > 2.0, "{}", r["displacement"]["mean_dims"]);
}

#[test]
fn errors_are_one_line_and_folders_are_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("s.csv"), csv(20, 2, 0.0, 1, false)).unwrap();
    std::fs::write(cwd.join("t.csv"), csv(20, 2, 1.0, 2, false)).unwrap();
    std::fs::write(cwd.join("t3.csv"), csv(20, 3, 1.0, 2, false)).unwrap();
    refused(
        &advreact(&["map", "s.csv", "t.csv", "--gamma", "1", "--out", "o"], cwd),
        &["--gamma", "sparse-l1"],
    );
    refused(
        &advreact(&["map", "s.csv", "t.csv", "--method", "sparse-l1", "--out", "o"], cwd),
        &["--gamma", "required"],
    );
    refused(&advreact(&["map", "s.csv", "t3.csv", "--out", "o"], cwd), &["TARGET", "3-D"]);
    refused(&advreact(&["map", "s.csv", "t.csv", "--tau", "-1", "--out", "o"], cwd), &["--tau"]);
    assert!(!cwd.join("o").exists());
    // A map file of another format names the file and the key.
    std::fs::write(cwd.join("bad.json"), "{\"format\": 7, \"dim\": 2}").unwrap();
    refused(
        &advreact(&["map", "--apply", "bad.json", "s.csv", "--out", "f.csv"], cwd),
        &["bad.json", "format", "7"],
    );
    std::fs::write(cwd.join("bad.json"), "{\"format\": 1, \"dim\": 2, \"model\": {\"method\": \"nope\"}}")
        .unwrap();
    refused(
        &advreact(&["map", "--apply", "bad.json", "s.csv", "--out", "f.csv"], cwd),
        &["bad.json", "model"],
    );
    assert!(!cwd.join("f.csv").exists());
    // A folder of foreign files, and another command's folder, are refused and untouched.
    std::fs::create_dir(cwd.join("mine")).unwrap();
    std::fs::write(cwd.join("mine/notes.txt"), "precious").unwrap();
    refused(&advreact(&["map", "s.csv", "t.csv", "--out", "mine"], cwd), &["mine", "--out"]);
    assert_eq!(std::fs::read_to_string(cwd.join("mine/notes.txt")).unwrap(), "precious");
    ok(&advreact(&["uot", "s.csv", "t.csv", "--eps", "0.5", "--out", "u"], cwd));
    refused(&advreact(&["map", "s.csv", "t.csv", "--out", "u"], cwd), &["u", "advreact uot"]);
    assert!(cwd.join("u/report.json").exists());
}

/// The points of a `csv` text (no ids) with coordinates `moved` shifted by `shift`.
fn shifted(src: &str, moved: &[usize], shift: f64) -> String {
    src.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string() + "\n";
            }
            let mut v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            for &k in moved {
                v[k] += shift;
            }
            v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(",") + "\n"
        })
        .collect()
}

/// d = 4, an independent target sample with coordinates 1 and 2 shifted by 1.5 (the γ = 0 map
/// moves all four coordinates a little): `--method sparse-l0 --target-dims 2` reaches a mean
/// dimensionality within 2 ± 0.5 on those coordinates (each moved for > 75 % of the points, the
/// others for < 50 %), reports its γ rounds, writes
/// a format-2 `sparse` model, and `--apply` reproduces mapped.csv to the byte (so to the bit:
/// the numbers are written shortest-round-trip).
#[test]
fn sparse_l0_target_dims_and_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("s.csv"), csv(120, 4, 0.0, 11, true)).unwrap();
    std::fs::write(cwd.join("t.csv"), shifted(&csv(120, 4, 0.0, 12, false), &[0, 1], 1.5)).unwrap();
    ok(&advreact(
        &[
            "map",
            "s.csv",
            "t.csv",
            "--method",
            "sparse-l0",
            "--target-dims",
            "2",
            "--eps",
            "0.2",
            "--out",
            "o",
        ],
        cwd,
    ));
    let r = report(&cwd.join("o"));
    assert_eq!(r["method"], "sparse-l0");
    assert_eq!(r["target_dims"], 2.0);
    assert!(r["gamma"].as_f64().unwrap() > 0.0, "{}", r["gamma"]);
    assert!(r["sigma"].as_f64().unwrap() > 0.0);
    let dims = r["displacement"]["mean_dims"].as_f64().unwrap();
    assert!((dims - 2.0).abs() <= 0.5, "{dims}: {}", r["gamma_rounds"]);
    let freq = frequency(&r);
    assert!(freq[0] > 0.75 && freq[1] > 0.75 && freq[2] < 0.5 && freq[3] < 0.5, "{freq:?}");
    let rounds = r["gamma_rounds"].as_array().unwrap();
    assert!(rounds.len() >= 2 && rounds[0]["gamma"] == 0.0, "{rounds:?}");
    for k in ["gamma", "dims", "divergence", "iterations", "stop"] {
        assert!(rounds.iter().all(|x| !x[k].is_null()), "{k} missing: {rounds:?}");
    }
    assert!(r["warnings"].as_array().unwrap().iter().all(|w| !w.as_str().unwrap().contains("not reached")));
    for k in ["feasibility", "seconds", "solve", "eps", "cost"] {
        assert!(!r[k].is_null(), "{k}");
    }
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("o/map.json")).unwrap()).unwrap();
    assert_eq!((file["format"].as_u64(), file["model"]["method"].as_str()), (Some(2), Some("sparse")));
    let mapped = std::fs::read_to_string(cwd.join("o/mapped.csv")).unwrap();
    assert!(mapped.starts_with("id,x1,x2,x3,x4\nc0,"));
    ok(&advreact(&["map", "--apply", "o/map.json", "s.csv", "--out", "again.csv"], cwd));
    assert_eq!(std::fs::read_to_string(cwd.join("again.csv")).unwrap(), mapped);
    // A fixed γ instead of a target.
    ok(&advreact(
        &["map", "s.csv", "t.csv", "--method", "sparse-l0", "--gamma", "0", "--eps", "0.2", "--out", "g"],
        cwd,
    ));
    let r = report(&cwd.join("g"));
    assert_eq!(r["gamma"], 0.0);
    assert!(r["displacement"]["mean_dims"].as_f64().unwrap() > 2.5, "γ = 0 moves every coordinate a little");
}

/// sparse-l0's flags: one-line errors naming the flag (the parser's own for --gamma with
/// --target-dims), nothing written; format-1 entropic files still load; a format-1 file cannot
/// hold a sparse model.
#[test]
fn sparse_l0_bad_input_and_old_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("s.csv"), csv(30, 3, 0.0, 1, false)).unwrap();
    std::fs::write(cwd.join("t.csv"), csv(30, 3, 1.0, 2, false)).unwrap();
    let l0 = |extra: &[&str]| {
        advreact(&[&["map", "s.csv", "t.csv", "--method", "sparse-l0", "--out", "o"], extra].concat(), cwd)
    };
    let both = l0(&["--gamma", "1", "--target-dims", "2"]);
    assert_eq!(both.status.code(), Some(2));
    let first = String::from_utf8_lossy(&both.stderr).lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("--gamma") && first.contains("--target-dims") && first.contains("cannot be used"),
        "{first}"
    );
    refused(&l0(&["--target-dims", "4"]), &["--target-dims", "≤ the dimension 3", "got 4"]);
    refused(&l0(&["--target-dims", "0"]), &["--target-dims", "≥ 1", "got 0"]);
    refused(&l0(&[]), &["--gamma", "--target-dims", "required"]);
    refused(&l0(&["--gamma", "1", "--sigma", "0"]), &["--sigma", "> 0"]);
    refused(
        &advreact(&["map", "s.csv", "t.csv", "--target-dims", "1", "--out", "o"], cwd),
        &["--target-dims", "sparse-l0"],
    );
    assert!(!cwd.join("o").exists());
    // An entropic map written as format 1 (the previous version) applies unchanged.
    ok(&advreact(&["map", "s.csv", "t.csv", "--eps", "0.5", "--out", "e"], cwd));
    let text = std::fs::read_to_string(cwd.join("e/map.json")).unwrap();
    assert!(text.contains("\"format\":2"));
    std::fs::write(cwd.join("old.json"), text.replace("\"format\":2", "\"format\":1")).unwrap();
    ok(&advreact(&["map", "--apply", "old.json", "s.csv", "--out", "old.csv"], cwd));
    let mapped = std::fs::read_to_string(cwd.join("e/mapped.csv")).unwrap();
    assert_eq!(std::fs::read_to_string(cwd.join("old.csv")).unwrap(), mapped);
    ok(&l0(&["--gamma", "0.1", "--eps", "0.5"]));
    let text = std::fs::read_to_string(cwd.join("o/map.json")).unwrap();
    std::fs::write(cwd.join("old.json"), text.replace("\"format\":2", "\"format\":1")).unwrap();
    refused(
        &advreact(&["map", "--apply", "old.json", "s.csv", "--out", "x.csv", "--force"], cwd),
        &["old.json", "model.method", "format"],
    );
}
