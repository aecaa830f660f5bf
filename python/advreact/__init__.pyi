"""Type stubs of the public ``advreact`` API (docstrings in ``advreact/__init__.py``)."""

from os import PathLike
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._anndata import Snapshots as Snapshots
from ._anndata import from_anndata as from_anndata
from ._anndata import write_uot_to_anndata as write_uot_to_anndata

__version__: str

ArrayLike = npt.ArrayLike
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

def mmd2(
    x: ArrayLike,
    y: ArrayLike,
    a: Optional[ArrayLike] = None,
    b: Optional[ArrayLike] = None,
    bandwidth: Optional[float] = None,
    *,
    normalize: bool = False,
    threads: Optional[int] = None,
) -> float: ...

class UotResult:
    @property
    def report(self) -> Dict[str, Any]: ...
    @property
    def report_json(self) -> str: ...
    @property
    def f(self) -> F64: ...
    @property
    def g(self) -> F64: ...
    @property
    def row_mass(self) -> F64: ...
    @property
    def col_mass(self) -> F64: ...
    @property
    def a(self) -> F64: ...
    @property
    def b(self) -> F64: ...
    @property
    def seconds(self) -> float: ...
    def plan(
        self,
        top_k: Optional[int] = None,
        threshold: Optional[float] = None,
        *,
        max_entries: int = 10_000_000,
        sparse: Optional[bool] = None,
    ) -> Union[Any, Tuple[I64, I64, F64]]: ...
    def barycentric_map(self) -> F64: ...

def uot(
    x: ArrayLike,
    y: ArrayLike,
    a: Optional[ArrayLike] = None,
    b: Optional[ArrayLike] = None,
    *,
    eps: float,
    tau_a: float = ...,
    tau_b: float = ...,
    penalty: str = "kl",
    cost: str = "sqeuclidean",
    tol: float = 1e-6,
    max_iter: int = 10_000,
    normalize: bool = False,
    eps_scaling: bool = False,
    threads: Optional[int] = None,
) -> UotResult: ...
def sinkhorn_divergence(
    x: ArrayLike,
    y: ArrayLike,
    a: Optional[ArrayLike] = None,
    b: Optional[ArrayLike] = None,
    *,
    blur: float,
    reach: Optional[float] = None,
    tol: float = 1e-9,
    max_iter: int = 10_000,
    threads: Optional[int] = None,
) -> Tuple[float, F64, F64]: ...

class Run:
    metrics: Dict[str, F64]
    snapshots: Dict[str, npt.NDArray[Any]]
    particles: Dict[str, npt.NDArray[Any]]
    summary: Dict[str, Any]
    dir: Optional[Path]

def simulate(
    scenario: Union[str, PathLike, Dict[str, Any]],
    *,
    seed: Optional[int] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
    out: Optional[Union[str, PathLike]] = None,
    force: bool = False,
) -> Run: ...

def fit(
    data: Union[str, PathLike, Snapshots],
    model: str,
    *,
    out: Optional[Union[str, PathLike]] = None,
    force: bool = False,
    threads: Optional[int] = None,
    **options: Any,
) -> Dict[str, Any]: ...
def field(
    model: Union[str, PathLike, Dict[str, Any]], x: ArrayLike, time: Optional[Union[float, ArrayLike]] = None
) -> Dict[str, F64]: ...
def forward(
    data: Union[str, PathLike, Snapshots],
    model: Optional[Union[str, PathLike, Dict[str, Any]]] = None,
    *,
    method: Optional[str] = None,
    out: Optional[Union[str, PathLike]] = None,
    force: bool = False,
    threads: Optional[int] = None,
    **options: Any,
) -> Dict[str, Any]: ...
def infer(
    data: Union[str, PathLike, Snapshots],
    holdout: float,
    *,
    method: str = "wot",
    out: Optional[Union[str, PathLike]] = None,
    force: bool = False,
    threads: Optional[int] = None,
    **options: Any,
) -> Dict[str, Any]: ...
def map(
    source: Union[str, PathLike, ArrayLike],
    target: Union[str, PathLike, ArrayLike],
    method: str = "entropic",
    gamma: Optional[float] = None,
    eps: Optional[float] = None,
    tau: Optional[float] = None,
    out: Optional[Union[str, PathLike]] = None,
    *,
    force: bool = False,
    threads: Optional[int] = None,
) -> Dict[str, Any]: ...
def apply_map(
    map_json: Union[str, PathLike, Dict[str, Any]],
    points: Union[str, PathLike, ArrayLike],
    *,
    threads: Optional[int] = None,
) -> F64: ...
