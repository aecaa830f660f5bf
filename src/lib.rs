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

pub mod data;
pub mod dist;
pub mod error;
pub mod field;
pub mod format;
pub mod infer;
pub mod kernel;
pub mod metrics;
pub mod observe;
pub mod ot;
pub mod output;
pub mod particles;
pub mod plot;
pub mod reaction;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod simd;
pub mod stepper;

pub use error::{CloudError, ConfigError, DataError, Error, SimError};
pub use particles::{Cloud, Particles};
