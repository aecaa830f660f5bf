"""Peer side of the side-by-side benchmark: times the same problems as `advreact bench` in
numpy / POT / GeomLoss and prints one JSON line per measurement (median of reps, peak RSS).

Problems and peers (clouds: n points N(0, I_d) vs m points N(0.5·1, I_d), uniform weights 1/n,
1/m, drawn from numpy's RNG — statistically the same clouds as the engine's, not the same points):
- mmd / numpy: exact Gaussian-kernel MMD² (bandwidth 1), BLAS expansion + exp;
- uot-iter / pot: POT `ot.unbalanced.sinkhorn_unbalanced` (dense scaling form, reg_type "kl"; the
  cost matrix is built once outside the timing, the kernel matrix and the final plan inside each
  run, amortised over its iterations; check = the plan's mass);
- uot-iter / numpy-log: the log-domain iteration with scipy's logsumexp (both half-updates);
- uot-solve / pot: a full POT solve (its own stopping rule, stopThr = 1e-6 on the scaling change);
- sinkhorn-div / geomloss: `SamplesLoss("sinkhorn", p=2, blur=0.05, reach=1, scaling=0.5)`,
  tensorized, value + gradient in the source positions.
UOT problems: cost |x − y|², reg_m = 1 (KL marginals τ = 1), reg = ε = 0.05 × the median cost over
the first min(n, 2000) × min(m, 2000) pairs (the whole matrix when it fits) — the engine's rule.
uot-iter times are per iteration (`--iters` per run: 100 for POT, 3 for the ~3 s/iteration numpy
log-domain path at n = 10^4).

Called by scripts/bench_peers.sh; not needed to build, run or test the engine."""
import argparse, json, resource, sys, time, warnings
import numpy as np

MEDIAN_SAMPLE = 2000  # the engine's bench::MEDIAN_SAMPLE
DEFAULT_ITERS = {"pot": 100, "numpy-log": 3}


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def clouds(n, m, d, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d))
    y = r.standard_normal((m, d)) + 0.5
    return x, np.full(n, 1.0 / n), y, np.full(m, 1.0 / m)


def timed(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(min(ts)), out


def sqdist(x, y):
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T, 0.0)


def median_cost(x, y):
    """Median of |x_i − y_j|² over the first min(n, 2000) × min(m, 2000) pairs (summed per
    coordinate, no BLAS expansion: the engine's arithmetic); returns (median, from a subsample)."""
    xs, ys = x[:MEDIAN_SAMPLE], y[:MEDIAN_SAMPLE]
    c = np.zeros((len(xs), len(ys)))
    for k in range(x.shape[1]):
        c += (xs[:, k, None] - ys[None, :, k]) ** 2
    return float(np.median(c)), len(xs) < len(x) or len(ys) < len(y)


def mmd_numpy(x, a, y, b, s=1.0):
    k = lambda p, q: np.exp(-sqdist(p, q) / (2 * s * s))
    return a @ k(x, x) @ a + b @ k(y, y) @ b - 2 * a @ k(x, y) @ b


def main():
    p = argparse.ArgumentParser()
    p.add_argument("problem")
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--m", type=int, default=4000)
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--iters", type=int, default=None, help="uot-iter: iterations per run")
    p.add_argument("--peer", required=True)
    a = p.parse_args()
    x, wa, y, wb = clouds(a.n, a.m, a.d)
    res = {"engine": a.peer, "problem": a.problem, "n": a.n, "m": a.m, "d": a.d}
    if a.problem == "mmd" and a.peer == "numpy":
        med, mn, out = timed(lambda: mmd_numpy(x, wa, y, wb), a.reps)
    elif (a.problem == "uot-iter" and a.peer in ("pot", "numpy-log")) or (
        a.problem == "uot-solve" and a.peer == "pot"
    ):
        import ot

        med_c, sub = median_cost(x, y)
        eps = 0.05 * med_c
        M = sqdist(x, y)
        if a.problem == "uot-iter":
            iters = a.iters or DEFAULT_ITERS[a.peer]
            res["iters"] = iters
        if a.peer == "pot":
            kw = dict(numItermax=iters, stopThr=0) if a.problem == "uot-iter" else dict(numItermax=10_000, stopThr=1e-6)
            warned = []

            def f():
                # POT stops early, with a warning, on overflow/underflow: then the per-iteration
                # time would be wrong; the warnings are reported.
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter("always")
                    plan = ot.unbalanced.sinkhorn_unbalanced(wa, wb, M, eps, 1.0, **kw)
                warned.extend(str(x.message) for x in w)
                return float(plan.sum())
        else:
            from scipy.special import logsumexp

            la, lb = np.log(wa), np.log(wb)
            kap = 1.0 / (1.0 + eps)  # τ/(τ + ε), τ = 1

            def f():
                fpot, gpot = np.zeros(a.n), np.zeros(a.m)
                for _ in range(iters):
                    fpot = -kap * eps * logsumexp(lb[None, :] + (gpot[None, :] - M) / eps, axis=1)
                    gpot = -kap * eps * logsumexp(la[:, None] + (fpot[:, None] - M) / eps, axis=0)
                return fpot[0]

        med, mn, out = timed(f, a.reps)
        if a.problem == "uot-iter":
            med, mn = med / iters, mn / iters
            res["pairs_per_s"] = 2.0 * a.n * a.m / med
        res.update(eps=eps, eps_from="subsample" if sub else "full", tau=1.0, cost="sqeuclidean")
        if a.peer == "pot" and warned:
            res["warnings"] = sorted(set(warned))
    elif a.problem == "sinkhorn-div" and a.peer == "geomloss":
        import torch
        from geomloss import SamplesLoss

        torch.set_num_threads(2)
        L = SamplesLoss("sinkhorn", p=2, blur=0.05, reach=1.0, scaling=0.5, backend="tensorized")
        xt = torch.tensor(x, requires_grad=True)
        yt, at, bt = torch.tensor(y), torch.tensor(wa), torch.tensor(wb)

        def f():
            xt.grad = None
            v = L(at, xt, bt, yt)
            v.backward()
            return float(v)

        med, mn, out = timed(f, a.reps)
        res.update(eps=0.05**2, rho=1.0, grad_norm=float(xt.grad.norm()))
    else:
        print(json.dumps({"error": f"no peer {a.peer} for {a.problem}"}))
        return 0
    res.update(median_s=med, min_s=mn, peak_rss_mb=peak_mb(), check=float(out) if np.ndim(out) == 0 else None)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
