//! Numerical guards and resource limits: extreme settings either run stably (log-domain weights)
//! or stop with a named error — never NaN in an output, never a panic.

mod common;
use advreact::field::analytic::{AffineGrowth, OrnsteinUhlenbeck};
use advreact::field::sobolev_fisher::{SobolevFisher, SobolevFisherParams};
use advreact::field::Field;
use advreact::reaction::{Reaction, ReactionKind};
use advreact::scenario::{load_str, Overrides};
use advreact::stepper::StopReason;
use advreact::Cloud;
use common::*;
use std::path::Path;

fn cloud(n: usize, d: usize, shift: f64) -> Cloud {
    let x: Vec<f64> = (0..n * d).map(|i| ((i * 7919) % 1009) as f64 / 504.5 - 1.0 + shift).collect();
    Cloud::uniform(d, x, 1.0).unwrap()
}

fn growth(rate: f64, slope: Vec<f64>) -> Box<dyn Field> {
    Box::new(AffineGrowth { rate, slope })
}

#[test]
fn huge_growth_rates_are_clipped_and_counted() {
    let (n, steps) = (200, 50);
    let mut s =
        sim(&cloud(n, 2, 0.0), growth(1e6, vec![0.0; 2]), ReactionKind::Weights, false, 0.01, steps, 0.0, 1);
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::Completed);
    // |g dt| = 1e4 is clipped to max_growth_step = 1 at every step for every particle.
    assert_eq!(sum.guards.growth_clipped, (n * steps) as u64);
    let want = (steps as f64).exp();
    assert!((s.particles.mass() - want).abs() <= 1e-12 * want);
}

#[test]
fn weights_beyond_the_f64_range_stay_finite_when_conserved() {
    // g = 1000·x₁ with x₁ ∈ [−1, 1]: after t = 2 the raw weights span e^{±2000} (far beyond
    // 1e±308); the log-weights hold them, the mass stays 1, and no NaN appears.
    let mut s = sim(
        &cloud(300, 2, 0.0),
        growth(0.0, vec![1000.0, 0.0]),
        ReactionKind::Weights,
        true,
        0.001,
        2000,
        0.0,
        1,
    );
    s.reaction.max_growth_step = 10.0;
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::Completed, "{:?}", sum.error);
    let lw = &s.particles.logw;
    assert!(lw.iter().all(|l| l.is_finite()));
    let spread = lw.iter().cloned().fold(f64::MIN, f64::max) - lw.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread > 2.0 * 300.0 * std::f64::consts::LN_10,
        "log-weights span {spread}: more than 1e-300..1e300"
    );
    assert!((s.particles.mass() - 1.0).abs() < 1e-12);
}

#[test]
fn free_weights_overflowing_f64_stop_with_a_named_error() {
    let mut s =
        sim(&cloud(50, 1, 0.0), growth(100.0, vec![0.0]), ReactionKind::Weights, false, 1.0, 20, 0.0, 1);
    s.reaction.max_growth_step = 100.0;
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::NonFinite);
    let e = sum.error.unwrap().to_string();
    assert!(e.contains("weight") && e.contains("step") && e.contains("particle"), "{e}");
    assert!(sum.steps < 20);
}

#[test]
fn all_particles_dying_ends_as_extinct() {
    for kind in [ReactionKind::BirthDeath, ReactionKind::Weights] {
        let mut s = sim(&cloud(100, 2, 0.0), growth(-1e6, vec![0.0; 2]), kind, false, 1.0, 10, 0.0, 1);
        s.reaction.max_growth_step = 1e6;
        let sum = s.run(&mut []).unwrap();
        assert_eq!(sum.stop_reason, StopReason::Extinct, "{kind:?}: {:?}", sum.error);
        assert!(sum.error.is_none());
        assert_eq!(sum.steps, 1);
    }
}

#[test]
fn runaway_branching_hits_the_population_cap_with_a_clear_error() {
    let mut s =
        sim(&cloud(100, 2, 0.0), growth(30.0, vec![0.0; 2]), ReactionKind::BirthDeath, false, 1.0, 5, 0.0, 1);
    s.reaction = Reaction {
        kind: ReactionKind::BirthDeath,
        max_growth_step: 40.0,
        max_particles: 100_000,
        ..Default::default()
    };
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::Limit);
    let e = sum.error.unwrap().to_string();
    assert!(e.contains("max_particles") && e.contains("step 0"), "{e}");
}

#[test]
fn a_target_far_away_runs_without_nan() {
    // USD toward a target 1000 units away: the critic is tiny there, nothing blows up.
    let src = cloud(500, 2, 0.0);
    let target = cloud(500, 2, 1000.0);
    let cfg =
        SobolevFisherParams { features: 128, bandwidth: 0.5, ..Default::default() }.check(true).unwrap();
    let f = SobolevFisher::new(cfg, 2, &target, 3).unwrap();
    let mut s = sim(&src, Box::new(f), ReactionKind::Weights, true, 0.1, 20, 0.0, 1);
    s.target = target;
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::Completed, "{:?}", sum.error);
    assert!(s.particles.x.iter().all(|v| v.is_finite()));
    assert!((s.particles.mass() - 1.0).abs() < 1e-12);
    // And a strong OU pull at a huge dt diverges: stopped and named, not NaN in the output.
    let mut s = sim(
        &cloud(10, 1, 0.0),
        Box::new(OrnsteinUhlenbeck { theta: 1e3, mean: vec![0.0] }),
        ReactionKind::None,
        false,
        10.0,
        200,
        0.0,
        1,
    );
    let sum = s.run(&mut []).unwrap();
    assert_eq!(sum.stop_reason, StopReason::NonFinite);
    assert!(sum.error.unwrap().to_string().contains("particle"));
}

#[test]
fn scenarios_too_large_for_memory_fail_before_allocating() {
    let text = r#"
[meta]
name = "huge"
[source]
type = "gaussian"
n = 1000000000000
mean = [0.0, 0.0, 0.0]
std = 1.0
[field]
type = "zero"
[time]
dt = 0.1
steps = 1
"#;
    let scs = load_str(text, Path::new("huge.toml"), &Overrides::default()).unwrap();
    let err = scs[0].build().err().expect("must fail").to_string();
    assert!(err.starts_with("huge.toml: source.n:"), "{err}");
    assert!(err.contains("estimate") && err.contains("TiB"), "{err}");
    let text = text
        .replace("n = 1000000000000", "n = 10")
        .replace("type = \"zero\"", "type = \"sobolev_fisher\"\nbandwidth = 1.0\nfeatures = 10000000")
        + "[target]\ntype = \"gaussian\"\nn = 10\nmean = [0.0, 0.0, 0.0]\nstd = 1.0\n";
    let scs = load_str(&text, Path::new("huge.toml"), &Overrides::default()).unwrap();
    let err = scs[0].build().err().expect("must fail").to_string();
    assert!(err.contains("field.features") && err.contains("estimate"), "{err}");
}
