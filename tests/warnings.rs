//! Issue 13, points 3 and 4: guards never change a result silently (warnings on stderr and in the
//! JSON outputs, `--strict`), and the numbers in the outputs are the truth at the stop.

mod common;
use advreact::field::analytic::{AffineGrowth, OrnsteinUhlenbeck};
use advreact::reaction::ReactionKind;
use advreact::stepper::StopReason;
use advreact::Cloud;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh working folder, removed when the test ends (pass or fail).
struct Tmp(tempfile::TempDir);

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

fn tmp(name: &str) -> Tmp {
    Tmp(tempfile::Builder::new().prefix(&format!("advreact_warnings_{name}_")).tempdir().unwrap())
}

/// Run the CLI in `dir`; (exit code, stdout, stderr).
fn advreact(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin()).args(args).current_dir(dir).output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The last row of a CSV, split.
fn last_row(p: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(p).unwrap();
    text.lines().last().unwrap().split(',').map(String::from).collect()
}

const N: usize = 50;
const STEPS: usize = 300;

/// Constant growth g = 150 at dt = 0.01 under the weights reaction: `g dt = 1.5` is clipped to the
/// default `max_growth_step = 1` at every step.
fn g150(extra_time: &str) -> String {
    format!(
        "[meta]\nname = \"g150\"\nseed = 1\n[source]\ntype = \"gaussian\"\nn = {N}\nmean = [0.0]\nstd = 1.0\n\
         mass = 1.0\n[field]\ntype = \"constant_growth\"\nrate = 150.0\n[reaction]\ntype = \"weights\"\n\
         [time]\ndt = 0.01\nsteps = {STEPS}\n{extra_time}\n[report]\nevery = 100\nmetrics = [\"mass\", \"n\"]\n\
         plots = false\n"
    )
}

