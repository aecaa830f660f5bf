//! Space-uniform time functions in the Var-RUOT potential (`Features::with_time_functions`,
//! `advreact fit --time-functions R`): the adjoint stays the exact gradient, they give the cosine
//! basis a growth rate that is uniform in space and changes sign in time (which it lacks without
//! them), and `R = 0` leaves a fit's model file byte for byte as it was.

mod common;
use advreact::dist::Exec;
use advreact::infer::Series;
use advreact::learned::features::{FeatureSpec, Features, TimeBasis};
use advreact::learned::model::{Model, ModelFile, Potential};
use advreact::learned::psi::Psi;
use advreact::learned::var_ruot::{fit, loss_and_grad, Problem, VarRuotParams};
use advreact::Cloud;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A cosine map in 2-D (`t ∈ [0, 1]` standardised to `τ ∈ [−1, 1]`) with `r` time functions.
fn cosine(random: usize, r: usize) -> Features {
    Features::new(FeatureSpec {
        dim: 2,
        random,
        ell_x: 0.8,
        ell_t: 1.5,
        poly: 1,
        time: TimeBasis::Cosine,
        seed: 3,
        centre: vec![0.0; 2],
        scale: 1.0,
        t_centre: 0.5,
        t_scale: 0.5,
    })
    .unwrap()
    .with_time_functions(r)
    .unwrap()
}

/// `n` points on a fixed lattice-like spiral (no randomness needed) with weights `w` each.
fn cloud(n: usize, w: f64, shift: f64) -> Cloud {
    let x: Vec<f64> = (0..n)
        .flat_map(|i| {
            let a = i as f64 * 2.399;
            let r = 0.1 * (i as f64 + 1.0).sqrt();
            [r * a.cos() + shift, r * a.sin()]
        })
        .collect();
    Cloud::new(2, x, vec![w; n]).unwrap()
}

fn series(masses: &[f64], shift: f64) -> Series {
    let times: Vec<f64> = (0..masses.len()).map(|k| k as f64 / (masses.len() - 1) as f64).collect();
    let clouds = masses.iter().enumerate().map(|(k, m)| cloud(30, m / 30.0, shift * k as f64)).collect();
    Series { file: PathBuf::from("<test>"), times, clouds, growth: None, labels: None, ids: None }
}

