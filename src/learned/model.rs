//! Fitted models of learned dynamics and their versioned file (SPEC §6).
//!
//! Two kinds of model, both linear in a feature map [`Features`] with `p` basis functions `f_i`:
//! - [`FlowModel`] (UOT flow matching): `u_k(x, t) = Σ_i V_{ik} f_i(x, t)` and
//!   `g(x, t) = Σ_i η_i f_i(x, t)`, fitted by ridge regression;
//! - [`Potential`] (Var-RUOT): one scalar `λ(x, t) = Σ_i θ_i f_i(x, t)`, with `u = ∇λ` and
//!   `α ψ'(g) = λ` ([`Psi`]).
//!
//! A [`ModelFile`] stores the model with its features *by value* (frequencies and phases, plus the
//! seed that drew them), the fit settings and the data's provenance, under a format number that
//! is checked on reading.

use super::features::{Features, Jet, Point};
use super::psi::Psi;
use serde::{Deserialize, Serialize};

/// The model file format this build writes and reads.
pub const MODEL_FORMAT: u32 = 1;

/// The `kind` string of a model file.
pub const MODEL_KIND: &str = "advreact-learned-model";

/// UOT flow matching: velocity and growth each linear in the features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowModel {
    /// The feature map.
    pub features: Features,
    /// Velocity coefficients `V` (p×d row-major: `velocity[i·d + k]`).
    pub velocity: Vec<f64>,
    /// Growth coefficients `η` (p).
    pub growth: Vec<f64>,
}

/// Var-RUOT: one potential `λ` with `u = ∇λ` and `αψ'(g) = λ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Potential {
    /// The feature map.
    pub features: Features,
    /// Coefficients `θ` (p).
    pub theta: Vec<f64>,
    /// The growth penalty.
    pub psi: Psi,
    /// Its weight `α > 0`.
    pub alpha: f64,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Model {
    /// UOT flow matching.
    UotFm(FlowModel),
    /// Var-RUOT.
    VarRuot(Potential),
}

/// Where a model's training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// The data file as given.
    pub path: String,
    /// Its sha256 (hex).
    pub sha256: String,
    /// The snapshot times used for training.
    pub times: Vec<f64>,
    /// Snapshot times held out of the fit.
    pub held_out: Vec<f64>,
    /// Cells per training time.
    pub cells: Vec<usize>,
}

/// The file: format, model, fit settings (free-form, as the fit recorded them) and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always [`MODEL_KIND`].
    pub kind: String,
    /// [`MODEL_FORMAT`].
    pub format: u32,
    /// The engine version that wrote it.
    pub engine: String,
    /// The model.
    pub model: Model,
    /// The fit's settings.
    pub settings: serde_json::Value,
    /// The training data.
    pub data: Provenance,
}

/// What a model gives at one point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldValue {
    /// Velocity `u` (d).
    pub u: Vec<f64>,
    /// Growth rate `g`.
    pub g: f64,
    /// The potential `λ` (Var-RUOT only).
    pub lambda: Option<f64>,
}

/// Reusable per-thread workspace of [`Model::eval`].
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    point: Point,
    jet: Jet,
    phi: Vec<f64>,
}

impl Workspace {
    /// The jet of the last [`Model::eval`] of a Var-RUOT model at its point.
    pub fn jet(&self) -> &Jet {
        &self.jet
    }
}

impl Model {
    /// The feature map.
    pub fn features(&self) -> &Features {
        match self {
            Model::UotFm(m) => &m.features,
            Model::VarRuot(m) => &m.features,
        }
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.features().dim()
    }

