"""Call overhead of the Python package against the Rust library, and POT on the same problems.

Problems (the issue's): ``uot`` at n = m = 10⁴ (d = 2) — cost |x − y|², KL marginals
τ_a = τ_b = 1, ε = 0.05 × the median cost, tolerance 1e-6 on the relative marginal errors —
and ``mmd2`` at n = m = 10⁴ (d = 10, bandwidth 1). Clouds: N(0, I_d) vs N(0.5·1, I_d), uniform
weights 1/n (numpy seed 0), written as snapshot CSVs for the Rust side.

Timed, medians over ``--reps`` runs after one warm-up, all in one run:
- ``rust``: the library calls in process (``python/examples/overhead.rs``: ``uot_clouds``,
  ``mmd_between`` on the same clouds and options);
- ``python``: ``advreact.uot`` / ``advreact.mmd2`` on numpy arrays (conversion, worker thread,
  GIL release, result arrays included); the overhead is ``python / rust − 1``. The two are
  interleaved (one Rust process, then one Python call, ``--reps`` times) so that both see the
  same load;
- ``pot``: ``ot.unbalanced.sinkhorn_unbalanced`` (numpy backend, ``method="sinkhorn"``, the same
  ε, reg_m = 1, stopThr 1e-6) — dense n × m matrices; POT has no MMD.
GeomLoss is not timed here: it needs PyTorch, whose CPU-only wheels are not on the package
index this project reaches (the index's default build brings the CUDA libraries);
``scripts/bench_peers.sh --geomloss`` times GeomLoss against the engine.

Usage: ``python python/bench/overhead.py [--n 10000] [--reps 3] [--no-pot]`` from the repository
root, with ``advreact`` installed (``pip install ./python``) and cargo on the PATH.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import advreact as ar

REPO = Path(__file__).resolve().parents[2]


def clouds(n, m, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.5, np.full(n, 1.0 / n), np.full(m, 1.0 / m)


def write(path, x, w):
    d = x.shape[1]
    with open(path, "w") as fh:
        fh.write(",".join([f"x{k + 1}" for k in range(d)] + ["w"]) + "\n")
        for row, wi in zip(x, w):
            fh.write(",".join(repr(float(v)) for v in row) + f",{float(wi)!r}\n")


def median_time(reps, f):
    out = f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-pot", action="store_true")
    args = p.parse_args()
    n = args.n
    x2, y2, a2, b2 = clouds(n, n, 2)
    x10, y10, a10, b10 = clouds(n, n, 10)
    rng = np.random.default_rng(1)
    i, j = rng.integers(0, n, 2000), rng.integers(0, n, 2000)
    eps = 0.05 * float(np.median(((x2[i] - y2[j]) ** 2).sum(1)))
    s = 1.0
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "advreact-python", "--example", "overhead"],
                   cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    exe = target / "release" / "examples" / "overhead"
    rows = []
    with tempfile.TemporaryDirectory() as d:
        # The Rust binary times uot on the d = 2 clouds and mmd on the d = 10 ones: two runs.
        for (xa, xb, wa, wb, what) in [(x2, y2, a2, b2, "uot"), (x10, y10, a10, b10, "mmd")]:
            write(f"{d}/x.csv", xa, wa)
            write(f"{d}/y.csv", xb, wb)
            # Interleaved: one Rust process (one warm-up, one timed call) then one Python call, so
            # both see the same machine load; medians over the repetitions.
            rust_s, py_s, r, res = [], [], None, None
            for _ in range(args.reps):
                out = subprocess.run([str(exe), f"{d}/x.csv", f"{d}/y.csv", repr(eps), repr(s), "1"],
                                     capture_output=True, text=True, check=True).stdout
                r = json.loads(out)
                rust_s.append(r["uot_s"] if what == "uot" else r["mmd_s"])
                t0 = time.perf_counter()
                if what == "uot":
                    res = ar.uot(x2, y2, a2, b2, eps=eps, tau_a=1.0, tau_b=1.0, tol=1e-6)
                else:
                    res = ar.mmd2(x10, y10, a10, b10, bandwidth=s)
                py_s.append(time.perf_counter() - t0)
            row = {"rust_s": float(np.median(rust_s)), "python_s": float(np.median(py_s))}
            if what == "uot":
                rep = res.report
                assert rep["dual_objective"] == r["uot_dual"], "not the same solve"
                row.update(problem=f"uot n=m={n} d=2", iterations=rep["iterations"])
                if not args.no_pot:
                    import ot
                    M = ot.dist(x2, y2)
                    t_pot, P = median_time(1, lambda: ot.unbalanced.sinkhorn_unbalanced(
                        a2, b2, M, eps, 1.0, method="sinkhorn", numItermax=10_000, stopThr=1e-6))
                    row["pot_s"] = t_pot
                    row["pot_mass_vs_ours"] = float(P.sum() / rep["transported_mass"] - 1)
                    del M, P
            else:
                assert res == r["mmd2"], "not the same MMD²"
                row["problem"] = f"mmd2 n=m={n} d=10"
            row["overhead"] = row["python_s"] / row["rust_s"] - 1
            rows.append(row)
    print(f"| problem | Rust library (s) | Python advreact (s) | overhead | POT (s) |")
    print(f"|---|---|---|---|---|")
    for r in rows:
        pot = f"{r['pot_s']:.3f}" if "pot_s" in r else "n/a"
        print(f"| {r['problem']} | {r['rust_s']:.3f} | {r['python_s']:.3f} | {100 * r['overhead']:+.1f} % | {pot} |")
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
