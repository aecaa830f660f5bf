//! Space–time feature maps for learned fields (SPEC §6), with every derivative in closed form.
//!
//! Coordinates are standardised first, `z = (x − c)/s` (one centre per coordinate, one isotropic
//! scale `s`, so gradient fields stay gradient fields) and `τ = (t − t_c)/t_s`. A basis function is
//! a product of a time function and a space(–time) function,
//!
//! `f_{k,j}(x, t) = T_k(τ) · S_j(z, τ)`,
//!
//! where the space functions are `m` random Fourier features
//! `S_j = √(2/m) cos(ω_jᵀz + ν_j τ + b_j)`, `ω_j ~ N(0, I/ℓ_x²)`, `b_j ~ U[0, 2π)`, and the
//! polynomial terms `1`, `z_i`, `z_i z_l` (`i ≤ l`) up to the chosen degree (so a pure shift and an
//! OU drift are representable). The time basis ([`TimeBasis`]) is one of
//! - `Cosine`: `T = {1}` and `ν_j ~ N(0, 1/ℓ_t²)`: the SPEC's space–time features (they do not
//!   extrapolate past the last snapshot);
//! - `Hat { knots }`: `ν_j = 0` and `T_k` the piecewise-linear hat functions on the knots, extended
//!   linearly outside them (a partition of unity that reproduces every linear function of `t`; two
//!   knots give space features × `{1, t}`, one knot an autonomous field).
//!
//! Optionally ([`Features::with_time_functions`], `advreact fit --time-functions R`) `R`
//! *space-uniform time functions* follow, `h_r(τ) = √(2/R) cos(ν'_r τ + b'_r)`, `ν'_r ~ N(0, 1/ℓ_t²)`,
//! `b'_r ~ U[0, 2π)` (drawn from a stream of their own, so the space features above are the same
//! draws with or without them): `∇h_r = 0`, `Δh_r = 0`, `∂_τ h_r = −√(2/R) ν'_r sin(ν'_r τ + b'_r)`.
//! The cosine basis has no such function otherwise (its only space-uniform term is the constant
//! `1`, and in high dimension no random feature is nearly constant in space). In a Var-RUOT
//! potential, `λ ← λ + Σ_r θ'_r h_r(τ)` leaves the velocity `u = ∇λ` unchanged and shifts the
//! growth through `αψ'(g) = λ`: for ψ₁ it adds the same rate `Σ_r θ'_r h_r(τ)/α` to every cell's
//! `g` (a growth rate uniform in space that varies, and may change sign, in time); for a concave ψ
//! it shifts `λ`, hence `g = (ψ')⁻¹(λ/α)`, by an amount uniform in space. With `R = 0` (the
//! default, and every model file without the keys) nothing changes.
//!
//! A scalar field is `λ(x, t) = Σ θ_{k,j} f_{k,j}(x, t) + Σ_r θ'_r h_r(τ)` (index `k·S + j`, `S`
//! space functions, then `K·S + r`).
//! With `s_j, c_j` the sine and cosine of the phase and `a = √(2/m)`:
//! `∇_z S_j = −a s_j ω_j`, `∂_τ S_j = −a s_j ν_j`, `Δ_z S_j = −a c_j |ω_j|²`,
//! `∇²_z S_j · v = −a c_j (ω_jᵀv) ω_j`, `∇_z ∂_τ S_j = −a c_j ν_j ω_j`, `∇_z Δ_z S_j = a s_j |ω_j|² ω_j`.
//! Raw-coordinate derivatives follow from `∇_x = ∇_z / s`, `∂_t = ∂_τ / t_s`, `Δ_x = Δ_z / s²`.
//! No d×d Hessian is ever formed.
//!
//! What a fit needs is the *jet* `J = (λ, ∇λ, ∂_tλ, Δλ)` at a point ([`Features::jet`]) and two
//! vector–Jacobian products of it for a cotangent `(a, b, c, e)` of the jet:
//! - in the coefficients, [`Features::vjp_theta`]: `∂/∂θ_{k,j} [a λ + bᵀ∇λ + c ∂_tλ + e Δλ]`;
//! - in the position, [`Features::vjp_x`]: `∇_x [a λ + bᵀ∇λ + c ∂_tλ + e Δλ]` (cotangent fixed).
//!
//! Both cost `O(m d)` per point, like the jet itself.

use crate::kernel::rff::sincos_into;
use crate::rng::{self, Purpose};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How time enters the features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimeBasis {
    /// Space–time Fourier phases `ν_j τ`, no separate time functions (does not extrapolate).
    Cosine,
    /// Hat functions on the knots (raw time units, strictly increasing), extended linearly.
    Hat {
        /// The knots; one knot is an autonomous (time-independent) field.
        knots: Vec<f64>,
    },
}

/// Everything that defines a feature map: the drawn frequencies are regenerated from `seed` by
/// [`Features::new`] and also stored by value (see [`Features`]) so a saved model never depends on
/// a random-number library's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Space dimension `d`.
    pub dim: usize,
    /// Number of random Fourier features `m`.
    pub random: usize,
    /// Space length scale `ℓ_x` (standardised units).
    pub ell_x: f64,
    /// Time length scale `ℓ_t` (standardised units; `Cosine` basis only).
    pub ell_t: f64,
    /// Polynomial degree of the extra space terms: 0 (constant), 1 (+ linear), 2 (+ quadratic).
    pub poly: u8,
    /// The time basis.
    pub time: TimeBasis,
    /// Seed of the drawn frequencies.
    pub seed: u64,
    /// Standardisation centre `c` (length d).
    pub centre: Vec<f64>,
    /// Standardisation scale `s > 0` (isotropic).
    pub scale: f64,
    /// Time centre `t_c`.
    pub t_centre: f64,
    /// Time scale `t_s > 0`.
    pub t_scale: f64,
}

