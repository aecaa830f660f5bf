//! Wasserstein–Fisher–Rao gradient flow of an energy `F(μ)` (SPEC §2.2): with the first variation
//! `φ = δF/δμ`,
//!
//! ```text
//! u(x) = −∇φ(x),    g(x) = −α φ(x)                    (free mass)
//!                   g(x) = −α (φ(x) − Σ_i w_i φ(x_i) / M)   (conserving)
//! ```
//!
//! Energies:
//!
//! - **MMD**, `F = ½ ‖Σ_i w_i k(x_i, ·) − Σ_j b_j k(y_j, ·)‖²_H` (unnormalised, Gaussian kernel of
//!   bandwidth `s`): `φ(x) = Σ_i w_i k(x, x_i) − Σ_j b_j k(x, y_j)` (the witness of
//!   [`crate::metrics::witness_between`]), so `∂F/∂w_i = φ(x_i)` and `∂F/∂x_i = w_i ∇φ(x_i)`.
//! - **Sinkhorn divergence** `F = S_{ε,ρ}(μ, ν)`, cost `½|x − y|²`, blur `ε`, reach `ρ`
//!   (see [`crate::ot::divergence`]): `φ = (ρ + ε)(e^{−f_aa/ρ} − e^{−f_ba/ρ})`, or
//!   `φ = f_ba − f_aa` when balanced (`ρ = ∞`; both measures are then normalised to probabilities
//!   and the flow must conserve mass). The three OT problems are re-solved in [`Field::prepare`],
//!   warm-started from the previous step's potentials (`g_ab` always, `f_aa` while the particle
//!   count is unchanged; `OT(ν, ν)` is solved once per target).
//!
//! `ε` and `ρ` are in cost units (squared length): GeomLoss's `blur σ` and `reach r` (`p = 2`)
//! correspond to `ε = σ²`, `ρ = r²`.

use super::state::{FieldState, WfrState};
use super::{foreign_state, EvalCtx, Field};
use crate::dist::Exec;
use crate::error::SimError;
use crate::metrics::mmd::witness_in;
use crate::ot::divergence::{first_variation_in, solve_symmetric_in};
use crate::ot::{solve, Cost, DivergenceOptions, EpsScaling, MeasureRef, Potentials};
use crate::param::{self, ParamError};
use serde::{Deserialize, Serialize};

/// The energy whose WFR gradient flow is followed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Energy {
    /// `½ MMD²` with a Gaussian kernel of bandwidth `s`.
    Mmd {
        /// Kernel bandwidth `s`.
        bandwidth: f64,
    },
    /// Debiased Sinkhorn divergence with blur `eps` (`ε`, cost units) and reach `rho`
    /// (`None`: balanced).
    Sinkhorn {
        /// Blur `ε` (cost units).
        eps: f64,
        /// Reach `ρ` (cost units; `None`: balanced).
        rho: Option<f64>,
    },
}

/// Free or mass-conserving growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Growth {
    /// Growth `−α φ`: the mass changes.
    Free,
    /// Growth `−α(φ − φ̄)`: the mass is kept.
    Conserving,
}

/// Stopping rule of the Sinkhorn solves inside the field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SolverCfg {
    /// Tolerance on the relative marginal error.
    pub tol: f64,
    /// Iteration cap per solve (the flow goes on with the potentials reached; see diagnostics).
    pub max_iter: usize,
    /// ε-scaling for cold starts.
    pub eps_scaling: Option<EpsScaling>,
}

impl SolverCfg {
    /// `tol > 0`, `max_iter ≥ 1` (keys `tol`, `max_iter`).
    pub fn check(&self) -> Result<(), ParamError> {
        param::positive("tol", self.tol)?;
        param::count("max_iter", self.max_iter)
    }
}

impl Default for SolverCfg {
    fn default() -> Self {
        Self { tol: 1e-6, max_iter: 1000, eps_scaling: Some(EpsScaling::default()) }
    }
}

