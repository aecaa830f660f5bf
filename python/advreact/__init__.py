"""advreact: advection–reaction particle dynamics and unbalanced optimal transport from Python.

A thin binding of the Rust engine's public library API (``advreact::prelude``): numpy float64
arrays in and out, the engine's numerics unchanged (the same bits as the ``advreact`` command
line on the same inputs).

Arrays
    Points are ``(n, d)`` arrays, weights ``(n,)`` arrays. Inputs that are already C-contiguous
    float64 are passed without a copy to the binding (which then copies them once into the
    engine's own cloud); anything else is converted with ``np.ascontiguousarray(x, np.float64)``.
    Weights ``None`` mean unit weights (``w = 1`` per point, as a CSV without a ``w`` column);
    ``normalize=True`` scales each side to mass 1.

GIL and Ctrl-C
    Each call releases the GIL while the engine computes (other Python threads run). Ctrl-C
    raises ``KeyboardInterrupt``: ``simulate`` stops its run after the current step through the
    engine's stop flag (the CLI's Ctrl-C path; the folder is completed with stop reason
    ``interrupted``), the solvers return at once and let their worker finish in the background.

Errors
    The engine's one-line message as ``ValueError`` (bad input: shapes, NaN, empty arrays,
    parameters, scenario keys), ``FloatingPointError`` (a non-finite value in a solve),
    ``RuntimeError`` (other numerical failures), ``OSError`` (files); ``TypeError`` for arrays
    that are not real numbers.

Commands: :func:`infer`, :func:`forward` (``method=`` or ``model=``), :func:`fit`, :func:`field`,
:func:`map` and :func:`apply_map` call the library's ``infer``, ``forward``, ``fit``, ``field``
and ``map`` commands (the same folders and files as the command line, read back as dicts and
arrays; a temporary folder when ``out=None``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import _core
from ._anndata import Snapshots, from_anndata, write_uot_to_anndata

__all__ = [
    "mmd2",
    "uot",
    "UotResult",
    "sinkhorn_divergence",
    "simulate",
    "Run",
    "Snapshots",
    "from_anndata",
    "write_uot_to_anndata",
    "fit",
    "field",
    "forward",
    "infer",
    "map",
    "apply_map",
]

__version__ = "0.1.0"


def _points(x: Any, name: str) -> np.ndarray:
    """``x`` as a C-contiguous float64 ``(n, d)`` array (a copy only if it is not one already)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of points (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: no points (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _weights(w: Any, n: int, name: str) -> Optional[np.ndarray]:
    """``w`` as a contiguous float64 ``(n,)`` array, or ``None`` (unit weights)."""
    if w is None:
        return None
    arr = np.asarray(w)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} weights (shape ({n},)), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _pair(x, y, a, b):
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: points of dimension {y.shape[1]}, x has dimension {x.shape[1]}")
    return x, y, _weights(a, x.shape[0], "a"), _weights(b, y.shape[0], "b")


def mmd2(
    x,
    y,
    a=None,
    b=None,
    bandwidth: Optional[float] = None,
    *,
    normalize: bool = False,
    threads: Optional[int] = None,
) -> float:
    """Squared maximum mean discrepancy between two weighted clouds.

    ``MMD² = Σ a_i a_i' k(x_i, x_i') + Σ b_j b_j' k(y_j, y_j') − 2 Σ a_i b_j k(x_i, y_j)`` with
    ``k(x, y) = exp(−|x − y|² / (2 s²))`` (the biased V-statistic, unnormalised measures).

    Parameters
    ----------
    x : array_like, shape (n, d)
        Source points.
    y : array_like, shape (m, d)
        Target points.
    a, b : array_like, shape (n,) and (m,), optional
        Weights (default: 1 per point).
    bandwidth : float, optional
        Kernel bandwidth ``s`` (default: the median distance within ``y``, as ``advreact compare``).
    normalize : bool
        Scale both clouds to mass 1 first (``--normalize``).
    threads : int, optional
        Worker threads (default: all cores). Results do not depend on it.

    Returns
    -------
    float
        ``MMD²`` (may be slightly negative from rounding; ``max(·, 0) ** 0.5`` is the MMD).
    """
    x, y, a, b = _pair(x, y, a, b)
    value, _, _ = _core.mmd2(x, y, a, b, bandwidth, normalize, threads)
    return value


class UotResult:
    """The solution of :func:`uot`: dual potentials, plan marginals, report and plan.

    Attributes
    ----------
    report : dict
        The command line's ``report.json`` (iterations, ``converged``, marginal errors, objective
        terms, masses: ``mass_a``, ``transported_mass``, ``destroyed_mass_a``, ...).
    f, g : ndarray, shapes (n,) and (m,)
        Dual potentials.
    row_mass : ndarray, shape (n,)
        ``Σ_j π_ij``: the mass leaving source point ``i`` (``row_mass / a < 1``: partly destroyed).
    col_mass : ndarray, shape (m,)
        ``Σ_i π_ij``: the mass reaching target point ``j`` (``col_mass / b > 1``: created).
    a, b : ndarray
        The weights the problem was solved with (after ``normalize``).
    seconds : float
        Seconds the engine's solve took inside the call (on the worker thread).
    """

    def __init__(self, core):
        self._core = core
        self._report = None

    @property
    def report(self) -> Dict[str, Any]:
        if self._report is None:
            self._report = json.loads(self._core.report_json)
        return dict(self._report)

    @property
    def report_json(self) -> str:
        """The report as the CLI's ``report.json`` text (byte for byte)."""
        return self._core.report_json

    f = property(lambda self: self._core.f, doc="Source potential f, shape (n,).")
    g = property(lambda self: self._core.g, doc="Target potential g, shape (m,).")
    row_mass = property(lambda self: self._core.row_mass, doc="Σ_j π_ij, shape (n,).")
    col_mass = property(lambda self: self._core.col_mass, doc="Σ_i π_ij, shape (m,).")
    a = property(lambda self: self._core.a, doc="Source weights used, shape (n,).")
    b = property(lambda self: self._core.b, doc="Target weights used, shape (m,).")
    seconds = property(
        lambda self: self._core.seconds,
        doc="Seconds the engine's solve took inside the call (the call's wall time minus these is the binding's overhead).",
    )

    def plan(
        self,
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        *,
        max_entries: int = 10_000_000,
        sparse: Optional[bool] = None,
    ):
        """Entries of the plan ``π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)``, computed from the potentials.

        Parameters
        ----------
        top_k : int, optional
            The ``top_k`` largest entries of each row.
        threshold : float, optional
            Every entry ``≥ threshold`` (takes precedence over ``top_k``).
        max_entries : int
            Refuse (``ValueError``) a threshold or full export of more entries than this.
        sparse : bool, optional
            Return a ``scipy.sparse.coo_array`` (default: when scipy can be imported).

        Returns
        -------
        scipy.sparse.coo_array of shape (n, m), or tuple of ndarray ``(i, j, v)``
            With neither ``top_k`` nor ``threshold``: every entry (at most ``max_entries``).
        """
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k: must be an integer ≥ 1, got {top_k!r}")
        i, j, v = self._core.plan(top_k, threshold, max_entries)
        if sparse is None or sparse:
            try:
                from scipy.sparse import coo_array
            except ImportError:
                if sparse:
                    raise
                return i, j, v
            n, m = self.f.shape[0], self.g.shape[0]
            return coo_array((v, (i, j)), shape=(n, m))
        return i, j, v

    def barycentric_map(self) -> np.ndarray:
        """``T(x_i) = Σ_j π_ij y_j / Σ_j π_ij``, shape (n, d)."""
        return self._core.barycentric_map()

    def __repr__(self) -> str:
        r = self.report
        return (
            f"UotResult(n={r['n']}, m={r['m']}, converged={r['converged']}, "
            f"iterations={r['iterations']}, transported_mass={r['transported_mass']:.6g})"
        )


def uot(
    x,
    y,
    a=None,
    b=None,
    *,
    eps: float,
    tau_a: float = math.inf,
    tau_b: float = math.inf,
    penalty: str = "kl",
    cost: str = "sqeuclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    normalize: bool = False,
    eps_scaling: bool = False,
    threads: Optional[int] = None,
) -> UotResult:
    """Entropic unbalanced optimal transport (log-domain Sinkhorn, O(n + m) memory).

    Solves ``min_π ⟨C, π⟩ + ε KL(π | a⊗b) + D_a(π1 | a) + D_b(πᵀ1 | b)`` with
    ``D = τ KL`` (``penalty="kl"``) or ``τ TV`` (``"tv"``); ``τ = inf`` fixes that marginal.
    The same solve as ``advreact uot`` with the same options (the one default that differs is
    ``tol``: 1e-6 here, 1e-9 on the command line).

    Parameters
    ----------
    x : array_like, shape (n, d)
    y : array_like, shape (m, d)
    a, b : array_like, optional
        Weights (default: 1 per point).
    eps : float
        Entropic regularisation ε (cost units).
    tau_a, tau_b : float
        Marginal penalties (``inf``: exact marginal; both ``inf`` needs equal masses).
    penalty : {"kl", "tv"}
    cost : {"sqeuclidean", "half_sqeuclidean"}
        ``|x − y|²`` (POT's default) or ``½|x − y|²`` (GeomLoss ``p = 2``).
    tol : float
        Stop when both relative L1 marginal errors are below this. Default 1e-6 (POT's
        ``stopThr``); the CLI's ``advreact uot`` default is 1e-9, so pass ``tol=1e-9`` for its
        exact numbers.
    max_iter : int
    normalize : bool
        Scale both clouds to mass 1 first.
    eps_scaling : bool
        Anneal ε from the cost diameter down to ``eps``.
    threads : int, optional
        Worker threads (default: all cores). Results do not depend on it.

    Returns
    -------
    UotResult
    """
    x, y, a, b = _pair(x, y, a, b)
    core = _core.uot(
        x, y, a, b, float(eps), float(tau_a), float(tau_b), penalty, cost, float(tol),
        int(max_iter), bool(normalize), bool(eps_scaling), threads,
    )
    return UotResult(core)


def sinkhorn_divergence(
    x,
    y,
    a=None,
    b=None,
    *,
    blur: float,
    reach: Optional[float] = None,
    tol: float = 1e-9,
    max_iter: int = 10_000,
    threads: Optional[int] = None,
) -> Tuple[float, np.ndarray, np.ndarray]:
    """Debiased (unbalanced) Sinkhorn divergence and its gradient, GeomLoss's ``p = 2`` conventions.

    ``S(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β) + ε/2 (m(α) − m(β))²`` with cost
    ``½|x − y|²``, ``ε = blur²`` and KL marginal penalties of reach ``ρ = reach²``
    (``reach=None``: balanced, equal masses needed).

    Parameters
    ----------
    x, y : array_like, shapes (n, d) and (m, d)
    a, b : array_like, optional
        Weights (default: 1 per point).
    blur : float
    reach : float, optional
    tol, max_iter
        Stopping rule of each of the three solves.
    threads : int, optional

    Returns
    -------
    value : float
        ``S(α, β)``.
    grad_x : ndarray, shape (n, d)
        ``∂S/∂x_i = a_i ∇φ(x_i)``.
    grad_a : ndarray, shape (n,)
        ``∂S/∂a_i = φ(x_i)`` (the first variation).
    """
    x, y, a, b = _pair(x, y, a, b)
    return _core.sinkhorn_divergence_py(
        x, y, a, b, float(blur), None if reach is None else float(reach), float(tol), int(max_iter), threads
    )


def _read_csv(path: Path) -> Dict[str, np.ndarray]:
    """A CSV of the engine as ``{column: float64 array}`` (shortest round-trip text: exact); a
    column that is not all numbers (ids) as an array of strings."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}
    head, body = rows[0], rows[1:]
    cols = list(zip(*body)) if body else [() for _ in head]
    def column(c):
        try:
            return np.array([float(v) for v in c], dtype=np.float64)
        except ValueError:  # a column of names (ids)
            return np.array(c, dtype=str)

    return {h: column(c) for h, c in zip(head, cols)}


class Run:
    """A finished :func:`simulate` run, read from its output folder.

    Attributes
    ----------
    metrics : dict of str to ndarray
        ``metrics.csv``: ``step``, ``t`` and one array per metric over the reported steps.
    snapshots : dict of str to ndarray
        ``snapshots.csv``: ``step``, ``t``, ``id``, ``parent``, ``w`` and ``x`` (k, d), one row per
        particle and snapshot (a hashed subsample above ``report.snapshot_particles``).
    particles : dict of str to ndarray
        The rows of the last snapshot (the end of the run): ``x`` (k, d), ``w``, ``id``, ``parent``.
    summary : dict
        ``summary.json``: ``steps``, ``t``, ``stop_reason``, ``mass``, ``final_metrics``, ...
    dir : pathlib.Path or None
        The folder (``None`` when it was a temporary one, removed after reading).
    """

    def __init__(self, folder: Path, summary: Dict[str, Any], keep: bool):
        self.summary = summary
        self.metrics = _read_csv(folder / "metrics.csv")
        snap = _read_csv(folder / "snapshots.csv")
        xs = sorted((k for k in snap if k.startswith("x") and k[1:].isdigit()), key=lambda k: int(k[1:]))
        self.snapshots = {k: v for k, v in snap.items() if k not in xs}
        for k in ("step", "id", "parent"):
            if k in self.snapshots:
                self.snapshots[k] = self.snapshots[k].astype(np.int64)
        self.snapshots["x"] = np.stack([snap[k] for k in xs], axis=1) if xs else np.zeros((0, 0))
        if self.snapshots.get("step") is not None and len(self.snapshots["step"]):
            last = self.snapshots["step"] == self.snapshots["step"].max()
        else:
            last = np.zeros(0, dtype=bool)
        self.particles = {k: self.snapshots[k][last] for k in ("x", "w", "id", "parent") if k in self.snapshots}
        self.dir = folder if keep else None

    def __repr__(self) -> str:
        s = self.summary
        return f"Run(steps={s.get('steps')}, stop_reason={s.get('stop_reason')!r}, mass={s.get('mass')}, dir={self.dir})"


def simulate(
    scenario: Union[str, os.PathLike, Dict[str, Any]],
    *,
    seed: Optional[int] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
    out: Optional[Union[str, os.PathLike]] = None,
    force: bool = False,
) -> Run:
    """Run a scenario (as ``advreact run``) and return its metrics, snapshots and summary.

    Parameters
    ----------
    scenario : str, path or dict
        A scenario file path, a TOML string (recognised by a newline or ``=``), or a dict with the
        TOML tables (``{"meta": {...}, "source": {...}, ...}``). One scenario: ``[[variants]]``
        are refused (run those with ``advreact run``).
    seed : int, optional
        Override ``meta.seed``.
    steps : int, optional
        Override ``time.steps``.
    threads : int, optional
        Worker threads (default: all cores). Results do not depend on it.
    out : path, optional
        Write the command line's output folder there (the same files as ``advreact run --out``;
        replaced only if it is an earlier run's output, unless ``force``). Default: a temporary
        folder, read and removed.
    force : bool
        Replace an ``out`` folder holding foreign files (as ``--force``).

    Returns
    -------
    Run
    """
    if isinstance(scenario, dict):
        text = _core.scenario_json_to_toml(json.dumps(scenario))
        path = Path("<dict>.toml")
    elif isinstance(scenario, str) and ("\n" in scenario or "=" in scenario):
        text, path = scenario, Path("<string>.toml")
    elif isinstance(scenario, (str, os.PathLike)):
        text, path = None, Path(scenario)
    else:
        raise TypeError(f"scenario: expected a path, a TOML string or a dict, got {type(scenario).__name__}")
    tmp = None
    try:
        if out is None:
            tmp = Path(tempfile.mkdtemp(prefix="advreact-run-"))
            target = tmp / "run"
        else:
            target = Path(out)
        folder, summary = _core.simulate(path, text, target, seed, steps, threads, force)
        return Run(Path(folder), json.loads(summary), keep=out is not None)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _data_path(data, tmp: Path) -> Path:
    """A snapshot CSV path for ``data``: a path as is, :class:`Snapshots` written to ``tmp``."""
    if isinstance(data, Snapshots):
        p = tmp / "snapshots.csv"
        data.to_csv(p)
        return p
    if isinstance(data, (str, os.PathLike)):
        return Path(data)
    raise TypeError(f"data: expected a snapshot CSV path or Snapshots, got {type(data).__name__}")


def _argv(options: Dict[str, Any]) -> list:
    """Keyword options as command-line flags: ``ell_x=0.5`` → ``--ell-x 0.5``, ``True`` → the
    flag alone, a list → the flag repeated, ``None``/``False`` → nothing."""
    argv = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is None or v is False:
            continue
        if v is True:
            argv.append(flag)
        elif isinstance(v, (list, tuple)):
            for item in v:
                argv += [flag, repr(item) if isinstance(item, float) else str(item)]
        else:
            argv += [flag, repr(v) if isinstance(v, float) else str(v)]
    return argv


def fit(data, model: str, *, out=None, force: bool = False, threads: Optional[int] = None,
        **options) -> Dict[str, Any]:
    """Fit a learned dynamics ``(u, g)`` to snapshots, as ``advreact fit DATA --model MODEL``.

    Parameters
    ----------
    data : path or Snapshots
        The snapshot CSV (``time, x1..xd[, w]``), or :func:`from_anndata`'s result.
    model : {"uot_fm", "var_ruot"}
    out : path, optional
        The output folder (default: the command line's ``output/fit/<data>_<model>``).
    force : bool
        Replace an ``out`` folder holding foreign files.
    threads : int, optional
    **options
        The command's other options by name (``holdout=[2.0]``, ``features=80``, ``pairs=600``,
        ``subsample=60``, ``dt=0.05``, ``psi="power"``, ...; see ``advreact fit --help``).

    Returns
    -------
    dict
        ``dir`` (the folder), ``ok`` (the command's status), ``model`` (``model.json``) and
        ``fit`` (``fit.json``), parsed.
    """
    with tempfile.TemporaryDirectory(prefix="advreact-fit-") as tmp:
        path = _data_path(data, Path(tmp))
        argv = [str(path), "--model", model] + _argv(dict(options, out=None if out is None else str(out),
                                                            force=force, threads=threads))
        folder, ok = _core.fit(argv)
    folder = Path(folder)
    return {
        "dir": folder,
        "ok": ok,
        "model": json.loads((folder / "model.json").read_text()),
        "fit": json.loads((folder / "fit.json").read_text()),
    }


def field(model, x, time: Optional[float] = None) -> Dict[str, np.ndarray]:
    """Velocity and growth of a fitted model at points, as ``advreact field MODEL POINTS``.

    Parameters
    ----------
    model : path or dict
        The model file (``fit(...)["dir"] / "model.json"``) or a :func:`fit` result.
    x : array_like, shape (n, d)
        The points.
    time : float or array_like of shape (n,)
        The time of evaluation (one for all points, or one per point).

    Returns
    -------
    dict of str to ndarray
        ``u`` (n, d), ``g`` (n,), and ``lambda`` (n,) for a var_ruot model.
    """
    if isinstance(model, dict):
        model = Path(model["dir"]) / "model.json"
    x = _points(x, "x")
    n, d = x.shape
    with tempfile.TemporaryDirectory(prefix="advreact-field-") as tmp:
        pts, res = Path(tmp) / "points.csv", Path(tmp) / "field.csv"
        t = None if time is None else np.broadcast_to(np.asarray(time, dtype=np.float64), (n,))
        with open(pts, "w") as fh:
            fh.write(",".join((["time"] if t is not None else []) + [f"x{k + 1}" for k in range(d)]) + "\n")
            for i in range(n):
                vals = ([repr(float(t[i]))] if t is not None else []) + [repr(float(v)) for v in x[i]]
                fh.write(",".join(vals) + "\n")
        _core.field([str(model), str(pts), "--out", str(res)])
        cols = _read_csv(res)
    us = sorted((k for k in cols if k.startswith("u") and k[1:].isdigit()), key=lambda k: int(k[1:]))
    out = {"u": np.stack([cols[k] for k in us], axis=1), "g": cols["g"]}
    if "lambda" in cols:
        out["lambda"] = cols["lambda"]
    return out


def _in_folder(out, prefix: str, call):
    """Run ``call(folder, tmp)`` with ``folder`` = ``out``, or a folder in a temporary directory
    (removed afterwards) when ``out`` is None; ``tmp`` is a scratch directory for inputs."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        folder = Path(tmp) / "out" if out is None else Path(out)
        return call(folder, Path(tmp))


def _prediction(path: Path) -> Dict[str, np.ndarray]:
    """A ``time, x1..xd, w`` CSV of the engine as ``{"time", "x" (n, d), "w"}`` (exact doubles)."""
    cols = _read_csv(path)
    xs = sorted((k for k in cols if k.startswith("x") and k[1:].isdigit()), key=lambda k: int(k[1:]))
    out = {k: v for k, v in cols.items() if k not in xs}
    out["x"] = np.stack([cols[k] for k in xs], axis=1) if xs else np.zeros((0, 0))
    return out


def infer(data, holdout: float, *, method: str = "wot", out=None, force: bool = False,
          threads: Optional[int] = None, **options) -> Dict[str, Any]:
    """Predict a held-out time point from its neighbours, as
    ``advreact infer DATA --holdout T --method M``.

    Parameters
    ----------
    data : path or Snapshots
        The snapshot CSV (``time, x1..xd[, w]``), or :func:`from_anndata`'s result.
    holdout : float
        The held-out time (an interior time of the data).
    method : {"wot", "usd", "wfr_mmd", "wfr_sinkhorn", ...}
        The inference method (see ``advreact infer --help``).
    out : path, optional
        Write the command's folder there (``prediction.csv``, ``truth.csv``, ``metrics.json``).
        Default: a temporary folder, read and removed.
    force : bool
        Replace an ``out`` folder holding foreign files.
    threads : int, optional
        Worker threads (default: all cores). Results do not depend on it.
    **options
        The command's other options by name (``subsample=60``, ``seed=1``, ``eps_rel=0.1``,
        ``tau=2.0``, ``growth_iters=3``, ``max_steps=500``, ``no_lineage=True``,
        ``growth_column="g"``, ``strict=True``, ``columns=["a", "b"]``, ...).

    Returns
    -------
    dict
        ``dir`` (the folder, ``None`` when temporary), ``ok`` (``False``: ``strict`` and
        warnings), ``metrics`` (``metrics.json``, parsed: ``result``, ``params``, ``warnings``),
        ``prediction`` and ``truth`` (``{"time", "x" (n, d), "w"}``, plus id columns if any).
    """
    def call(folder: Path, tmp: Path):
        path = _data_path(data, tmp)
        argv = [str(path), "--holdout", repr(float(holdout)), "--method", str(method)] + _argv(
            dict(options, out=str(folder), force=force, threads=threads))
        folder, ok = _core.infer(argv)
        folder = Path(folder)
        return {
            "dir": folder if out is not None else None,
            "ok": ok,
            "metrics": json.loads((folder / "metrics.json").read_text()),
            "prediction": _prediction(folder / "prediction.csv"),
            "truth": _prediction(folder / "truth.csv"),
        }

    return _in_folder(out, "advreact-infer-", call)


def forward(data, model=None, *, method: Optional[str] = None, out=None, force: bool = False,
            threads: Optional[int] = None, **options) -> Dict[str, Any]:
    """Forward prediction from the first snapshot, as ``advreact forward DATA --method M`` (chain
    an inference method between consecutive snapshots) or ``advreact forward DATA --model MODEL``
    (simulate a fitted model).

    Parameters
    ----------
    data : path or Snapshots
    model : path or dict, optional
        The model file or a :func:`fit` result (not with ``method``).
    method : str, optional
        The inference method (default ``"wot"`` when no ``model``).
    out : path, optional
        The output folder (``forward.json``; with a model also ``prediction.csv`` and
        ``forward.png``). Default: a temporary folder, read and removed.
    force : bool
        Replace an ``out`` folder holding foreign files.
    threads : int, optional
    **options
        The command's other options by name (``subsample=60``, ``seed=0``, ``eps_rel=0.1``,
        ``strict=True``, ...; see ``advreact forward --help``).

    Returns
    -------
    dict
        ``dir`` (``None`` when temporary), ``ok`` and ``report`` (``forward.json``, parsed).
    """
    if isinstance(model, dict):
        model = Path(model["dir"]) / "model.json"
    if model is not None and method is not None:
        raise ValueError("forward: give either model or method, not both")

    def call(folder: Path, tmp: Path):
        path = _data_path(data, tmp)
        how = ["--model", str(model)] if model is not None else ["--method", method or "wot"]
        argv = [str(path)] + how + _argv(dict(options, out=str(folder), force=force, threads=threads))
        folder, ok = _core.forward(argv)
        folder = Path(folder)
        return {"dir": folder if out is not None else None, "ok": ok,
                "report": json.loads((folder / "forward.json").read_text())}

    return _in_folder(out, "advreact-forward-", call)


def _mapped(path: Path) -> np.ndarray:
    """``T(x)`` of a ``[id,]x1..xd`` CSV written by ``map`` as an (n, d) array."""
    cols = _prediction(path)
    return cols["x"]


def map(source, target, method: str = "entropic", gamma: Optional[float] = None,
        eps: Optional[float] = None, tau: Optional[float] = None, out=None, *, force: bool = False,
        threads: Optional[int] = None) -> Dict[str, Any]:
    """Fit a transport map from ``source`` to ``target``, as
    ``advreact map SOURCE TARGET --method M``.

    Parameters
    ----------
    source, target : path or array_like of shape (n, d) / (m, d)
        CSV files (``x1..xd``, optional ``id`` / ``w`` columns) or point arrays (unit weights).
    method : {"entropic", "sparse-l1"}
        The entropic map of ``½|x−y|²``, or of the elastic cost ``½|z|² + γ|z|₁`` (exact zeros).
    gamma : float, optional
        ``sparse-l1``: the ℓ1 strength ``γ ≥ 0`` (required).
    eps : float, optional
        Entropic ``ε`` (default 0.05 × the mean of ``½|x−y|²`` over all pairs).
    tau : float, optional
        Rescale both clouds by the KL-unbalanced coupling (``τ_a = τ_b = τ``) before fitting.
    out : path, optional
        Write the command's folder there (``map.json``, ``mapped.csv``, ``report.json``, plots).
        Default: a temporary folder, read and removed.
    force : bool
        Replace an ``out`` folder holding foreign files.
    threads : int, optional

    Returns
    -------
    dict
        ``dir`` (``None`` when temporary), ``map`` (``map.json``, parsed: give it to
        :func:`apply_map`), ``map_json`` (its text), ``mapped`` (``T(x_i)``, (n, d)) and
        ``report`` (``report.json``, parsed).
    """
    def call(folder: Path, tmp: Path):
        paths = []
        for name, v in (("source", source), ("target", target)):
            if isinstance(v, (str, os.PathLike)):
                paths.append(str(v))
            else:
                p = tmp / f"{name}.csv"
                _write_points(p, _points(v, name))
                paths.append(str(p))
        argv = paths + ["--method", str(method).replace("_", "-")] + _argv(
            dict(gamma=gamma, eps=eps, tau=tau, out=str(folder), force=force, threads=threads))
        _core.map(argv)
        text = (folder / "map.json").read_text()
        return {
            "dir": folder if out is not None else None,
            "map": json.loads(text),
            "map_json": text,
            "mapped": _mapped(folder / "mapped.csv"),
            "report": json.loads((folder / "report.json").read_text()),
        }

    return _in_folder(out, "advreact-map-", call)


def _write_points(path: Path, x: np.ndarray) -> None:
    """A ``x1..xd`` CSV with numbers in shortest round-trip form (exact doubles)."""
    with open(path, "w") as fh:
        fh.write(",".join(f"x{k + 1}" for k in range(x.shape[1])) + "\n")
        for row in x:
            fh.write(",".join(repr(float(v)) for v in row) + "\n")


def apply_map(map_json, points, *, threads: Optional[int] = None) -> np.ndarray:
    """Apply a fitted map to new points, as ``advreact map --apply MAP.json NEW.csv --out F.csv``.

    Parameters
    ----------
    map_json : path, dict or str
        The map: a ``map.json`` path, :func:`map`'s result (or its ``"map"`` dict), or the JSON text.
    points : path or array_like of shape (k, d)
        The points (a CSV ``x1..xd[,id]`` or an array).
    threads : int, optional

    Returns
    -------
    ndarray of shape (k, d)
        ``T(x)`` of every point.
    """
    with tempfile.TemporaryDirectory(prefix="advreact-apply-") as tmp:
        tmp = Path(tmp)
        if isinstance(map_json, dict):
            text = map_json["map_json"] if "map_json" in map_json else json.dumps(map_json)
            mp = tmp / "map.json"
            mp.write_text(text)
        elif isinstance(map_json, str) and map_json.lstrip().startswith("{"):
            mp = tmp / "map.json"
            mp.write_text(map_json)
        elif isinstance(map_json, (str, os.PathLike)):
            mp = Path(map_json)
        else:
            raise TypeError(f"map_json: expected a path, a dict or JSON text, got {type(map_json).__name__}")
        if isinstance(points, (str, os.PathLike)):
            pts = Path(points)
        else:
            pts = tmp / "points.csv"
            _write_points(pts, _points(points, "points"))
        res = tmp / "mapped.csv"
        _core.map([str(pts), "--apply", str(mp), "--out", str(res)] + _argv(dict(threads=threads)))
        return _mapped(res)