/// The adjoint gradient with time functions (they enter λ, hence g, and ∂ₜλ in the HJB residual)
/// matches directional central differences to a relative error of 1e-6, along each time
/// function's coefficient and random directions; σ > 0 and every running term on.
#[test]
fn adjoint_matches_central_differences_with_time_functions() {
    let s = series(&[1.0, 1.3, 0.9], 0.3);
    let f = cosine(6, 4);
    let p = f.len();
    let theta: Vec<f64> = (0..p).map(|i| 0.3 * ((i as f64) * 1.37 + 0.2).sin()).collect();
    let params = VarRuotParams {
        sigma: 0.3,
        dt: 0.1,
        eps: 0.1,
        gamma_m: 2.0,
        gamma_a: 0.7,
        gamma_h: 0.5,
        sinkhorn_tol: 1e-13,
        sinkhorn_max_iter: 100_000,
        seed: 9,
        ..VarRuotParams::default()
    };
    let exec = Exec::default();
    let pot = Potential { features: f, theta: theta.clone(), psi: Psi::Quadratic, alpha: 0.8 };
    let ev = loss_and_grad(&s, &pot, &params, &exec).unwrap();
    let loss = |th: &[f64]| {
        let q = Potential { theta: th.to_vec(), ..pot.clone() };
        loss_and_grad(&s, &q, &params, &exec).unwrap().loss
    };
    let mut dirs: Vec<Vec<f64>> =
        (p - 4..p).map(|j| (0..p).map(|i| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    for r in 0..2 {
        dirs.push((0..p).map(|i| ((i * 7 + r * 3) as f64 * 0.91).sin()).collect());
    }
    for v in dirs {
        let h = 1e-5;
        let tp: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let tm: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
        let an: f64 = ev.grad.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!(an.abs() > 1e-4, "a trivial direction: {an}");
        let rel = (fd - an).abs() / an.abs();
        assert!(rel <= 1e-6, "FD {fd} vs adjoint {an}: relative error {rel:.3e}");
    }
}

/// Nothing moves and the mass goes 1 → 1.5 → 1 (growth +0.81 then −0.81 per unit time, the same
/// for every cell). Without random features the cosine basis's only time dependence would be in
/// them, so with `R = 0` the potential is time-independent and the mass path cannot turn: its
/// relative mass error stays above 10 %. Eight time functions fit both masses within 1 % and
/// leave the cells where they are (|u| ≤ 0.05 at every cell; the translation a linear λ could
/// make is not asked for).
#[test]
fn time_functions_give_a_uniform_growth_that_changes_sign() {
    let s = series(&[1.0, 1.5, 1.0], 0.0);
    let params = VarRuotParams {
        gamma_s: 0.0,
        gamma_m: 100.0,
        gamma_a: 0.01,
        dt: 0.025,
        max_iter: 200,
        tol: 1e-9,
        ..VarRuotParams::default()
    };
    let exec = Exec::default();
    let mass_errors = |r: usize| {
        let f = cosine(0, r);
        let start =
            Potential { theta: vec![0.0; f.len()], features: f.clone(), psi: Psi::Quadratic, alpha: 1.0 };
        let (pot, _) = fit(&s, start, &params, &exec, &mut |_| {}).unwrap();
        let path = Problem::new(&s, f.clone(), &params).unwrap().mass_path(&pot.theta, &exec).unwrap();
        let at = |t: f64| path.iter().find(|(tn, _)| (tn - t).abs() < 1e-9).unwrap().1;
        let errs = [(at(0.5) / 1.5 - 1.0).abs(), (at(1.0) - 1.0).abs()];
        let mut p = f.point();
        let mut jet = Default::default();
        let mut speed: f64 = 0.0;
        for x in s.clouds[0].x.chunks_exact(2) {
            for t in [0.0, 0.5, 0.9] {
                f.load(x, t, &mut p);
                f.jet(&pot.theta, &mut p, &mut jet);
                speed = speed.max(jet.grad.iter().map(|g| g * g).sum::<f64>().sqrt());
            }
        }
        eprintln!("R = {r}: relative mass errors {errs:?}, max |u| {speed:.3e}");
        (errs, speed)
    };
    let (e0, _) = mass_errors(0);
    assert!(e0[0].max(e0[1]) > 0.10, "R = 0 fits a turning mass path: {e0:?}");
    let (e8, speed) = mass_errors(8);
    assert!(e8[0].max(e8[1]) <= 0.01, "R = 8: mass errors {e8:?}");
    assert!(speed <= 0.05, "R = 8 moves the cells: max |u| {speed}");
}

fn advreact(args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(repo()).output().expect("run advreact")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small var_ruot fit of three_gene_2d (40 cells per time, 40 features, 3 iterations).
fn small_fit(out: &Path, extra: &[&str]) -> Output {
    let d = repo().join("../shared/data/three_gene_2d/three_gene_2d.csv");
    let mut args = vec!["fit", s(&d), "--subsample", "40", "--features", "40", "--pairs", "400"];
    args.extend_from_slice(&["--dt", "0.1", "--iters", "3", "--threads", "1", "--out", s(out)]);
    args.extend_from_slice(extra);
    advreact(&args)
}

/// `--time-functions 0` is the default (model.json identical, byte for byte);
/// `--time-functions 3` writes three functions into the model and its settings, the file reads
/// back, and `uot_fm` refuses the flag in one line naming it.
#[test]
fn the_cli_flag_is_off_by_default_and_recorded_when_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    for (out, extra) in
        [(&a, vec![]), (&b, vec!["--time-functions", "0"]), (&c, vec!["--time-functions", "3"])]
    {
        let mut args = vec!["--model", "var_ruot"];
        args.extend(extra);
        let o = small_fit(out, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // the same bytes (model.json holds no timing: the ridge start's seconds are in fit.json)
    let read = |p: &PathBuf| std::fs::read_to_string(p.join("model.json")).unwrap();
    let text_a = read(&a);
    assert!(text_a == read(&b), "--time-functions 0 changed model.json");
    let fit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("fit.json")).unwrap()).unwrap();
    assert!(fit["start_ridge"]["seconds"].as_f64().is_some_and(|t| t >= 0.0), "{}", fit["start_ridge"]);
    assert!(!text_a.contains("time_nu") && !text_a.contains("time_functions"));
    let file = ModelFile::read(&c.join("model.json")).unwrap();
    let Model::VarRuot(pot) = &file.model else { panic!("not a var_ruot model") };
    assert_eq!(pot.features.time_functions(), 3);
    assert_eq!(pot.theta.len(), pot.features.len());
    assert_eq!(file.settings["time_functions"], 3);
    let o = small_fit(&tmp.path().join("d"), &["--model", "uot_fm", "--time-functions", "2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains("--time-functions") && err.contains("var_ruot"), "{err}");
}