impl FeatureSpec {
    /// Check the settings; the error names the setting.
    pub fn check(&self) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("features: {name} must be finite and > 0, got {v}"))
            }
        };
        if self.dim == 0 {
            return Err("features: dim must be ≥ 1".into());
        }
        if self.poly > 2 {
            return Err(format!("features: poly must be 0, 1 or 2, got {}", self.poly));
        }
        pos("ell_x", self.ell_x)?;
        pos("scale", self.scale)?;
        pos("t_scale", self.t_scale)?;
        if matches!(self.time, TimeBasis::Cosine) {
            pos("ell_t", self.ell_t)?;
        }
        if self.centre.len() != self.dim || self.centre.iter().any(|v| !v.is_finite()) {
            return Err(format!("features: centre must hold {} finite numbers", self.dim));
        }
        if !self.t_centre.is_finite() {
            return Err("features: t_centre must be finite".into());
        }
        if let TimeBasis::Hat { knots } = &self.time {
            if knots.is_empty()
                || knots.iter().any(|k| !k.is_finite())
                || knots.windows(2).any(|w| w[1] <= w[0])
            {
                return Err("features: hat knots must be finite, strictly increasing, at least one".into());
            }
        }
        Ok(())
    }

    /// Number of polynomial space terms for this degree and dimension.
    fn poly_len(&self) -> usize {
        let d = self.dim;
        match self.poly {
            0 => 1,
            1 => 1 + d,
            _ => 1 + d + d * (d + 1) / 2,
        }
    }
}

/// A feature map: its spec and the drawn frequencies `ω` (m×d row-major, standardised units),
/// `ν` (m) and phases `b` (m).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// The settings.
    pub spec: FeatureSpec,
    /// Frequencies `ω_j`, row `j` = `omega[j·d..(j+1)·d]`.
    pub omega: Vec<f64>,
    /// Time frequencies `ν_j` (all zero for the hat basis).
    pub nu: Vec<f64>,
    /// Phases `b_j ∈ [0, 2π)`.
    pub phase: Vec<f64>,
    /// Frequencies `ν'_r` of the space-uniform time functions (module doc; empty: none, and the
    /// key is then not written, so a model file without it is the same map).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_nu: Vec<f64>,
    /// Phases `b'_r` of the space-uniform time functions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_phase: Vec<f64>,
}

/// Per-point workspace of [`Features`]: standardised point, time functions, sines and cosines.
#[derive(Debug, Clone, Default)]
pub struct Point {
    z: Vec<f64>,
    tk: Vec<f64>,
    dtk: Vec<f64>,
    arg: Vec<f64>,
    s: Vec<f64>,
    c: Vec<f64>,
    // per space function: coefficients contracted over the time basis
    th: Vec<f64>,
    dth: Vec<f64>,
    // scratch of the vector–Jacobian products (reused: they run per particle and step)
    bz: Vec<f64>,
    r: Vec<f64>,
    q: Vec<f64>,
    gz: Vec<f64>,
    // per random feature: `ωᵀb` and the factor of `ω_j` in `∇_x` (jet and products)
    bo: Vec<f64>,
    fj: Vec<f64>,
    // the space-uniform time functions `h_r` and `∂_τ h_r` at the loaded time
    tf: Vec<f64>,
    dtf: Vec<f64>,
    // the map's frequencies by coordinate (`omt[k·m + j] = ω_{j,k}`: loops over features are
    // contiguous) and `|ω_j|²`, copied once per workspace
    omt: Vec<f64>,
    wn: Vec<f64>,
}

/// The jet `(λ, ∇_xλ, ∂_tλ, Δ_xλ)` of a scalar field at a point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Jet {
    /// `λ`.
    pub value: f64,
    /// `∇_x λ` (length d).
    pub grad: Vec<f64>,
    /// `∂_t λ`.
    pub dt: f64,
    /// `Δ_x λ`.
    pub lap: f64,
}

impl Jet {
    /// Read a jet stored flat as `λ, ∇λ (d), ∂_tλ, Δλ` (length d + 3).
    pub fn set(&mut self, flat: &[f64]) {
        let d = flat.len() - 3;
        self.value = flat[0];
        self.grad.clear();
        self.grad.extend_from_slice(&flat[1..=d]);
        self.dt = flat[d + 1];
        self.lap = flat[d + 2];
    }
}

/// A cotangent of a [`Jet`]: the functional `a λ + bᵀ∇λ + c ∂_tλ + e Δλ`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JetCot {
    /// Weight of `λ`.
    pub a: f64,
    /// Weights of `∇_x λ` (length d; empty means zero).
    pub b: Vec<f64>,
    /// Weight of `∂_t λ`.
    pub c: f64,
    /// Weight of `Δ_x λ`.
    pub e: f64,
}