    /// `"uot_fm"` or `"var_ruot"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::UotFm(_) => "uot_fm",
            Model::VarRuot(_) => "var_ruot",
        }
    }

    /// Check a model read from a file: features, coefficient lengths, finiteness.
    pub fn check(&self) -> Result<(), String> {
        let f = self.features();
        f.check()?;
        let (p, d) = (f.len(), f.dim());
        let finite = |name: &str, v: &[f64], n: usize| {
            if v.len() != n {
                Err(format!("model: {name} must hold {n} numbers, has {}", v.len()))
            } else if v.iter().any(|x| !x.is_finite()) {
                Err(format!("model: {name} holds a non-finite number"))
            } else {
                Ok(())
            }
        };
        match self {
            Model::UotFm(m) => {
                finite("velocity", &m.velocity, p * d)?;
                finite("growth", &m.growth, p)
            }
            Model::VarRuot(m) => {
                finite("theta", &m.theta, p)?;
                m.psi.check()?;
                if m.alpha.is_finite() && m.alpha > 0.0 {
                    Ok(())
                } else {
                    Err(format!("model: alpha must be finite and > 0, got {}", m.alpha))
                }
            }
        }
    }

    /// A workspace sized for this model.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            point: self.features().point(),
            jet: Jet::default(),
            phi: vec![0.0; self.features().len()],
        }
    }

    /// Velocity, growth (and `λ`) at `(x, t)`: writes `u` (length d) and returns `(g, λ)`.
    pub fn eval(&self, x: &[f64], t: f64, ws: &mut Workspace, u: &mut [f64]) -> (f64, Option<f64>) {
        let f = self.features();
        f.load(x, t, &mut ws.point);
        match self {
            Model::UotFm(m) => {
                let d = f.dim();
                f.values(&ws.point, &mut ws.phi);
                u.iter_mut().for_each(|v| *v = 0.0);
                let mut g = 0.0;
                for (i, &phi) in ws.phi.iter().enumerate() {
                    for (uk, vk) in u.iter_mut().zip(&m.velocity[i * d..(i + 1) * d]) {
                        *uk += phi * vk;
                    }
                    g += phi * m.growth[i];
                }
                (g, None)
            }
            Model::VarRuot(m) => {
                f.jet(&m.theta, &mut ws.point, &mut ws.jet);
                u.copy_from_slice(&ws.jet.grad);
                let (g, _) = m.psi.growth(ws.jet.value, m.alpha);
                (g, Some(ws.jet.value))
            }
        }
    }
}

impl ModelFile {
    /// Wrap a model with its settings and provenance.
    pub fn new(model: Model, settings: serde_json::Value, data: Provenance) -> Self {
        Self {
            kind: MODEL_KIND.into(),
            format: MODEL_FORMAT,
            engine: env!("CARGO_PKG_VERSION").into(),
            model,
            settings,
            data,
        }
    }

    /// Read and check a model file; the error names the file and the reason.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let name = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
        Self::parse(&text).map_err(|e| format!("{name}: {e}"))
    }

    /// Parse and check the JSON text of a model file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("kind").and_then(|k| k.as_str()) != Some(MODEL_KIND) {
            return Err(format!("not an advreact model (kind must be \"{MODEL_KIND}\")"));
        }
        match v.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f == MODEL_FORMAT as u64 => {}
            Some(f) => {
                return Err(format!("model format {f} is not supported (this build reads {MODEL_FORMAT})"))
            }
            None => return Err("model: key `format` is missing".into()),
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: Self =
            serde_path_to_error::deserialize(de).map_err(|e| format!("key `{}`: {}", e.path(), e.inner()))?;
        file.model.check()?;
        Ok(file)
    }

    /// The JSON text (pretty, floats printed so they read back to the same bits).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::super::features::{FeatureSpec, TimeBasis};
    use super::*;

    fn features() -> Features {
        Features::new(FeatureSpec {
            dim: 2,
            random: 16,
            ell_x: 0.7,
            ell_t: 1.5,
            poly: 2,
            time: TimeBasis::Hat { knots: vec![0.0, 1.0, 2.0] },
            seed: 3,
            centre: vec![0.1, -0.2],
            scale: 1.3,
            t_centre: 1.0,
            t_scale: 1.0,
        })
        .unwrap()
    }

    #[test]
    fn a_model_file_reads_back_to_the_same_bits_and_bad_files_are_named() {
        let f = features();
        let p = f.len();
        let theta: Vec<f64> = (0..p).map(|i| (i as f64 * 0.731).sin() / 3.0).collect();
        let model = Model::VarRuot(Potential { features: f, theta, psi: Psi::Quadratic, alpha: 1.0 / 3.0 });
        let file = ModelFile::new(model, serde_json::json!({"sigma": 0.1}), Provenance::default());
        let back = ModelFile::parse(&file.to_json()).unwrap();
        assert_eq!(back, file);
        let mut ws = back.model.workspace();
        let mut u = [0.0; 2];
        let (g, l) = back.model.eval(&[0.3, 0.4], 0.5, &mut ws, &mut u);
        assert!((g - l.unwrap() * 3.0).abs() <= 1e-14 * g.abs().max(1.0));
        let bad = file.to_json().replace("\"format\": 1", "\"format\": 9");
        assert!(ModelFile::parse(&bad).unwrap_err().contains("format 9"));
        let mut short = file.clone();
        if let Model::VarRuot(m) = &mut short.model {
            m.theta.pop();
        }
        assert!(ModelFile::parse(&short.to_json()).unwrap_err().contains("theta"));
    }
}