/// Which energy a [`WfrParams`] table names (`energy = "mmd"` or `"sinkhorn"`): the tag of
/// [`Energy`], whose data are the table's flat keys.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EnergyKind {
    /// `½ MMD²` (Gaussian kernel, `bandwidth`).
    Mmd,
    /// Debiased unbalanced Sinkhorn divergence (`blur` ε, `reach` ρ; cost ½|x−y|²).
    Sinkhorn,
}

/// The parameters of a WFR flow as a scenario's `[field]` table (`type = "wfr"`) or code gives
/// them (linfa's params): the energy's data are flat keys, a key the file may omit has its
/// default here, and `conserve` absent means "as the caller's default" (a scenario's
/// `reaction.conserve`). [`WfrParams::check`] is the one place that resolves the defaults and
/// validates, giving the [`WfrField`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WfrParams {
    /// `mmd` or `sinkhorn`.
    pub energy: EnergyKind,
    /// MMD kernel bandwidth `s` (energy = "mmd").
    #[serde(default)]
    pub bandwidth: Option<f64>,
    /// Sinkhorn blur ε in cost units (energy = "sinkhorn"); GeomLoss's blur σ is √ε.
    #[serde(default)]
    pub blur: Option<f64>,
    /// Sinkhorn reach ρ in cost units (energy = "sinkhorn"; absent = balanced).
    #[serde(default)]
    pub reach: Option<f64>,
    /// Reaction scale α (default 1).
    #[serde(default = "alpha_default")]
    pub alpha: f64,
    /// Conserving growth; `None`: the default given to `check`.
    #[serde(default)]
    pub conserve: Option<bool>,
    /// Sinkhorn solves: tolerance on the relative marginal error (default 10⁻⁶).
    #[serde(default = "tol_default")]
    pub tol: f64,
    /// Iteration cap of each solve (default 1000).
    #[serde(default = "max_iter_default")]
    pub max_iter: usize,
}

fn alpha_default() -> f64 {
    1.0
}
fn tol_default() -> f64 {
    SolverCfg::default().tol
}
fn max_iter_default() -> usize {
    SolverCfg::default().max_iter
}

impl WfrParams {
    /// The MMD energy of bandwidth `bandwidth`, other keys at their defaults.
    pub fn mmd(bandwidth: f64) -> Self {
        Self::with(EnergyKind::Mmd, Some(bandwidth), None, None)
    }

    /// The Sinkhorn energy of blur `eps` and reach `rho` (`None`: balanced), other keys at their
    /// defaults.
    pub fn sinkhorn(eps: f64, rho: Option<f64>) -> Self {
        Self::with(EnergyKind::Sinkhorn, None, Some(eps), rho)
    }

    fn with(energy: EnergyKind, bandwidth: Option<f64>, blur: Option<f64>, reach: Option<f64>) -> Self {
        Self {
            energy,
            bandwidth,
            blur,
            reach,
            alpha: alpha_default(),
            conserve: None,
            tol: tol_default(),
            max_iter: max_iter_default(),
        }
    }

    /// The validated field: the energy's keys present, `conserve` resolved (`None` →
    /// `conserve_default`), then [`WfrField::check`] and [`SolverCfg::check`].
    pub fn check(&self, conserve_default: bool) -> Result<WfrField, ParamError> {
        let energy = match self.energy {
            EnergyKind::Mmd => Energy::Mmd {
                bandwidth: self.bandwidth.ok_or_else(|| {
                    ParamError::new("bandwidth", "missing: energy = \"mmd\" needs a bandwidth")
                })?,
            },
            EnergyKind::Sinkhorn => Energy::Sinkhorn {
                eps: self.blur.ok_or_else(|| {
                    ParamError::new("blur", "missing: energy = \"sinkhorn\" needs a blur ε")
                })?,
                rho: self.reach,
            },
        };
        let growth =
            if self.conserve.unwrap_or(conserve_default) { Growth::Conserving } else { Growth::Free };
        let solver = SolverCfg { tol: self.tol, max_iter: self.max_iter, ..SolverCfg::default() };
        WfrField::check(energy, growth, self.alpha)?;
        solver.check()?;
        Ok(WfrField { energy, growth, alpha: self.alpha, solver, state: SinkhornState::default() })
    }
}

