//! Learned dynamics (SPEC §6): one continuous velocity `u(x, t)` and growth `g(x, t)` fitted to
//! all snapshots, as linear models in space–time features ([`features`]): UOT flow matching
//! ([`model::FlowModel`]) and Var-RUOT's single potential `λ` ([`model::Potential`], [`psi`]).

pub mod commands;
pub mod features;
pub mod model;
pub mod protocol;
pub mod psi;
pub mod report;
pub mod results;
pub mod uot_fm;
pub mod var_ruot;
