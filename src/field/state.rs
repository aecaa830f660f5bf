//! The state a field carries from step to step (warm starts, a critic solved at an earlier step),
//! typed: one [`FieldState`] variant per field type that has state. [`super::Field::save_state`]
//! returns it, [`super::Field::restore_state`] takes it back, and a checkpoint stores it
//! ([`crate::observe::checkpoint`]) so that a resumed run reproduces the same bits.
//!
//! The declaration order of variants and fields is part of the checkpoint format (postcard
//! encodes a variant by its index and a struct as its fields in order): add new variants at the
//! end, and bump the checkpoint's format version for any other change.

use serde::{Deserialize, Deserializer, Serialize};
use std::cell::Cell;

/// A field's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum FieldState {
    /// No state (a stateless field, or one that has not solved anything yet).
    #[default]
    None,
    /// [`super::sobolev_fisher::SobolevFisher`]'s critic.
    SobolevFisher(SobolevFisherState),
    /// [`super::wfr::WfrField`]'s Sinkhorn warm starts.
    Wfr(WfrState),
    /// [`super::SumField`]: the state of each term, in order.
    Sum(SumState),
    /// [`super::map::MapField`]: the displacements `T(x₀) − x₀` of the particles it started
    /// with (particle-contiguous).
    Map(Vec<f64>),
}

/// The Sobolev–Fisher critic in use: `β` solved at step `solved_at`, with the norm of the
/// right-hand side it was solved for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SobolevFisherState {
    /// The step the critic was solved at.
    pub solved_at: u64,
    /// `‖rhs‖` of that solve.
    pub rhs_norm: f64,
    /// The critic's feature coefficients `β` (one per random feature).
    pub beta: Vec<f64>,
}

/// The WFR Sinkhorn energy's warm starts: each step's solves start from them. `OT(ν, ν)` is not
/// saved: it is re-solved from a cold start, exactly as on the first step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WfrState {
    /// The potentials `(f, g)` of `OT(μ, ν)` from the last step.
    pub ab: Option<(Vec<f64>, Vec<f64>)>,
    /// The potential of `OT(μ, μ)` from the last step.
    pub f_aa: Option<Vec<f64>>,
}

/// The states of a sum's terms, in order. Decoding refuses sums nested deeper than
/// [`SumState::MAX_DEPTH`], so a corrupt checkpoint cannot recurse the decoder off the stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SumState(pub Vec<FieldState>);

impl SumState {
    /// The deepest nesting of sums a checkpoint may hold.
    pub const MAX_DEPTH: u32 = 32;
}

thread_local! {
    /// Sums being decoded on this thread, outermost first.
    static SUM_DEPTH: Cell<u32> = const { Cell::new(0) };
}

impl<'de> Deserialize<'de> for SumState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let depth = SUM_DEPTH.get();
        if depth >= Self::MAX_DEPTH {
            return Err(serde::de::Error::custom("field state: sums nested too deeply"));
        }
        SUM_DEPTH.set(depth + 1);
        let terms = Vec::<FieldState>::deserialize(d);
        SUM_DEPTH.set(depth);
        terms.map(SumState)
    }
}

impl FieldState {
    /// The kind of state, for messages (`none`, `sobolev_fisher`, `wfr`, `sum`, `map`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SobolevFisher(_) => "sobolev_fisher",
            Self::Wfr(_) => "wfr",
            Self::Sum(_) => "sum",
            Self::Map(_) => "map",
        }
    }

    /// Checks what decoding cannot: no NaN in a saved vector, a finite `‖rhs‖`. Errors name the
    /// value.
    pub fn validate(&self) -> Result<(), String> {
        let no_nan = |what: &str, v: &[f64]| match v.iter().position(|x| x.is_nan()) {
            Some(i) => Err(format!("field state: {what}[{i}] is NaN")),
            None => Ok(()),
        };
        match self {
            Self::None => Ok(()),
            Self::SobolevFisher(s) => {
                if !s.rhs_norm.is_finite() {
                    return Err(format!("field state: sobolev_fisher rhs_norm is {}", s.rhs_norm));
                }
                no_nan("sobolev_fisher beta", &s.beta)
            }
            Self::Wfr(s) => {
                if let Some((f, g)) = &s.ab {
                    no_nan("wfr f", f)?;
                    no_nan("wfr g", g)?;
                }
                s.f_aa.as_deref().map_or(Ok(()), |f| no_nan("wfr f_aa", f))
            }
            Self::Sum(s) => s.0.iter().try_for_each(Self::validate),
            Self::Map(v) => no_nan("map displacement", v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::AffineGrowth;
    use crate::field::{Field, SumField};

    /// A state goes back only to a field of its kind, and a sum only with as many terms.
    #[test]
    fn states_restore_only_into_their_kind() {
        let growth = || Box::new(AffineGrowth { rate: 1.0, slope: vec![0.0] }) as Box<dyn Field>;
        let mut sum = SumField { terms: vec![growth(), growth()] };
        assert_eq!(sum.save_state(), FieldState::Sum(SumState(vec![FieldState::None, FieldState::None])));
        sum.restore_state(sum.save_state()).unwrap();
        sum.restore_state(FieldState::None).unwrap();
        let e = sum.restore_state(FieldState::Sum(SumState(vec![FieldState::None]))).unwrap_err();
        assert_eq!(e.to_string(), "sum field: saved state has 1 terms, the field 2");
        let wfr = FieldState::Wfr(WfrState::default());
        let e = growth().restore_state(wfr.clone()).unwrap_err().to_string();
        assert!(e.contains("cannot restore a saved wfr state"), "{e}");
        let e = sum.restore_state(FieldState::Sum(SumState(vec![FieldState::None, wfr]))).unwrap_err();
        assert!(e.to_string().contains("cannot restore a saved wfr state"), "{e}");
    }
}
