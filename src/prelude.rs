//! The library's public surface in one import: `use advreact::prelude::*;`.
//!
//! - particles and clouds: [`Cloud`] (the one weighted point set `Σ_j w_j δ_{x_j}` every
//!   function takes), [`Particles`] (the simulated population, log-weights and lineage);
//! - the [`Field`] trait and what it sees ([`EvalCtx`]): a velocity `u(x, t)` and a growth rate
//!   `g(x, t)`, driving `dX = u dt + σ dW`, `dw = g w dt`;
//! - the simulation and its run: [`Simulation`] from particles, a target, a field, a [`Reaction`]
//!   and a [`TimeCfg`]; [`Simulation::run`] returns a [`Summary`] with a [`StopReason`];
//!   [`Observer`]s and [`Metric`]s plug into it;
//! - scenarios: [`load_scenario`] / [`load_scenario_str`] read a TOML scenario into
//!   [`Scenario`]s, [`run_scenario`] runs one and writes the same output folder as `advreact run`;
//! - unbalanced OT: [`uot_clouds`] solves `min_π ⟨C, π⟩ + ε KL(π | a⊗b) + D_a(π1 | a) +
//!   D_b(πᵀ1 | b)` with [`SinkhornOptions`] ([`Cost`], one [`Marginal`] penalty per side) and
//!   returns a [`UotSolution`] (potentials, [`UotReport`], plan marginals);
//! - metrics: [`mmd_between`] (Gaussian-kernel MMD between two clouds);
//! - data I/O: [`read_snapshot`] / [`parse_snapshot`] read a snapshot CSV into a
//!   [`SnapshotTable`], whose [`SnapshotTable::select`] gives a [`Cloud`];
//! - errors: [`Error`] and its layers [`ConfigError`], [`DataError`], [`SimError`],
//!   [`CloudError`], each one line naming the file and key, the line, or the step.
//!
//! These names and paths are what the crate keeps stable; everything else is reachable through
//! the modules but may change between versions.
//!
//! An unbalanced coupling and an MMD between two small clouds:
//!
//! ```
//! use advreact::prelude::*;
//!
//! let a = Cloud::uniform(1, vec![0.0, 1.0], 1.0)?;
//! let b = Cloud::uniform(1, vec![0.5, 1.5, 2.5], 1.5)?;
//! // ε = 0.05, τ_a = τ_b = 1 (KL), cost |x − y|².
//! let opts = SinkhornOptions::kl(0.05, 1.0, 1.0, Cost::SqEuclidean);
//! let sol = uot_clouds(&a, &b, &opts)?;
//! let r = &sol.report;
//! assert!(r.converged && r.marginal_error_a <= opts.tol && r.marginal_error_b <= opts.tol);
//! // Unbalanced: the plan moves some mass, less than either side holds.
//! assert!(r.transported_mass > 0.0 && r.transported_mass < a.mass());
//! // The plan, online from the potentials: the largest entry of each source row.
//! let top = sol.coupling(&a, &b)?.top_k(1)?;
//! assert_eq!((top[0].i, top[0].j, top[1].j), (0, 0, 1));
//!
//! let m = mmd_between(&a, &b, 1.0)?;
//! assert!(m.mmd2 > 0.0);
//! assert_eq!(mmd_between(&a, &a, 1.0)?.mmd2, 0.0);
//! # Ok::<(), advreact::Error>(())
//! ```
//!
//! A scenario from TOML text, built and run in memory:
//!
//! ```
//! use advreact::prelude::*;
//! use std::path::Path;
//!
//! let toml = r#"
//!     meta = { name = "decay" }
//!     source = { type = "gaussian", n = 50, mean = [0.0], std = 1.0 }
//!     field = { type = "constant_growth", rate = -0.5 }
//!     reaction = { type = "weights" }
//!     time = { dt = 0.1, steps = 10 }
//! "#;
//! let scenarios = load_scenario_str(toml, Path::new("decay.toml"), &Overrides::default())?;
//! let mut built = scenarios[0].build()?;
//! let summary = built.sim.run(&mut [])?;
//! assert_eq!(summary.stop_reason, StopReason::Completed);
//! // dw = g w dt with g = −0.5 is integrated exactly: M(1) = e^{−0.5}.
//! assert!((summary.mass - (-0.5f64).exp()).abs() < 1e-12);
//! # Ok::<(), advreact::Error>(())
//! ```
//!
//! Snapshot data (`time, x1..xd[, w]` CSV, here from text; [`read_snapshot`] reads a file) as
//! clouds, one per time point:
//!
//! ```
//! use advreact::prelude::*;
//! use std::path::Path;
//!
//! let csv = "time,x1,x2,w\n0,0.0,0.0,1\n0,1.0,0.0,3\n1,0.5,0.5,2\n";
//! let table = parse_snapshot(Path::new("cells.csv"), csv)?;
//! let (day0, day1) = (table.select(Some(0.0))?, table.select(Some(1.0))?);
//! assert_eq!((day0.len(), day0.mass(), day0.mean()), (2, 4.0, vec![0.75, 0.0]));
//! assert_eq!(day1.point(0), &[0.5, 0.5]);
//! // Errors name the file and the line.
//! let e = parse_snapshot(Path::new("bad.csv"), "time,x1\n0,oops\n").unwrap_err();
//! assert!(e.to_string().starts_with("bad.csv: line 2: "), "{e}");
//! # Ok::<(), advreact::Error>(())
//! ```

pub use crate::data::{parse_snapshot, read_snapshot, Selection, SnapshotTable};
pub use crate::error::{CloudError, ConfigError, DataError, Error, SimError};
pub use crate::field::{EvalCtx, Field};
pub use crate::metrics::{mmd_between, Metric, MetricCtx, MmdTerms};
pub use crate::observe::Observer;
pub use crate::ot::{
    uot_clouds, Cost, Coupling, Marginal, PlanEntry, SinkhornOptions, UotReport, UotSolution,
};
pub use crate::particles::{Cloud, Particles};
pub use crate::reaction::{Reaction, ReactionKind};
pub use crate::run::{run_scenario, RunOptions, RunOutcome};
pub use crate::scenario::{load as load_scenario, load_str as load_scenario_str, Overrides, Scenario};
pub use crate::stepper::{Simulation, StopReason, Summary, TimeCfg};
