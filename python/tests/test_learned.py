"""fit / field / forward: the library's learned-dynamics commands from Python, the same files
and numbers as the command line (small uot_fm fit of three_gene_2d, as tests/cli_learned.rs)."""

import subprocess

import numpy as np
import pytest

import advreact as ar
from conftest import SHARED, write_csv

DATA = SHARED / "data" / "three_gene_2d" / "three_gene_2d.csv"
SMALL = dict(subsample=60, features=80, pairs=600, dt=0.05, holdout=[2.0])
FLAGS = ["--subsample", "60", "--features", "80", "--pairs", "600", "--dt", "0.05", "--holdout", "2"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    if not DATA.exists():
        pytest.skip(f"{DATA} not found: the shared data must be beside the repository")
    return ar.fit(DATA, "uot_fm", out=tmp_path_factory.mktemp("fit") / "py", **SMALL)


def test_fit_is_the_cli_fit(fitted, cli, tmp_path):
    assert fitted["ok"] and fitted["model"]["data"]["held_out"] == [2.0]
    subprocess.run([str(cli), "fit", str(DATA), "--model", "uot_fm", *FLAGS, "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True)
    assert (tmp_path / "cli" / "model.json").read_bytes() == (fitted["dir"] / "model.json").read_bytes()


def test_field_is_the_cli_field(fitted, cli, tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 2))
    got = ar.field(fitted, x, time=1.5)
    assert got["u"].shape == (7, 2) and got["g"].shape == (7,)
    write_csv(tmp_path / "pts.csv", x)
    text = subprocess.run([str(cli), "field", str(fitted["dir"] / "model.json"), str(tmp_path / "pts.csv"),
                           "--time", "1.5"], check=True, capture_output=True, text=True).stdout
    want = np.array([[float(v) for v in line.split(",")] for line in text.strip().split("\n")[1:]])
    assert np.array_equal(want[:, :2], got["u"]) and np.array_equal(want[:, 2], got["g"])
    with pytest.raises(ValueError):
        ar.field(fitted, np.zeros((3, 5)), time=1.0)


def test_forward_and_bad_options(fitted, tmp_path):
    r = ar.forward(DATA, fitted, out=tmp_path / "fwd", subsample=60)
    assert r["ok"] and (tmp_path / "fwd" / "prediction.csv").exists()
    rows = r["report"]["times"]
    assert [row["t"] for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [row["held_out"] for row in rows] == [False, False, True, False, False]
    # The first time is the simulation's start: its prediction is the data itself.
    assert rows[0]["metrics"]["mmd"] == 0.0 and rows[0]["metrics"]["mass_error"] == 0.0
    with pytest.raises(ValueError, match="model"):
        ar.fit(DATA, "nonsense", out=tmp_path / "x")
    with pytest.raises(ValueError):
        ar.fit(DATA, "uot_fm", out=tmp_path / "y", no_such_option=3)
