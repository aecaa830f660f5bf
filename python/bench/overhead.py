"""Call overhead of the Python package against the Rust library, and POT and GeomLoss on the same problems.

Problems (the issue's): ``uot`` at n = m = 10⁴ (d = 2) — cost |x − y|², KL marginals
τ_a = τ_b = 1, ε = 0.05 × the median cost, tolerance 1e-6 on the relative marginal errors —
and ``mmd2`` at n = m = 10⁴ (d = 10, bandwidth 1). Clouds: N(0, I_d) vs N(0.5·1, I_d), uniform
weights 1/n (numpy seed 0), written as snapshot CSVs for the Rust side.

Timed, all in one run:
- ``rust``: the library calls in process (``python/examples/overhead.rs``: ``uot_clouds``,
  ``mmd_between`` on the same clouds and options; each process: one warm-up, one timed call);
- ``python``: ``advreact.uot`` / ``advreact.mmd2`` on numpy arrays (conversion, worker thread,
  GIL release, result arrays included). The two are interleaved (one Rust process, then one
  Python call, ``--reps`` rounds) so that both see the same load; the overhead "between
  processes" is the median over the rounds of the per-round ratio ``python / rust``, minus 1 (the
  medians of each side are printed too). Two processes timed seconds apart see different load, so
  this ratio carries the machine's round-to-round noise (±10 % on a shared VM);
- the overhead "in the call": the Python call's wall time against the seconds the engine spent
  inside that same call (``UotResult.seconds``; for ``mmd2`` the public function's body, conversion
  then ``_core.mmd2``, which returns them). Same call, same load: this is the binding's own cost
  (argument checks and copies, the worker-thread hand-off, result objects), median and max over
  the rounds;
- ``pot``: ``ot.unbalanced.sinkhorn_unbalanced`` (numpy backend, ``method="sinkhorn"``, the same
  ε, reg_m = 1, stopThr 1e-6) — dense n × m matrices; POT has no MMD. One warm-up, one timed call;
- ``geomloss``: ``geomloss.SamplesLoss`` on float64 CPU tensors, ``backend="tensorized"`` (dense
  n × m; the ``online`` backend needs pykeops, not used). One warm-up, one timed call.
  ``uot``: ``SamplesLoss("sinkhorn", p=2, blur, reach, debias=False, potentials=True)``. GeomLoss's
  cost for p = 2 is ½|x − y|², its entropic and marginal weights are blur² and reach², so our
  problem (|x − y|², ε, τ) is exactly twice GeomLoss's with blur = √(ε/2), reach = √(τ/2): the
  same plan, potentials f = 2 F, g = 2 G. GeomLoss runs its own ε-scaling schedule (ε from the
  cloud diameter² down to blur², factor ``scaling`` = 0.5 on blur per step, one iteration per
  step, then a final extrapolation) and has no tolerance: same problem, its own solver schedule.
  Checked: max |f − 2F| / max |f| and the plan mass Σ a_i b_j exp((F_i + G_j − ½|x_i − y_j|²)/blur²)
  against ours. ``mmd2``: ``SamplesLoss("gaussian", blur=s)``, kernel exp(−|x − y|²/(2 s²)),
  value ½ ‖α − β‖²_k = ½ MMD² (same biased V-statistic, weights 1/n): checked 2 × value = ours.

Usage: ``python python/bench/overhead.py [--n 10000] [--reps 3] [--no-pot] [--no-geomloss] [--geomloss-scaling 0.5]``
from the repository root, with ``advreact`` installed (``pip install ./python``), cargo on the
PATH, and for the peers ``pot``, ``torch`` and ``geomloss`` installed (a missing peer is reported
in its column, not fatal).
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


def geomloss_uot(x, y, a, b, eps, tau, ours, scaling=0.5):
    """GeomLoss's unbalanced Sinkhorn on our problem: (seconds, potential gap, its plan mass)."""
    import torch
    from geomloss import SamplesLoss

    X, Y, A, B = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for v in (x, y, a, b))
    blur, reach = (eps / 2) ** 0.5, (tau / 2) ** 0.5
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, reach=reach, debias=False, potentials=True, scaling=scaling,
                       backend="tensorized")
    t, (F, G) = median_time(1, lambda: loss(A, X, B, Y))
    F, G = F.reshape(-1), G.reshape(-1)
    if not (torch.isfinite(F).all() and torch.isfinite(G).all()):
        raise ValueError("geomloss uot: non-finite dual potentials F, G")
    f = torch.from_numpy(np.asarray(ours.f, dtype=np.float64))
    gap = float((f - 2 * F).abs().max() / f.abs().max())
    # Plan mass from GeomLoss's potentials in its own units (cost ½|x − y|², ε' = blur²), by rows.
    e2, logs = blur ** 2, []
    for i in range(0, X.shape[0], 1000):
        c = 0.5 * ((X[i:i + 1000, None, :] - Y[None, :, :]) ** 2).sum(-1)
        z = (F[i:i + 1000, None] + G[None, :] - c) / e2 + torch.log(A[i:i + 1000, None]) + torch.log(B)[None, :]
        logs.append(torch.logsumexp(z.reshape(-1), 0))
    mass = float(torch.logsumexp(torch.stack(logs), 0).exp())
    return t, gap, mass


