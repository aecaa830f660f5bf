//! `[field] type = "map"` with `method = "sparse-l0"` and `target_dims` (instead of `gamma`):
//! `γ` is searched at build time for the mean displacement dimensionality, as `advreact map
//! --target-dims`; the particles end at the images of that same map (1e-9), which moves about
//! `target_dims` coordinates; bad tables are one-line errors naming `field.target_dims`.

use advreact::dist::Exec;
use advreact::maps::command::{fit_clouds, MapMethod, MapOptions};
use advreact::maps::{default_delta, Displacement};
use advreact::prelude::*;
use std::path::Path;

/// d = 4: the target is the source's law shifted by 1.5 in coordinate 1 only.
fn scenario(field: &str) -> String {
    format!(
        r#"
        meta = {{ name = "map_target_dims", seed = 3 }}
        source = {{ type = "gaussian", n = 80, mean = [0.0, 0.0, 0.0, 0.0], std = 0.5 }}
        target = {{ type = "gaussian", n = 80, mean = [1.5, 0.0, 0.0, 0.0], std = 0.5 }}
        field = {field}
        reaction = {{ type = "none" }}
        time = {{ dt = 0.1, steps = 10 }}
        "#
    )
}

fn build(toml: &str, dir: &Path) -> Result<advreact::scenario::Built, Error> {
    let s = load_scenario_str(toml, &dir.join("s.toml"), &Overrides::default())?;
    s[0].build()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

#[test]
fn target_dims_searches_gamma_and_drives_the_particles() {
    let dir = tempfile::tempdir().unwrap();
    let field = r#"{ type = "map", method = "sparse-l0", target_dims = 1.0, eps = 0.2, duration = 1.0 }"#;
    let mut b = build(&scenario(field), dir.path()).unwrap();
    let (src, target) = (b.source.clone(), b.target.clone().unwrap());
    let summary = b.sim.run(&mut []).unwrap();
    assert_eq!(summary.stop_reason, StopReason::Completed, "{:?}", summary.error);
    let end = b.sim.particles.x.clone();
    // The same search through the library (advreact map --target-dims 1).
    let o = MapOptions {
        method: MapMethod::SparseL0,
        gamma: None,
        target_dims: Some(1.0),
        sigma: None,
        eps: Some(0.2),
        tau: None,
        force: false,
        exec: Exec::default(),
    };
    let (fitted, _) = fit_clouds(&src, &target, &o).unwrap();
    assert!(fitted.gamma > 0.0, "γ searched: {}", fitted.gamma);
    let images = fitted.map.apply(&src.x, &Exec::default()).unwrap();
    assert!(max_abs_diff(&end, &images) < 1e-9, "end vs T(x0)");
    // About one coordinate moves (measured 1.19 at n = 80), mostly coordinate 1 (moved in 80 %
    // of the points; the next one in 39 %), towards the shift.
    let disp = Displacement::of(4, &src.x, &images, default_delta(&src));
    assert!(disp.mean_dims() <= 1.5, "mean dims {}", disp.mean_dims());
    let f = &disp.frequency;
    assert!(f[0] >= 0.75 && f[1..].iter().all(|v| *v < 0.5), "coordinate 1 moves most: {f:?}");
    let shift: f64 =
        end.chunks_exact(4).zip(src.x.chunks_exact(4)).map(|(e, s)| e[0] - s[0]).sum::<f64>() / 80.0;
    assert!(shift > 0.75 && shift < 2.0, "mean shift of coordinate 1: {shift} (the laws differ by 1.5)");
}

#[test]
fn bad_target_dims_are_one_line_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.json"), "{}").unwrap();
    let cases = [
        (r#"{ type = "map", method = "entropic", target_dims = 1.0 }"#, "sparse-l0"),
        (r#"{ type = "map", method = "sparse-l1", gamma = 0.1, target_dims = 1.0 }"#, "sparse-l0"),
        (r#"{ type = "map", method = "sparse-l0", gamma = 0.1, target_dims = 1.0 }"#, "cannot be used with"),
        (r#"{ type = "map", method = "sparse-l0", target_dims = 0.0 }"#, "≥ 1"),
        (r#"{ type = "map", method = "sparse-l0", target_dims = 5.0 }"#, "≤ the dimension 4"),
        (r#"{ type = "map", model = "m.json", target_dims = 1.0 }"#, "only for a map fitted here"),
    ];
    for (field, what) in cases {
        let err = match build(&scenario(field), dir.path()) {
            Ok(_) => panic!("{field}: built"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("field.target_dims") && err.contains(what), "{field}: {err}");
        assert!(err.contains("s.toml"), "names the file: {err}");
    }
}