impl Features {
    /// Draw the frequencies of `spec` from the stream `(seed, Features, 1, 0)`.
    pub fn new(spec: FeatureSpec) -> Result<Self, String> {
        spec.check()?;
        let (m, d) = (spec.random, spec.dim);
        let mut r = rng::stream(spec.seed, Purpose::Features, 1, 0);
        let mut omega = vec![0.0; m * d];
        let mut nu = vec![0.0; m];
        let mut phase = vec![0.0; m];
        let cosine = matches!(spec.time, TimeBasis::Cosine);
        for j in 0..m {
            for o in &mut omega[j * d..(j + 1) * d] {
                let n: f64 = StandardNormal.sample(&mut r);
                *o = n / spec.ell_x;
            }
            let n: f64 = StandardNormal.sample(&mut r);
            nu[j] = if cosine { n / spec.ell_t } else { 0.0 };
            phase[j] = r.random::<f64>() * std::f64::consts::TAU;
        }
        Ok(Self { spec, omega, nu, phase, time_nu: Vec::new(), time_phase: Vec::new() })
    }

    /// Add `r` space-uniform time functions `h_r(τ) = √(2/r) cos(ν'_r τ + b'_r)` (module doc),
    /// `ν'_r ~ N(0, 1/ℓ_t²)` and `b'_r ~ U[0, 2π)` drawn from the stream `(seed, Features, 2, 0)`
    /// (the space features keep their draws). `r = 0` returns the map unchanged.
    pub fn with_time_functions(mut self, r: usize) -> Result<Self, String> {
        if r == 0 {
            return Ok(self);
        }
        let lt = self.spec.ell_t;
        if !(lt.is_finite() && lt > 0.0) {
            return Err(format!("features: ell_t must be finite and > 0 for time functions, got {lt}"));
        }
        let mut g = rng::stream(self.spec.seed, Purpose::Features, 2, 0);
        self.time_nu.clear();
        self.time_phase.clear();
        for _ in 0..r {
            let n: f64 = StandardNormal.sample(&mut g);
            self.time_nu.push(n / lt);
            self.time_phase.push(g.random::<f64>() * std::f64::consts::TAU);
        }
        Ok(self)
    }

    /// Number of space-uniform time functions `R`.
    pub fn time_functions(&self) -> usize {
        self.time_nu.len()
    }

