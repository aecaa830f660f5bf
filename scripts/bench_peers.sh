#!/usr/bin/env bash
# Side-by-side benchmark of the engine against numpy, POT and (with --geomloss) GeomLoss on the
# problems of the performance issue. Installs the peers into .venv-bench (PyPI), builds the engine,
# runs each problem alternating engine / peer REPS rounds, and prints medians, ratios and peak
# memory as a Markdown table (append it to results/performance.md). CI does not run this.
#
#   scripts/bench_peers.sh [--geomloss] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
GEOMLOSS=0; QUICK=0
for a in "$@"; do case "$a" in --geomloss) GEOMLOSS=1;; --quick) QUICK=1;; *) echo "unknown option $a" >&2; exit 2;; esac; done
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
# problem | n | d | peers | engine extra args
CASES=(
  "mmd|10000|10|numpy|"
  "uot-iter|10000|2|pot numpy-log|"
  "uot-iter|100000|2||"
  "usd-step|100000|10||--m 100000 --features 1000"
)
[ "$GEOMLOSS" = 1 ] && CASES+=("sinkhorn-div|4000|2|geomloss|")
out=$(mktemp)
for c in "${CASES[@]}"; do
  IFS='|' read -r prob n d peers extra <<<"$c"
  for r in $(seq "$ROUNDS"); do
    for t in 1 2; do
      $BIN bench "$prob" --n "$n" --m "$n" --d "$d" --reps 3 --threads "$t" $extra >>"$out" || echo "{\"error\":\"engine $prob failed\"}" >>"$out"
    done
    for p in $peers; do
      $PY "$prob" --n "$n" --m "$n" --d "$d" --reps 3 --peer "$p" >>"$out" || echo "{\"error\":\"$p $prob failed\"}" >>"$out"
    done
  done
done
"$VENV/bin/python" - "$out" <<'PY'
import json, sys, statistics as st, platform, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
errs = [r for r in rows if "error" in r]
rows = [r for r in rows if "error" not in r]
key = lambda r: (r["problem"], r["n"], r["d"], r["engine"] + (f" ({r['threads']}t)" if "threads" in r else ""))
groups = {}
for r in rows:
    groups.setdefault(key(r), []).append(r)
print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
print("| problem | n=m | d | engine | median s | peak MB | ratio to advreact (2t) |")
print("|---|---|---|---|---|---|---|")
for k in sorted(groups):
    g = groups[k]
    med = st.median(r["median_s"] for r in g)
    peak = max((r.get("peak_rss_mb") or 0) for r in g)
    ref = groups.get((k[0], k[1], k[2], "advreact (2t)"))
    ratio = med / st.median(r["median_s"] for r in ref) if ref else float("nan")
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {med:.4g} | {peak:.0f} | {ratio:.2f}× |")
for e in errs:
    print("error:", e["error"])
PY
