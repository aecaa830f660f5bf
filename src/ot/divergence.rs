//! Debiased (unbalanced) Sinkhorn divergence (Séjourné et al. 2019; Feydy et al. 2019), KL
//! marginal penalties of reach `ρ` on both sides (`ρ = ∞`: balanced, equal masses):
//!
//! ```text
//! S(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β) + ε/2 (m(α) − m(β))²
//! ```
//!
//! (`OT_ε` includes the `+ε m(α)m(β)` mass term of `ε KL(π|α⊗β)`; the last term cancels those
//! constants, so `S(α, α) = 0`, `S ≥ 0`). Each `OT_ε` is the dual objective at the solver's
//! potentials; `OT_ε(α, α)` comes from the symmetric iteration `f ← ½(f + aprox(f̂(f)))`.
//!
//! Potentials extend to any point `z` by one soft-min of the other side:
//! `f_ba(z) = aprox(f̂(z))`, `f̂(z) = −ε LSE_j(log b_j + (g_ab,j − C(z, y_j))/ε)`, with
//! `∇f̂(z) = 2c (z − Σ_j p_j(z) y_j)` (soft-max weights `p_j(z)`, cost `C = c|x − y|²`) and
//! `∇f_ba = κ ∇f̂`, `κ = ρ/(ρ + ε)`. The first variation of `S` in `α` (SPEC §2.2) is
//!
//! ```text
//! φ(z)  = (ρ + ε)(e^{−f_aa(z)/ρ} − e^{−f_ba(z)/ρ})
//! ∇φ(z) = e^{−f_ba(z)/ρ} ∇f̂_ba(z) − e^{−f_aa(z)/ρ} ∇f̂_aa(z)
//! φ(z)  = f_ba(z) − f_aa(z),   ∇φ(z) = ∇f̂_ba(z) − ∇f̂_aa(z)          (balanced)
//! ```
//!
//! so that `∂S/∂a_i = φ(x_i)` and `∂S/∂x_i = a_i ∇φ(x_i)` (envelope theorem; checked against
//! finite differences in `tests/wfr.rs`).

use super::pass::{lse_rows_bary, Reduction};
use super::sinkhorn::{
    annealing_schedule, build_report, check_finite, check_report, evaluate, iterate, marginal_error, solve,
    Potentials, Relaxation, RunStats, Schedule, Scheme, SinkhornOptions, UotReport,
};
use super::{positive, validate_pair, Cost, EpsScaling, Marginal, MeasureRef};
use crate::dist::Exec;
use crate::error::SimError;
use crate::particles::Cloud;
use serde::{Deserialize, Serialize};

/// The symmetric iteration of `OT_ε(α, α)` as a [`Scheme`] of the one loop: `f = g`, one
/// soft-min per iteration, the averaged update `f ← ½(f + aprox(f̂))`.
struct Symmetric<'a> {
    aa: Reduction<'a>,
    la: Vec<f64>,
    c: f64,
    marg: Marginal,
    f: Vec<f64>,
    fhat: Vec<f64>,
}

impl Scheme for Symmetric<'_> {
    fn soft_min(&mut self, ek: f64, it: usize) -> Result<(), SimError> {
        self.aa.soft_min(&self.la, &self.f, ek, self.c, &mut self.fhat);
        check_finite(&self.fhat, it, "symmetric soft-min f̂")
    }
    fn error(&self, eps: f64) -> f64 {
        marginal_error(&self.la, &self.f, &self.fhat, eps, self.marg)
    }
    fn update(&mut self, ek: f64, _omega: f64, _it: usize) -> Result<(), SimError> {
        for (fi, fh) in self.f.iter_mut().zip(&self.fhat) {
            *fi = 0.5 * (*fi + self.marg.aprox(*fh, ek));
        }
        Ok(())
    }
    fn potentials(&mut self) -> (&mut [f64], &mut [f64]) {
        (&mut self.f, &mut [])
    }
}

