//! Reaction steps (SPEC §1.2): exact mass laws and lineage.
//!
//! - `weights`, constant g: `M(t) = M0 e^{gt}` to 1e-12 relative (one exp per step, exact ODE);
//! - `weights`, conserving, g varying in space, no motion: `w_i(t) = M0 w_i(0) e^{g(x_i)t} / Z`
//!   to 1e-12, and `M` constant to 1e-12;
//! - `birth_death`, constant g: over 60 seeds the mean final mass lies within 3 standard errors of
//!   `M0 e^{gt}`; conserving keeps n and M exactly (to rounding, 1e-12);
//! - every particle's parent chain (lineage) leads to an original particle.

mod common;
use advreact::field::analytic::{AffineGrowth, OrnsteinUhlenbeck};
use advreact::field::{Field, SumField};
use advreact::observe::{Observer, StepRecord};
use advreact::reaction::ReactionKind;
use advreact::Cloud;
use common::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

fn cloud(n: usize, mass: f64) -> Cloud {
    let x: Vec<f64> = (0..n * 2).map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0).collect();
    Cloud::uniform(2, x, mass).unwrap()
}

fn growth(rate: f64, slope: [f64; 2]) -> Box<dyn Field> {
    Box::new(AffineGrowth { rate, slope: slope.to_vec() })
}

#[test]
fn weights_constant_growth_is_exact() {
    for (g, conserve) in [(0.8, false), (-1.3, false), (0.8, true)] {
        let (dt, steps, m0) = (0.01, 250, 2.5);
        let mut s =
            sim(&cloud(500, m0), growth(g, [0.0; 2]), ReactionKind::Weights, conserve, dt, steps, 0.3, 4);
        s.run(&mut []).unwrap();
        let want = if conserve { m0 } else { m0 * (g * dt * steps as f64).exp() };
        let got = s.particles.mass();
        assert!((got - want).abs() <= 1e-12 * want, "g={g} conserve={conserve}: {got} vs {want}");
    }
}

#[test]
fn conserving_weights_match_exact_reweighting() {
    let (dt, steps, m0) = (0.05, 40, 3.0);
    let src = cloud(300, m0);
    let slope = [1.5, -0.7];
    let mut s = sim(&src, growth(0.2, slope), ReactionKind::Weights, true, dt, steps, 0.0, 1);
    s.run(&mut []).unwrap();
    let t = dt * steps as f64;
    let raw: Vec<f64> = src
        .x
        .chunks(2)
        .zip(&src.w)
        .map(|(p, w)| w * ((0.2 + slope[0] * p[0] + slope[1] * p[1]) * t).exp())
        .collect();
    let z: f64 = raw.iter().sum();
    let w = s.particles.weights();
    for (i, (got, r)) in w.iter().zip(&raw).enumerate() {
        let want = m0 * r / z;
        assert!((got - want).abs() <= 1e-12 * want, "particle {i}: {got} vs {want}");
    }
    assert!((s.particles.mass() - m0).abs() <= 1e-12 * m0);
}

#[test]
fn birth_death_mass_is_exact_in_expectation() {
    let (g, dt, steps, m0, n) = (0.7, 0.05, 40, 1.0, 400);
    let want = m0 * (g * dt * steps as f64).exp();
    let finals: Vec<f64> = (0..60)
        .map(|seed| {
            let mut s = sim(
                &cloud(n, m0),
                growth(g, [0.0; 2]),
                ReactionKind::BirthDeath,
                false,
                dt,
                steps,
                0.1,
                seed,
            );
            s.run(&mut []).unwrap();
            s.particles.mass()
        })
        .collect();
    let k = finals.len() as f64;
    let mean = finals.iter().sum::<f64>() / k;
    let sd = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    let se = sd / k.sqrt();
    assert!(sd > 0.0, "branching must be random");
    assert!((mean - want).abs() <= 3.0 * se, "mean final mass {mean} vs {want} (3 SE = {})", 3.0 * se);
}

/// Births recorded as the run goes.
#[derive(Default)]
struct Lineage {
    parent: HashMap<u64, u64>,
    n_births: usize,
}

/// An observer filling a shared [`Lineage`].
struct Recorder(Rc<RefCell<Lineage>>);

impl Observer for Recorder {
    fn on_step(&mut self, rec: &StepRecord) -> Result<(), advreact::Error> {
        let mut l = self.0.borrow_mut();
        for (c, p) in &rec.events.births {
            assert!(l.parent.insert(*c, *p).is_none(), "id {c} born twice");
            l.n_births += 1;
        }
        Ok(())
    }
}

fn check_lineage(s: &advreact::stepper::Simulation, lin: &Lineage, n0: u64) {
    for (&id, &parent) in s.particles.id.iter().zip(&s.particles.parent) {
        let mut cur = id;
        let mut hops = 0;
        while cur >= n0 {
            cur = *lin.parent.get(&cur).unwrap_or_else(|| panic!("id {cur} has no recorded parent"));
            hops += 1;
            assert!(hops < 100_000);
        }
        if id >= n0 {
            assert_eq!(lin.parent[&id], parent, "snapshot parent of {id}");
        } else {
            assert_eq!(parent, id, "an original is its own parent");
        }
    }
}

#[test]
fn birth_death_lineage_and_conservation() {
    let (dt, steps, m0, n) = (0.05, 60, 2.0, 500);
    // Growth varies in space and particles move: some die, some divide.
    let field = || -> Box<dyn Field> {
        Box::new(SumField {
            terms: vec![
                growth(0.3, [2.0, -1.0]),
                Box::new(OrnsteinUhlenbeck { theta: 0.5, mean: vec![0.0, 0.0] }),
            ],
        })
    };
    for conserve in [false, true] {
        let mut s = sim(&cloud(n, m0), field(), ReactionKind::BirthDeath, conserve, dt, steps, 0.2, 9);
        let shared = Rc::new(RefCell::new(Lineage::default()));
        s.run(&mut [Box::new(Recorder(shared.clone())) as Box<dyn Observer>]).unwrap();
        let lin = &*shared.borrow();
        assert!(lin.n_births > 100, "conserve={conserve}: expected many births, got {}", lin.n_births);
        check_lineage(&s, lin, n as u64);
        if conserve {
            assert_eq!(s.particles.len(), n);
            assert!((s.particles.mass() - m0).abs() <= 1e-12 * m0, "mass {}", s.particles.mass());
        }
        let mut ids = s.particles.id.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), s.particles.len(), "ids are unique");
    }
}
