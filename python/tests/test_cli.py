"""Bit-identical to the command line on the same inputs: the uot report and marginals, the
compare MMD², and a simulate run's metrics and snapshots (the `advreact` binary of this checkout)."""

import json
import subprocess

import numpy as np

import advreact as ar
from conftest import REPO, write_csv


def run(cli, *args, cwd=None):
    p = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return p.stdout


def clouds(seed=7):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(55, 2)) + [0.8, -0.3]
    return x, y, rng.uniform(0.2, 2.0, 40), rng.uniform(0.2, 2.0, 55)


def test_uot_report_is_the_cli_report(cli, tmp_path):
    x, y, a, b = clouds()
    write_csv(tmp_path / "A.csv", x, a)
    write_csv(tmp_path / "B.csv", y, b)
    out = tmp_path / "out"
    # The Python default tol (1e-6, the and POT's) against the CLI given the same tol.
    run(cli, "uot", tmp_path / "A.csv", tmp_path / "B.csv", "--eps", "0.1", "--tau-a", "0.7", "--tau-b", "2",
        "--tol", "1e-6", "--out", out)
    r = ar.uot(x, y, a, b, eps=0.1, tau_a=0.7, tau_b=2.0)
    assert r.report["tol"] == 1e-6 and r.seconds > 0
    text = (out / "report.json").read_text()
    assert r.report_json == text
    assert r.report == json.loads(text)
    src = np.genfromtxt(out / "source.csv", delimiter=",", names=True)
    tgt = np.genfromtxt(out / "target.csv", delimiter=",", names=True)
    assert np.array_equal(src["row_mass"], r.row_mass) and np.array_equal(src["f"], r.f)
    assert np.array_equal(tgt["col_mass"], r.col_mass) and np.array_equal(tgt["g"], r.g)


def test_uot_normalized_tv_is_the_cli(cli, tmp_path):
    x, y, _, _ = clouds(8)
    write_csv(tmp_path / "A.csv", x)
    write_csv(tmp_path / "B.csv", y)
    out = tmp_path / "out"
    run(cli, "uot", tmp_path / "A.csv", tmp_path / "B.csv", "--eps", "0.2", "--tau-a", "1", "--tau-b", "1",
        "--penalty", "tv", "--cost", "half_sqeuclidean", "--normalize", "--barycentric", "--out", out)
    # The CLI's default tol (1e-9) given explicitly in Python.
    r = ar.uot(x, y, eps=0.2, tau_a=1, tau_b=1, penalty="tv", cost="half_sqeuclidean", normalize=True, tol=1e-9)
    assert r.report["tol"] == 1e-9
    assert r.report_json == (out / "report.json").read_text()
    bary = np.genfromtxt(out / "barycentric.csv", delimiter=",", skip_header=1)[:, 1:]
    assert np.array_equal(bary, r.barycentric_map())


def test_mmd2_is_the_cli_compare(cli, tmp_path):
    x, y, a, b = clouds(9)
    write_csv(tmp_path / "A.csv", x, a)
    write_csv(tmp_path / "B.csv", y, b)
    for extra, bw in [(["--bandwidth", "0.75"], 0.75), ([], None)]:
        got = json.loads(run(cli, "compare", tmp_path / "A.csv", tmp_path / "B.csv", "--json", *extra))
        assert ar.mmd2(x, y, a, b, bandwidth=bw) == got["mmd2"]


def test_simulate_is_the_cli_run(cli, tmp_path):
    scenario = REPO / "scenarios" / "ou_relaxation.toml"
    run(cli, "run", scenario, "--steps", "30", "--seed", "5", "--quiet", "--out", tmp_path / "cli")
    r = ar.simulate(scenario, steps=30, seed=5, out=tmp_path / "py", threads=2)
    for f in ["metrics.csv", "snapshots.csv", "lineage.csv", "source.csv", "scenario.resolved.toml"]:
        assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    cli_metrics = np.genfromtxt(tmp_path / "cli" / "metrics.csv", delimiter=",", names=True)
    for k in cli_metrics.dtype.names:
        assert np.array_equal(r.metrics[k], cli_metrics[k]), k
    assert r.summary["steps"] == 30 and r.summary["stop_reason"] == "completed"
    # The same run in a temporary folder (out=None), from the TOML text: the same numbers.
    r2 = ar.simulate(scenario.read_text(), steps=30, seed=5, threads=1)
    assert r2.dir is None
    for k in r.metrics:
        assert np.array_equal(r.metrics[k], r2.metrics[k]), k
    assert np.array_equal(r.particles["x"], r2.particles["x"]) and len(r.particles["w"]) > 0