/// Solve `OT_ε(α, α)` by the symmetric (averaged) iteration; `f = g`. Uses
/// `opts.marginal_a` on both sides. Returns the potential and the report (errors, objective).
/// An invalid cloud (shapes, non-finite values, negative weights, zero mass) is an error.
pub fn solve_symmetric(
    a: &Cloud,
    opts: &SinkhornOptions,
    warm: Option<&[f64]>,
) -> Result<(Vec<f64>, UotReport), SimError> {
    solve_symmetric_in(a.view(), opts, warm)
}

/// [`solve_symmetric`] on a borrowed measure (the field code holds particle slices).
pub(crate) fn solve_symmetric_in(
    a: MeasureRef,
    opts: &SinkhornOptions,
    warm: Option<&[f64]>,
) -> Result<(Vec<f64>, UotReport), SimError> {
    let mut opts = opts.clone();
    opts.marginal_b = opts.marginal_a;
    opts.validate()?;
    a.validate("measure")?;
    let (n, d) = (a.len(), a.dim);
    let ma = a.mass();
    let marg = opts.marginal_a;
    let f = match warm {
        Some(w) if w.len() == n => {
            check_finite(w, 0, "warm-start symmetric potential")?;
            w.to_vec()
        }
        Some(w) => {
            return Err(SimError::Invalid(format!("warm start potential has size {}, expected {n}", w.len())))
        }
        None => vec![0.0; n],
    };
    let (e0, q) = annealing_schedule(&opts, a, a);
    let mut sym = Symmetric {
        aa: Reduction::for_cost(&opts.exec, d, a.x, a.x, opts.cost),
        la: a.log_weights(),
        c: opts.cost.scale(),
        marg,
        fhat: vec![0.0; n],
        f,
    };
    let sched = Schedule {
        eps: opts.eps,
        e0,
        q,
        max_iter: opts.max_iter,
        tol: opts.tol,
        relaxation: Relaxation::Off,
        polish: false,
    };
    let end = iterate(&mut sym, &sched, |_, _, _| Ok(false))?;
    let (it, annealing, eps_last, eps) = (end.iterations, end.annealing, end.eps_reached, opts.eps);
    let (la, f) = (&sym.la, &sym.f);
    let mut eval_opts = opts.clone();
    eval_opts.eps = eps_last;
    let ev = evaluate((&sym.aa, None), a, a, (la, la), (f, f), &eval_opts, it)?;
    let run = RunStats { iterations: it, annealing, eps_reached: eps_last, omega: 0.5, restarts: 0 };
    let converged = eps_last == eps && ev.err_a <= opts.tol;
    let report = build_report((n, n, d), &opts, (marg, marg), (ma, ma), run, &ev, converged);
    check_report(&report, it)?;
    Ok((sym.f, report))
}

/// A potential extended to the points `z` (n_z·d) by one soft-min over `b` with potential `g`:
/// returns `(f̂(z), ∇f̂(z))`, `f̂(z) = −ε LSE_j(log b_j + (g_j − C(z, y_j))/ε)`,
/// `∇f̂(z) = 2c (z − Σ_j p_j(z) y_j)` (elastic cost: `Σ_j p_j(z) ∇h(z − y_j)`). Apply [`Marginal::aprox`] (and its derivative: `κ` for
/// KL) for the potential itself. Mismatched sizes (`z` not whole points of `b`'s dimension, `g`
/// not one value per point of `b`) and an invalid cloud are errors.
pub fn extend_potential(
    z: &[f64],
    b: &Cloud,
    g: &[f64],
    eps: f64,
    cost: Cost,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    let b = b.view();
    b.validate("extend_potential: cloud")?;
    check_points(z, b.dim, "extend_potential")?;
    check_potential(g, b, "extend_potential: potential")?;
    extend_in(&Exec::default(), z, b, g, eps, cost)
}

/// `z` holds whole points of dimension `d`.
fn check_points(z: &[f64], d: usize, what: &str) -> Result<(), SimError> {
    if !z.len().is_multiple_of(d) {
        return Err(SimError::Invalid(format!(
            "{what}: {} coordinates are not whole points of dimension {d}",
            z.len()
        )));
    }
    Ok(())
}

