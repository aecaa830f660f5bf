"""Bad input raises (never crashes), the GIL is released, Ctrl-C interrupts, AnnData round trip."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import advreact as ar

RNG = np.random.default_rng(11)
X, Y = RNG.normal(size=(30, 2)), RNG.normal(size=(25, 2)) + 0.5


@pytest.mark.parametrize(
    "x, err, match",
    [
        (np.array([[0.0, np.nan]] + [[1.0, 2.0]]), ValueError, "not finite"),
        (np.array([[np.inf, 0.0]]), ValueError, "not finite"),
        (np.zeros((0, 2)), ValueError, "no points"),
        (np.zeros((3,)), ValueError, "2-D"),
        (np.zeros((3, 2, 1)), ValueError, "2-D"),
        (np.zeros((3, 3)), ValueError, "dimension"),
        (np.array([["a", "b"]]), TypeError, "real numbers"),
        (np.array([[1 + 2j, 0]]), TypeError, "real numbers"),
        (np.array([[object(), 1]], dtype=object), TypeError, "real numbers"),
    ],
)
def test_bad_points_raise(x, err, match):
    for f in (lambda: ar.mmd2(x, Y), lambda: ar.uot(x, Y, eps=0.1, tau_a=1, tau_b=1),
              lambda: ar.sinkhorn_divergence(x, Y, blur=0.1, reach=1.0)):
        with pytest.raises(err, match=match):
            f()


def test_bad_weights_and_options_raise():
    with pytest.raises(ValueError, match="weights"):
        ar.mmd2(X, Y, a=np.ones(3))
    with pytest.raises(ValueError, match="negative|≥ 0|weight"):
        ar.mmd2(X, Y, a=-np.ones(30))
    with pytest.raises(ValueError, match="eps"):
        ar.uot(X, Y, eps=-1.0, tau_a=1, tau_b=1)
    with pytest.raises(ValueError, match="eps"):
        ar.uot(X, Y, eps=float("nan"), tau_a=1, tau_b=1)
    with pytest.raises(ValueError, match="tau_a"):
        ar.uot(X, Y, eps=0.1, tau_a=0.0, tau_b=1)
    with pytest.raises(ValueError, match="penalty"):
        ar.uot(X, Y, eps=0.1, tau_a=1, tau_b=1, penalty="l2")
    with pytest.raises(ValueError, match="cost"):
        ar.uot(X, Y, eps=0.1, tau_a=1, tau_b=1, cost="euclidean")
    # Balanced transport between unequal masses: the engine's message.
    with pytest.raises(ValueError, match="mass"):
        ar.uot(X, Y, eps=0.1)
    with pytest.raises(ValueError, match="bandwidth"):
        ar.mmd2(X, Y, bandwidth=0.0)
    with pytest.raises(ValueError, match="threads"):
        ar.mmd2(X, Y, threads=0)
    with pytest.raises(ValueError, match="blur"):
        ar.sinkhorn_divergence(X, Y, blur=0.0)
    r = ar.uot(X, Y, eps=0.1, tau_a=1, tau_b=1)
    with pytest.raises(ValueError, match="top_k"):
        r.plan(top_k=0)
    with pytest.raises(ValueError, match="threshold"):
        r.plan(threshold=0.0)
    with pytest.raises(RuntimeError, match="exceeds the limit"):  # SimError::Limit
        r.plan(max_entries=10)


def test_views_and_dtypes_give_the_contiguous_float64_result():
    base = np.asfortranarray(RNG.normal(size=(60, 4)))
    view = base[::2, 1:3]  # strided, Fortran-ordered, not contiguous
    assert not view.flags.c_contiguous
    want = ar.mmd2(np.ascontiguousarray(view), Y, bandwidth=1.0)
    assert ar.mmd2(view, Y, bandwidth=1.0) == want
    f32 = view.astype(np.float32)
    assert ar.mmd2(f32, Y, bandwidth=1.0) == ar.mmd2(f32.astype(np.float64), Y, bandwidth=1.0)
    ints = np.arange(20).reshape(10, 2)
    assert ar.mmd2(ints, Y, bandwidth=1.0) == ar.mmd2(ints.astype(float), Y, bandwidth=1.0)


def test_scenario_errors_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="time"):
        ar.simulate({"meta": {"name": "x"}, "source": {"type": "gaussian", "n": 10, "mean": [0.0], "std": 1.0},
                     "field": {"type": "constant_growth", "rate": 0.1}, "reaction": {"type": "weights"}})
    with pytest.raises(ValueError):
        ar.simulate(str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="variants"):
        ar.simulate(os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "mass_growth.toml"))


def test_simulate_from_a_dict_matches_the_closed_form():
    sc = {
        "meta": {"name": "decay", "seed": 1},
        "source": {"type": "gaussian", "n": 50, "mean": [0.0], "std": 1.0},
        "field": {"type": "constant_growth", "rate": -0.5},
        "reaction": {"type": "weights"},
        "time": {"dt": 0.1, "steps": 10},
        "report": {"every": 1, "metrics": ["mass"]},
    }
    r = ar.simulate(sc)
    # dw = g w dt with g = −0.5 is integrated exactly: M(t) = 50 e^{−0.5 t} (unit weights).
    t = r.metrics["t"]
    assert len(t) == 11
    assert np.max(np.abs(r.metrics["mass"] / (r.metrics["mass"][0] * np.exp(-0.5 * t)) - 1)) <= 1e-12
    assert abs(r.summary["mass"] - r.metrics["mass"][-1]) <= 1e-12 * r.summary["mass"]


def test_gil_is_released_two_threads():
    """Two threads calling uot: with the GIL released they overlap. The wall-time ratio is printed
    (no timed assertion); the results must equal the sequential ones bit for bit."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2)) + 0.5
    kw = dict(eps=0.05, tau_a=1.0, tau_b=1.0, threads=1)
    t0 = time.perf_counter()
    seq = [ar.uot(x, y, **kw).report_json for _ in range(2)]
    t_seq = time.perf_counter() - t0
    out = [None, None]
    started = threading.Barrier(2)

    def work(k):
        started.wait()
        out[k] = ar.uot(x, y, **kw).report_json

    th = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    t0 = time.perf_counter()
    for t in th:
        t.start()
    for t in th:
        t.join()
    t_par = time.perf_counter() - t0
    print(f"\nGIL: two uot calls (1500 x 1500, 1 thread each): sequential {t_seq:.3f} s, "
          f"two Python threads {t_par:.3f} s, ratio {t_par / t_seq:.2f} (0.5 = fully concurrent)")
    assert out == seq
    # Functional check: Python code runs on the main thread while uot computes on another.
    th = threading.Thread(target=lambda: out.__setitem__(0, ar.uot(x, y, **kw).report_json))
    spins = 0
    th.start()
    while th.is_alive():
        spins += 1
    th.join()
    print(f"GIL: {spins} main-thread loop iterations during one uot call")
    assert spins > 1000 and out[0] == seq[0]


