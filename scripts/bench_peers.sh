#!/usr/bin/env bash
# Side-by-side benchmark of the engine against numpy, POT and (with --geomloss) GeomLoss on the
# problems of the performance issue. Installs the peers into .venv-bench (PyPI), builds the engine,
# runs each problem alternating engine (1 and 2 threads) / peer ROUNDS rounds, and prints medians,
# ratios, peak memory and the engine's 1→2 thread speedup as Markdown tables (append them to
# results/performance.md). CI does not run this.
#
#   scripts/bench_peers.sh [--geomloss] [--quick]
#   BENCH_SCALE=small scripts/bench_peers.sh     # every row at n ≤ 2000: checks the pipeline only
#
# Both sides use the same problems and rules (src/bench.rs, scripts/bench_peers.py): n points
# N(0, I_d) vs m points N(0.5·1, I_d), uniform weights 1/n, 1/m; UOT: cost |x−y|², KL marginals
# τ = 1 (POT reg_m = 1), ε = 0.05 × the median cost over the first min(n,2000) × min(m,2000) pairs.
# The engine draws its clouds from its own RNG and the peers from numpy's: statistically the same
# clouds, not the same points (check values agree only up to sampling noise).
# Full size takes about 15 min on 2 idle cores (+ ~2 min with --geomloss); --quick: one round.
set -euo pipefail
cd "$(dirname "$0")/.."
GEOMLOSS=0; QUICK=0
for a in "$@"; do case "$a" in --geomloss) GEOMLOSS=1;; --quick) QUICK=1;; *) echo "unknown option $a" >&2; exit 2;; esac; done
SCALE=${BENCH_SCALE:-full}
case "$SCALE" in full|small) ;; *) echo "BENCH_SCALE must be full or small, got '$SCALE'" >&2; exit 2;; esac
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q numpy scipy pot
if [ "$GEOMLOSS" = 1 ]; then
  "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null || "$VENV/bin/pip" install -q torch
  "$VENV/bin/pip" install -q geomloss
fi
cargo build --release -q
BIN=target/release/advreact
PY="$VENV/bin/python scripts/bench_peers.py"
ROUNDS=3; [ "$QUICK" = 1 ] && ROUNDS=1
# problem | n | m | d | reps | peers | engine extra args
# Cases with peers alternate engine and peers ROUNDS times; engine-only cases run one round.
CASES=(
  "mmd|10000|10000|10|3|numpy|"
  "uot-iter|10000|10000|2|3|pot numpy-log|--iters 10"
  "sinkhorn-div|4000|4000|2|2|geomloss|"
  "sinkhorn-div-annealed|4000|4000|2|2||"
  "uot-iter|100000|100000|2|2||--iters 1"
  "usd-step|100000|100000|10|2||--features 1000"
)
# BENCH_SCALE=small: n → min(2000, max(100, n/50)) (distinct sizes stay distinct).
small() { local v=$(( $1 / 50 )); (( v < 100 )) && v=100; (( v > 2000 )) && v=2000; echo "$v"; }
out=$(mktemp)
for c in "${CASES[@]}"; do
  IFS='|' read -r prob n m d reps peers extra <<<"$c"
  if [ "$SCALE" = small ]; then n=$(small "$n"); m=$(small "$m"); fi
  [ "$GEOMLOSS" = 1 ] || peers=${peers//geomloss/}
  rounds=$ROUNDS; [ -z "${peers// /}" ] && rounds=1
  for r in $(seq "$rounds"); do
    for t in 1 2; do
      echo "# $prob n=$n m=$m d=$d: advreact ${t}t (round $r/$rounds)" >&2
      # shellcheck disable=SC2086
      $BIN bench "$prob" --n "$n" --m "$m" --d "$d" --reps "$reps" --threads "$t" $extra >>"$out" \
        || echo "{\"error\":\"advreact ${t}t $prob n=$n failed\"}" >>"$out"
    done
    for p in $peers; do
      echo "# $prob n=$n m=$m d=$d: $p (round $r/$rounds)" >&2
      $PY "$prob" --n "$n" --m "$m" --d "$d" --reps "$reps" --peer "$p" >>"$out" \
        || echo "{\"error\":\"$p $prob n=$n failed\"}" >>"$out"
    done
  done
done
"$VENV/bin/python" - "$out" "$SCALE" <<'PY'
import json, sys, statistics as st, platform, os
rows, errs = [], []
for l in open(sys.argv[1]):
    if not l.strip():
        continue
    try:
        r = json.loads(l)
    except ValueError:
        errs.append(f"unparsable line: {l.strip()[:200]}")
        continue
    if "error" in r:
        errs.append(r["error"])
    else:
        rows.append(r)
label = lambda r: r["engine"] + (f" ({r['threads']}t)" if "threads" in r else "")
groups = {}
for r in rows:
    groups.setdefault((r["problem"], r["n"], r["m"], r["d"]), {}).setdefault(label(r), []).append(r)
med = lambda g: st.median(r["median_s"] for r in g)
def notes(r):
    out = []
    if "iters" in r:
        out.append(f"{r['iters']} it/run, per iteration")
    if "eps" in r:
        out.append(f"ε={r['eps']:.4g}" + (f" ({r['eps_from']})" if "eps_from" in r else ""))
    if isinstance(r.get("iterations"), dict):
        out.append("iterations " + "/".join(f"{k} {v}" for k, v in r["iterations"].items()))
    if "converged" in r:
        out.append(f"converged {r['converged']}")
    if "features" in r:
        out.append(f"{r['features']} features")
    if "pairs_per_s" in r:
        out.append(f"{r['pairs_per_s']:.3g} pairs/s")
    if r.get("warnings"):
        out.append("warnings: " + "; ".join(r["warnings"]))
    return ", ".join(out)
print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; scale: {sys.argv[2]}")
print("engine clouds: its own RNG; peers: numpy's (same distributions, not the same points)")
print()
print("| problem | n | m | d | engine | median s | peak MB | ratio to advreact (2t) | check | notes |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k, by in groups.items():
    ref = by.get("advreact (2t)")
    for lab, g in by.items():
        m = med(g)
        peak = max((r.get("peak_rss_mb") or 0) for r in g)
        ratio = f"{m / med(ref):.2f}×" if ref else "n/a"
        chk = g[-1].get("check")
        chk = f"{chk:.6g}" if isinstance(chk, (int, float)) else "—"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {lab} | {m:.4g} | {peak:.0f} | {ratio} | {chk} | {notes(g[-1])} |")
print()
print("| problem | n | m | d | advreact 1t s | advreact 2t s | 1→2 thread speedup |")
print("|---|---|---|---|---|---|---|")
for k, by in groups.items():
    if "advreact (1t)" in by and "advreact (2t)" in by:
        m1, m2 = med(by["advreact (1t)"]), med(by["advreact (2t)"])
        print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {m1:.4g} | {m2:.4g} | {m1 / m2:.2f}× |")
for e in errs:
    print("error:", e)
sys.exit(1 if errs else 0)
PY
