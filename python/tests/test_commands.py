"""infer / forward --method / map / apply_map: the library's commands from Python give the same
files and numbers as the command line on the same inputs (small subsamples of three_gene_2d and
two small clouds), and bad input raises ValueError."""

import json
import subprocess

import numpy as np
import pytest

import advreact as ar
from conftest import SHARED, write_csv

DATA = SHARED / "data" / "three_gene_2d" / "three_gene_2d.csv"


def need_data():
    if not DATA.exists():
        pytest.skip(f"{DATA} not found: the shared data must be beside the repository")


def run(cli, *args):
    p = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def timeless(v):
    """A parsed JSON without its wall-clock fields (``seconds``, per-phase timings)."""
    if isinstance(v, dict):
        return {k: timeless(x) for k, x in v.items() if "seconds" not in k}
    if isinstance(v, list):
        return [timeless(x) for x in v]
    return v


def test_infer_is_the_cli_infer(cli, tmp_path):
    need_data()
    flags = ["--subsample", "50", "--seed", "3", "--eps-rel", "0.1"]
    run(cli, "infer", DATA, "--holdout", "2", "--method", "wot", *flags, "--out", tmp_path / "cli")
    got = ar.infer(DATA, 2.0, method="wot", subsample=50, seed=3, eps_rel=0.1, out=tmp_path / "py")
    assert got["ok"] and got["dir"] == tmp_path / "py"
    for f in ("prediction.csv", "truth.csv"):
        assert (tmp_path / "cli" / f).read_bytes() == (tmp_path / "py" / f).read_bytes(), f
    want = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert timeless(got["metrics"]) == timeless(want)
    # The parsed arrays are the files' numbers; a temporary folder gives the same result.
    pred = np.genfromtxt(tmp_path / "cli" / "prediction.csv", delimiter=",", names=True)
    assert np.array_equal(got["prediction"]["w"], pred["w"])
    assert np.array_equal(got["prediction"]["x"], np.stack([pred["x1"], pred["x2"]], axis=1))
    tmp = ar.infer(DATA, 2.0, method="wot", subsample=50, seed=3, eps_rel=0.1)
    assert tmp["dir"] is None and np.array_equal(tmp["prediction"]["x"], got["prediction"]["x"])
    assert timeless(tmp["metrics"]) == timeless(want)


def test_forward_method_is_the_cli_forward(cli, tmp_path):
    need_data()
    run(cli, "forward", DATA, "--method", "wot", "--subsample", "40", "--out", tmp_path / "cli")
    got = ar.forward(DATA, method="wot", subsample=40, out=tmp_path / "py")
    assert got["ok"]
    want = json.loads((tmp_path / "cli" / "forward.json").read_text())
    assert timeless(got["report"]) == timeless(want)
    assert want["result"]["times"] == [1.0, 2.0, 3.0, 4.0]  # predicted from the first time, 0


def test_infer_forward_bad_input(tmp_path):
    need_data()
    with pytest.raises(ValueError, match="holdout|time"):
        ar.infer(DATA, 2.5, subsample=40)  # not a time of the data
    with pytest.raises(ValueError, match="method"):
        ar.infer(DATA, 2.0, method="nonsense")
    with pytest.raises(ValueError, match="subsample"):
        ar.infer(DATA, 2.0, subsample=1)
    with pytest.raises(ValueError):
        ar.forward(DATA, method="wot", no_such_option=3)
    with pytest.raises(ValueError, match="model or method"):
        ar.forward(DATA, tmp_path / "model.json", method="wot")
    with pytest.raises((OSError, ValueError), match="missing.csv"):
        ar.forward(tmp_path / "missing.csv", method="wot")


def clouds(seed=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 3))
    y = x + np.array([0.8, 0.0, 0.0]) + 0.05 * rng.normal(size=(30, 3))
    return x, y


def test_map_is_the_cli_map(cli, tmp_path):
    x, y = clouds()
    write_csv(tmp_path / "S.csv", x)
    write_csv(tmp_path / "T.csv", y)
    for name, method, extra, kw in [
        ("ent", "entropic", [], {}),
        ("l1", "sparse-l1", ["--gamma", "0.3", "--tau", "2"], dict(gamma=0.3, tau=2.0)),
    ]:
        cli_out = tmp_path / f"cli_{name}"
        run(cli, "map", tmp_path / "S.csv", tmp_path / "T.csv", "--method", method, *extra, "--out", cli_out)
        # Arrays in (written as exact CSVs by the binding) give the same bits as the files.
        got = ar.map(x, y, method=method, out=tmp_path / f"py_{name}", **kw)
        for f in ("map.json", "mapped.csv"):
            assert (cli_out / f).read_bytes() == (tmp_path / f"py_{name}" / f).read_bytes(), (name, f)
        want = json.loads((cli_out / "report.json").read_text())
        assert timeless(got["report"]) == timeless(want)
        mapped = np.genfromtxt(cli_out / "mapped.csv", delimiter=",", skip_header=1)
        assert np.array_equal(got["mapped"], mapped)
        # apply_map on new points is `map --apply`.
        new = np.random.default_rng(1).normal(size=(9, 3))
        write_csv(tmp_path / "new.csv", new)
        run(cli, "map", tmp_path / "new.csv", "--apply", cli_out / "map.json", "--out", tmp_path / f"{name}.csv")
        want_t = np.genfromtxt(tmp_path / f"{name}.csv", delimiter=",", skip_header=1)
        assert np.array_equal(ar.apply_map(got, new), want_t)
        assert np.array_equal(ar.apply_map(cli_out / "map.json", tmp_path / "new.csv"), want_t)
    # Temporary folder: same map, no folder kept; the sparse map has exact zeros.
    tmp = ar.map(tmp_path / "S.csv", tmp_path / "T.csv", method="sparse_l1", gamma=0.3, tau=2.0)
    assert tmp["dir"] is None and tmp["map_json"] == (tmp_path / "cli_l1" / "map.json").read_text()
    assert np.any(tmp["mapped"][:, 1:] == x[:, 1:])


def test_map_bad_input(tmp_path):
    x, y = clouds()
    with pytest.raises(ValueError, match="gamma"):
        ar.map(x, y, method="sparse-l1")  # γ is required
    with pytest.raises(ValueError, match="gamma"):
        ar.map(x, y, gamma=0.1)  # γ is for sparse-l1
    with pytest.raises(ValueError, match="method"):
        ar.map(x, y, method="nonsense")
    with pytest.raises(ValueError):
        ar.map(x, y[:, :2])  # 3-D source, 2-D target
    with pytest.raises(ValueError):
        ar.map(x, np.full((4, 3), np.nan))
    with pytest.raises(ValueError):
        ar.map(x, np.zeros((0, 3)))
    fitted = ar.map(x, y)
    with pytest.raises(ValueError):
        ar.apply_map(fitted, np.zeros((3, 2)))  # wrong dimension
    with pytest.raises(TypeError):
        ar.apply_map(3.0, x)