def test_ctrl_c_raises_keyboard_interrupt():
    """SIGINT during a long uot call: KeyboardInterrupt within a second, the interpreter intact."""
    code = textwrap.dedent("""
        import sys, time, numpy as np, advreact as ar
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(6000, 2)), rng.normal(size=(6000, 2))
        print("ready", flush=True)
        t0 = time.perf_counter()
        try:
            ar.uot(x, y, eps=1e-4, tau_a=1, tau_b=1, tol=0.0, max_iter=10**6, threads=1)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {time.perf_counter() - t0:.3f}", flush=True)
        print("alive", ar.mmd2(x[:5], y[:5], bandwidth=1.0) >= 0, flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    lines = out.split("\n")
    assert lines[0].startswith("interrupted"), (out, err)
    assert lines[1] == "alive True", (out, err)


def test_anndata_round_trip():
    anndata = pytest.importorskip("anndata")
    import pandas as pd

    rng = np.random.default_rng(2)
    n0, n1, n2 = 20, 25, 15
    t = np.repeat([0.0, 1.0, 2.0], [n0, n1, n2])
    pcs = np.concatenate([rng.normal(size=(n0, 3)), rng.normal(size=(n1, 3)) + 1, rng.normal(size=(n2, 3)) + 2])
    obs = pd.DataFrame({"day": t, "size": rng.uniform(0.5, 2.0, t.size)}, index=[f"cell{i}" for i in range(t.size)])
    order = rng.permutation(t.size)  # rows not sorted by time
    adata = anndata.AnnData(X=np.zeros((t.size, 4)), obs=obs.iloc[order].copy())
    adata.obsm["X_pca"] = pcs[order]
    snaps = ar.from_anndata(adata, "day", weight_key="size")
    assert snaps.times == [0.0, 1.0, 2.0] and [len(w) for w in snaps.w] == [n0, n1, n2]
    for k in range(3):
        assert np.array_equal(snaps.x[k], adata.obsm["X_pca"][snaps.rows[k]])
        assert np.array_equal(snaps.ids[k], np.asarray(adata.obs_names)[snaps.rows[k]])
    r = ar.uot(snaps.x[0], snaps.x[1], snaps.w[0], snaps.w[1], eps=0.5, tau_a=1.0, tau_b=1.0)
    ar.write_uot_to_anndata(adata, snaps, 0.0, 1.0, r)
    kept = adata.obs["advreact_mass_kept"].to_numpy()
    r0, r1, r2 = snaps.rows
    assert np.array_equal(kept[r0], r.row_mass / snaps.w[0])
    assert np.array_equal(kept[r1], r.col_mass / snaps.w[1])
    assert np.all(np.isnan(kept[r2]))
    rate = adata.obs["advreact_growth_rate"].to_numpy()
    assert np.allclose(np.exp(rate[r0]), kept[r0], rtol=1e-14) and np.all(np.isnan(rate[r1]))
    disp = adata.obsm["advreact_displacement"]
    assert np.array_equal(disp[r0], r.barycentric_map() - snaps.x[0])
    assert np.array_equal(adata.obsm["advreact_velocity"][r0], disp[r0] / 1.0)
    assert np.all(np.isnan(disp[r1]))
    # the snapshot CSV the command line reads: the same clouds
    import tempfile, csv
    with tempfile.TemporaryDirectory() as d:
        snaps.to_csv(os.path.join(d, "cells.csv"))
        with open(os.path.join(d, "cells.csv")) as fh:
            rows = list(csv.DictReader(fh))
    assert len(rows) == t.size and set(rows[0]) == {"time", "x1", "x2", "x3", "w", "id"}
    with pytest.raises(ValueError, match="obsm"):
        ar.from_anndata(adata, "day", basis="X_umap")
    with pytest.raises(ValueError, match="time_key|no such column"):
        ar.from_anndata(adata, "hour")
