//! `[field] type = "map"` (src/field/map.rs): a transport map drives the particles along its
//! constant-speed displacement interpolation `x₀ + min(t/D, 1) Δ(x₀)`.
//!
//! Each particle keeps its `Δ_i = T(x_i(0)) − x_i(0)` and moves at `Δ_i/D`, so without noise
//! after `D/dt` steps the particles sit at `T(x₀)` up to rounding, whatever `dt`; tested here to
//! 1e-9 against the same map applied to the source directly, for a map fitted when the scenario is
//! built and for the same map read from a map.json, and halfway at `t = D/2`. The target is split
//! in two modes, so the map has a steep region (where an Eulerian pre-image would be
//! ill-conditioned). Bad tables give one-line errors naming the key.

use advreact::dist::Exec;
use advreact::maps::command::{fit_clouds, MapMethod, MapOptions};
use advreact::maps::{MapFile, MapModel};
use advreact::prelude::*;
use std::path::Path;

fn scenario(field: &str, steps: usize, dt: f64) -> String {
    format!(
        r#"
        meta = {{ name = "map_field", seed = 4 }}
        source = {{ type = "gaussian", n = 120, mean = [0.0, 0.0], std = 0.5 }}
        target = {{ type = "mixture", n = 150, components = [
            {{ mean = [2.0, 0.0], std = 0.3, weight = 0.5 }},
            {{ mean = [2.0, 1.5], std = 0.3, weight = 0.5 }} ] }}
        field = {field}
        reaction = {{ type = "none" }}
        time = {{ dt = {dt}, steps = {steps} }}
        "#
    )
}

fn build(toml: &str, dir: &Path) -> Result<advreact::scenario::Built, Error> {
    let s = load_scenario_str(toml, &dir.join("s.toml"), &Overrides::default())?;
    s[0].build()
}

/// Runs the scenario and returns (start, end) positions and the built target.
fn run(toml: &str, dir: &Path) -> (Cloud, Vec<f64>, Cloud) {
    let mut b = build(toml, dir).unwrap();
    let x0 = b.source.clone();
    let target = b.target.clone().unwrap();
    let summary = b.sim.run(&mut []).unwrap();
    assert_eq!(summary.stop_reason, StopReason::Completed, "{:?}", summary.error);
    (x0, b.sim.particles.x.clone(), target)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

#[test]
fn particles_end_at_the_map_images_fitted_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let field = r#"{ type = "map", method = "sparse-l1", gamma = 0.2, eps = 0.05, duration = 1.0 }"#;
    // D = 1 in 20 steps of 0.05, then 5 more steps at rest.
    let (src, end, target) = run(&scenario(field, 25, 0.05), dir.path());
    let o = MapOptions {
        method: MapMethod::SparseL1,
        gamma: Some(0.2),
        target_dims: None,
        sigma: None,
        eps: Some(0.05),
        tau: None,
        force: false,
        exec: Exec::default(),
    };
    let (fitted, _) = fit_clouds(&src, &target, &o).unwrap();
    let images = fitted.map.apply(&src.x, &Exec::default()).unwrap();
    let err = max_abs_diff(&end, &images);
    assert!(err < 1e-9, "end vs T(x0): {err:e}");
    // The map moves the points (so the check above is not trivial): mean |Δ| ≈ 2.
    let moved = max_abs_diff(&end, &src.x);
    assert!(moved > 1.0, "moved {moved}");

    // The same map from a file, a coarser dt: the same end points.
    MapFile::new(fitted.map.clone()).write(&dir.path().join("m.json")).unwrap();
    let field = r#"{ type = "map", model = "m.json", duration = 1.0 }"#;
    let (_, end2, _) = run(&scenario(field, 10, 0.1), dir.path());
    let err2 = max_abs_diff(&end2, &images);
    assert!(err2 < 1e-9, "from file, dt = 0.1: {err2:e}");
}

#[test]
fn halfway_the_particles_are_halfway() {
    let dir = tempfile::tempdir().unwrap();
    let field = r#"{ type = "map", method = "entropic", eps = 0.05, duration = 2.0 }"#;
    // t = 1 of D = 2: s = ½.
    let (src, end, target) = run(&scenario(field, 10, 0.1), dir.path());
    let o = MapOptions {
        method: MapMethod::Entropic,
        gamma: None,
        target_dims: None,
        sigma: None,
        eps: Some(0.05),
        tau: None,
        force: false,
        exec: Exec::default(),
    };
    let images = fit_clouds(&src, &target, &o).unwrap().0.map.apply(&src.x, &Exec::default()).unwrap();
    let half: Vec<f64> = src.x.iter().zip(&images).map(|(x, t)| x + 0.5 * (t - x)).collect();
    let err = max_abs_diff(&end, &half);
    assert!(err < 1e-9, "x(t = D/2) vs x0 + Δ/2: {err:e}");
}

#[test]
fn bad_map_tables_are_one_line_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{ type = "map", method = "entropic", duration = 0.33 }"#,
            "field.duration",
            "multiple of time.dt",
        ),
        (r#"{ type = "map", method = "sparse-l1" }"#, "field.gamma", "required"),
        (r#"{ type = "map", method = "sparse-l0" }"#, "field.gamma", "required"),
        (r#"{ type = "map" }"#, "field", "needs model"),
        (r#"{ type = "map", model = "m.json", method = "entropic" }"#, "field", "not both"),
        (r#"{ type = "map", model = "missing.json" }"#, "field.model", "missing.json"),
        (r#"{ type = "map", method = "entropic", duration = -1.0 }"#, "field.duration", ""),
    ];
    for (field, key, what) in cases {
        let err = match build(&scenario(field, 10, 0.1), dir.path()) {
            Ok(_) => panic!("{field}: built"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains(key) && err.contains(what), "{field}: {err}");
    }
}

/// A sparse-ℓ0 parametric map (`method = "sparse-l0"`, fixed γ) drives the particles to its
/// images `x + Θᵀφ(x)`, fitted at build time and read back from its map.json (`sparse` model):
/// both to 1e-9 of the map applied directly.
#[test]
fn sparse_l0_map_fitted_or_read_ends_at_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let field = r#"{ type = "map", method = "sparse-l0", gamma = 0.05, eps = 0.5, duration = 1.0 }"#;
    let (src, end, target) = run(&scenario(field, 10, 0.1), dir.path());
    let o = MapOptions {
        method: MapMethod::SparseL0,
        gamma: Some(0.05),
        target_dims: None,
        sigma: None,
        eps: Some(0.5),
        tau: None,
        force: false,
        exec: Exec::default(),
    };
    let (fitted, _) = fit_clouds(&src, &target, &o).unwrap();
    assert!(matches!(fitted.map, MapModel::Sparse(_)));
    let images = fitted.map.apply(&src.x, &Exec::default()).unwrap();
    assert!(max_abs_diff(&end, &images) < 1e-9, "end vs T(x0)");
    assert!(max_abs_diff(&end, &src.x) > 1.0, "the map moves the points");
    MapFile::new(fitted.map.clone()).write(&dir.path().join("m.json")).unwrap();
    let field = r#"{ type = "map", model = "m.json", duration = 1.0 }"#;
    let (_, end2, _) = run(&scenario(field, 20, 0.05), dir.path());
    assert!(max_abs_diff(&end2, &images) < 1e-9, "from file");
}
