"""Type stubs of the compiled extension ``advreact._core`` (PyO3, abi3).

Arrays are C-contiguous float64 (the public wrappers in ``advreact`` convert). The commands
(``fit``, ``field``, ``infer``, ``forward``, ``map``) take the command line's arguments after the
command name.
"""

from os import PathLike
from typing import List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__engine_version__: str

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

class UotResult:
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
        self, top_k: Optional[int] = None, threshold: Optional[float] = None, max_entries: int = 10_000_000
    ) -> Tuple[I64, I64, F64]: ...
    def barycentric_map(self) -> F64: ...

def mmd2(
    x: F64,
    y: F64,
    a: Optional[F64] = None,
    b: Optional[F64] = None,
    bandwidth: Optional[float] = None,
    normalize: bool = False,
    threads: Optional[int] = None,
) -> Tuple[float, float, float]: ...
def uot(
    x: F64,
    y: F64,
    a: Optional[F64],
    b: Optional[F64],
    eps: float,
    tau_a: float,
    tau_b: float,
    penalty: str,
    cost: str,
    tol: float,
    max_iter: int,
    normalize: bool,
    eps_scaling: bool,
    threads: Optional[int],
) -> UotResult: ...
def sinkhorn_divergence_py(
    x: F64,
    y: F64,
    a: Optional[F64],
    b: Optional[F64],
    blur: float,
    reach: Optional[float],
    tol: float,
    max_iter: int,
    threads: Optional[int],
) -> Tuple[float, F64, F64]: ...
def scenario_json_to_toml(json: str) -> str: ...
def simulate(
    path: Union[str, PathLike],
    text: Optional[str],
    out: Union[str, PathLike],
    seed: Optional[int] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
    force: bool = False,
) -> Tuple[str, str]: ...
def fit(argv: List[str]) -> Tuple[str, bool]: ...
def field(argv: List[str]) -> bool: ...
def infer(argv: List[str]) -> Tuple[str, bool]: ...
def forward(argv: List[str]) -> Tuple[str, bool]: ...
def map(argv: List[str]) -> bool: ...