/// `g` has one value per point of `m`.
fn check_potential(g: &[f64], m: MeasureRef, what: &str) -> Result<(), SimError> {
    if g.len() != m.len() {
        return Err(SimError::Invalid(format!("{what} has size {}, expected {}", g.len(), m.len())));
    }
    Ok(())
}

/// [`extend_potential`] with its row pass run in `exec`.
fn extend_in(
    exec: &Exec,
    z: &[f64],
    b: MeasureRef,
    g: &[f64],
    eps: f64,
    cost: Cost,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    let d = b.dim;
    let nz = z.len() / d;
    let h: Vec<f64> = b.w.iter().zip(g).map(|(w, gj)| w.ln() + gj / eps).collect();
    let c = cost.scale();
    let mut l = vec![0.0; nz];
    let mut grad = vec![0.0; nz * d];
    if cost.elastic().is_some() {
        // ∇f̂(z) = Σ_j p_j(z) ∇h(z − y_j) (the tiles hold h itself: c = 1).
        Reduction::for_cost(exec, d, z, b.x, cost).lse_grad(&h, c / eps, &mut l, &mut grad);
    } else {
        lse_rows_bary(exec, d, z, b.x, &h, c / eps, &mut l, &mut grad);
        for (gz, zz) in grad.chunks_exact_mut(d).zip(z.chunks_exact(d)) {
            for (gk, zk) in gz.iter_mut().zip(zz) {
                *gk = 2.0 * c * (zk - *gk);
            }
        }
    }
    let fhat: Vec<f64> = l.iter().map(|v| -eps * v).collect();
    check_finite(&fhat, 0, "extended potential")?;
    check_finite(&grad, 0, "gradient of the extended potential")?;
    Ok((fhat, grad))
}

/// Options of the divergence: cost (default `½|x−y|²`), `ε`, reach `ρ` (`None`: balanced) and the
/// solver's stopping rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DivergenceOptions {
    /// Entropic regularisation `ε > 0`, in cost units.
    pub eps: f64,
    /// Reach `ρ` of the KL marginal penalties `ρ KL`; `None`: balanced (exact marginals).
    pub rho: Option<f64>,
    /// Ground cost `C(x, y)`.
    pub cost: Cost,
    /// Tolerance on the relative L1 marginal errors of each solve.
    pub tol: f64,
    /// Iteration cap of each solve.
    pub max_iter: usize,
    /// Used for cold starts (no warm potentials).
    pub eps_scaling: Option<EpsScaling>,
    /// Where the row passes of the three solves run (not serialised; see
    /// [`SinkhornOptions::exec`]).
    #[serde(skip)]
    pub exec: Exec,
}

impl Default for DivergenceOptions {
    fn default() -> Self {
        Self {
            eps: 0.05,
            rho: Some(1.0),
            cost: Cost::HalfSqEuclidean,
            tol: 1e-9,
            max_iter: 10_000,
            eps_scaling: Some(EpsScaling::default()),
            exec: Exec::default(),
        }
    }
}

impl DivergenceOptions {
    /// The solver options of one `OT_ε` term.
    pub fn solver(&self, warm: bool) -> SinkhornOptions {
        let marg = match self.rho {
            Some(r) => Marginal::kl(r),
            None => Marginal::Exact,
        };
        SinkhornOptions {
            eps: self.eps,
            cost: self.cost,
            marginal_a: marg,
            marginal_b: marg,
            max_iter: self.max_iter,
            tol: self.tol,
            eps_scaling: if warm { None } else { self.eps_scaling },
            translation_invariant: true,
            relaxation: Relaxation::default(),
            exec: self.exec.clone(),
        }
    }
}

/// Warm-start potentials of the three problems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DivergenceWarm {
    /// `(f_ba, g_ab)` of `OT(α, β)`.
    pub ab: Option<Potentials>,
    /// `f_aa` of `OT(α, α)`.
    pub aa: Option<Vec<f64>>,
    /// `g_bb` of `OT(β, β)`.
    pub bb: Option<Vec<f64>>,
}