def geomloss_mmd2(x, y, a, b, s):
    """GeomLoss's Gaussian kernel loss (½ MMD²) on our clouds: (seconds, MMD² = 2 × its value)."""
    import torch
    from geomloss import SamplesLoss

    X, Y, A, B = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for v in (x, y, a, b))
    loss = SamplesLoss("gaussian", blur=s, backend="tensorized")
    t, v = median_time(1, lambda: loss(A, X, B, Y))
    if not np.isfinite(float(v)):
        raise ValueError("geomloss mmd2: non-finite kernel loss")
    return t, 2 * float(v)


def peer(row, name, f):
    """Run one peer, recording its failure (e.g. not installed) in the row instead of stopping."""
    try:
        return f()
    except Exception as e:  # noqa: BLE001 - a missing or failing peer is reported, not fatal
        row[f"{name}_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"# {name} failed: {row[name + '_error']}", file=sys.stderr)
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-pot", action="store_true")
    p.add_argument("--no-geomloss", action="store_true")
    p.add_argument("--geomloss-scaling", type=float, default=0.5,
                   help="GeomLoss's blur ratio between ε-scaling steps (its default 0.5; near 1 it converges)")
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
            rust_s, py_s, engine_s, r, res = [], [], [], None, None
            for _ in range(args.reps):
                out = subprocess.run([str(exe), f"{d}/x.csv", f"{d}/y.csv", repr(eps), repr(s), "1"],
                                     capture_output=True, text=True, check=True).stdout
                r = json.loads(out)
                rust_s.append(r["uot_s"] if what == "uot" else r["mmd_s"])
                t0 = time.perf_counter()
                if what == "uot":
                    res = ar.uot(x2, y2, a2, b2, eps=eps, tau_a=1.0, tau_b=1.0, tol=1e-6)
                    engine = res.seconds
                else:
                    # The body of the public `ar.mmd2` (conversion, then the core call), so that the
                    # engine's own seconds inside the call are visible.
                    res, _, engine = ar._core.mmd2(*ar._pair(x10, y10, a10, b10), s, False, None)
                py_s.append(time.perf_counter() - t0)
                engine_s.append(engine)
            ratios = [p_ / r_ for p_, r_ in zip(py_s, rust_s)]
            # In-call overhead: the same call's wall time against the engine's seconds inside it
            # (measured on the worker thread): no second process, so the machine's load cancels.
            in_call = [p_ / e_ - 1 for p_, e_ in zip(py_s, engine_s)]
            row = {"rust_s": float(np.median(rust_s)), "python_s": float(np.median(py_s)),
                   "rust_runs_s": rust_s, "python_runs_s": py_s, "engine_runs_s": engine_s, "ratios": ratios,
                   "overhead": float(np.median(ratios)) - 1, "in_call_overhead": float(np.median(in_call)),
                   "in_call_overhead_max": float(max(in_call)),
                   "in_call_overhead_ms": float(np.median([1e3 * (p_ - e_) for p_, e_ in zip(py_s, engine_s)]))}
            if what == "uot":
                rep = res.report
                assert rep["dual_objective"] == r["uot_dual"], "not the same solve"
                row.update(problem=f"uot n=m={n} d=2", iterations=rep["iterations"],
                           mass=rep["transported_mass"])
                if not args.no_pot:
                    def pot():
                        import ot
                        M = ot.dist(x2, y2)
                        t_pot, P = median_time(1, lambda: ot.unbalanced.sinkhorn_unbalanced(
                            a2, b2, M, eps, 1.0, method="sinkhorn", numItermax=10_000, stopThr=1e-6))
                        row["pot_s"] = t_pot
                        row["pot_mass"] = float(P.sum())
                    peer(row, "pot", pot)
                if not args.no_geomloss:
                    g = peer(row, "geomloss", lambda: geomloss_uot(x2, y2, a2, b2, eps, 1.0, res, args.geomloss_scaling))
                    if g is not None:
                        row.update(geomloss_s=g[0], geomloss_potential_gap=g[1], geomloss_mass=g[2])
                msg = f"# uot: ours mass {row['mass']:.10f} ({row['iterations']} iterations)"
                if "pot_mass" in row:
                    msg += f"; POT mass {row['pot_mass']:.10f}"
                if "geomloss_mass" in row:
                    msg += (f"; GeomLoss mass {row['geomloss_mass']:.10f}, max|f - 2F|/max|f| "
                            f"{row['geomloss_potential_gap']:.2e}")
                print(msg, file=sys.stderr)
            else:
                assert res == r["mmd2"] == ar.mmd2(x10, y10, a10, b10, bandwidth=s), "not the same MMD²"
                row.update(problem=f"mmd2 n=m={n} d=10", mmd2=res)
                if not args.no_geomloss:
                    g = peer(row, "geomloss", lambda: geomloss_mmd2(x10, y10, a10, b10, s))
                    if g is not None:
                        row.update(geomloss_s=g[0], geomloss_mmd2=g[1])
                print(f"# mmd2: ours {res!r}" + (f"; GeomLoss 2 x value {row['geomloss_mmd2']!r}"
                                                 if "geomloss_mmd2" in row else ""), file=sys.stderr)
            rows.append(row)
    try:
        import torch
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    except ImportError:
        pass
    print("| problem | Rust library (s) | Python advreact (s) | python/rust per round | overhead (between processes) "
          "| overhead in the call: median (max), ms | POT (s) | GeomLoss (s) | check: ours vs peers |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cols = []
        for k in ("pot", "geomloss"):
            cols.append(f"{r[k + '_s']:.3f}" if k + "_s" in r else ("failed" if k + "_error" in r else "n/a"))
        if "mass" in r:
            check = f"mass {r['mass']:.6f}"
            if "pot_mass" in r:
                check += f"; POT {r['pot_mass']:.6f}"
            if "geomloss_mass" in r:
                check += f"; GeomLoss {r['geomloss_mass']:.6f}, max|f−2F|/max|f| {r['geomloss_potential_gap']:.1e}"
        else:
            check = f"MMD² {r['mmd2']:.12g}"
            if "geomloss_mmd2" in r:
                check += f"; GeomLoss 2×value {r['geomloss_mmd2']:.12g}"
        per = ", ".join(f"{q:.3f}" for q in r["ratios"])
        print(f"| {r['problem']} | {r['rust_s']:.3f} | {r['python_s']:.3f} | {per} "
              f"| {100 * r['overhead']:+.1f} % | {100 * r['in_call_overhead']:+.3f} % "
              f"({100 * r['in_call_overhead_max']:+.3f} %), {r['in_call_overhead_ms']:.2f} ms "
              f"| {cols[0]} | {cols[1]} | {check} |")
    print(json.dumps(rows), file=sys.stderr)

if __name__ == "__main__":
    main()
