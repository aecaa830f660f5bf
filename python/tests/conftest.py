"""Shared helpers of the package's tests: the fixtures folder and the command-line binary."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def fixture(name):
    """A JSON fixture of ../shared/fixtures (skip if the folder is not beside the repository)."""
    p = SHARED / "fixtures" / name
    if not p.exists():
        pytest.skip(f"{p} not found: the shared fixtures must be beside the repository")
    return json.loads(p.read_text())


@pytest.fixture(scope="session")
def cli():
    """The `advreact` binary of this checkout (target/release), built with cargo if missing."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    exe = target / "release" / "advreact"
    if not exe.exists() and shutil.which("cargo"):
        subprocess.run(["cargo", "build", "--release", "--bin", "advreact"], cwd=REPO, check=False)
    if not exe.exists():
        pytest.skip(f"the advreact binary is missing ({exe}) and cargo could not build it")
    return exe


def write_csv(path, x, w=None):
    """A snapshot CSV `x1..xd[,w]` with numbers in shortest round-trip form (exact doubles)."""
    d = x.shape[1]
    head = [f"x{k + 1}" for k in range(d)] + (["w"] if w is not None else [])
    with open(path, "w") as fh:
        fh.write(",".join(head) + "\n")
        for i, row in enumerate(x):
            vals = [repr(float(v)) for v in row] + ([repr(float(w[i]))] if w is not None else [])
            fh.write(",".join(vals) + "\n")
