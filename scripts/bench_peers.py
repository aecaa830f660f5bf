"""Peer side of the side-by-side benchmark: times the same problems as `advreact bench` in
numpy / POT / GeomLoss and prints one JSON line per measurement (median of reps, peak RSS).

Called by scripts/bench_peers.sh; not needed to build, run or test the engine."""
import argparse, json, resource, sys, time
import numpy as np


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
    p.add_argument("--peer", required=True)
    a = p.parse_args()
    x, wa, y, wb = clouds(a.n, a.m, a.d)
    res = {"engine": a.peer, "problem": a.problem, "n": a.n, "m": a.m, "d": a.d}
    if a.problem == "mmd" and a.peer == "numpy":
        med, mn, out = timed(lambda: mmd_numpy(x, wa, y, wb), a.reps)
    elif a.problem in ("uot-iter", "uot-solve") and a.peer in ("pot", "numpy-log"):
        import ot
        M = sqdist(x, y)
        eps = 0.05 * float(np.median(M))
        iters = 100 if a.problem == "uot-iter" else 10_000
        if a.peer == "pot":
            f = lambda: ot.unbalanced.sinkhorn_unbalanced(wa, wb, M, eps, 1.0, numItermax=iters, stopThr=0 if a.problem == "uot-iter" else 1e-9)
        else:
            from scipy.special import logsumexp
            la, lb = np.log(wa), np.log(wb)
            kap = 1.0 / (1.0 + eps)

            def f():
                fpot, gpot = np.zeros(a.n), np.zeros(a.m)
                for _ in range(iters):
                    fpot = -kap * eps * logsumexp(lb[None, :] + (gpot[None, :] - M) / eps, axis=1)
                    gpot = -kap * eps * logsumexp(la[:, None] + (fpot[:, None] - M) / eps, axis=0)
                return fpot[0]
        med, mn, out = timed(f, a.reps)
        if a.problem == "uot-iter":
            med, mn = med / iters, mn / iters
        res["eps"] = eps
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
    else:
        print(json.dumps({"error": f"no peer {a.peer} for {a.problem}"}))
        return 0
    res.update(median_s=med, min_s=mn, peak_rss_mb=peak_mb(), check=float(out) if np.ndim(out) == 0 else None)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
