//! `advreact._core`: the compiled half of the Python package (PyO3, abi3). A thin binding of the
//! public library API (`advreact::prelude`): every function here converts numpy arrays into
//! [`Cloud`]s, calls one library function, and converts the result back. The numerical code is
//! the engine's; nothing is recomputed here. The Python half (`advreact/__init__.py`) checks
//! shapes and dtypes and gives the public signatures and docstrings.
//!
//! **GIL and Ctrl-C.** Each computing call runs the library function on a worker thread and
//! releases the GIL while it waits (`watched`); every 50 ms the calling thread takes the GIL back
//! for [`Python::check_signals`]. A pending `KeyboardInterrupt` (Ctrl-C) then:
//! - for `simulate`: sets the run's stop flag (`RunOptions::interrupt`, the same flag the CLI's
//!   Ctrl-C handler sets), waits for the run to stop after its current step and complete its
//!   folder (stop reason `interrupted`), then raises `KeyboardInterrupt`;
//! - for the solvers, which have no stop flag: raises `KeyboardInterrupt` at once; the worker
//!   finishes its computation in the background and its result is dropped.
//!
//! **Copies.** The Python half converts an input only when it is not already a C-contiguous
//! float64 array (`np.ascontiguousarray` is a no-op otherwise). The engine then takes one owned
//! copy of the points and weights (O(n d); 3.2 ms for two 10⁴ × 10 clouds, in the measured
//! 0.2 % overhead of `results/performance.md`). The copy is deliberate: the worker owns its data,
//! so Ctrl-C can return at once while a solver without a stop flag finishes in the background
//! (a borrowed numpy buffer would have to outlive the call, so Ctrl-C would wait for the solve),
//! and a `UotResult`'s later `plan()` / `barycentric_map()` use the points it was solved on even
//! if the caller changes the arrays afterwards.
//!
//! **Errors.** The engine's one-line message, as `ValueError` for bad input (configuration,
//! data, invalid shapes or parameters), `FloatingPointError` for a non-finite value met by a
//! solver, `RuntimeError` for other numerical failures and limits, `OSError` for files.

use advreact::error::{Error, SimError};
use advreact::ot::divergence::{sinkhorn_divergence, DivergenceOptions};
use advreact::prelude::*;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyFloatingPointError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The Python exception of an engine error, carrying its one-line message.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Config(_) | Error::Data(_) | Error::Sim(SimError::Invalid(_)) => PyValueError::new_err(msg),
        Error::Sim(SimError::NonFinite { .. }) => PyFloatingPointError::new_err(msg),
        Error::Sim(_) => PyRuntimeError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(msg),
    }
}

/// Run `f` on a worker thread (in a rayon pool of `threads` threads when given) while the GIL is
/// released; poll for Python signals every 50 ms. On a pending signal (Ctrl-C): set `stop` if
/// given and wait for `f` to return (a run stops after its current step), then raise the signal's
/// exception; without `stop`, raise at once and leave the worker to finish unobserved.
fn watched<T: Send + 'static>(
    py: Python<'_>,
    threads: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> PyResult<T> {
    let pool = match threads {
        Some(0) => return Err(PyValueError::new_err("threads: must be ≥ 1, got 0")),
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| PyRuntimeError::new_err(format!("threads: {e}")))?,
        ),
        None => None,
    };
    let (tx, rx) = mpsc::channel();
    // `detach` needs a `Sync` capture; the receiver is used by this thread only.
    let rx = Mutex::new(rx);
    let recv = |timeout: Option<Duration>| {
        let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
        match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        }
    };
    std::thread::Builder::new()
        .name("advreact-worker".into())
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(move || match &pool {
                Some(p) => p.install(f),
                None => f(),
            });
            let r = std::panic::catch_unwind(run).map_err(|p| {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                format!("advreact: internal error (panic): {what}")
            });
            let _ = tx.send(r);
        })
        .map_err(|e| PyRuntimeError::new_err(format!("advreact: cannot start a worker thread: {e}")))?;
    let finish = |r: Result<Result<T, Error>, String>| -> PyResult<T> {
        match r {
            Ok(v) => v.map_err(py_err),
            Err(msg) => Err(PyRuntimeError::new_err(msg)),
        }
    };
    loop {
        match py.detach(|| recv(Some(Duration::from_millis(50)))) {
            Ok(r) => return finish(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PyRuntimeError::new_err("advreact: the worker thread ended without a result"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(signal) = py.check_signals() {
                    if let Some(flag) = &stop {
                        flag.store(true, Ordering::SeqCst);
                        // The run stops after its step and completes its folder; an error of the
                        // run itself wins over the interrupt.
                        if let Ok(r) = py.detach(|| recv(None)) {
                            finish(r)?;
                        }
                    }
                    return Err(signal);
                }
            }
        }
    }
}

