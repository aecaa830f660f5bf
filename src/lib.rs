//! # advreact — advection–reaction particle dynamics
//!
//! Weighted particles `(x_i, w_i)` in `R^d` follow `dX = u(X, t) dt + σ dW` while their weights
//! follow `dw = g(X, t) w dt` (SPEC §1). One step of size `dt` is a Lie splitting:
//!
//! ```text
//! x_i ← x_i + u(x_i, t) dt + σ √dt ξ_i          (Euler–Maruyama, ξ_i ~ N(0, I))
//! w_i ← w_i exp(g(x_i, t) dt)                   (exact weight ODE; or birth–death branching)
//! ```
//!
//! each in a mass-conserving and a free-mass variant. The field `(u, g)` is pluggable
//! ([`field::Field`]): analytic ground truths, the kernel Sobolev–Fisher critic of Unbalanced
//! Sobolev Descent, Wasserstein–Fisher–Rao gradient flows. Runs are described by TOML scenarios
//! ([`scenario`]) and write metrics, snapshots, lineage and plots into an output folder.
//!
//! ## Use as a library
//!
//! [`prelude`] holds the public surface: clouds and particles, the `Field` trait, the simulation
//! and its run, scenarios, the unbalanced OT solve, metrics, snapshot I/O and the error types.
//! The command line (`advreact run`, `uot`, `compare`, `bench`, ...) is a thin client of it; its
//! own helpers are private to the binary. A tiny simulation — an Ornstein–Uhlenbeck drift
//! `u(x) = −θ (x − m)` without noise, whose Euler steps contract every point towards `m` by
//! exactly `1 − θ dt` per step:
//!
//! ```
//! use advreact::field::analytic::OrnsteinUhlenbeck;
//! use advreact::prelude::*;
//!
//! let source = Cloud::uniform(1, vec![1.0, 2.0, 3.0], 1.0)?;
//! let no_target = Cloud::new(1, vec![], vec![])?;
//! let field = OrnsteinUhlenbeck { theta: 0.5, mean: vec![0.0] };
//! let time = TimeCfg { dt: 0.1, steps: 20, noise: 0.0, max_displacement: None };
//! let particles = Particles::from_cloud(&source);
//! let mut sim = Simulation::new(particles, no_target, Box::new(field), Reaction::default(), time, 7);
//! let summary = sim.run(&mut [])?;
//! assert_eq!((summary.stop_reason, summary.steps, summary.n), (StopReason::Completed, 20, 3));
//! let contraction = (1.0 - 0.5 * 0.1f64).powi(20);
//! for (x, x0) in sim.particles.x.iter().zip([1.0, 2.0, 3.0]) {
//!     assert!((x - x0 * contraction).abs() < 1e-12);
//! }
//! # Ok::<(), advreact::Error>(())
//! ```
//!
//! `examples/` has three complete programs (`cargo run --release --example NAME`):
//! `custom_field` (a user-written field checked against its closed form), `uot_coupling` (an
//! unbalanced coupling of two clouds) and `scenario_in_code` (a scenario built from the Rust
//! types instead of TOML, run into an output folder).

#![warn(missing_docs)]

pub mod data;
pub mod dist;
pub mod error;
pub mod field;
pub mod format;
pub mod infer;
pub mod kernel;
pub mod learned;
pub mod maps;
pub mod metrics;
pub mod observe;
pub mod ot;
pub mod output;
pub mod param;
pub mod particles;
pub mod plot;
pub mod prelude;
pub mod reaction;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod simd;
pub mod stepper;
pub mod synthetic;

pub use error::{CloudError, ConfigError, DataError, Error, SimError};
pub use particles::{Cloud, Particles};
