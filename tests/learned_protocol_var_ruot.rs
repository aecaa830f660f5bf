//! Var-RUOT as a protocol learner (`advreact results learned`, src/learned/results.rs):
//! - a fold never fits on the snapshot it scores (selection included), and it picks the
//!   candidate with the smallest leave-one-out W1, whose scores are recomputed here independently
//!   (the W1 of a fit without the inner time: the last training time for the extrapolating fold,
//!   the interior ones otherwise);
//! - the learner's fit IS `advreact fit --model var_ruot` on the same settings: the model the CLI
//!   writes equals the learner's bit for bit, and the action matches fit.json's.
//!
//! Data: the first 30 cells of each of the times 0, 1, 2, 3 of three_gene_2d (lines copied
//! verbatim, so the CLI and the library read the same numbers); small fits (16 features,
//! 3 or 5 L-BFGS iterations, dt 0.1) keep the test short.

mod common;
use advreact::dist::Exec;
use advreact::infer::{load_series, Series};
use advreact::learned::model::ModelFile;
use advreact::learned::protocol::{restrict, run_fold, Learner, Prediction};
use advreact::learned::results::{VarRuotLearner, VarRuotSetting};
use advreact::metrics::wasserstein::{wasserstein, Order, WassersteinOpts};
use advreact::SimError;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The tiny data file (module doc) in `dir`.
fn tiny_csv(dir: &Path) -> PathBuf {
    let src = repo().join("../shared/data/three_gene_2d/three_gene_2d.csv");
    let text = std::fs::read_to_string(&src).unwrap();
    let mut lines = text.lines();
    let mut out = vec![lines.next().unwrap().to_string()];
    let mut count = [0usize; 4];
    for l in lines {
        let t: f64 = l.split(',').next().unwrap().parse().unwrap();
        let k = t as usize;
        if t.fract() == 0.0 && k < 4 && count[k] < 30 {
            count[k] += 1;
            out.push(l.to_string());
        }
    }
    assert_eq!(count, [30; 4]);
    let p = dir.join("tiny.csv");
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
    p
}

fn learner() -> VarRuotLearner {
    let base = ["--features", "16", "--dt", "0.1"];
    VarRuotLearner { base: base.iter().map(|s| s.to_string()).collect(), iters: vec![3, 5] }
}

/// The Var-RUOT learner, recording every training set it is given.
struct Recorder {
    inner: VarRuotLearner,
    seen: Mutex<Vec<Vec<f64>>>,
}

impl Learner for Recorder {
    type Setting = VarRuotSetting;
    fn name(&self) -> String {
        self.inner.name()
    }
    fn candidates(&self) -> Vec<VarRuotSetting> {
        self.inner.candidates()
    }
    fn fit_predict(
        &self,
        train: &Series,
        s: &VarRuotSetting,
        seed: u64,
        times: &[f64],
        exec: &Exec,
    ) -> Result<Prediction, SimError> {
        self.seen.lock().unwrap().push(train.times.clone());
        self.inner.fit_predict(train, s, seed, times, exec)
    }
}

fn w1(a: &advreact::Cloud, b: &advreact::Cloud) -> f64 {
    wasserstein(a, b, Order::W1, &WassersteinOpts::default()).unwrap().value
}