/// `S(α, β)` with its parts and the potentials.
#[derive(Debug, Clone)]
pub struct SinkhornDivergence {
    /// `S(α, β) = OT(α, β) − ½ OT(α, α) − ½ OT(β, β) + mass_term`.
    pub value: f64,
    /// `OT_ε(α, β)`.
    pub ot_ab: f64,
    /// `OT_ε(α, α)`.
    pub ot_aa: f64,
    /// `OT_ε(β, β)`.
    pub ot_bb: f64,
    /// `ε/2 (m(α) − m(β))²`.
    pub mass_term: f64,
    /// Potentials `(f, g)` of `OT(α, β)`.
    pub ab: Potentials,
    /// Symmetric potential `f_aa` of `OT(α, α)`.
    pub f_aa: Vec<f64>,
    /// Symmetric potential `g_bb` of `OT(β, β)`.
    pub g_bb: Vec<f64>,
    /// Report of the `OT(α, β)` solve.
    pub report_ab: UotReport,
    /// Report of the `OT(α, α)` solve.
    pub report_aa: UotReport,
    /// Report of the `OT(β, β)` solve.
    pub report_bb: UotReport,
}

impl SinkhornDivergence {
    /// All three solves met the tolerance.
    pub fn converged(&self) -> bool {
        self.report_ab.converged && self.report_aa.converged && self.report_bb.converged
    }
    /// The potentials to warm-start the next call with.
    pub fn warm(&self) -> DivergenceWarm {
        DivergenceWarm { ab: Some(self.ab.clone()), aa: Some(self.f_aa.clone()), bb: Some(self.g_bb.clone()) }
    }
    /// First variation `φ(z)` and `∇φ(z)` at the points `z` (module doc), for the clouds `a`, `b`
    /// this divergence was computed between (sizes are checked: see [`first_variation`]).
    pub fn first_variation(
        &self,
        z: &[f64],
        a: &Cloud,
        b: &Cloud,
        opts: &DivergenceOptions,
    ) -> Result<(Vec<f64>, Vec<f64>), SimError> {
        first_variation(z, a, b, &self.ab.g, &self.f_aa, opts)
    }
}

/// `φ(z)`, `∇φ(z)` of `S(·, β)` at `α` from the potentials `g_ab` (on `b`) and `f_aa` (on `a`).
/// Invalid clouds, different dimensions, `z` not whole points, or potentials not one value per
/// point are errors.
pub fn first_variation(
    z: &[f64],
    a: &Cloud,
    b: &Cloud,
    g_ab: &[f64],
    f_aa: &[f64],
    opts: &DivergenceOptions,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    let (a, b) = (a.view(), b.view());
    validate_pair(a, b, "first_variation")?;
    check_points(z, a.dim, "first_variation")?;
    check_potential(g_ab, b, "first_variation: g_ab")?;
    check_potential(f_aa, a, "first_variation: f_aa")?;
    first_variation_in(z, a, b, g_ab, f_aa, opts)
}

/// [`first_variation`] on borrowed measures (no checks: the field code's shapes are its own).
pub(crate) fn first_variation_in(
    z: &[f64],
    a: MeasureRef,
    b: MeasureRef,
    g_ab: &[f64],
    f_aa: &[f64],
    opts: &DivergenceOptions,
) -> Result<(Vec<f64>, Vec<f64>), SimError> {
    let d = a.dim;
    let (fb, gb) = extend_in(&opts.exec, z, b, g_ab, opts.eps, opts.cost)?;
    let (fa, ga) = extend_in(&opts.exec, z, a, f_aa, opts.eps, opts.cost)?;
    let nz = fb.len();
    let mut phi = vec![0.0; nz];
    let mut grad = vec![0.0; nz * d];
    match opts.rho {
        None => {
            for i in 0..nz {
                phi[i] = fb[i] - fa[i];
                for k in 0..d {
                    grad[i * d + k] = gb[i * d + k] - ga[i * d + k];
                }
            }
        }
        Some(rho) => {
            let kappa = rho / (rho + opts.eps);
            for i in 0..nz {
                // f = κ f̂ on both sides.
                let eb = (-kappa * fb[i] / rho).exp();
                let ea = (-kappa * fa[i] / rho).exp();
                phi[i] = (rho + opts.eps) * (ea - eb);
                for k in 0..d {
                    grad[i * d + k] = eb * gb[i * d + k] - ea * ga[i * d + k];
                }
            }
        }
    }
    check_finite(&phi, 0, "Sinkhorn first variation φ")?;
    check_finite(&grad, 0, "Sinkhorn first variation ∇φ")?;
    Ok((phi, grad))
}

