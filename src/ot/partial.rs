//! Partial transport of a prescribed mass `m*` (SPEC §3): the total-variation problem
//!
//! `min_π ⟨C, π⟩ + ε KL(π | a⊗b) + τ |π1 − a|₁ + τ |πᵀ1 − b|₁`
//!
//! whose transported mass `m(π_τ)` grows with `τ` (a unit moves only if its cost is below `2τ`),
//! with `τ` found by bisection on `log τ` so that `|m(π_τ) − m*| ≤ rtol · m*`. Reachable masses
//! lie between `Σ_ij a_i b_j e^{−C_ij/ε}` (`τ → 0`) and `min(m(a), m(b))` (`τ` large); each
//! solve is warm-started from the previous one.

use super::sinkhorn::{solve, SinkhornOptions, UotSolution};
use super::{cost_scale_bound, positive, Marginal, MeasureRef};
use crate::error::SimError;

/// The solution at the chosen `τ`.
#[derive(Debug, Clone)]
pub struct PartialSolution {
    pub solution: UotSolution,
    /// `τ` of both TV penalties.
    pub tau: f64,
    /// Solves done (bracketing and bisection).
    pub solves: usize,
    /// `|m(π) − m*| / m*`.
    pub mass_error: f64,
}

/// Transport `target_mass` between `a` and `b` (see the module doc). `opts` gives `ε`, the cost
/// and the solver's stopping rule; its marginal penalties are replaced by `τ TV` on both sides.
pub fn solve_partial(
    a: MeasureRef,
    b: MeasureRef,
    target_mass: f64,
    opts: &SinkhornOptions,
    rtol: f64,
) -> Result<PartialSolution, SimError> {
    a.validate("source")?;
    b.validate("target")?;
    let cap = a.mass().min(b.mass());
    if !(target_mass > 0.0 && target_mass < cap) {
        return Err(SimError::Invalid(format!(
            "partial transport: mass must be in (0, min(m(a), m(b)) = {cap}), got {target_mass}"
        )));
    }
    if !positive(rtol) {
        return Err(SimError::Invalid(format!("partial transport: rtol must be > 0, got {rtol}")));
    }
    let solves = std::cell::Cell::new(0usize);
    let mut warm: Option<super::Potentials> = None;
    let run = |tau: f64, warm: &mut Option<super::Potentials>| -> Result<UotSolution, SimError> {
        let mut o = opts.clone();
        o.marginal_a = Marginal::Tv { tau };
        o.marginal_b = Marginal::Tv { tau };
        o.translation_invariant = false;
        let s = solve(a, b, &o, warm.as_ref())?;
        *warm = Some(s.potentials.clone());
        solves.set(solves.get() + 1);
        Ok(s)
    };
    let done = |s: &UotSolution| (s.report.transported_mass - target_mass).abs() <= rtol * target_mass;
    let scale = cost_scale_bound(a, b, opts.cost).max(opts.eps);
    // Bracket [lo, hi] with mass(lo) < m* ≤ mass(hi), growing from τ = ε (small τ solves are
    // cheap; large ones approach balanced transport, the slowest case).
    let mut hi = opts.eps;
    let mut s_hi = run(hi, &mut warm)?;
    let mut lo;
    if s_hi.report.transported_mass < target_mass {
        loop {
            if done(&s_hi) {
                return Ok(finish(s_hi, hi, solves.get(), target_mass));
            }
            if hi > 1e6 * scale {
                return Err(SimError::Numerical {
                    step: solves.get(),
                    what: format!(
                        "partial transport: mass {} at tau = {hi} still below {target_mass}",
                        s_hi.report.transported_mass
                    ),
                });
            }
            lo = hi;
            hi *= 2.0;
            s_hi = run(hi, &mut warm)?;
            if s_hi.report.transported_mass >= target_mass {
                break;
            }
        }
    } else {
        lo = hi;
        loop {
            if done(&s_hi) {
                return Ok(finish(s_hi, hi, solves.get(), target_mass));
            }
            lo *= 0.5;
            if lo < 1e-12 * scale {
                return Err(SimError::Invalid(format!(
                    "partial transport: mass {target_mass} is below the smallest reachable at \
                     this eps ({} at tau = {hi})",
                    s_hi.report.transported_mass
                )));
            }
            let s = run(lo, &mut warm)?;
            if s.report.transported_mass < target_mass {
                if done(&s) {
                    return Ok(finish(s, lo, solves.get(), target_mass));
                }
                break;
            }
            hi = lo;
            s_hi = s;
        }
    }
    // Bisection on log τ.
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        let s = run(mid, &mut warm)?;
        if done(&s) || hi / lo < 1.0 + 1e-15 {
            return Ok(finish(s, mid, solves.get(), target_mass));
        }
        if s.report.transported_mass < target_mass {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Err(SimError::Numerical {
        step: solves.get(),
        what: format!("partial transport: bisection on tau did not reach mass {target_mass}"),
    })
}

fn finish(s: UotSolution, tau: f64, solves: usize, target: f64) -> PartialSolution {
    let mass_error = (s.report.transported_mass - target).abs() / target;
    PartialSolution { solution: s, tau, solves, mass_error }
}
