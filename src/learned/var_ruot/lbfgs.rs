//! L-BFGS (Nocedal & Wright, Alg. 7.4–7.5) for the Var-RUOT loss, a small implementation so the
//! iterations, the early stopping and the handling of failed trial points stay in our hands.
//!
//! - Direction `d = −H∇L` by the two-loop recursion over the last `memory` pairs
//!   `(s, y) = (Δθ, Δ∇L)`, initial scaling `H₀ = sᵀy / yᵀy` (the first step, with no pair yet, is
//!   `−∇L/|∇L|₂`). A pair with `sᵀy ≤ 10⁻¹² |s||y|` (no positive curvature) is not stored; a
//!   direction that is not a descent direction resets the memory.
//! - Step length by backtracking from 1: accept the first `a` with Armijo's condition
//!   `L(θ + a d) ≤ L(θ) + 10⁻⁴ a ∇Lᵀd`; otherwise the next trial is the minimiser of the
//!   quadratic through `L(θ)`, the slope `∇Lᵀd` and `L(θ + a d)`,
//!   `a⁺ = −∇Lᵀd a² / (2 (L(θ + a d) − L(θ) − a ∇Lᵀd))`, kept in `[a/10, a/2]` (Nocedal & Wright
//!   §3.5; at most 40 trials). A trial whose forward pass fails (a growth step beyond the guard,
//!   a non-finite value, a Sinkhorn failure) or whose Sinkhorn solves stop short of their
//!   tolerance (the loss is then not the divergence: a held-out-time fit once accepted such a
//!   trial with `S_ε = −17.8`) counts as too long a step and halves `a`.
//! - Stops: `max_i |∂L/∂θ_i| ≤ tol` (converged), the iteration cap, early stopping (the loss fell
//!   by less than `min_decrease·|L|` over `patience` iterations), or a line search that found no
//!   decrease.

