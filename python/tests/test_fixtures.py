"""The binding against the independent fixtures of ../shared/fixtures, at the Rust tests'
tolerances (tests/uot.rs, tests/mmd.rs), and against a live POT solve."""

import numpy as np
import pytest

import advreact as ar
from conftest import fixture


def rel(got, want, scale=None):
    scale = abs(want) if scale is None else scale
    return abs(got - want) / max(scale, 1e-300)


def test_uot_matches_pot_fixture():
    fx = fixture("uot_sinkhorn.json")
    assert len(fx["cases"]) == 7
    for c in fx["cases"]:
        name = c["name"]
        x, y = np.array(c["x"], dtype=float), np.array(c["y"], dtype=float)
        a, b = np.array(c["a"], dtype=float), np.array(c["b"], dtype=float)
        eps, tau = c["reg"], c["reg_m"]
        # As tests/uot.rs: solved to a marginal error of 1e-13, compared to 1e-7 relative.
        r = ar.uot(x, y, a, b, eps=eps, tau_a=tau, tau_b=tau, tol=1e-13, max_iter=100_000)
        rep, ref = r.report, c["reference"]
        assert rep["converged"], name
        for got, want in zip(r.row_mass, ref["row_sums"]):
            assert rel(got, want) <= 1e-7, (name, got, want)
        for got, want in zip(r.col_mass, ref["col_sums"]):
            assert rel(got, want) <= 1e-7, (name, got, want)
        assert rel(rep["transported_mass"], ref["total_mass"]) <= 1e-7, name
        assert rel(rep["transport_cost"], ref["linear_cost"]) <= 1e-7, name
        assert rel(rep["primal_objective"], ref["objective"]) <= 1e-7, name
        assert rel(rep["dual_objective"], ref["objective"]) <= 1e-7, name
        for run in c["runs"]:
            if run["method"] in c["trusted_methods"]:
                assert rel(rep["primal_objective"], run["primal_objective_generalized_kl"]) <= 1e-7, name
        ind = c["independent_logdomain"]
        scale = max([eps] + [abs(v) for v in ind["f"] + ind["g"]])
        assert np.max(np.abs(r.f - ind["f"])) <= 1e-7 * scale, name
        assert np.max(np.abs(r.g - ind["g"])) <= 1e-7 * scale, name


def test_uot_plan_is_the_closed_form_of_the_potentials():
    """plan() and barycentric_map() against π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε) in numpy."""
    c = fixture("uot_sinkhorn.json")["cases"][0]
    x, y = np.array(c["x"], dtype=float), np.array(c["y"], dtype=float)
    a, b = np.array(c["a"], dtype=float), np.array(c["b"], dtype=float)
    eps = c["reg"]
    r = ar.uot(x, y, a, b, eps=eps, tau_a=c["reg_m"], tau_b=c["reg_m"], tol=1e-13, max_iter=100_000)
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    pi = a[:, None] * b[None, :] * np.exp((r.f[:, None] + r.g[None, :] - C) / eps)
    i, j, v = r.plan(sparse=False)
    dense = np.zeros_like(pi)
    dense[i, j] = v
    assert np.max(np.abs(dense - pi)) <= 1e-13 * pi.max()
    assert np.allclose(pi.sum(1), r.row_mass, rtol=1e-12, atol=0)
    t = r.barycentric_map()
    assert np.max(np.abs(t - pi @ y / pi.sum(1)[:, None])) <= 1e-12 * (1 + np.abs(y).max())
    top = r.plan(top_k=1, sparse=False)
    assert np.array_equal(top[1], pi.argmax(1))
    sp = pytest.importorskip("scipy.sparse")
    coo = r.plan(top_k=2)
    assert isinstance(coo, sp.coo_array) and coo.shape == pi.shape and coo.nnz == 2 * len(x)


def test_uot_matches_live_pot():
    """POT's `sinkhorn_unbalanced` (the fixture's trusted method and stopping rule) on every
    fixture case: plan marginals and mass to 1e-7 relative (as tests/uot.rs)."""
    ot = pytest.importorskip("ot")
    for c in fixture("uot_sinkhorn.json")["cases"]:
        x, y = np.array(c["x"], dtype=float), np.array(c["y"], dtype=float)
        a, b = np.array(c["a"], dtype=float), np.array(c["b"], dtype=float)
        eps, tau = c["reg"], c["reg_m"]
        run = next(r for r in c["runs"] if r["method"] == c["trusted_methods"][0])
        P = ot.unbalanced.sinkhorn_unbalanced(
            a, b, ot.dist(x, y), eps, tau, method=run["method"], numItermax=run["numItermax"],
            stopThr=run["stopThr"],
        )
        r = ar.uot(x, y, a, b, eps=eps, tau_a=tau, tau_b=tau, tol=1e-13, max_iter=100_000)
        for got, want in zip(np.concatenate([r.row_mass, r.col_mass]), np.concatenate([P.sum(1), P.sum(0)])):
            assert rel(got, want) <= 1e-7, (c["name"], got, want)
        assert rel(r.report["transported_mass"], P.sum()) <= 1e-7, c["name"]


def test_mmd_matches_fixture():
    fx = fixture("mmd.json")
    for c in fx["cases"]:
        x, y = np.array(c["x"], dtype=float), np.array(c["y"], dtype=float)
        a, b = np.array(c["a"], dtype=float), np.array(c["b"], dtype=float)
        got = ar.mmd2(x, y, a, b, bandwidth=c["s"])
        scale = abs(c["term_xx"]) + abs(c["term_yy"]) + 2 * abs(c["term_xy"])
        # As tests/mmd.rs: 1e-10 relative, to the terms' scale when MMD² cancels to ~0.
        assert rel(got, c["mmd2"], max(abs(c["mmd2"]), 1e-6 * scale)) <= 1e-10, c["name"]


def test_sinkhorn_divergence_gradients_are_finite_differences():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(15, 2)) + 0.7
    a, b = rng.uniform(0.5, 1.5, 12), rng.uniform(0.5, 1.5, 15)
    kw = dict(blur=0.3, reach=1.0, tol=1e-13, max_iter=100_000)
    s, gx, ga = ar.sinkhorn_divergence(x, y, a, b, **kw)
    assert s > 0 and gx.shape == (12, 2) and ga.shape == (12,)
    s0, _, _ = ar.sinkhorn_divergence(x, x, a, a, **kw)
    assert abs(s0) <= 1e-10
    h = 1e-5
    for i in (0, 5):
        ap, am = a.copy(), a.copy()
        ap[i] += h
        am[i] -= h
        fd = (ar.sinkhorn_divergence(x, y, ap, b, **kw)[0] - ar.sinkhorn_divergence(x, y, am, b, **kw)[0]) / (2 * h)
        assert abs(fd - ga[i]) <= 1e-6 * (1 + abs(ga[i])), (i, fd, ga[i])
        xp, xm = x.copy(), x.copy()
        xp[i, 1] += h
        xm[i, 1] -= h
        fd = (ar.sinkhorn_divergence(xp, y, a, b, **kw)[0] - ar.sinkhorn_divergence(xm, y, a, b, **kw)[0]) / (2 * h)
        assert abs(fd - gx[i, 1]) <= 1e-6 * (1 + abs(gx[i, 1])), (i, fd, gx[i, 1])