/// Potentials carried between steps.
#[derive(Debug, Clone, Default)]
struct SinkhornState {
    ab: Option<Potentials>,
    f_aa: Option<Vec<f64>>,
    /// `(len, checksum)` of the target whose `OT(ν, ν)` is cached.
    target_key: Option<(usize, u64)>,
    g_bb: Vec<f64>,
    ot_bb: f64,
    /// From the last prepare.
    value: f64,
    iterations: usize,
    converged: bool,
    marginal_error: f64,
    transported_mass: f64,
}

/// The WFR gradient-flow field (module doc).
#[derive(Debug, Clone)]
pub struct WfrField {
    /// The energy `F`.
    pub energy: Energy,
    /// Free or mass-conserving growth.
    pub growth: Growth,
    /// Reaction scale `α ≥ 0` (1/length² for MMD-like energies).
    pub alpha: f64,
    /// Stopping rule of the Sinkhorn solves.
    pub solver: SolverCfg,
    state: SinkhornState,
}

impl WfrField {
    /// Checks the parameters ([`WfrField::check`]).
    pub fn new(energy: Energy, growth: Growth, alpha: f64) -> Result<Self, SimError> {
        Self::check(energy, growth, alpha).map_err(param::invalid("wfr field"))?;
        Ok(Self { energy, growth, alpha, solver: SolverCfg::default(), state: SinkhornState::default() })
    }

    /// The one check of the parameters (a scenario's `[field]` table uses it too; keys are the
    /// scenario's: `bandwidth`, `blur` for `ε`, `reach` for `ρ`, `alpha`): bandwidth, `ε` and
    /// `ρ` positive, `α ≥ 0`, and a balanced Sinkhorn energy only with conserving growth (or
    /// `α = 0`): its first variation is defined up to a constant.
    pub fn check(energy: Energy, growth: Growth, alpha: f64) -> Result<(), ParamError> {
        match energy {
            Energy::Mmd { bandwidth } => param::positive("bandwidth", bandwidth)?,
            Energy::Sinkhorn { eps, rho } => {
                param::positive("blur", eps)?;
                match rho {
                    Some(r) => param::positive("reach", r)?,
                    None if growth == Growth::Free && alpha != 0.0 => {
                        return Err(ParamError::new(
                            "reach",
                            "absent (balanced): a balanced Sinkhorn energy needs conserving growth or \
                             alpha = 0 (its first variation is defined up to a constant)",
                        ))
                    }
                    None => {}
                }
            }
        }
        param::non_negative("alpha", alpha)
    }

    /// Replace the solver settings.
    pub fn with_solver(mut self, solver: SolverCfg) -> Self {
        self.solver = solver;
        self
    }

    /// The divergence's solver options, its row passes run in `exec`.
    fn div_opts(&self, exec: &Exec, eps: f64, rho: Option<f64>) -> DivergenceOptions {
        DivergenceOptions {
            eps,
            rho,
            cost: Cost::HalfSqEuclidean,
            tol: self.solver.tol,
            max_iter: self.solver.max_iter,
            eps_scaling: self.solver.eps_scaling,
            exec: exec.clone(),
        }
    }

    /// The measures the energy compares: as given, or normalised when balanced.
    fn measures(&self, ctx: &EvalCtx) -> (Vec<f64>, Vec<f64>) {
        let balanced = matches!(self.energy, Energy::Sinkhorn { rho: None, .. });
        if balanced {
            let mb = ctx.target.mass();
            (ctx.w.iter().map(|w| w / ctx.mass).collect(), ctx.target.w.iter().map(|b| b / mb).collect())
        } else {
            (ctx.w.to_vec(), ctx.target.w.clone())
        }
    }