#[test]
fn growth_clipping_is_warned_with_the_exact_log_mass_removed() {
    let d = tmp("g150");
    std::fs::write(d.join("g150.toml"), g150("")).unwrap();
    let (code, out, err) = advreact(&d, &["run", "g150.toml", "--out", "run", "-q"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: run: growth_clipped:") && err.contains("log total mass removed 150"),
        "{err}"
    );
    let s = json(&d.join("run/summary.json"));
    assert_eq!(s["stop_reason"], "completed");
    let w = s["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{s}");
    assert_eq!(w[0]["guard"], "growth_clipped");
    assert_eq!(w[0]["count"].as_u64(), Some((N * STEPS) as u64));
    // Closed form: each step removes log(e^{1.5}/e^{1}) = 0.5 of log total mass.
    let removed = w[0]["effect"].as_f64().unwrap();
    let want = STEPS as f64 * 0.5;
    assert!((removed - want).abs() <= 1e-12 * want, "{removed} vs {want}");
    assert_eq!(s["guards"]["growth_log_mass_removed"].as_f64(), Some(removed));
    // And it is what separates the clipped mass e^{300} from the unclipped e^{450}.
    let mass = s["mass"].as_f64().unwrap();
    assert!((mass.ln() - STEPS as f64).abs() < 1e-9, "{mass}");
    assert!((mass.ln() + removed - 1.5 * STEPS as f64).abs() < 1e-9);
    // metrics.csv writes the huge mass with an exponent, exactly.
    let row = last_row(&d.join("run/metrics.csv"));
    assert_eq!(row[0], STEPS.to_string());
    assert!(row[2].contains('e') && row[2].len() < 30, "{row:?}");
    assert_eq!(row[2].parse::<f64>().unwrap().to_bits(), mass.to_bits());
    // The console time is `t = 3`, the stop reason as in JSON.
    assert!(out.contains("completed after 300 steps (t = 3)"), "{out}");
}

#[test]
fn strict_makes_the_first_intervention_a_stop_with_exit_code_1() {
    let d = tmp("strict");
    std::fs::write(d.join("g150.toml"), g150("")).unwrap();
    std::fs::write(d.join("g150_key.toml"), g150("strict = true")).unwrap();
    for (args, folder) in [
        (&["run", "g150.toml", "--out", "a", "-q", "--strict"][..], "a"),
        (&["run", "g150_key.toml", "--out", "b", "-q"][..], "b"),
    ] {
        let (code, out, err) = advreact(&d, args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(out.contains("guard after 1 steps"), "{out}");
        assert!(err.contains("strict: a guard changed the dynamics: growth_clipped"), "{err}");
        let dir = d.join(folder);
        let s = json(&dir.join("summary.json"));
        assert_eq!(s["stop_reason"], "guard");
        assert_eq!(s["steps"], 1);
        assert!(s["error"].as_str().unwrap().contains("growth_clipped"), "{s}");
        assert_eq!(s["warnings"][0]["count"].as_u64(), Some(N as u64));
        assert!((s["warnings"][0]["effect"].as_f64().unwrap() - 0.5).abs() < 1e-13);
        // The folder is complete, with the metrics at the stop step.
        assert_eq!(last_row(&dir.join("metrics.csv"))[0], "1");
        assert_eq!(s["metrics_step"], 1);
        let resolved = std::fs::read_to_string(dir.join("scenario.resolved.toml")).unwrap();
        assert!(resolved.contains("strict = true"), "resume inherits strict: {resolved}");
    }
}

#[test]
fn the_displacement_cap_is_counted_with_the_length_it_removed() {
    let c = Cloud::uniform(1, (0..40).map(|i| i as f64 / 4.0).collect(), 1.0).unwrap();
    let ou = || Box::new(OrnsteinUhlenbeck { theta: 1.0, mean: vec![0.0] });
    let (dt, cap) = (0.5, 0.2);
    let mut s = sim(&c, ou(), ReactionKind::None, false, dt, 1, 0.0, 1);
    s.time.max_displacement = Some(cap);
    let sum = s.run(&mut []).unwrap();
    // One step: particle at x moves θ|x| dt unless that exceeds the cap.
    let want: f64 = c.x.iter().map(|x| (x.abs() * dt - cap).max(0.0)).sum();
    let capped = c.x.iter().filter(|x| x.abs() * dt > cap).count() as u64;
    assert_eq!(sum.stop_reason, StopReason::Completed);
    assert_eq!(sum.warnings.len(), 1, "{:?}", sum.warnings);
    let w = &sum.warnings[0];
    assert_eq!((w.guard.as_str(), w.count), ("displacement_capped", capped));
    assert!((w.effect.unwrap() - want).abs() <= 1e-12 * want, "{:?} vs {want}", w.effect);
    assert!(w.message.contains("time.max_displacement = 0.2"), "{}", w.message);
    // Strict: the same step ends the run with stop reason guard.
    let mut s = sim(&c, ou(), ReactionKind::None, false, dt, 5, 0.0, 1);
    s.time.max_displacement = Some(cap);
    s.strict = true;
    let sum = s.run(&mut []).unwrap();
    assert_eq!((sum.stop_reason, sum.steps), (StopReason::Guard, 1));
    assert!(sum.error.unwrap().to_string().contains("displacement_capped"));
    // Without the cap there is nothing to report.
    let mut s = sim(&c, ou(), ReactionKind::None, false, dt, 1, 0.0, 1);
    s.strict = true;
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::Completed);
    assert!(sum.warnings.is_empty());
}

#[test]
fn guard_counts_add_up_across_single_steps() {
    // Simulation::step (used by the infer flows) used to start fresh counts on every call.
    let c = Cloud::uniform(1, vec![0.0; 8], 1.0).unwrap();
    let mut s = sim(
        &c,
        Box::new(AffineGrowth { rate: 150.0, slope: vec![0.0] }),
        ReactionKind::Weights,
        false,
        0.01,
        10,
        0.0,
        1,
    );
    for _ in 0..3 {
        s.step().unwrap();
    }
    assert_eq!(s.guards.growth_clipped, 24);
    assert!((s.guards.growth_log_mass_removed - 1.5).abs() < 1e-13);
}

#[test]
fn a_population_cap_stop_reports_the_truth_at_the_stop() {
    let d = tmp("popcap");
    let sc = "[meta]\nname = \"cap\"\nseed = 2\n[source]\ntype = \"gaussian\"\nn = 100\nmean = [0.0, 0.0]\n\
              std = 0.3\nmass = 1.0\n[field]\ntype = \"constant_growth\"\nrate = 2.0\n[reaction]\n\
              type = \"birth_death\"\nmax_particles = 1000\n[time]\ndt = 0.1\nsteps = 100\n[report]\n\
              every = 50\nmetrics = [\"mass\", \"n\"]\nsnapshots = 4\nsnapshot_particles = 50\n";
    std::fs::write(d.join("cap.toml"), sc).unwrap();
    let (code, out, err) = advreact(&d, &["run", "cap.toml", "--out", "run", "-q"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("run: limit after"), "{out}");
    assert!(err.contains("warning: run: population_cap:") && err.contains("max_particles"), "{err}");
    let s = json(&d.join("run/summary.json"));
    assert_eq!(s["stop_reason"], "limit");
    let steps = s["steps"].as_u64().unwrap();
    assert!(steps > 1 && steps < 50, "{s}");
    assert_eq!(s["warnings"][0]["guard"], "population_cap");
    // final_metrics: an object, at the stop step, equal to the summary's n and mass.
    let fm = s["final_metrics"].as_object().unwrap();
    assert_eq!(fm["n"].as_f64(), s["n"].as_f64());
    assert_eq!(fm["mass"].as_f64(), s["mass"].as_f64());
    assert!(s["n"].as_f64().unwrap() > 500.0, "{s}");
    assert_eq!(s["metrics_step"].as_u64(), Some(steps));
    // metrics.csv has that row.
    let row = last_row(&d.join("run/metrics.csv"));
    assert_eq!(row[0], steps.to_string());
    assert_eq!(row[2].parse::<f64>().unwrap(), s["mass"].as_f64().unwrap());
    assert_eq!(row[3].parse::<f64>().unwrap(), s["n"].as_f64().unwrap());
    // The trajectory legend reads that truth; the snapshots at the stop are complete too.
    let snaps = std::fs::read_to_string(d.join("run/snapshots.csv")).unwrap();
    assert!(snaps.lines().any(|l| l.starts_with(&format!("{steps},"))), "no snapshot at the stop");
}

#[test]
fn summary_json_has_objects_and_typed_values() {
    let d = tmp("shape");
    std::fs::write(d.join("g150.toml"), g150("")).unwrap();
    let (code, _, err) = advreact(&d, &["run", "g150.toml", "--out", "run", "-q", "--steps", "3"]);
    assert_eq!(code, 0, "{err}");
    let s = json(&d.join("run/summary.json"));
    let fm = s["final_metrics"].as_object().expect("final_metrics is an object");
    assert_eq!(fm.keys().collect::<Vec<_>>(), ["mass", "n"]);
    assert!(fm["n"].is_number());
    assert!(s["guards"].is_object() && s["warnings"].is_array() && s["timings"].is_object());
    assert!(s["stop_reason"].is_string() && s["steps"].is_u64() && s["metrics_step"].is_u64());
    for w in s["warnings"].as_array().unwrap() {
        assert!(w["guard"].is_string() && w["count"].is_u64() && w["message"].is_string(), "{w}");
    }
}

#[test]
fn stop_reasons_display_as_in_json() {
    use StopReason::*;
    for r in [Completed, Extinct, NonFinite, Limit, Guard, Interrupted, Numerical] {
        assert_eq!(Value::String(r.to_string()), serde_json::to_value(r).unwrap());
    }
    assert_eq!(NonFinite.to_string(), "non_finite");
}

/// A small 2-D series: three time points of a translating blob.
fn series(d: &Path) -> PathBuf {
    let mut s = String::from("time,x1,x2\n");
    for t in 0..3 {
        for i in 0..40 {
            let (a, b) = ((i % 7) as f64 / 7.0, (i / 7) as f64 / 6.0);
            s.push_str(&format!("{t},{},{}\n", a + t as f64, b));
        }
    }
    let p = d.join("blob.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn forward_flow_step_cap_is_a_warning_in_forward_json() {
    let d = tmp("forward");
    series(&d);
    let args = ["forward", "blob.csv", "--method", "wfr_sinkhorn", "--max-steps", "3", "--out", "fw"];
    let (code, out, err) = advreact(&d, &args);
    assert_eq!(code, 0, "{out}{err}");
    let f = json(&d.join("fw/forward.json"));
    let w = f["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2, "one per segment: {f}");
    for (k, w) in w.iter().enumerate() {
        assert_eq!(w["guard"], "max_steps");
        assert_eq!(w["count"], 3);
        assert!(w["message"].as_str().unwrap().starts_with(&format!("segment t = {k} → {}", k + 1)), "{w}");
    }
    assert_eq!(err.matches("warning: fw: max_steps").count(), 2, "{err}");
    // Per segment, with the diagnostics as an object and `plateau` a boolean.
    let info = &f["result"]["info"][0];
    assert_eq!(info["diagnostics"]["plateau"], Value::Bool(false));
    assert_eq!(info["diagnostics"]["steps"].as_f64(), Some(3.0));
    assert_eq!(info["warnings"][0]["guard"], "max_steps");
    // --strict: the same output, exit code 1.
    let mut strict = args.to_vec();
    strict.push("--strict");
    let (code, _, err) = advreact(&d, &strict);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--strict: 2 warning(s)"), "{err}");
}

#[test]
fn infer_metrics_json_has_typed_diagnostics_and_warnings() {
    let d = tmp("infer");
    series(&d);
    let (code, out, err) = advreact(&d, &["infer", "blob.csv", "--holdout", "1", "--out", "wot"]);
    assert_eq!(code, 0, "{out}{err}");
    let m = json(&d.join("wot/metrics.json"));
    let diag = m["result"]["info"]["diagnostics"].as_object().expect("diagnostics is an object");
    assert!(diag["converged"].is_boolean(), "{diag:?}");
    assert!(diag["sinkhorn_iterations"].is_number());
    assert!(m["warnings"].is_array());
    // A flow capped at 2 steps cannot reach the midpoint: a max_steps warning in metrics.json.
    let (code, _, err) = advreact(
        &d,
        &["infer", "blob.csv", "--holdout", "1", "--method", "wfr_mmd", "--max-steps", "2", "--out", "mmd"],
    );
    assert_eq!(code, 0, "{err}");
    let m = json(&d.join("mmd/metrics.json"));
    let ws = m["warnings"].as_array().unwrap();
    assert!(ws.iter().any(|w| w["guard"] == "max_steps" && w["count"] == 2), "{m}");
    assert!(err.contains("warning: mmd: max_steps"), "{err}");
}

#[test]
fn console_times_are_short_and_csv_times_exact() {
    // 76 × 0.1 is 7.6000000000000005 in f64: the CSV keeps the exact double, the console says 7.6.
    let d = tmp("time");
    let sc =
        "[meta]\nname = \"t\"\nseed = 1\n[source]\ntype = \"gaussian\"\nn = 5\nmean = [0.0]\nstd = 1.0\n\
              [field]\ntype = \"zero\"\n[time]\ndt = 0.1\nsteps = 76\n[report]\nevery = 76\n\
              metrics = [\"mass\"]\nplots = false\n";
    std::fs::write(d.join("t.toml"), sc).unwrap();
    let (code, out, err) = advreact(&d, &["run", "t.toml", "--out", "run", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("completed after 76 steps (t = 7.6),"), "{out}");
    let row = last_row(&d.join("run/metrics.csv"));
    assert_eq!(row[1].parse::<f64>().unwrap(), 76.0 * 0.1);
    assert!(err.is_empty(), "no warning without a guard: {err}");
}

#[test]
fn a_population_cap_stop_leaves_the_state_of_the_last_whole_step() {
    // The cap is checked before the step moves anything: the stopped state is exactly the state
    // of an uncapped run of as many steps (positions, weights, ids).
    let c = Cloud::uniform(2, (0..200).map(|i| (i % 17) as f64 / 17.0).collect(), 1.0).unwrap();
    let run = |cap: usize, steps: usize| {
        let g = Box::new(AffineGrowth { rate: 2.0, slope: vec![0.0; 2] });
        let mut s = sim(&c, g, ReactionKind::BirthDeath, false, 0.1, steps, 0.3, 5);
        s.reaction.max_particles = cap;
        let sum = s.run(&mut []).unwrap();
        (sum, s.particles)
    };
    let (sum, capped) = run(1000, 100);
    assert_eq!(sum.stop_reason, StopReason::Limit);
    let (free_sum, free) = run(usize::MAX, sum.steps);
    assert_eq!(free_sum.stop_reason, StopReason::Completed);
    assert_eq!(capped, free);
    assert_eq!(sum.final_metrics, free_sum.final_metrics);
    assert_eq!(sum.metrics_step, sum.steps);
}