/// A cloud from `(n, d)` C-contiguous float64 points and optional `(n,)` weights (`None`: unit
/// weights, as a CSV without a `w` column), scaled to mass 1 when `normalize`.
fn cloud(
    what: &str,
    x: &PyReadonlyArray2<'_, f64>,
    w: Option<&PyReadonlyArray1<'_, f64>>,
    normalize: bool,
) -> PyResult<Cloud> {
    let shape = x.shape();
    let (n, d) = (shape[0], shape[1]);
    let xs = x
        .as_slice()
        .map_err(|_| PyValueError::new_err(format!("{what}: points must be a C-contiguous float64 array")))?;
    let ws = match w {
        Some(w) => w
            .as_slice()
            .map_err(|_| {
                PyValueError::new_err(format!("{what}: weights must be a contiguous float64 array"))
            })?
            .to_vec(),
        None => vec![1.0; n],
    };
    if ws.len() != n {
        return Err(PyValueError::new_err(format!("{what}: {n} points but {} weights", ws.len())));
    }
    if n == 0 {
        return Err(PyValueError::new_err(format!("{what}: no points (an empty array)")));
    }
    let c = Cloud::new(d, xs.to_vec(), ws)
        .map_err(|e| PyValueError::new_err(format!("{what}: {}", Error::from(e))))?;
    Ok(if normalize { c.with_mass(1.0) } else { c })
}

/// `(value, bandwidth, seconds)`: `MMD²` between the clouds `(x, a)` and `(y, b)` with the Gaussian kernel
/// of bandwidth `s` (default: the median distance within `y`, as `advreact compare`), and the
/// seconds spent in the library call on the worker (the binding's overhead is the caller's wall
/// time minus these).
#[pyfunction]
#[pyo3(signature = (x, y, a=None, b=None, bandwidth=None, normalize=false, threads=None))]
#[allow(clippy::too_many_arguments)]
fn mmd2(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
    a: Option<PyReadonlyArray1<'_, f64>>,
    b: Option<PyReadonlyArray1<'_, f64>>,
    bandwidth: Option<f64>,
    normalize: bool,
    threads: Option<usize>,
) -> PyResult<(f64, f64, f64)> {
    let ca = cloud("x", &x, a.as_ref(), normalize)?;
    let cb = cloud("y", &y, b.as_ref(), normalize)?;
    watched(py, threads, None, move || {
        let t0 = Instant::now();
        let s = bandwidth.unwrap_or_else(|| advreact::scenario::median_distance(&cb));
        let t = mmd_between(&ca, &cb, s)?;
        let seconds = t0.elapsed().as_secs_f64();
        if !t.mmd2.is_finite() {
            return Err(SimError::NonFinite {
                step: 0, quantity: "MMD²".into(), particle: 0, value: t.mmd2
            }
            .into());
        }
        Ok((t.mmd2, s, seconds))
    })
}

/// The solved problem: both clouds and the solution (potentials, report, marginals).
struct Solved {
    a: Cloud,
    b: Cloud,
    sol: UotSolution,
    /// Seconds spent in `uot_clouds` on the worker (options built, clouds solved).
    seconds: f64,
}

/// The result of `uot`: potentials, marginals, report, and the plan online from the potentials.
#[pyclass(frozen, module = "advreact._core")]
struct UotResult {
    inner: Arc<Solved>,
}