    /// `φ(x_i)` and `∇φ(x_i)` at the current particles (after [`Field::prepare`] for the
    /// Sinkhorn energy).
    pub fn first_variation(&self, ctx: &EvalCtx) -> Result<(Vec<f64>, Vec<f64>), SimError> {
        let d = ctx.dim;
        let t = ctx.target;
        match self.energy {
            Energy::Mmd { bandwidth } => {
                Ok(witness_in(ctx.exec, d, ctx.x, ctx.x, ctx.w, &t.x, &t.w, bandwidth))
            }
            Energy::Sinkhorn { eps, rho } => {
                let (ab, f_aa) = match (&self.state.ab, &self.state.f_aa) {
                    (Some(ab), Some(f)) if f.len() == ctx.n() => (ab, f),
                    _ => {
                        return Err(SimError::Numerical {
                            step: ctx.step,
                            what: "wfr sinkhorn field evaluated before prepare on these particles".into(),
                        })
                    }
                };
                let (wa, wb) = self.measures(ctx);
                first_variation_in(
                    ctx.x,
                    MeasureRef::new(d, ctx.x, &wa),
                    MeasureRef::new(d, &t.x, &wb),
                    &ab.g,
                    f_aa,
                    &self.div_opts(ctx.exec, eps, rho),
                )
                .map_err(|e| at_step(e, ctx.step))
            }
        }
    }
}

/// Put the simulation step into a solver error.
fn at_step(e: SimError, step: usize) -> SimError {
    match e {
        SimError::NonFinite { quantity, particle, value, .. } => {
            SimError::NonFinite { step, quantity: format!("wfr sinkhorn: {quantity}"), particle, value }
        }
        SimError::Invalid(m) => SimError::Numerical { step, what: format!("wfr sinkhorn: {m}") },
        other => other,
    }
}

/// A cheap fingerprint of a cloud (detects a changed target).
fn checksum(x: &[f64], w: &[f64]) -> u64 {
    x.iter().chain(w).fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ v.to_bits()).wrapping_mul(0x0100_0000_01b3))
}

impl Field for WfrField {
    /// The warm-start potentials `(f, g)` of `OT(μ, ν)` and `f_aa` carried between steps
    /// ([`WfrState`]): each solve starts from them, so a resumed run must restore them to
    /// reproduce the same bits. The MMD energy has none.
    fn save_state(&self) -> FieldState {
        if matches!(self.energy, Energy::Mmd { .. }) {
            return FieldState::None;
        }
        FieldState::Wfr(WfrState {
            ab: self.state.ab.as_ref().map(|p| (p.f.clone(), p.g.clone())),
            f_aa: self.state.f_aa.clone(),
        })
    }

    fn restore_state(&mut self, state: FieldState) -> Result<(), SimError> {
        match state {
            FieldState::None => Ok(()),
            FieldState::Wfr(s) if matches!(self.energy, Energy::Sinkhorn { .. }) => {
                self.state.ab = s.ab.map(|(f, g)| Potentials { f, g });
                self.state.f_aa = s.f_aa;
                Ok(())
            }
            other => Err(foreign_state(&self.name(), &other)),
        }
    }

    fn name(&self) -> String {
        match self.energy {
            Energy::Mmd { .. } => "wfr_mmd".into(),
            Energy::Sinkhorn { .. } => "wfr_sinkhorn".into(),
        }
    }

