#!/usr/bin/env bash
# Compares two builds of Sluice on the benchmarks of bench-all.sh, alternating them run by
# run (old, new, old, new, …) so that a noisy hour hurts both alike, and prints the median
# of each figure per build.
# Usage: scripts/bench-compare.sh OLD_DIR NEW_DIR [runs]
#   where each DIR holds target/release/{sluice,sluice-bench} (e.g. a git worktree of the
#   old commit, built with `cargo build --release -p sluice -p sluice-bench`).
set -euo pipefail
old=$1
new=$2
runs=${3:-3}
out=$(mktemp -d "${TMPDIR:-/tmp}/sluice-compare.XXXXXX")
trap 'rm -rf "$out/data"' EXIT

bench() { # build-dir, name, run, then bench args
  local dir=$1 name=$2 run=$3
  shift 3
  "$dir/target/release/sluice" bench "$@" --start-broker --json -q >"$out/$name.$(basename "$dir").$run.json"
}

# Prints "median of <figure>" for each build, from the JSON files of one benchmark.
report() { # name, jq-like path as python expression on the parsed object
  local name=$1 expr=$2 label=$3
  python3 - "$out" "$name" "$expr" "$label" "$old" "$new" <<'PY'
import json, statistics, sys, glob, os
out, name, expr, label, old, new = sys.argv[1:]
row = []
for d in (old, new):
    vals = []
    for f in sorted(glob.glob(f"{out}/{name}.{os.path.basename(d)}.*.json")):
        o = json.load(open(f))
        vals.append(eval(expr, {}, {"o": o}))
    row.append(f"{statistics.median(vals):.2f} ({', '.join(f'{v:.2f}' for v in vals)})")
print(f"{name:28} {label:22} old {row[0]:40} new {row[1]}")
PY
}

benches=(
  "produce-1k-acks-all|produce --count 1000000 --record-size 1024 --acks all --partitions 8"
  "produce-1k-acks-1|produce --count 1000000 --record-size 1024 --acks 1 --partitions 8"
  "produce-100b-acks-1|produce --count 3000000 --record-size 100 --acks 1 --partitions 8 --producers 2"
  "e2e-50mb-acks-all-l0.5|e2e --rate 48828 --duration 8 --record-size 1024 --acks all --partitions 8 --linger-ms 0.5"
)
for entry in "${benches[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  for run in $(seq 1 "$runs"); do
    for dir in "$old" "$new"; do
      # shellcheck disable=SC2086
      bench "$dir" "$name" "$run" $args
    done
    echo "$name run $run done" >&2
  done
done
# Consume reads one prepared log per build.
for dir in "$old" "$new"; do
  "$dir/target/release/sluice" bench produce --start-broker --broker-data-dir "$out/data/$(basename "$dir")" \
    --count 2000000 --record-size 1024 --acks 1 --partitions 8 -q >/dev/null
done
for run in $(seq 1 "$runs"); do
  for dir in "$old" "$new"; do
    bench "$dir" consume-1k "$run" consume --broker-data-dir "$out/data/$(basename "$dir")" --consumers 4
  done
  echo "consume-1k run $run done" >&2
done

echo
for name in produce-1k-acks-all produce-1k-acks-1 produce-100b-acks-1 consume-1k; do
  report "$name" 'o["mb_per_sec"]' "MB/s"
  report "$name" 'o["broker"]["cpu_s_per_gb"]' "broker CPU-s/GB"
done
report e2e-50mb-acks-all-l0.5 'o["e2e_latency_ms"]["p50_ms"]' "e2e p50 ms"
report e2e-50mb-acks-all-l0.5 'o["e2e_latency_ms"]["p99_ms"]' "e2e p99 ms"