#[pymethods]
impl UotResult {
    /// The CLI's `report.json` text (`advreact::ot::export::report_json`).
    #[getter]
    fn report_json(&self) -> String {
        advreact::ot::export::report_json(&self.inner.sol.report)
    }
    /// Seconds spent in the library's solve (`uot_clouds`) on the worker thread: the call's wall
    /// time minus these is the binding's overhead (conversion, thread hand-off, result objects).
    #[getter]
    fn seconds(&self) -> f64 {
        self.inner.seconds
    }
    /// Source potential `f` (n,).
    #[getter]
    fn f<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.sol.potentials.f.clone().into_pyarray(py)
    }
    /// Target potential `g` (m,).
    #[getter]
    fn g<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.sol.potentials.g.clone().into_pyarray(py)
    }
    /// `Σ_j π_ij` (n,).
    #[getter]
    fn row_mass<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.sol.row_mass.clone().into_pyarray(py)
    }
    /// `Σ_i π_ij` (m,).
    #[getter]
    fn col_mass<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.sol.col_mass.clone().into_pyarray(py)
    }
    /// Source weights used (n,), after `normalize`.
    #[getter]
    fn a<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.a.w.clone().into_pyarray(py)
    }
    /// Target weights used (m,), after `normalize`.
    #[getter]
    fn b<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.b.w.clone().into_pyarray(py)
    }
    /// Plan entries `(i, j, v)`: the `top_k` largest of each row, or all `≥ threshold` (at most
    /// `max_entries`), or, with neither, every entry in row-major order (`n·m ≤ max_entries`).
    #[pyo3(signature = (top_k=None, threshold=None, max_entries=10_000_000))]
    #[allow(clippy::type_complexity)]
    fn plan<'py>(
        &self,
        py: Python<'py>,
        top_k: Option<usize>,
        threshold: Option<f64>,
        max_entries: usize,
    ) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f64>>)> {
        let s = self.inner.clone();
        let entries = watched(py, None, None, move || {
            let c = s.sol.coupling(&s.a, &s.b)?;
            Ok(match (threshold, top_k) {
                (Some(t), _) => c.above(t, max_entries)?,
                (None, Some(k)) => c.top_k(k)?,
                (None, None) => {
                    let m = s.b.len();
                    let dense = c.dense(max_entries)?;
                    let entry = |(k, &value): (usize, &f64)| PlanEntry { i: k / m, j: k % m, value };
                    dense.iter().enumerate().map(entry).collect()
                }
            })
        })?;
        let i: Vec<i64> = entries.iter().map(|e| e.i as i64).collect();
        let j: Vec<i64> = entries.iter().map(|e| e.j as i64).collect();
        let v: Vec<f64> = entries.iter().map(|e| e.value).collect();
        Ok((i.into_pyarray(py), j.into_pyarray(py), v.into_pyarray(py)))
    }
    /// `T(x_i) = Σ_j π_ij y_j / Σ_j π_ij` as an (n, d) array.
    fn barycentric_map<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let s = self.inner.clone();
        let (n, d) = (s.a.len(), s.a.dim);
        let t = watched(py, None, None, move || Ok(s.sol.coupling(&s.a, &s.b)?.barycentric_map()?))?;
        t.into_pyarray(py).reshape([n, d])
    }
}

/// Entropic unbalanced OT between `(x, a)` and `(y, b)` (`advreact::ot::uot_clouds`).
#[pyfunction]
#[pyo3(signature = (x, y, a, b, eps, tau_a, tau_b, penalty, cost, tol, max_iter, normalize, eps_scaling, threads))]
#[allow(clippy::too_many_arguments)]
fn uot(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
    a: Option<PyReadonlyArray1<'_, f64>>,
    b: Option<PyReadonlyArray1<'_, f64>>,
    eps: f64,
    tau_a: f64,
    tau_b: f64,
    penalty: &str,
    cost: &str,
    tol: f64,
    max_iter: usize,
    normalize: bool,
    eps_scaling: bool,
    threads: Option<usize>,
) -> PyResult<UotResult> {
    let cost = match cost {
        "sqeuclidean" => Cost::SqEuclidean,
        "half_sqeuclidean" => Cost::HalfSqEuclidean,
        c => {
            return Err(PyValueError::new_err(format!(
                "cost: expected \"sqeuclidean\" or \"half_sqeuclidean\", got {c:?}"
            )))
        }
    };
    for (k, t) in [("tau_a", tau_a), ("tau_b", tau_b)] {
        if t.is_nan() || t <= 0.0 {
            return Err(PyValueError::new_err(format!("{k}: must be > 0 (or inf), got {t}")));
        }
    }
    let (ma, mb) = match penalty {
        "kl" => (Marginal::kl(tau_a), Marginal::kl(tau_b)),
        "tv" => (Marginal::tv(tau_a), Marginal::tv(tau_b)),
        p => return Err(PyValueError::new_err(format!("penalty: expected \"kl\" or \"tv\", got {p:?}"))),
    };
    let ca = cloud("x", &x, a.as_ref(), normalize)?;
    let cb = cloud("y", &y, b.as_ref(), normalize)?;
    let solved = watched(py, threads, None, move || {
        // The options as the CLI's `uot` builds them (src/main.rs: uot_inputs); built on the
        // worker (they hold the executor, which stays on its thread).
        let t0 = Instant::now();
        let mut opts = SinkhornOptions::kl(eps, tau_a, tau_b, cost);
        opts.marginal_a = ma;
        opts.marginal_b = mb;
        opts.tol = tol;
        opts.max_iter = max_iter;
        opts.eps_scaling = eps_scaling.then(advreact::ot::EpsScaling::default);
        let sol = uot_clouds(&ca, &cb, &opts)?;
        Ok(Solved { a: ca, b: cb, sol, seconds: t0.elapsed().as_secs_f64() })
    })?;
    Ok(UotResult { inner: Arc::new(solved) })
}