use super::{FitReport, IterRecord, LossEval, Problem, VarRuotParams};
use crate::dist::Exec;
use crate::error::SimError;
use std::collections::VecDeque;
use std::time::Instant;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The two-loop recursion: `−H g`.
fn direction(pairs: &VecDeque<(Vec<f64>, Vec<f64>, f64)>, g: &[f64]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let a = rho * dot(s, &q);
        q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
        alphas.push(a);
    }
    if let Some((s, y, _)) = pairs.back() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    } else {
        let n = dot(g, g).sqrt().max(f64::MIN_POSITIVE);
        q.iter_mut().for_each(|v| *v /= n);
    }
    for ((s, y, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, &q);
        q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

fn record(it: usize, ev: &LossEval, step: f64, evals: usize, t0: &Instant) -> IterRecord {
    IterRecord {
        iter: it,
        loss: ev.loss,
        divergence: ev.divergence.iter().sum(),
        mass: ev.mass_error.iter().map(|e| e * e).sum(),
        action: ev.action,
        hjb: ev.hjb,
        grad_norm: dot(&ev.grad, &ev.grad).sqrt(),
        step,
        evaluations: evals,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// The next trial step after `a` failed Armijo's test (module doc): the minimiser of the
/// quadratic through `(0, l0)` with slope `slope < 0` and `(a, la)`, kept in `[a/10, a/2]`
/// (halving when `la` is not finite or the quadratic has no minimum).
fn backtrack(a: f64, l0: f64, slope: f64, la: f64) -> f64 {
    let curv = la - l0 - slope * a;
    if la.is_finite() && curv > 0.0 {
        (-slope * a * a / (2.0 * curv)).clamp(0.1 * a, 0.5 * a)
    } else {
        0.5 * a
    }
}

/// Minimise the loss of `problem` from `theta`.
pub(super) fn minimise(
    problem: &mut Problem,
    mut theta: Vec<f64>,
    params: &VarRuotParams,
    exec: &Exec,
    on_iter: &mut dyn FnMut(&IterRecord),
) -> Result<(Vec<f64>, FitReport), SimError> {
    let t0 = Instant::now();
    let mut ev = problem.loss_and_grad(&theta, true, exec)?;
    let mut evals = 1usize;
    let mut unconverged_sinkhorn = usize::from(!ev.sinkhorn_converged);
    let mut history = vec![record(0, &ev, 0.0, evals, &t0)];
    on_iter(&history[0]);
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::new();
    let mut stop_reason = String::from("iteration cap");
    let mut converged = false;
    let mut warnings = Vec::new();
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if gmax(&ev.grad) <= params.tol {
        converged = true;
        stop_reason = "gradient tolerance met at the start".into();
    }
    let mut it = 0;
    while !converged && it < params.max_iter {
        it += 1;
        let mut d = direction(&pairs, &ev.grad);
        let mut slope = dot(&ev.grad, &d);
        if slope >= 0.0 || !slope.is_finite() {
            pairs.clear();
            d = direction(&pairs, &ev.grad);
            slope = dot(&ev.grad, &d);
        }
        let mut a = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = theta.iter().zip(&d).map(|(t, di)| t + a * di).collect();
            evals += 1;
            match problem.loss_and_grad(&trial, true, exec) {
                // a Sinkhorn solve short of its tolerance gives neither the loss nor its gradient
                // (an unconverged S_ε can even be negative): too long a step, never accepted
                Ok(tev) if !tev.sinkhorn_converged => a *= 0.5,
                Ok(tev) if tev.loss <= ev.loss + 1e-4 * a * slope => {
                    accepted = Some((trial, tev));
                    break;
                }
                Ok(tev) => a = backtrack(a, ev.loss, slope, tev.loss),
                Err(_) => a *= 0.5,
            }
        }
        let Some((trial, tev)) = accepted else {
            stop_reason = format!("line search found no decrease at iteration {it}");
            break;
        };
        let s: Vec<f64> = trial.iter().zip(&theta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = tev.grad.iter().zip(&ev.grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            pairs.push_back((s, y, 1.0 / sy));
            if pairs.len() > params.memory {
                pairs.pop_front();
            }
        }
        theta = trial;
        ev = tev;
        unconverged_sinkhorn += usize::from(!ev.sinkhorn_converged);
        let rec = record(it, &ev, a, evals, &t0);
        on_iter(&rec);
        history.push(rec);
        if gmax(&ev.grad) <= params.tol {
            converged = true;
            stop_reason = "gradient tolerance met".into();
            break;
        }
        if params.patience > 0 && history.len() > params.patience {
            let old = history[history.len() - 1 - params.patience].loss;
            if old - ev.loss <= params.min_decrease * ev.loss.abs() {
                stop_reason = format!(
                    "early stopping: the loss fell by less than {} (relative) over {} iterations",
                    params.min_decrease, params.patience
                );
                break;
            }
        }
    }
    if unconverged_sinkhorn > 0 {
        warnings.push(format!(
            "{unconverged_sinkhorn} accepted evaluations had a Sinkhorn solve short of its tolerance {} (the envelope-theorem gradient is approximate there)",
            params.sinkhorn_tol
        ));
    }
    if !converged {
        warnings.push(format!("not converged: {stop_reason}"));
    }
    let report = FitReport {
        history,
        action: ev.action,
        action_per_mass: ev.action_per_mass,
        hjb: ev.hjb,
        last: ev,
        seconds: t0.elapsed().as_secs_f64(),
        warnings,
        converged,
        stop_reason,
    };
    Ok((theta, report))
}

#[cfg(test)]
mod tests {
    use super::backtrack;

    /// On an exact quadratic `L(a) = (a − 0.3)²` (slope −0.6 at 0) the interpolated step from
    /// `a = 1` is its minimiser 0.3; a trial far too long is cut to a tenth, a flat one halved.
    #[test]
    fn backtracking_hits_the_minimiser_of_a_quadratic() {
        let l = |a: f64| (a - 0.3) * (a - 0.3);
        assert!((backtrack(1.0, l(0.0), -0.6, l(1.0)) - 0.3).abs() < 1e-15);
        assert_eq!(backtrack(1.0, 0.0, -1e-6, 1e6), 0.1);
        assert_eq!(backtrack(1.0, 0.0, -1.0, f64::NAN), 0.5);
        assert_eq!(backtrack(1.0, 0.0, -1.0, -1.0), 0.5);
    }
}