    fn prepare(&mut self, ctx: &EvalCtx) -> Result<(), SimError> {
        let Energy::Sinkhorn { eps, rho } = self.energy else {
            return Ok(());
        };
        if ctx.target.is_empty() {
            return Err(SimError::Invalid("wfr sinkhorn field: the scenario has no target".into()));
        }
        let d = ctx.dim;
        let t = ctx.target;
        let opts = self.div_opts(ctx.exec, eps, rho);
        let (wa, wb) = self.measures(ctx);
        let a = MeasureRef::new(d, ctx.x, &wa);
        let b = MeasureRef::new(d, &t.x, &wb);
        let step = ctx.step;
        // OT(ν, ν): once per target.
        let key = (t.len(), checksum(&t.x, &wb));
        if self.state.target_key != Some(key) {
            let (g_bb, rep) =
                solve_symmetric_in(b, &opts.solver(false), None).map_err(|e| at_step(e, step))?;
            self.state.g_bb = g_bb;
            self.state.ot_bb = rep.dual_objective;
            // A changed target invalidates the warm start; a first solve (fresh, or after a
            // checkpoint restore) keeps whatever potentials the state holds.
            if self.state.target_key.replace(key).is_some() {
                self.state.ab = None;
            }
        }
        // OT(μ, ν), warm from g_ab (the first update recomputes f from g).
        let warm_ab = self
            .state
            .ab
            .take()
            .map(|p| Potentials { f: if p.f.len() == a.len() { p.f } else { vec![0.0; a.len()] }, g: p.g });
        let ab =
            solve(a, b, &opts.solver(warm_ab.is_some()), warm_ab.as_ref()).map_err(|e| at_step(e, step))?;
        // OT(μ, μ), warm while the particle count is unchanged.
        let warm_aa = self.state.f_aa.take().filter(|f| f.len() == a.len());
        let (f_aa, rep_aa) = solve_symmetric_in(a, &opts.solver(warm_aa.is_some()), warm_aa.as_deref())
            .map_err(|e| at_step(e, step))?;
        let (ma, mb) = (a.mass(), b.mass());
        let mass_term = if rho.is_some() { 0.5 * eps * (ma - mb) * (ma - mb) } else { 0.0 };
        let s = &mut self.state;
        s.value = ab.report.dual_objective - 0.5 * rep_aa.dual_objective - 0.5 * s.ot_bb + mass_term;
        s.iterations = ab.report.iterations + rep_aa.iterations;
        s.converged = ab.report.converged && rep_aa.converged;
        s.marginal_error =
            ab.report.marginal_error_a.max(ab.report.marginal_error_b).max(rep_aa.marginal_error_a);
        s.transported_mass = ab.report.transported_mass;
        s.ab = Some(ab.potentials);
        s.f_aa = Some(f_aa);
        Ok(())
    }

    fn eval(&self, ctx: &EvalCtx, velocity: &mut [f64], growth: &mut [f64]) -> Result<(), SimError> {
        let d = ctx.dim;
        let (phi, grad) = self.first_variation(ctx)?;
        for (u, gi) in velocity.iter_mut().zip(&grad) {
            *u -= gi;
        }
        if self.alpha != 0.0 {
            let shift = match self.growth {
                Growth::Free => 0.0,
                Growth::Conserving => {
                    if ctx.mass > 0.0 {
                        phi.iter().zip(ctx.w).map(|(p, w)| p * w).sum::<f64>() / ctx.mass
                    } else {
                        0.0
                    }
                }
            };
            for (g, p) in growth.iter_mut().zip(&phi) {
                *g -= self.alpha * (p - shift);
            }
        }
        debug_assert_eq!(velocity.len(), phi.len() * d);
        Ok(())
    }

    fn diagnostics(&self) -> Vec<(String, crate::format::Diag)> {
        match self.energy {
            Energy::Mmd { .. } => Vec::new(),
            Energy::Sinkhorn { .. } => {
                let s = &self.state;
                vec![
                    ("sinkhorn_divergence".into(), s.value.into()),
                    ("sinkhorn_iterations".into(), (s.iterations as f64).into()),
                    ("sinkhorn_converged".into(), s.converged.into()),
                    ("sinkhorn_marginal_error".into(), s.marginal_error.into()),
                    ("sinkhorn_transported_mass".into(), s.transported_mass.into()),
                ]
            }
        }
    }
}