/// `(S, ∂S/∂x, ∂S/∂a)`: the debiased Sinkhorn divergence with GeomLoss's `p = 2` conventions
/// (cost `½|x − y|²`, `ε = blur²`, reach `ρ = reach²`, `None`: balanced).
#[pyfunction]
#[pyo3(signature = (x, y, a, b, blur, reach, tol, max_iter, threads))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn sinkhorn_divergence_py<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
    a: Option<PyReadonlyArray1<'_, f64>>,
    b: Option<PyReadonlyArray1<'_, f64>>,
    blur: f64,
    reach: Option<f64>,
    tol: f64,
    max_iter: usize,
    threads: Option<usize>,
) -> PyResult<(f64, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>)> {
    if !(blur.is_finite() && blur > 0.0) {
        return Err(PyValueError::new_err(format!("blur: must be finite and > 0, got {blur}")));
    }
    let ca = cloud("x", &x, a.as_ref(), false)?;
    let cb = cloud("y", &y, b.as_ref(), false)?;
    let (n, d) = (ca.len(), ca.dim);
    let (value, phi, grad) = watched(py, threads, None, move || {
        let opts = DivergenceOptions {
            eps: blur * blur,
            rho: reach.map(|r| r * r),
            tol,
            max_iter,
            ..DivergenceOptions::default()
        };
        let s = sinkhorn_divergence(&ca, &cb, &opts, None)?;
        let (phi, mut grad) = s.first_variation(&ca.x, &ca, &cb, &opts)?;
        // ∂S/∂x_i = a_i ∇φ(x_i), ∂S/∂a_i = φ(x_i) (advreact::ot::divergence).
        for (gi, ai) in grad.chunks_exact_mut(d).zip(&ca.w) {
            gi.iter_mut().for_each(|v| *v *= ai);
        }
        Ok((s.value, phi, grad))
    })?;
    Ok((value, grad.into_pyarray(py).reshape([n, d])?, phi.into_pyarray(py)))
}

/// The TOML text of a scenario given as JSON (a Python dict, `json.dumps`).
#[pyfunction]
fn scenario_json_to_toml(json: &str) -> PyResult<String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| PyValueError::new_err(format!("scenario dict: {e}")))?;
    toml::to_string(&v)
        .map_err(|e| PyValueError::new_err(format!("scenario dict: not TOML-representable: {e}")))
}

/// Run one scenario into the folder `out` through `advreact::run::run_scenario` (the CLI's
/// `advreact run`): `text` is its TOML (or `None` to read `path`); returns the folder and the
/// `summary.json` text.
#[pyfunction]
#[pyo3(signature = (path, text, out, seed=None, steps=None, threads=None, force=false))]
#[allow(clippy::too_many_arguments)]
fn simulate(
    py: Python<'_>,
    path: PathBuf,
    text: Option<String>,
    out: PathBuf,
    seed: Option<u64>,
    steps: Option<usize>,
    threads: Option<usize>,
    force: bool,
) -> PyResult<(PathBuf, String)> {
    let ov = Overrides { seed, steps, ..Overrides::default() };
    let scs = match &text {
        Some(t) => load_scenario_str(t, &path, &ov),
        None => load_scenario(&path, &ov),
    }
    .map_err(py_err)?;
    if scs.len() != 1 || scs[0].label.is_some() {
        return Err(PyValueError::new_err(format!(
            "{}: [[variants]]: simulate runs one scenario; run a sweep with `advreact run`",
            path.display()
        )));
    }
    let sc = scs.into_iter().next().expect("one scenario");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let r = watched(py, threads, Some(stop), move || {
        let opts = RunOptions {
            out: Some(out),
            force,
            progress: false,
            interrupt: Some(flag),
            ..Default::default()
        };
        run_scenario(&sc, &opts)
    })?;
    let summary = serde_json::to_string(&r.summary).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((r.dir, summary))
}

/// `advreact fit` as a parser of its own (the library's [`FitArgs`](advreact::learned::commands::FitArgs)).
#[derive(clap::Parser)]
#[command(name = "advreact fit", no_binary_name = true)]
struct FitCli {
    #[command(flatten)]
    args: advreact::learned::commands::FitArgs,
}

/// `advreact field` as a parser of its own.
#[derive(clap::Parser)]
#[command(name = "advreact field", no_binary_name = true)]
struct FieldCli {
    #[command(flatten)]
    args: advreact::learned::commands::FieldArgs,
}

