"""AnnData in and out (``anndata`` is optional: nothing here imports it).

:func:`from_anndata` reads the cells of an AnnData-like object (``.obs``, ``.obsm``, ``.obs_names``)
into the engine's snapshot structure :class:`Snapshots` (one weighted cloud per time point, the
rows of ``advreact``'s snapshot CSV ``time, x1..xd, w, id``). :func:`write_uot_to_anndata` writes
the per-cell results of an unbalanced coupling between two time points back, under these keys
(NaN for the cells of other time points; the same names as a column of ``adata.obs`` or a matrix
of ``adata.obsm``, as wot and moscot do):

``obs["advreact_mass_kept"]``
    ``Σ_j π_ij / a_i`` on the source cells (``< 1``: the cell's mass partly dies),
    ``Σ_i π_ij / b_j`` on the target cells (``> 1``: mass is created there).
``obs["advreact_growth_rate"]``
    ``log(mass_kept) / (t1 − t0)`` on the source cells: the growth rate ``g`` of ``dw = g w dt``
    that explains the kept mass over the interval.
``obsm["advreact_displacement"]``
    ``T(x_i) − x_i`` on the source cells (``T`` the barycentric map), in the basis's coordinates.
``obsm["advreact_velocity"]``
    ``(T(x_i) − x_i) / (t1 − t0)`` on the source cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

import numpy as np


@dataclass
class Snapshots:
    """Cells as one weighted cloud per time point (the engine's snapshot CSV).

    Attributes
    ----------
    times : list of float
        The time points, increasing.
    x : list of ndarray
        ``x[k]``: the (n_k, d) coordinates of the cells at ``times[k]``.
    w : list of ndarray
        ``w[k]``: their weights (1 per cell unless ``weight_key``).
    ids : list of ndarray
        ``ids[k]``: their ids (``obs[id_key]`` or the obs names), as strings.
    rows : list of ndarray
        ``rows[k]``: their row positions in the AnnData (for writing results back).
    n_obs : int
        The number of rows of the AnnData.
    """

    times: List[float]
    x: List[np.ndarray]
    w: List[np.ndarray]
    ids: List[np.ndarray]
    rows: List[np.ndarray]
    n_obs: int
    basis: str = "X_pca"
    extra: dict = field(default_factory=dict)

    def index(self, t: float) -> int:
        """The position of time point ``t`` in :attr:`times` (``ValueError`` if absent)."""
        for k, tk in enumerate(self.times):
            if tk == t:
                return k
        raise ValueError(f"time {t!r}: not a time point of the data (have {self.times})")

    def to_csv(self, path) -> None:
        """Write the engine's snapshot CSV (``time, x1..xd, w, id``) for the ``advreact`` commands."""
        d = self.x[0].shape[1]
        with open(path, "w", newline="") as fh:
            fh.write(",".join(["time"] + [f"x{i + 1}" for i in range(d)] + ["w", "id"]) + "\n")
            for t, x, w, ids in zip(self.times, self.x, self.w, self.ids):
                for xi, wi, idi in zip(x, w, ids):
                    fh.write(",".join([repr(float(t))] + [repr(float(v)) for v in xi] + [repr(float(wi)), str(idi)]) + "\n")


def from_anndata(adata: Any, time_key: str, basis: str = "X_pca", weight_key: Optional[str] = None,
                 id_key: Optional[str] = None) -> Snapshots:
    """The cells of an AnnData as the engine's snapshots, one cloud per time point.

    Parameters
    ----------
    adata : anndata.AnnData
        Any object with ``.obs`` (a DataFrame), ``.obsm`` and ``.obs_names``.
    time_key : str
        The numeric column of ``adata.obs`` giving each cell's time point.
    basis : str
        The ``adata.obsm`` key of the coordinates (``"X"`` for ``adata.X``, dense).
    weight_key : str, optional
        A column of ``adata.obs`` with the cells' weights (default: 1 per cell).
    id_key : str, optional
        A column of ``adata.obs`` with the cells' ids (default: the obs names).

    Returns
    -------
    Snapshots

    Raises
    ------
    ValueError
        Naming the key: a missing key, a non-numeric time, coordinates or weights that are not
        finite, negative weights.
    """
    obs = adata.obs
    if time_key not in obs:
        raise ValueError(f"adata.obs[{time_key!r}]: no such column (time_key)")
    try:
        t = np.asarray(obs[time_key], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"adata.obs[{time_key!r}]: time points must be numbers ({e})") from None
    if not np.all(np.isfinite(t)):
        raise ValueError(f"adata.obs[{time_key!r}]: a time point is not finite")
    if basis == "X":
        x = adata.X
        x = x.toarray() if hasattr(x, "toarray") else x
    else:
        if basis not in adata.obsm:
            raise ValueError(f"adata.obsm[{basis!r}]: no such key (basis; have {list(adata.obsm.keys())})")
        x = adata.obsm[basis]
    x = np.ascontiguousarray(np.asarray(x), dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != t.shape[0]:
        raise ValueError(f"adata.obsm[{basis!r}]: expected ({t.shape[0]}, d) coordinates, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"adata.obsm[{basis!r}]: a coordinate is not finite")
    if weight_key is None:
        w = np.ones(t.shape[0])
    else:
        if weight_key not in obs:
            raise ValueError(f"adata.obs[{weight_key!r}]: no such column (weight_key)")
        w = np.asarray(obs[weight_key], dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"adata.obs[{weight_key!r}]: weights must be finite and ≥ 0")
    if id_key is None:
        ids = np.asarray(adata.obs_names, dtype=str)
    else:
        if id_key not in obs:
            raise ValueError(f"adata.obs[{id_key!r}]: no such column (id_key)")
        ids = np.asarray(obs[id_key]).astype(str)
    times = sorted(set(t.tolist()))
    rows = [np.flatnonzero(t == tk) for tk in times]
    return Snapshots(
        times=times,
        x=[x[r] for r in rows],
        w=[w[r] for r in rows],
        ids=[ids[r] for r in rows],
        rows=rows,
        n_obs=t.shape[0],
        basis=basis,
    )


def write_uot_to_anndata(adata: Any, snapshots: Snapshots, t0: float, t1: float, result) -> None:
    """Write the per-cell results of a coupling between ``t0`` and ``t1`` into ``adata``.

    Parameters
    ----------
    adata : anndata.AnnData
        The AnnData ``snapshots`` was read from (same rows).
    snapshots : Snapshots
    t0, t1 : float
        The source and target time points of ``result`` (``t1 > t0``).
    result : UotResult
        ``uot(x[t0], x[t1], w[t0], w[t1], ...)``.

    Notes
    -----
    Keys written (module doc): ``obs["advreact_mass_kept"]``, ``obs["advreact_growth_rate"]``,
    ``obsm["advreact_displacement"]``, ``obsm["advreact_velocity"]``. Existing values of other
    time points are kept (the columns are created filled with NaN).
    """
    i0, i1 = snapshots.index(t0), snapshots.index(t1)
    dt = float(t1) - float(t0)
    if not dt > 0:
        raise ValueError(f"t1: must be after t0, got t0={t0}, t1={t1}")
    if adata.n_obs != snapshots.n_obs:
        raise ValueError(f"adata: {adata.n_obs} cells, the snapshots were read from {snapshots.n_obs}")
    r0, r1 = snapshots.rows[i0], snapshots.rows[i1]
    a, b = result.a, result.b
    if a.shape[0] != r0.shape[0] or b.shape[0] != r1.shape[0]:
        raise ValueError(
            f"result: a coupling of {a.shape[0]} × {b.shape[0]} cells, times {t0} and {t1} have "
            f"{r0.shape[0]} and {r1.shape[0]}"
        )
    n, d = snapshots.n_obs, snapshots.x[i0].shape[1]
    t = result.barycentric_map()
    if t.shape != snapshots.x[i0].shape:
        raise ValueError(
            f"result: a coupling in {t.shape[1]} dimensions, the snapshots' basis "
            f"{snapshots.basis!r} has {d}: solve on snapshots.x"
        )

    def column(key):
        if key in adata.obs:
            return np.asarray(adata.obs[key], dtype=np.float64).copy()
        return np.full(n, np.nan)

    def matrix(key):
        if key in adata.obsm and np.shape(adata.obsm[key]) == (n, d):
            return np.asarray(adata.obsm[key], dtype=np.float64).copy()
        return np.full((n, d), np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        kept_a = np.where(a > 0, result.row_mass / a, 0.0)
        kept_b = np.where(b > 0, result.col_mass / b, 0.0)
        growth = np.log(kept_a) / dt
    kept, rate = column("advreact_mass_kept"), column("advreact_growth_rate")
    kept[r0], kept[r1] = kept_a, kept_b
    rate[r0] = growth
    disp, vel = matrix("advreact_displacement"), matrix("advreact_velocity")
    step = t - snapshots.x[i0]
    disp[r0] = step
    vel[r0] = step / dt
    adata.obs["advreact_mass_kept"] = kept
    adata.obs["advreact_growth_rate"] = rate
    adata.obsm["advreact_displacement"] = disp
    adata.obsm["advreact_velocity"] = vel


