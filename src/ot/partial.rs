//! Partial transport of a prescribed mass `m*` (SPEC §3): the total-variation problem
//!
//! `min_π ⟨C, π⟩ + ε KL(π | a⊗b) + τ |π1 − a|₁ + τ |πᵀ1 − b|₁`
//!
//! whose transported mass `m(π_τ)` grows with `τ` (a unit moves only if its cost is below `2τ`),
//! with `τ` found by bisection on `log τ` so that `|m(π_τ) − m*| ≤ rtol · m*`. Reachable masses
//! lie between `Σ_ij a_i b_j e^{−C_ij/ε}` (`τ → 0`) and `min(m(a), m(b))` (`τ` large); each
//! solve is warm-started from the previous one.
//!
//! The entropic reference is `a⊗b / s` with `s = max(1, m(a), m(b))`: its mass
//! `m(a) m(b) / s ≤ min(m(a), m(b))`, so the `τ → 0` floor `Σ_ij a_i b_j e^{−C_ij/ε} / s` is below
//! every mass that can be asked for. With `a⊗b` itself (mass `m(a) m(b)`) unit-weight snapshots of
//! 400 and 442 cells put even the `τ → 0` plan at about 35 000 cells, above both masses, and no
//! `m*` was reachable. Probability measures (`s = 1`) are solved exactly as before. The problem
//! with reference `a⊗b / s` is `s` times the one between `a / s` and `b / s` (target `m*/s`,
//! same `ε` and `τ`), which is what is solved; the solution is scaled back
//! ([`PartialSolution::reference_scale`]).

use super::sinkhorn::{solve, SinkhornOptions, UotSolution};
use super::{cost_scale_bound_in, positive, Marginal, MeasureRef};
use crate::error::SimError;
use crate::particles::Cloud;

/// The solution at the chosen `τ`.
#[derive(Debug, Clone)]
pub struct PartialSolution {
    /// The UOT solution at the chosen `τ`.
    pub solution: UotSolution,
    /// `τ` of both TV penalties.
    pub tau: f64,
    /// Solves done (bracketing and bisection).
    pub solves: usize,
    /// `|m(π) − m*| / m*`.
    pub mass_error: f64,
    /// `s` of the entropic reference `a⊗b / s` (module doc; 1 for probability measures).
    pub reference_scale: f64,
}

/// Transport `target_mass` between `a` and `b` (see the module doc). `opts` gives `ε`, the cost
/// and the solver's stopping rule; its marginal penalties are replaced by `τ TV` on both sides.
pub fn solve_partial(
    a: &Cloud,
    b: &Cloud,
    target_mass: f64,
    opts: &SinkhornOptions,
    rtol: f64,
) -> Result<PartialSolution, SimError> {
    let (a, b) = (a.view(), b.view());
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
    let s = 1f64.max(a.mass()).max(b.mass());
    if s == 1.0 {
        return solve_scaled(a, b, target_mass, opts, rtol, 1.0)
            .map(|p| PartialSolution { reference_scale: 1.0, ..p });
    }
    let (wa, wb): (Vec<f64>, Vec<f64>) =
        (a.w.iter().map(|w| w / s).collect(), b.w.iter().map(|w| w / s).collect());
    let (a1, b1) = (MeasureRef::new(a.dim, a.x, &wa), MeasureRef::new(b.dim, b.x, &wb));
    let p = solve_scaled(a1, b1, target_mass / s, opts, rtol, s)?;
    let mut solution = scale_solution(p.solution, s);
    (solution.report.mass_a, solution.report.mass_b) = (a.mass(), b.mass());
    Ok(PartialSolution { solution, reference_scale: s, ..p })
}

/// The solution between `a / s` and `b / s` as the one between `a` and `b` with reference
/// `a⊗b / s`: plan, marginals, masses and objective terms times `s`; potentials shifted by
/// `−(ε/2) ln s` each, so that `a_i b_j e^{(f_i + g_j − C_ij)/ε}` is `s` times the scaled plan.
fn scale_solution(mut sol: UotSolution, s: f64) -> UotSolution {
    let shift = 0.5 * sol.report.eps * s.ln();
    sol.potentials.f.iter_mut().chain(sol.potentials.g.iter_mut()).for_each(|v| *v -= shift);
    sol.row_mass.iter_mut().chain(sol.col_mass.iter_mut()).for_each(|v| *v *= s);
    let r = &mut sol.report;
    for v in [
        &mut r.transport_cost,
        &mut r.entropy_term,
        &mut r.marginal_term_a,
        &mut r.marginal_term_b,
        &mut r.primal_objective,
        &mut r.dual_objective,
        &mut r.mass_a,
        &mut r.mass_b,
        &mut r.transported_mass,
        &mut r.destroyed_mass_a,
        &mut r.created_mass_a,
        &mut r.destroyed_mass_b,
        &mut r.created_mass_b,
    ] {
        *v *= s;
    }
    sol
}

/// [`solve_partial`] with reference `a⊗b` (inputs checked); `unit` converts masses back to the
/// caller's measures in messages (the `s` the inputs were divided by).
fn solve_scaled(
    a: MeasureRef,
    b: MeasureRef,
    target_mass: f64,
    opts: &SinkhornOptions,
    rtol: f64,
    unit: f64,
) -> Result<PartialSolution, SimError> {
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
    let scale = cost_scale_bound_in(a, b, opts.cost).max(opts.eps);
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
                        "partial transport: mass {} at tau = {hi} still below {}",
                        s_hi.report.transported_mass * unit,
                        target_mass * unit
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
                    "partial transport: mass {} is below the smallest reachable at this eps \
                     ({} at tau = {hi}); a smaller --eps reaches smaller masses",
                    target_mass * unit,
                    s_hi.report.transported_mass * unit
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
        what: format!("partial transport: bisection on tau did not reach mass {}", target_mass * unit),
    })
}

fn finish(s: UotSolution, tau: f64, solves: usize, target: f64) -> PartialSolution {
    let mass_error = (s.report.transported_mass - target).abs() / target;
    PartialSolution { solution: s, tau, solves, mass_error, reference_scale: 1.0 }
}