/// The first line of a command-line parse error (`error: …`), as a `ValueError`.
fn parse_err(e: clap::Error) -> PyErr {
    let text = e.to_string();
    PyValueError::new_err(
        text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string(),
    )
}

/// `advreact fit ARGV…` through the library's `cmd_fit`; returns the output folder and whether
/// the fit ended well (the command's exit status).
#[pyfunction]
fn fit(py: Python<'_>, argv: Vec<String>) -> PyResult<(PathBuf, bool)> {
    use clap::Parser;
    let a = FitCli::try_parse_from(argv).map_err(parse_err)?.args;
    let out = advreact::learned::commands::fit_out(&a);
    let ok = watched(py, a.threads, None, move || {
        advreact::learned::commands::cmd_fit(&a, &advreact::dist::Exec::default())
    })?;
    Ok((out, ok))
}

/// `advreact field ARGV…` through the library's `cmd_field` (its `--out` CSV is read by the
/// Python side).
#[pyfunction]
fn field(py: Python<'_>, argv: Vec<String>) -> PyResult<bool> {
    use clap::Parser;
    let a = FieldCli::try_parse_from(argv).map_err(parse_err)?.args;
    watched(py, None, None, move || advreact::learned::commands::cmd_field(&a))
}

/// `advreact infer` as a parser of its own (the library's [`InferArgs`](advreact::infer::commands::InferArgs)).
#[derive(clap::Parser)]
#[command(name = "advreact infer", no_binary_name = true)]
struct InferCli {
    #[command(flatten)]
    args: advreact::infer::commands::InferArgs,
}

/// `advreact forward` as a parser of its own.
#[derive(clap::Parser)]
#[command(name = "advreact forward", no_binary_name = true)]
struct ForwardCli {
    #[command(flatten)]
    args: advreact::infer::commands::ForwardArgs,
}

/// `advreact map` as a parser of its own (the library's [`MapArgs`](advreact::maps::command::MapArgs)).
#[derive(clap::Parser)]
#[command(name = "advreact map", no_binary_name = true)]
struct MapCli {
    #[command(flatten)]
    args: advreact::maps::command::MapArgs,
}

/// `advreact infer ARGV…` through the library's `cmd_infer`; returns the output folder and
/// whether it ended well (`false`: `--strict` with warnings).
#[pyfunction]
fn infer(py: Python<'_>, argv: Vec<String>) -> PyResult<(PathBuf, bool)> {
    use clap::Parser;
    let a = InferCli::try_parse_from(argv).map_err(parse_err)?.args;
    let out = advreact::infer::commands::infer_out(&a);
    let ok = watched(py, a.common.threads, None, move || {
        advreact::infer::commands::cmd_infer(&a, &advreact::dist::Exec::default())
    })?;
    Ok((out, ok))
}

/// `advreact forward ARGV…` (`--method` or `--model`) through the library's `cmd_forward`;
/// returns the output folder and whether it ended well.
#[pyfunction]
fn forward(py: Python<'_>, argv: Vec<String>) -> PyResult<(PathBuf, bool)> {
    use advreact::infer::commands::{cmd_forward, forward_model_args, forward_out};
    use clap::Parser;
    let a = ForwardCli::try_parse_from(argv).map_err(parse_err)?.args;
    let out = if a.model.is_some() { forward_model_args(&a).out } else { forward_out(&a) };
    let ok = watched(py, a.common.threads, None, move || cmd_forward(&a, &advreact::dist::Exec::default()))?;
    Ok((out, ok))
}

/// `advreact map ARGV…` (a fit into a folder, or `--apply` into a CSV file) through the
/// library's `cmd_map_args`.
#[pyfunction]
fn map(py: Python<'_>, argv: Vec<String>) -> PyResult<bool> {
    use clap::Parser;
    let a = MapCli::try_parse_from(argv).map_err(parse_err)?.args;
    watched(py, a.threads, None, move || {
        advreact::maps::command::cmd_map_args(&a, &advreact::dist::Exec::default())
    })
}

/// The compiled module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<UotResult>()?;
    m.add_function(wrap_pyfunction!(mmd2, m)?)?;
    m.add_function(wrap_pyfunction!(uot, m)?)?;
    m.add_function(wrap_pyfunction!(sinkhorn_divergence_py, m)?)?;
    m.add_function(wrap_pyfunction!(scenario_json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(field, m)?)?;
    m.add_function(wrap_pyfunction!(infer, m)?)?;
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(map, m)?)?;
    m.add("__engine_version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