/// `S(α, β)` (module doc), warm-started from `warm` where sizes fit. Invalid clouds are errors.
pub fn sinkhorn_divergence(
    a: &Cloud,
    b: &Cloud,
    opts: &DivergenceOptions,
    warm: Option<&DivergenceWarm>,
) -> Result<SinkhornDivergence, SimError> {
    sinkhorn_divergence_given_bb(a, b, opts, warm, None)
}

/// [`sinkhorn_divergence`] with `OT_ε(β, β)` taken from `bb` (the `g_bb` and `report_bb` of an
/// earlier call with the same `β` and `opts`) instead of solved again: a fit that moves `α`
/// against a fixed `β` solves it once. The value is the same expression of the same three
/// numbers, so it equals bit for bit the uncached call whose `β` solve returned `bb`. `None`:
/// solved (warm-started from `warm.bb`).
pub fn sinkhorn_divergence_given_bb(
    a: &Cloud,
    b: &Cloud,
    opts: &DivergenceOptions,
    warm: Option<&DivergenceWarm>,
    bb: Option<(&[f64], &UotReport)>,
) -> Result<SinkhornDivergence, SimError> {
    let (a, b) = (a.view(), b.view());
    if let Some(r) = opts.rho {
        if !(positive(r) && r.is_finite()) {
            return Err(SimError::Invalid(format!(
                "sinkhorn divergence: reach rho must be finite and > 0 (None: balanced), got {r}"
            )));
        }
    }
    let w = warm.cloned().unwrap_or_default();
    let ab_warm = w.ab.filter(|p| p.f.len() == a.len() && p.g.len() == b.len());
    let aa_warm = w.aa.filter(|f| f.len() == a.len());
    let bb_warm = w.bb.filter(|g| g.len() == b.len());
    let ab = solve(a, b, &opts.solver(ab_warm.is_some()), ab_warm.as_ref())?;
    let (f_aa, report_aa) = solve_symmetric_in(a, &opts.solver(aa_warm.is_some()), aa_warm.as_deref())?;
    let (g_bb, report_bb) = match bb {
        Some((g, r)) if g.len() == b.len() => (g.to_vec(), r.clone()),
        Some((g, _)) => {
            return Err(SimError::Invalid(format!(
                "sinkhorn divergence: the given OT(β, β) potential has size {}, expected {}",
                g.len(),
                b.len()
            )))
        }
        None => solve_symmetric_in(b, &opts.solver(bb_warm.is_some()), bb_warm.as_deref())?,
    };
    let (ma, mb) = (a.mass(), b.mass());
    let mass_term = match opts.rho {
        Some(_) => 0.5 * opts.eps * (ma - mb) * (ma - mb),
        None => 0.0,
    };
    let (ot_ab, ot_aa, ot_bb) =
        (ab.report.dual_objective, report_aa.dual_objective, report_bb.dual_objective);
    Ok(SinkhornDivergence {
        value: ot_ab - 0.5 * ot_aa - 0.5 * ot_bb + mass_term,
        ot_ab,
        ot_aa,
        ot_bb,
        mass_term,
        ab: ab.potentials,
        f_aa,
        g_bb,
        report_ab: ab.report,
        report_aa,
        report_bb,
    })
}