    /// Check a map read from a file: the spec and the stored array lengths.
    pub fn check(&self) -> Result<(), String> {
        self.spec.check()?;
        let (m, d) = (self.spec.random, self.spec.dim);
        if self.omega.len() != m * d || self.nu.len() != m || self.phase.len() != m {
            return Err(format!("features: omega must hold m·d = {} numbers, nu and phase m = {m}", m * d));
        }
        if self.time_nu.len() != self.time_phase.len() {
            return Err(format!(
                "features: time_nu ({}) and time_phase ({}) must have the same length",
                self.time_nu.len(),
                self.time_phase.len()
            ));
        }
        let all = self.omega.iter().chain(&self.nu).chain(&self.phase);
        if all.chain(&self.time_nu).chain(&self.time_phase).any(|v| !v.is_finite()) {
            return Err("features: omega, nu, phase, time_nu and time_phase must be finite".into());
        }
        Ok(())
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    /// Number of space functions `S` (random features plus polynomial terms).
    pub fn space_len(&self) -> usize {
        self.spec.random + self.spec.poly_len()
    }

    /// Number of time functions `K`.
    pub fn time_len(&self) -> usize {
        match &self.spec.time {
            TimeBasis::Cosine => 1,
            TimeBasis::Hat { knots } => knots.len(),
        }
    }

    /// Number of basis functions `p = K·S + R` (the length of a coefficient vector).
    pub fn len(&self) -> usize {
        self.time_len() * self.space_len() + self.time_functions()
    }

    /// Index of the first space-uniform time function, `K·S`.
    fn tf_offset(&self) -> usize {
        self.time_len() * self.space_len()
    }

    /// `√(2/R)`.
    fn tf_amp(&self) -> f64 {
        (2.0 / self.time_functions().max(1) as f64).sqrt()
    }

    /// Always false: a map has at least the constant term.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A workspace for this map.
    pub fn point(&self) -> Point {
        let (m, d, k) = (self.spec.random, self.spec.dim, self.time_len());
        let sl = self.space_len();
        Point {
            z: vec![0.0; d],
            tk: vec![0.0; k],
            dtk: vec![0.0; k],
            arg: vec![0.0; m],
            s: vec![0.0; m],
            c: vec![0.0; m],
            th: vec![0.0; sl],
            dth: vec![0.0; sl],
            bz: Vec::with_capacity(d),
            r: vec![0.0; sl],
            q: vec![0.0; sl],
            gz: vec![0.0; d],
            bo: vec![0.0; m],
            fj: vec![0.0; m],
            omt: (0..d * m).map(|i| self.omega[(i % m) * d + i / m]).collect(),
            wn: self.omega.chunks_exact(d.max(1)).take(m).map(norm2).collect(),
            tf: vec![0.0; self.time_functions()],
            dtf: vec![0.0; self.time_functions()],
        }
    }

    /// Load the point `(x, t)` into the workspace: standardise, time functions, phases.
    pub fn load(&self, x: &[f64], t: f64, p: &mut Point) {
        let sp = &self.spec;
        for ((z, xi), ci) in p.z.iter_mut().zip(x).zip(&sp.centre) {
            *z = (xi - ci) / sp.scale;
        }
        let tau = (t - sp.t_centre) / sp.t_scale;
        match &sp.time {
            TimeBasis::Cosine => {
                p.tk[0] = 1.0;
                p.dtk[0] = 0.0;
            }
            TimeBasis::Hat { knots } => hat(knots, t, &mut p.tk, &mut p.dtk, sp.t_scale),
        }
        let at = self.tf_amp();
        for (((h, dh), nu), b) in
            p.tf.iter_mut().zip(p.dtf.iter_mut()).zip(&self.time_nu).zip(&self.time_phase)
        {
            let (s, c) = (nu * tau + b).sin_cos();
            *h = at * c;
            *dh = -at * nu * s;
        }
        // arg_j = b_j + ν_j τ + Σ_k z_k ω_{j,k}, summed in k order (coordinate-major: the loops
        // over j are contiguous and vectorise)
        let m = sp.random;
        for ((a, b), nu) in p.arg.iter_mut().zip(&self.phase).zip(&self.nu) {
            *a = b + nu * tau;
        }
        for (k, &zk) in p.z.iter().enumerate() {
            for (a, o) in p.arg.iter_mut().zip(&p.omt[k * m..(k + 1) * m]) {
                *a += zk * o;
            }
        }
        sincos_into(&p.arg, &mut p.s, &mut p.c);
    }

    /// `√(2/m)`.
    fn amp(&self) -> f64 {
        (2.0 / self.spec.random.max(1) as f64).sqrt()
    }

    /// The values of all basis functions at the loaded point (`out` of length [`Features::len`]).
    pub fn values(&self, p: &Point, out: &mut [f64]) {
        let sl = self.space_len();
        let m = self.spec.random;
        let a = self.amp();
        for (k, &tk) in p.tk.iter().enumerate() {
            let o = &mut out[k * sl..(k + 1) * sl];
            for (oj, cj) in o[..m].iter_mut().zip(&p.c) {
                *oj = tk * a * cj;
            }
            self.poly_each(p, |q, v, _| o[m + q] = tk * v);
        }
        let o = self.tf_offset();
        out[o..o + p.tf.len()].copy_from_slice(&p.tf);
    }

    /// The raw-coordinate gradients of all basis functions at the loaded point: `out[i·d + l]` =
    /// `∂f_i/∂x_l` (`out` of length `len·d`).
    pub fn gradients(&self, p: &Point, out: &mut [f64]) {
        let d = self.spec.dim;
        let sl = self.space_len();
        let m = self.spec.random;
        let a = self.amp() / self.spec.scale;
        out.iter_mut().for_each(|v| *v = 0.0);
        for (k, &tk) in p.tk.iter().enumerate() {
            for j in 0..m {
                let f = -tk * a * p.s[j];
                let row = &mut out[(k * sl + j) * d..(k * sl + j + 1) * d];
                for (r, o) in row.iter_mut().zip(&self.omega[j * d..(j + 1) * d]) {
                    *r = f * o;
                }
            }
            let s = self.spec.scale;
            self.poly_each(p, |q, _, grad| {
                let row = &mut out[(k * sl + m + q) * d..(k * sl + m + q + 1) * d];
                grad(&mut |l, g| row[l] += tk * g / s);
            });
        }
    }

    /// Contract the coefficients over the time basis: `th_j = Σ_k θ_{k,j} T_k`, `dth_j = Σ_k θ_{k,j} T_k'`.
    fn contract(&self, theta: &[f64], p: &mut Point) {
        let sl = self.space_len();
        p.th.iter_mut().for_each(|v| *v = 0.0);
        p.dth.iter_mut().for_each(|v| *v = 0.0);
        for (k, (&tk, &dtk)) in p.tk.iter().zip(&p.dtk).enumerate() {
            for ((th, dth), &c) in p.th.iter_mut().zip(p.dth.iter_mut()).zip(&theta[k * sl..(k + 1) * sl]) {
                *th += c * tk;
                *dth += c * dtk;
            }
        }
    }

    /// The jet of `λ = Σ θ_i f_i` at the loaded point.
    pub fn jet(&self, theta: &[f64], p: &mut Point, jet: &mut Jet) {
        self.contract(theta, p);
        let (m, d) = (self.spec.random, self.spec.dim);
        let a = self.amp();
        jet.grad.resize(d, 0.0);
        // u_j = a θ_j c_j, v_j = −a θ_j s_j: λ = Σ u, ∂_τλ = Σ (a θ'_j c_j + v_j ν_j),
        // Δ_zλ = −Σ u_j |ω_j|², ∇_zλ = Σ v_j ω_j
        let (u, v) = (&mut p.r[..m], &mut p.fj[..m]);
        for ((((uj, vj), th), s), c) in u.iter_mut().zip(v.iter_mut()).zip(&p.th).zip(&p.s).zip(&p.c) {
            let at = a * th;
            *uj = at * c;
            *vj = -at * s;
        }
        let mut val = sum_lanes(u);
        let mut dtau = a * dot_lanes(&p.dth[..m], &p.c) + dot_lanes(v, &self.nu);
        let mut lap = -dot_lanes(u, &p.wn);
        for (k, g) in jet.grad.iter_mut().enumerate() {
            *g = dot_lanes(v, &p.omt[k * m..(k + 1) * m]);
        }
        self.poly_each(p, |q, v, grad| {
            let (th, dth) = (p.th[m + q], p.dth[m + q]);
            val += th * v;
            dtau += dth * v;
            grad(&mut |l, g| jet.grad[l] += th * g);
        });
        if self.spec.poly >= 2 {
            for i in 0..d {
                lap += 2.0 * p.th[m + self.quad_index(i, i)];
            }
        }
        if !p.tf.is_empty() {
            // the space-uniform time functions: value and ∂_τ only
            let th = &theta[self.tf_offset()..];
            val += dot(th, &p.tf);
            dtau += dot(th, &p.dtf);
        }
        let s = self.spec.scale;
        jet.value = val;
        jet.grad.iter_mut().for_each(|g| *g /= s);
        jet.dt = dtau / self.spec.t_scale;
        jet.lap = lap / (s * s);
    }

    /// Add `∂/∂θ_i [a λ + bᵀ∇λ + c ∂_tλ + e Δλ] = a f_i + bᵀ∇f_i + c ∂_t f_i + e Δf_i` into `out`.
    pub fn vjp_theta(&self, p: &mut Point, cot: &JetCot, out: &mut [f64]) {
        self.vjp_parts(None, p, cot, None, Some(out));
    }

    /// Add `∇_x [a λ + bᵀ∇λ + c ∂_tλ + e Δλ]` (cotangent held fixed) into `out` (length d).
    pub fn vjp_x(&self, theta: &[f64], p: &mut Point, cot: &JetCot, out: &mut [f64]) {
        self.vjp_parts(Some(theta), p, cot, Some(out), None);
    }

    /// Both products in one pass over the features ([`Features::vjp_x`] into `gx`,
    /// [`Features::vjp_theta`] into `gth`): the phases' products with `b` are shared.
    pub fn vjp(&self, theta: &[f64], p: &mut Point, cot: &JetCot, gx: &mut [f64], gth: &mut [f64]) {
        self.vjp_parts(Some(theta), p, cot, Some(gx), Some(gth));
    }

    /// The products asked for (`gx` needs `theta`).
    fn vjp_parts(
        &self,
        theta: Option<&[f64]>,
        p: &mut Point,
        cot: &JetCot,
        gx: Option<&mut [f64]>,
        gth: Option<&mut [f64]>,
    ) {
        let (m, d, sl) = (self.spec.random, self.spec.dim, self.space_len());
        let a = self.amp();
        if let Some(theta) = theta {
            self.contract(theta, p);
        }
        let mut bz = std::mem::take(&mut p.bz);
        let (cz, ez) = self.cot_z(cot, &mut bz);
        // bo_j = ωⱼᵀ b (standardised), coordinate-major
        p.bo.iter_mut().for_each(|v| *v = 0.0);
        for (k, &bk) in bz.iter().enumerate() {
            for (o, w) in p.bo.iter_mut().zip(&p.omt[k * m..(k + 1) * m]) {
                *o += bk * w;
            }
        }
        let (want_x, want_t) = (gx.is_some(), gth.is_some());
        for j in 0..m {
            let (s, c, bo, nu, wn) = (a * p.s[j], a * p.c[j], p.bo[j], self.nu[j], p.wn[j]);
            if want_t {
                // r_j multiplies T_k, q_j multiplies T_k' (from ∂_τ)
                p.r[j] = cot.a * c - bo * s - cz * s * nu - ez * c * wn;
                p.q[j] = cz * c;
            }
            if want_x {
                // ∇_z of a S + bᵀ∇S + c ∂_τS + e ΔS, all along ω_j
                p.fj[j] = p.th[j] * (-cot.a * s - bo * c - cz * c * nu + ez * s * wn) - p.dth[j] * cz * s;
            }
        }
        if let Some(out) = gth {
            let (mut r, mut q) = (std::mem::take(&mut p.r), std::mem::take(&mut p.q));
            self.poly_each(p, |qi, v, grad| {
                let mut bg = 0.0;
                if !bz.is_empty() {
                    grad(&mut |l, g| bg += bz[l] * g);
                }
                r[m + qi] = cot.a * v + bg;
                q[m + qi] = cz * v;
            });
            if self.spec.poly >= 2 {
                for i in 0..d {
                    r[m + self.quad_index(i, i)] += 2.0 * ez;
                }
            }
            for (k, (&tk, &dtk)) in p.tk.iter().zip(&p.dtk).enumerate() {
                for ((o, rj), qj) in out[k * sl..(k + 1) * sl].iter_mut().zip(&r).zip(&q) {
                    *o += tk * rj + dtk * qj;
                }
            }
            // the space-uniform time functions (no ∇, no Δ: only a λ and c ∂_tλ)
            let o0 = self.tf_offset();
            for ((o, h), dh) in out[o0..o0 + p.tf.len()].iter_mut().zip(&p.tf).zip(&p.dtf) {
                *o += cot.a * h + cz * dh;
            }
            (p.r, p.q) = (r, q);
        }
        if let Some(out) = gx {
            let s_ = self.spec.scale;
            let mut gz = std::mem::take(&mut p.gz);
            for (k, g) in gz.iter_mut().enumerate() {
                *g = dot_lanes(&p.fj, &p.omt[k * m..(k + 1) * m]);
            }
            // polynomial terms: ∇(value) and ∇(bᵀ∇S) (only quadratic terms have one); ∂_τ S = 0, ∇ΔS = 0.
            self.poly_each(p, |q, _, grad| {
                let (th, dth) = (p.th[m + q], p.dth[m + q]);
                grad(&mut |l, g| gz[l] += (th * cot.a + dth * cz) * g);
            });
            if self.spec.poly >= 2 && !bz.is_empty() {
                for i in 0..d {
                    for l in i..d {
                        let th = p.th[m + self.quad_index(i, l)];
                        // ∇²(z_i z_l) b = b_l e_i + b_i e_l
                        gz[i] += th * bz[l];
                        gz[l] += th * bz[i];
                    }
                }
            }
            for (o, g) in out.iter_mut().zip(&gz) {
                *o += g / s_;
            }
            p.gz = gz;
        }
        p.bz = bz;
    }

    /// The cotangent's weights in standardised units: `b/s` into `bz` (empty when `b` is),
    /// and `(c/t_s, e/s²)`.
    fn cot_z(&self, cot: &JetCot, bz: &mut Vec<f64>) -> (f64, f64) {
        let s = self.spec.scale;
        bz.clear();
        bz.extend(cot.b.iter().map(|b| b / s));
        (cot.c / self.spec.t_scale, cot.e / (s * s))
    }

    /// Index (among the polynomial terms) of `z_i z_l`, `i ≤ l`.
    fn quad_index(&self, i: usize, l: usize) -> usize {
        let d = self.spec.dim;
        // terms: 1, z_0..z_{d-1}, then (0,0),(0,1)..(0,d-1),(1,1),...
        1 + d + i * d - (i * i.saturating_sub(1)) / 2 + (l - i)
    }

    /// Visit the polynomial space terms at the loaded point: `f(q, value, grad)` where `grad`
    /// enumerates the nonzero standardised-gradient entries `(l, ∂S_q/∂z_l)`.
    fn poly_each(
        &self,
        p: &Point,
        mut f: impl FnMut(usize, f64, &mut dyn FnMut(&mut dyn FnMut(usize, f64))),
    ) {
        let d = self.spec.dim;
        let z = &p.z;
        f(0, 1.0, &mut |_| {});
        if self.spec.poly >= 1 {
            for (i, &zi) in z.iter().enumerate() {
                f(1 + i, zi, &mut |g| g(i, 1.0));
            }
        }
        if self.spec.poly >= 2 {
            let mut q = 1 + d;
            for i in 0..d {
                for l in i..d {
                    f(q, z[i] * z[l], &mut |g| {
                        g(i, z[l]);
                        g(l, z[i]);
                    });
                    q += 1;
                }
            }
        }
    }
}

/// Hat functions on `knots` at time `t`, extended linearly outside: values into `v`, time
/// derivatives (per unit of standardised time `τ`, i.e. `∂/∂t · t_s`) into `dv`.
fn hat(knots: &[f64], t: f64, v: &mut [f64], dv: &mut [f64], t_scale: f64) {
    v.iter_mut().for_each(|x| *x = 0.0);
    dv.iter_mut().for_each(|x| *x = 0.0);
    let k = knots.len();
    if k == 1 {
        v[0] = 1.0;
        return;
    }
    // the segment [knots[i], knots[i+1]] that holds t (the first or last one outside the knots)
    let i = match knots.iter().position(|&kn| kn > t) {
        None => k - 2,
        Some(0) => 0,
        Some(p) => (p - 1).min(k - 2),
    };
    let h = knots[i + 1] - knots[i];
    let r = (t - knots[i]) / h;
    v[i] = 1.0 - r;
    v[i + 1] = r;
    dv[i] = -t_scale / h;
    dv[i + 1] = t_scale / h;
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm2(a: &[f64]) -> f64 {
    dot(a, a)
}

/// Lanes of the reductions over features: independent partial sums, so the loops vectorise
/// (a fixed order: the bits do not depend on the machine's vector width).
const LANES: usize = 8;

/// `Σ_j a_j b_j` in [`LANES`] partial sums (added in lane order, then the remainder).
fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f64>();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `Σ_j a_j` in [`LANES`] partial sums.
fn sum_lanes(a: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let ac = a.chunks_exact(LANES);
    let rest = ac.remainder();
    for x in ac {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f64>() + rest.iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(time: TimeBasis, poly: u8, d: usize) -> FeatureSpec {
        FeatureSpec {
            dim: d,
            random: 24,
            ell_x: 0.8,
            ell_t: 1.3,
            poly,
            time,
            seed: 7,
            centre: (0..d).map(|i| 0.3 * i as f64 - 0.2).collect(),
            scale: 1.7,
            t_centre: 0.4,
            t_scale: 2.5,
        }
    }

    fn bases(d: usize) -> Vec<Features> {
        [
            (TimeBasis::Cosine, 2),
            (TimeBasis::Hat { knots: vec![0.0, 0.7, 1.5, 3.0] }, 2),
            (TimeBasis::Hat { knots: vec![0.0, 2.0] }, 1),
            (TimeBasis::Hat { knots: vec![1.0] }, 0),
        ]
        .into_iter()
        .map(|(t, p)| Features::new(spec(t, p, d)).unwrap())
        .chain([
            // with space-uniform time functions (last: the tests index the first ones)
            Features::new(spec(TimeBasis::Cosine, 2, d)).unwrap().with_time_functions(5).unwrap(),
            Features::new(spec(TimeBasis::Hat { knots: vec![0.0, 2.0] }, 1, d))
                .unwrap()
                .with_time_functions(3)
                .unwrap(),
        ])
        .collect()
    }

    fn theta(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.13).collect()
    }

    fn lam(f: &Features, th: &[f64], x: &[f64], t: f64) -> f64 {
        let mut p = f.point();
        f.load(x, t, &mut p);
        let mut v = vec![0.0; f.len()];
        f.values(&p, &mut v);
        v.iter().zip(th).map(|(a, b)| a * b).sum()
    }

    fn jet_at(f: &Features, th: &[f64], x: &[f64], t: f64) -> Jet {
        let mut p = f.point();
        f.load(x, t, &mut p);
        let mut j = Jet::default();
        f.jet(th, &mut p, &mut j);
        j
    }

    /// The jet against central differences of the values (h = 1e-4: error O(h²) ≈ 1e-8 relative).
    #[test]
    fn jet_matches_central_differences() {
        for d in [1, 3] {
            for f in bases(d) {
                let th = theta(f.len());
                // t = 3.4 lies past the last knot: the linear extension
                for (x, t) in [(vec![0.4, -0.3, 1.1], 0.9), (vec![-1.2, 0.5, 0.2], 3.4)] {
                    let x = &x[..d];
                    let j = jet_at(&f, &th, x, t);
                    assert!((j.value - lam(&f, &th, x, t)).abs() < 1e-12);
                    let h = 1e-4;
                    let mut lap = 0.0;
                    for l in 0..d {
                        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                        xp[l] += h;
                        xm[l] -= h;
                        let g = (lam(&f, &th, &xp, t) - lam(&f, &th, &xm, t)) / (2.0 * h);
                        assert!(
                            (g - j.grad[l]).abs() < 1e-7 * (1.0 + g.abs()),
                            "grad {l}: {g} vs {}",
                            j.grad[l]
                        );
                        lap += (lam(&f, &th, &xp, t) - 2.0 * j.value + lam(&f, &th, &xm, t)) / (h * h);
                    }
                    assert!((lap - j.lap).abs() < 1e-4 * (1.0 + lap.abs()), "lap {lap} vs {}", j.lap);
                    let dt = (lam(&f, &th, x, t + h) - lam(&f, &th, x, t - h)) / (2.0 * h);
                    assert!((dt - j.dt).abs() < 1e-7 * (1.0 + dt.abs()), "dt {dt} vs {}", j.dt);
                }
            }
        }
    }

    /// `vjp_theta` is the exact derivative of the (linear in θ) functional; `vjp_x` matches central
    /// differences of the functional in x with the cotangent fixed.
    #[test]
    fn vector_jacobian_products_are_exact() {
        let d = 3;
        for f in bases(d) {
            let th = theta(f.len());
            let x = [0.2, -0.7, 0.5];
            let t = 1.1;
            let cot = JetCot { a: 0.7, b: vec![-0.4, 1.3, 0.25], c: -0.9, e: 0.35 };
            let func = |th: &[f64], x: &[f64]| {
                let j = jet_at(&f, th, x, t);
                cot.a * j.value + dot(&cot.b, &j.grad) + cot.c * j.dt + cot.e * j.lap
            };
            let mut p = f.point();
            f.load(&x, t, &mut p);
            let mut gth = vec![0.0; f.len()];
            f.vjp_theta(&mut p, &cot, &mut gth);
            // linear in θ: the functional at θ equals ⟨gth, θ⟩ exactly up to rounding
            let lin: f64 = gth.iter().zip(&th).map(|(a, b)| a * b).sum();
            assert!((lin - func(&th, &x)).abs() < 1e-11 * (1.0 + lin.abs()));
            for i in [0, 5, f.len() - 1, f.len() / 2] {
                let mut e = vec![0.0; f.len()];
                e[i] = 1.0;
                assert!((gth[i] - func(&e, &x)).abs() < 1e-12 * (1.0 + gth[i].abs()), "θ_{i}");
            }
            let mut gx = vec![0.0; d];
            f.vjp_x(&th, &mut p, &cot, &mut gx);
            // the fused pass gives both, to the bit
            let (mut fx, mut fth) = (vec![0.0; d], vec![0.0; f.len()]);
            f.vjp(&th, &mut p, &cot, &mut fx, &mut fth);
            assert_eq!(fx, gx);
            assert_eq!(fth, gth);
            let h = 1e-4;
            for l in 0..d {
                let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
                xp[l] += h;
                xm[l] -= h;
                let g = (func(&th, &xp) - func(&th, &xm)) / (2.0 * h);
                assert!((g - gx[l]).abs() < 1e-6 * (1.0 + g.abs()), "x_{l}: {g} vs {}", gx[l]);
            }
        }
    }

    #[test]
    fn gradients_match_the_jet_and_hats_are_a_partition_of_unity() {
        let d = 2;
        let f = &bases(d)[1];
        let th = theta(f.len());
        let x = [0.3, 0.9];
        let mut p = f.point();
        f.load(&x, -0.5, &mut p);
        assert!((p.tk.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let mut g = vec![0.0; f.len() * d];
        f.gradients(&p, &mut g);
        let j = jet_at(f, &th, &x, -0.5);
        for l in 0..d {
            let s: f64 = (0..f.len()).map(|i| th[i] * g[i * d + l]).sum();
            assert!((s - j.grad[l]).abs() < 1e-12);
        }
    }

    /// One knot (`--time-basis constant`): an autonomous field. The jet is the same to the bit
    /// before, at, between and past any time, and `∂_tλ = 0` exactly.
    #[test]
    fn one_knot_is_an_autonomous_field() {
        let d = 2;
        let f = Features::new(spec(TimeBasis::Hat { knots: vec![0.0] }, 1, d)).unwrap();
        let th = theta(f.len());
        let x = [0.4, -0.3];
        let j0 = jet_at(&f, &th, &x, 0.0);
        assert_eq!(j0.dt, 0.0);
        assert!(j0.value.abs() > 1e-3 && j0.grad.iter().any(|g| g.abs() > 1e-3), "{j0:?}");
        for t in [-1.0, 0.7, 4.0, 12.5] {
            assert_eq!(jet_at(&f, &th, &x, t), j0, "t = {t}");
        }
    }

    /// The time functions are uniform in space (`∇λ = 0`, `Δλ = 0` exactly, the same value at
    /// every x), vary in time, and leave the space features' draws and jets unchanged to the bit.
    #[test]
    fn time_functions_are_uniform_in_space_and_leave_the_rest_alone() {
        let d = 3;
        let f0 = Features::new(spec(TimeBasis::Cosine, 1, d)).unwrap();
        let f1 = f0.clone().with_time_functions(8).unwrap();
        assert_eq!((f1.time_functions(), f1.len()), (8, f0.len() + 8));
        assert_eq!((&f1.omega, &f1.nu, &f1.phase), (&f0.omega, &f0.nu, &f0.phase));
        assert_eq!(f0.clone().with_time_functions(0).unwrap(), f0);
        // only the time functions: uniform in space
        let mut th = vec![0.0; f1.len()];
        th[f0.len()..].copy_from_slice(&theta(8));
        let (xa, xb) = ([0.4, -0.3, 1.1], [-2.0, 0.9, 0.05]);
        for t in [-1.0, 0.3, 2.7] {
            let (ja, jb) = (jet_at(&f1, &th, &xa, t), jet_at(&f1, &th, &xb, t));
            assert_eq!(ja, jb, "t = {t}");
            assert!(ja.grad.iter().all(|g| *g == 0.0) && ja.lap == 0.0, "{ja:?}");
            assert!(ja.value.abs() > 1e-3 && ja.dt.abs() > 1e-3, "{ja:?}");
        }
        assert_ne!(jet_at(&f1, &th, &xa, -1.0).value, jet_at(&f1, &th, &xa, 2.7).value);
        // space coefficients only: the jet of the map without time functions, to the bit
        let th0 = theta(f0.len());
        let mut th1 = th0.clone();
        th1.extend([0.0; 8]);
        for t in [-1.0, 0.3, 2.7] {
            assert_eq!(jet_at(&f1, &th1, &xa, t), jet_at(&f0, &th0, &xa, t));
        }
        // the gradients of the time functions are zero rows
        let mut p = f1.point();
        f1.load(&xa, 0.3, &mut p);
        let mut g = vec![1.0; f1.len() * d];
        f1.gradients(&p, &mut g);
        assert!(g[f0.len() * d..].iter().all(|v| *v == 0.0));
    }

    /// A map file without the time-function keys (every file written before they existed) reads
    /// as the same map and is written back to the same text; a map with them round-trips.
    #[test]
    fn model_files_with_and_without_time_functions_read_back() {
        let f0 = Features::new(spec(TimeBasis::Cosine, 1, 2)).unwrap();
        // the text the derive wrote before the keys existed: the four fields in this order
        let js = |v: &[f64]| serde_json::to_string(v).unwrap();
        let old = format!(
            r#"{{"spec":{},"omega":{},"nu":{},"phase":{}}}"#,
            serde_json::to_string(&f0.spec).unwrap(),
            js(&f0.omega),
            js(&f0.nu),
            js(&f0.phase)
        );
        let back: Features = serde_json::from_str(&old).unwrap();
        assert_eq!(back, f0);
        assert_eq!(serde_json::to_string(&back).unwrap(), old);
        back.check().unwrap();
        let f1 = f0.with_time_functions(4).unwrap();
        let text = serde_json::to_string(&f1).unwrap();
        assert!(text.contains("time_nu") && text.contains("time_phase"));
        let back: Features = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f1);
        let mut bad = f1.clone();
        bad.time_phase.pop();
        assert!(bad.check().unwrap_err().contains("time_phase"));
        bad.time_phase.push(f64::NAN);
        assert!(bad.check().unwrap_err().contains("time_nu"));
    }

    #[test]
    fn bad_specs_are_refused_by_name() {
        let mut s = spec(TimeBasis::Hat { knots: vec![1.0, 0.5] }, 1, 2);
        assert!(Features::new(s.clone()).unwrap_err().contains("knots"));
        s.time = TimeBasis::Cosine;
        s.scale = 0.0;
        assert!(Features::new(s).unwrap_err().contains("scale"));
    }
}
