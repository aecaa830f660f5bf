//! The learned-dynamics commands end to end (`fit`, `field`, `forward --model`, a scenario with
//! `[field] type = "learned"`): files written, numbers consistent with the library, bad inputs
//! named in one line, output folders protected, the same bytes for 1 and 2 threads.

mod common;
use advreact::learned::model::ModelFile;
use advreact::learned::psi::Psi;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn advreact(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin()).args(args).current_dir(cwd).output().expect("run advreact")
}

fn data() -> PathBuf {
    repo().join("../shared/data/three_gene_2d/three_gene_2d.csv")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small, fast uot_fm fit of three_gene_2d (60 cells per time) into `out`.
fn fit(out: &Path, extra: &[&str]) -> Output {
    let d = data();
    let mut args = vec![
        "fit",
        s(&d),
        "--model",
        "uot_fm",
        "--subsample",
        "60",
        "--features",
        "80",
        "--pairs",
        "600",
        "--dt",
        "0.05",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    advreact(&args, &repo())
}

/// A small, fast var_ruot fit of three_gene_2d (40 cells per time, 40 features, dt 0.1) into `out`.
fn small_var_ruot(out: &Path, extra: &[&str]) -> Output {
    let d = data();
    let mut args = vec![
        "fit",
        s(&d),
        "--model",
        "var_ruot",
        "--subsample",
        "40",
        "--features",
        "40",
        "--pairs",
        "400",
        "--dt",
        "0.1",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    advreact(&args, &repo())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last line of stderr (the error line).
fn error_line(o: &Output) -> String {
    stderr(o).lines().rev().find(|l| l.starts_with("error")).unwrap_or_default().to_string()
}

#[test]
fn fit_field_forward_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fit");
    let o = fit(&out, &["--holdout", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["model.json", "fit.json", "fit.png", "trajectories.png", ".advreact-output"] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let file = ModelFile::read(&out.join("model.json")).unwrap();
    assert_eq!(file.model.kind(), "uot_fm");
    assert_eq!(file.data.times, vec![0.0, 1.0, 3.0, 4.0]);
    assert_eq!(file.data.held_out, vec![2.0]);
    assert_eq!(file.data.cells, vec![400, 442, 690, 969]);
    assert_eq!(file.data.sha256.len(), 64);
    let fitj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    assert_eq!(fitj["couplings"].as_array().unwrap().len(), 3);
    assert!(fitj["ridge"]["rms_residual"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_f64().unwrap().is_finite()));
    // The simulated mass at the training times follows the cell counts (within 5 %).
    for m in fitj["mass"].as_array().unwrap() {
        let (a, b) = (m["data"].as_f64().unwrap(), m["simulated"].as_f64().unwrap());
        assert!((b / a - 1.0).abs() < 0.05, "mass {m}");
    }

    // field: a time column overrides --time, ids are carried, values equal the library's.
    let pts = tmp.path().join("points.csv");
    std::fs::write(&pts, "id,time,x1,x2\na,0.5,0.1,0.2\nb,3.5,1.0,-0.3\n").unwrap();
    let fcsv = tmp.path().join("field.csv");
    let o =
        advreact(&["field", s(&out.join("model.json")), s(&pts), "--time", "9", "--out", s(&fcsv)], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&fcsv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,u1,u2,g");
    assert_eq!(lines.len(), 3);
    let mut ws = file.model.workspace();
    let mut u = [0.0; 2];
    let (g, _) = file.model.eval(&[1.0, -0.3], 3.5, &mut ws, &mut u);
    let row: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(row[0], "b");
    assert_eq!(row[1].parse::<f64>().unwrap(), u[0]);
    assert_eq!(row[2].parse::<f64>().unwrap(), u[1]);
    assert_eq!(row[3].parse::<f64>().unwrap(), g);
    // --time applies when the points have no time column.
    let pts2 = tmp.path().join("points2.csv");
    std::fs::write(&pts2, "x1,x2\n1.0,-0.3\n").unwrap();
    let o = advreact(&["field", s(&out.join("model.json")), s(&pts2), "--time", "3.5"], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(stdout.lines().nth(1).unwrap(), lines[2].trim_start_matches("b,"));

    // forward --model: prediction at every data time, the held-out time marked.
    let fw = tmp.path().join("fw");
    let o = advreact(
        &["forward", s(&data()), "--model", s(&out.join("model.json")), "--subsample", "60", "--out", s(&fw)],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["prediction.csv", "forward.json", "forward.png", ".advreact-output"] {
        assert!(fw.join(f).exists(), "missing {f}");
    }
    let pred = std::fs::read_to_string(fw.join("prediction.csv")).unwrap();
    assert!(pred.starts_with("time,x1,x2,w\n"));
    let times: std::collections::BTreeSet<String> =
        pred.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(times.len(), 5);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fw.join("forward.json")).unwrap()).unwrap();
    let rows = j["times"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for r in rows {
        let t = r["t"].as_f64().unwrap();
        assert_eq!(r["held_out"].as_bool().unwrap(), t == 2.0);
        let m = &r["metrics"];
        assert!(m["w1"].as_f64().unwrap().is_finite());
        // mass on the weights, each data cell of mass 1
        assert!(m["mass_error"].as_f64().unwrap() < 0.1, "{r}");
        if t == 0.0 {
            assert!((m["mass_pred"].as_f64().unwrap() - 400.0).abs() < 1e-9);
        }
    }
    // --model and --method exclude each other.
    let o =
        advreact(&["forward", s(&data()), "--model", s(&out.join("model.json")), "--method", "wot"], &repo());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--model") && stderr(&o).contains("--method"), "{}", stderr(&o));
}

#[test]
fn same_seed_same_model_bytes_for_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let oa = fit(&a, &["--threads", "1", "--seed", "5", "--sigma", "0.1"]);
    let ob = fit(&b, &["--threads", "2", "--seed", "5", "--sigma", "0.1"]);
    assert!(oa.status.success() && ob.status.success(), "{}{}", stderr(&oa), stderr(&ob));
    let ma = std::fs::read(a.join("model.json")).unwrap();
    let mb = std::fs::read(b.join("model.json")).unwrap();
    assert!(ma == mb, "model.json differs between 1 and 2 threads");
    // and another seed gives another model
    let c = tmp.path().join("c");
    assert!(fit(&c, &["--seed", "6", "--sigma", "0.1"]).status.success());
    assert!(std::fs::read(c.join("model.json")).unwrap() != ma);
}

/// The same for `--model var_ruot` (σ > 0, so the fixed noise is drawn too): model.json holds no
/// timing, and the fit's bytes do not depend on the thread count; another seed differs.
#[test]
fn var_ruot_same_seed_same_model_bytes_for_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec!["--iters", "3", "--sigma", "0.1"];
        args.extend_from_slice(extra);
        let o = small_var_ruot(&out, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out.join("model.json")).unwrap()
    };
    let a = run("a", &["--threads", "1", "--seed", "5"]);
    assert!(
        a == run("b", &["--threads", "2", "--seed", "5"]),
        "var_ruot model.json differs between 1 and 2 threads"
    );
    assert!(a != run("c", &["--threads", "2", "--seed", "6"]));
}

/// `--colour time` colours trajectories.png's simulated particles by time instead of growth: the
/// same model bytes, another picture; an unknown colour is a one-line error naming the flag.
#[test]
fn trajectory_colour_is_an_option() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, t) = (tmp.path().join("g"), tmp.path().join("t"));
    assert!(fit(&g, &[]).status.success());
    let o = fit(&t, &["--colour", "time"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read(&g, "model.json"), read(&t, "model.json"));
    let (pg, pt) = (read(&g, "trajectories.png"), read(&t, "trajectories.png"));
    assert!(pg.starts_with(b"\x89PNG") && pt.starts_with(b"\x89PNG"));
    assert!(pg != pt, "--colour time drew the same picture");
    let o = fit(&tmp.path().join("x"), &["--colour", "mass"]);
    assert!(!o.status.success() && error_line(&o).contains("--colour"), "{}", stderr(&o));
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file_or_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fit");
    assert!(fit(&out, &[]).status.success());
    let model = out.join("model.json");
    let pts = tmp.path().join("p.csv");
    std::fs::write(&pts, "x1,x2\n0,0\n").unwrap();

    // wrong model format
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, std::fs::read_to_string(&model).unwrap().replace("\"format\": 1", "\"format\": 9"))
        .unwrap();
    let o = advreact(&["field", s(&bad), s(&pts), "--time", "0"], &repo());
    assert_eq!(o.status.code(), Some(2));
    let e = error_line(&o);
    assert!(e.contains("bad.json") && e.contains("format 9"), "{e}");
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    // wrong dimension
    let p3 = tmp.path().join("p3.csv");
    std::fs::write(&p3, "x1,x2,x3\n0,0,0\n").unwrap();
    let o = advreact(&["field", s(&model), s(&p3), "--time", "0"], &repo());
    let e = error_line(&o);
    assert!(e.contains("p3.csv") && e.contains("2-dimensional"), "{e}");

    // no time
    let o = advreact(&["field", s(&model), s(&pts)], &repo());
    assert!(error_line(&o).contains("--time"), "{}", stderr(&o));

    // missing files
    let o = advreact(&["field", s(&tmp.path().join("nope.json")), s(&pts), "--time", "0"], &repo());
    assert!(error_line(&o).contains("nope.json"), "{}", stderr(&o));
    let o = advreact(
        &["fit", s(&tmp.path().join("nodata.csv")), "--model", "uot_fm", "--out", s(&tmp.path().join("x"))],
        &repo(),
    );
    assert!(error_line(&o).contains("nodata.csv"), "{}", stderr(&o));
    assert!(!tmp.path().join("x").exists());

    // forward with a model of another dimension
    let d3 = tmp.path().join("d3.csv");
    std::fs::write(&d3, "time,x1,x2,x3\n0,0,0,0\n0,1,0,0\n1,0,1,0\n1,1,1,0\n").unwrap();
    let o = advreact(&["forward", s(&d3), "--model", s(&model), "--out", s(&tmp.path().join("f3"))], &repo());
    let e = error_line(&o);
    assert!(e.contains("d3.csv") && e.contains("2-dimensional"), "{e}");

    // holdout of a time that is not in the data, and of the first time
    let o = fit(&tmp.path().join("h"), &["--holdout", "2.5"]);
    assert!(error_line(&o).contains("2.5"), "{}", stderr(&o));
    let o = fit(&tmp.path().join("h"), &["--holdout", "0"]);
    assert!(error_line(&o).contains("--holdout"), "{}", stderr(&o));

    // a bad Var-RUOT setting is named
    let o = advreact(
        &["fit", s(&data()), "--model", "var_ruot", "--alpha=-1", "--out", s(&tmp.path().join("v"))],
        &repo(),
    );
    assert!(error_line(&o).contains("alpha"), "{}", stderr(&o));

    // the output folder rules: a folder with foreign files is refused, nothing changes
    let foreign = tmp.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep").unwrap();
    let o = fit(&foreign, &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = error_line(&o);
    assert!(e.contains("mine") && e.contains("--out") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "keep");
    // ... and so is a forward folder for a fit, while a fit folder is replaced by a fit
    let o = advreact(
        &["forward", s(&data()), "--model", s(&model), "--subsample", "30", "--out", s(&out)],
        &repo(),
    );
    assert!(error_line(&o).contains("fit"), "{}", stderr(&o));
    assert!(fit(&out, &["--seed", "3"]).status.success());
    // field --out refuses to overwrite a file that is not a field output
    let mine = tmp.path().join("mine.csv");
    std::fs::write(&mine, "my,data\n").unwrap();
    let o = advreact(&["field", s(&model), s(&pts), "--time", "0", "--out", s(&mine)], &repo());
    assert!(!o.status.success() && error_line(&o).contains("mine.csv"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my,data\n");
}

#[test]
fn a_scenario_runs_a_learned_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fit");
    assert!(fit(&out, &[]).status.success());
    let sc = tmp.path().join("learned.toml");
    let text = |model: &str| {
        format!(
            "[meta]\nname = \"learned\"\nseed = 1\n\n[source]\ntype = \"csv\"\npath = \"{}\"\ntime = 0.0\n\n\
             [field]\ntype = \"learned\"\nmodel = \"{model}\"\n\n[reaction]\ntype = \"weights\"\n\n\
             [time]\ndt = 0.05\nsteps = 20\nnoise = 0.0\n\n[report]\nevery = 5\nmetrics = [\"mass\", \"n\"]\n",
            s(&data())
        )
    };
    // the model path is relative to the scenario file
    std::fs::write(&sc, text("fit/model.json")).unwrap();
    let run = tmp.path().join("run");
    let o = advreact(&["run", s(&sc), "--out", s(&run), "-q"], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    // 400 cells of mass 1/400 (the source's mass 1) grow by the fitted rates over t = 0 → 1:
    // the data's 442/400, within 5 %.
    let mass = summary["mass"].as_f64().unwrap();
    assert!((mass / (442.0 / 400.0) - 1.0).abs() < 0.05, "mass {mass}");
    let resolved = std::fs::read_to_string(run.join("scenario.resolved.toml")).unwrap();
    assert!(resolved.contains("start_time = 0"), "{resolved}");
    // a missing model names the scenario file and the key
    std::fs::write(&sc, text("nowhere/model.json")).unwrap();
    let o = advreact(&["validate", s(&sc)], &repo());
    let e = error_line(&o);
    assert!(e.contains("learned.toml") && e.contains("field.model") && e.contains("nowhere"), "{e}");
}

/// A Var-RUOT model file (here the ψ₁ potential fitted in closed form to UOT-FM targets) goes
/// through `field` (with its `lambda` column) and `forward --model` like any model.
#[test]
fn a_potential_model_file_is_evaluated_and_simulated() {
    use advreact::dist::Exec;
    use advreact::learned::model::{Model, Provenance};
    use advreact::learned::uot_fm::{self, UotFmParams};
    let tmp = tempfile::tempdir().unwrap();
    let series = advreact::infer::load_series(&data(), &Default::default()).unwrap().subsample(80, 1);
    let p = UotFmParams { features: 60, pairs: 500, poly: 2, ..UotFmParams::default() };
    let t = uot_fm::targets(&series, &p, &Exec::default()).unwrap();
    let (pot, _) =
        uot_fm::fit_potential(&t, uot_fm::feature_map(&series, &p).unwrap(), 1e-6, 1.0, Psi::Quadratic)
            .unwrap();
    let prov = Provenance { times: series.times.clone(), ..Provenance::default() };
    let file = ModelFile::new(Model::VarRuot(pot), serde_json::json!({"dt": 0.05, "sigma": 0.0}), prov);
    let mpath = tmp.path().join("model.json");
    std::fs::write(&mpath, file.to_json()).unwrap();
    let pts = tmp.path().join("p.csv");
    std::fs::write(&pts, "x1,x2\n0.5,0.5\n").unwrap();
    let o = advreact(&["field", s(&mpath), s(&pts), "--time", "1.5"], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), "u1,u2,g,lambda");
    let v: Vec<f64> = lines.next().unwrap().split(',').map(|x| x.parse().unwrap()).collect();
    let mut ws = file.model.workspace();
    let mut u = [0.0; 2];
    let (g, l) = file.model.eval(&[0.5, 0.5], 1.5, &mut ws, &mut u);
    assert_eq!(v, vec![u[0], u[1], g, l.unwrap()]);
    // ψ₁ with α = 1: g = λ
    assert_eq!(v[2], v[3]);
    let fw = tmp.path().join("fw");
    let o = advreact(
        &["forward", s(&data()), "--model", s(&mpath), "--subsample", "80", "--seed", "1", "--out", s(&fw)],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fw.join("forward.json")).unwrap()).unwrap();
    assert_eq!(j["kind"], "var_ruot");
    assert!(j["times"].as_array().unwrap().iter().all(|r| r["metrics"]["w1"].as_f64().unwrap().is_finite()));
}

/// `fit --model var_ruot` with its defaults (dt 0.05, 300 features, the ridge start; only the
/// cells and the iteration cap cut down): the settings recorded in model.json are the documented
/// defaults and the loss goes down from the start.
#[test]
fn var_ruot_defaults_are_recorded_and_lower_the_loss() {
    use advreact::learned::commands::{VAR_RUOT_DT, VAR_RUOT_FEATURES, VAR_RUOT_SINKHORN_TOL};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vd");
    let d = data();
    let o = advreact(
        &["fit", s(&d), "--model", "var_ruot", "--subsample", "30", "--iters", "4", "--out", s(&out)],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let st = &m["settings"];
    assert_eq!(st["dt"].as_f64(), Some(VAR_RUOT_DT), "{st}");
    assert_eq!(st["params"]["dt"].as_f64(), Some(VAR_RUOT_DT), "{st}");
    assert_eq!(st["params"]["sinkhorn_tol"].as_f64(), Some(VAR_RUOT_SINKHORN_TOL), "{st}");
    assert_eq!(st["start"]["uot_fm"]["features"].as_u64(), Some(VAR_RUOT_FEATURES as u64), "{st}");
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    let loss: Vec<f64> = f["loss"].as_array().unwrap().iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert_eq!(loss.len(), 5, "{loss:?}");
    assert!(loss[4] < loss[0], "loss {loss:?}");
}

/// A ridge start that points uphill (three_gene_2d, 300 cells, trained on t = 0, 1, 2 with the
/// cosine basis: 444 against θ = 0's 1.108, and still above it at every scale down to 2^-30) is
/// replaced by θ = 0 with a warning that says so, and the fit goes on (it used to abort, and with it
/// a `results learned` run).
#[test]
fn var_ruot_an_uphill_ridge_start_falls_back_to_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("uphill");
    let d = data();
    let o = advreact(
        &[
            "fit",
            s(&d),
            "--model",
            "var_ruot",
            "--subsample",
            "300",
            "--holdout",
            "3",
            "--holdout",
            "4",
            "--time-basis",
            "cosine",
            "--iters",
            "1",
            "--out",
            s(&out),
        ],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    let w = f["warnings"].as_array().unwrap();
    let shrunk = w.iter().find(|w| w["guard"] == "start_shrunk").expect("a start_shrunk warning");
    assert!(shrunk["message"].as_str().unwrap().ends_with("the fit starts from θ = 0"), "{shrunk}");
    assert_eq!(shrunk["count"].as_u64(), Some(30), "{shrunk}");
    let loss: Vec<f64> = f["loss"].as_array().unwrap().iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert!((loss[0] - 1.108).abs() < 5e-4, "the start is θ = 0 (loss 1.108): {loss:?}");
    assert!(loss[1] < loss[0], "{loss:?}");
}

/// `--gamma-h` and `--gamma-m` reach the fit: recorded in the model's settings (defaults 0 and 1),
/// and every recorded loss is `Σ S_ε + γ_M·mass + γ_A·action + γ_H·HJB` with the given weights
/// (relative 1e-12), so the HJB term is in the loss the optimiser lowers.
#[test]
fn var_ruot_gamma_h_and_gamma_m_reach_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    for (gh, gm, extra) in [(0.0, 1.0, vec![]), (0.5, 2.0, vec!["--gamma-h", "0.5", "--gamma-m", "2"])] {
        let out = tmp.path().join(format!("g{gh}"));
        let mut args = vec!["--iters", "2"];
        args.extend(extra);
        let o = small_var_ruot(&out, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
        let p = &m["settings"]["params"];
        assert_eq!((p["gamma_h"].as_f64(), p["gamma_m"].as_f64()), (Some(gh), Some(gm)), "{p}");
        let ga = p["gamma_a"].as_f64().unwrap();
        let f: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
        for r in f["loss"].as_array().unwrap() {
            let v = |k: &str| r[k].as_f64().unwrap();
            let sum = v("divergence") + gm * v("mass") + ga * v("action") + gh * v("hjb");
            assert!((v("loss") - sum).abs() <= 1e-12 * v("loss").abs(), "{r}: {sum}");
            assert!(v("hjb") > 0.0, "{r}");
        }
    }
}

/// `fit --model var_ruot` (a few L-BFGS iterations from the UOT-FM ridge start on 40 cells per
/// time): the model file is a Var-RUOT potential, fit.json records a loss history that went down
/// from the start, and `field` writes a `lambda` column.
#[test]
fn var_ruot_fit_runs_from_the_ridge_start_and_lowers_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vr");
    let o = small_var_ruot(&out, &["--iters", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(m["model"]["type"], "var_ruot");
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    let loss: Vec<f64> = f["loss"].as_array().unwrap().iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    assert!(loss.len() >= 2, "{f}");
    assert!(loss.last().unwrap() < &loss[0], "loss {loss:?}");
    assert!(f["action"].as_f64().unwrap().is_finite());
    assert!(out.join("fit.png").is_file() && out.join("trajectories.png").is_file());
    let pts = tmp.path().join("p.csv");
    std::fs::write(&pts, "x1,x2\n0.5,0.5\n1.0,0.2\n").unwrap();
    let o = advreact(&["field", s(&out.join("model.json")), s(&pts), "--time", "1"], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).lines().next().unwrap().ends_with(",lambda"));
}

/// `fit --model var_ruot --time-basis constant` fits an autonomous potential λ(x): the model
/// file's time basis is one hat knot at the first training time, `field` gives the same u, g, λ
/// (to the bit, well inside 1e-15) at an interior time and past the last snapshot, and the
/// fitted field is not trivially zero. `--help` names the choice.
#[test]
fn var_ruot_constant_time_basis_is_autonomous_end_to_end() {
    use advreact::learned::features::TimeBasis;
    use advreact::learned::model::Model;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vc");
    let o = small_var_ruot(&out, &["--iters", "4", "--time-basis", "constant", "--holdout", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = ModelFile::read(&out.join("model.json")).unwrap();
    let Model::VarRuot(pot) = &file.model else { panic!("not a var_ruot model: {:?}", file.model.kind()) };
    assert_eq!(pot.features.spec.time, TimeBasis::Hat { knots: vec![0.0] });
    // the same points at t = 1.5 (inside the training times) and t = 7 (past the last, 3)
    let pts = tmp.path().join("p.csv");
    std::fs::write(&pts, "time,x1,x2\n1.5,0.5,0.5\n1.5,1.0,0.2\n7,0.5,0.5\n7,1.0,0.2\n").unwrap();
    let o = advreact(&["field", s(&out.join("model.json")), s(&pts)], &repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let rows: Vec<Vec<f64>> =
        text.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    for i in 0..2 {
        for (a, b) in rows[i].iter().zip(&rows[i + 2]) {
            assert!((a - b).abs() <= 1e-15 * a.abs().max(1.0), "row {i}: {:?} vs {:?}", rows[i], rows[i + 2]);
        }
    }
    assert!(rows[0].iter().any(|v| v.abs() > 1e-6), "a zero field: {text}");
    assert_ne!(rows[0], rows[1], "the field does not depend on x: {text}");
    let o = advreact(&["fit", "--help"], &repo());
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(help.contains("constant") && help.contains("autonomous"), "{help}");
}

/// A Var-RUOT model fitted with noise (`--sigma 0.2`) records that σ in its settings, and
/// `forward --model` simulates its SDE with that σ (the fit's own trajectories used it; before,
/// `forward` fell back to σ = 0 for Var-RUOT); a σ = 0 fit records and uses 0.
#[test]
fn var_ruot_noise_is_recorded_and_used_by_forward() {
    let tmp = tempfile::tempdir().unwrap();
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    for (sigma, name) in [("0.2", "noisy"), ("0", "plain")] {
        let out = tmp.path().join(name);
        let o = small_var_ruot(&out, &["--iters", "2", "--sigma", sigma]);
        assert!(o.status.success(), "{}", stderr(&o));
        let m = read(&out.join("model.json"));
        assert_eq!(m["settings"]["sigma"].as_f64(), Some(sigma.parse().unwrap()), "{}", m["settings"]);
        let fwd = out.join("fwd");
        let o = advreact(
            &[
                "forward",
                s(&data()),
                "--model",
                s(&out.join("model.json")),
                "--subsample",
                "40",
                "--out",
                s(&fwd),
            ],
            &repo(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let f = read(&fwd.join("forward.json"));
        assert_eq!(f["sigma"].as_f64(), Some(sigma.parse().unwrap()), "{f}");
    }
}