/// Hold out t = 3 (extrapolation) and t = 1 with 12 candidates and 2 seeds: the held-out time is
/// in no training set; the LOO scores equal an independent recomputation (1e-12) and the chosen
/// setting is their argmin; the scored W1 of each seed equals a direct fit of the chosen setting.
#[test]
fn var_ruot_folds_never_train_on_what_they_score_and_pick_by_leave_one_out() {
    let tmp = tempfile::tempdir().unwrap();
    let s = load_series(&tiny_csv(tmp.path()), &Default::default()).unwrap();
    let e = Exec::default();
    let rec = Recorder { inner: learner(), seen: Mutex::new(Vec::new()) };
    let cands = rec.candidates();
    assert_eq!(cands.len(), 12);
    let seeds = [0u64, 1];
    for h in [3usize, 1] {
        rec.seen.lock().unwrap().clear();
        let f = run_fold(&rec, &s, Some(h), &seeds, &e).unwrap();
        let seen = rec.seen.lock().unwrap().clone();
        // 1 inner fold × 12 candidates + 2 seeds
        assert_eq!(seen.len(), 14, "{seen:?}");
        assert!(seen.iter().all(|t| !t.contains(&s.times[h])), "fold {h}: {seen:?}");
        // independent leave-one-out: holding out t_3 (extrapolation) leaves out the last training
        // time, t_2; holding out t_1 leaves out the one interior training time, t_2 as well
        let train: Vec<usize> = (0..4).filter(|&i| i != h).collect();
        let mut loo = Vec::new();
        for c in &cands {
            let mut sum = 0.0;
            let inner = [2usize];
            for &j in &inner {
                let keep: Vec<usize> = train.iter().copied().filter(|&i| i != j).collect();
                let p = rec.inner.fit_predict(&restrict(&s, &keep), c, seeds[0], &[s.times[j]], &e).unwrap();
                sum += w1(&p.clouds[0], &s.clouds[j]);
            }
            loo.push(sum / inner.len() as f64);
        }
        assert!(loo.iter().all(|v| v.is_finite() && *v > 0.0), "{loo:?}");
        for (a, b) in f.loo.iter().zip(&loo) {
            assert!((a - b).abs() <= 1e-12 * b, "fold {h}: LOO {:?} vs {loo:?}", f.loo);
        }
        let best = (1..loo.len()).fold(0, |b, i| if loo[i] < loo[b] { i } else { b });
        assert_eq!(f.chosen, serde_json::to_value(cands[best]).unwrap(), "fold {h}: LOO {loo:?}");
        for (k, &seed) in seeds.iter().enumerate() {
            let p =
                rec.inner.fit_predict(&restrict(&s, &train), &cands[best], seed, &[s.times[h]], &e).unwrap();
            let direct = w1(&p.clouds[0], &s.clouds[h]);
            assert!((f.w1[k][0] - direct).abs() <= 1e-12 * direct, "seed {seed}: {} vs {direct}", f.w1[k][0]);
            assert!(f.action[k].is_finite() && f.action[k] > 0.0, "{:?}", f.action);
        }
    }
}

/// The learner's fit of a setting is `advreact fit` with the learner's command line: the model
/// file the CLI writes (trained without t = 2) holds the learner's model bit for bit, and
/// fit.json's action is the learner's.
#[test]
fn var_ruot_learner_fit_is_the_cli_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tiny_csv(tmp.path());
    let s = load_series(&csv, &Default::default()).unwrap();
    let l = learner();
    let e = Exec::default();
    // constant, γ_H = 1, 5 iterations: `--gamma-h` and `--iters` reach the CLI fit too
    let setting = l.candidates()[10];
    assert_eq!((setting.gamma_h, setting.iters), (1.0, 5));
    let seed = 3;
    let out = tmp.path().join("fit");
    let mut args = vec!["fit".to_string()];
    args.extend(l.argv(csv.to_str().unwrap(), &setting, seed));
    args.extend(["--holdout", "2", "--out", out.to_str().unwrap()].map(String::from));
    let o = std::process::Command::new(bin()).args(&args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let file = ModelFile::read(&out.join("model.json")).unwrap();
    let train = restrict(&s, &[0, 1, 3]);
    let (fitted, _, _) = l.fit(&train, &setting, seed, &e).unwrap();
    assert_eq!(file.model, fitted.model);
    assert_eq!(serde_json::to_string(&file.model).unwrap(), serde_json::to_string(&fitted.model).unwrap());
    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fit.json")).unwrap()).unwrap();
    let p = l.fit_predict(&train, &setting, seed, &[2.0], &e).unwrap();
    let action = fit["action"].as_f64().unwrap();
    assert!(action > 0.0 && (p.action - action).abs() <= 1e-12 * action, "{} vs {action}", p.action);
    // the CLI's time basis is the candidate's
    assert_eq!(file.settings["params"]["seed"], serde_json::json!(seed));
    assert_eq!(file.settings["start"]["uot_fm"]["time"], serde_json::json!("constant"));
    assert_eq!(file.settings["params"]["max_iter"], serde_json::json!(5));
}
