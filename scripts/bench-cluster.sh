#!/usr/bin/env bash
# Reproduces the cluster figures in docs/PERFORMANCE.md: acks=all produce of 1 KiB records
# and end-to-end latency at 10 MB/s on a three-node cluster (replication factor 3, every
# node on this machine, so every byte is written and fsynced three times to one disk) next
# to a single node in the same run, alternating, three times each (end-to-end on three nodes
# both at linger 0 and at linger 1 ms). Takes ~6 minutes. The
# failover figures come from scripts/bench-failover.sh.
# Usage: scripts/bench-cluster.sh [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results/cluster}
mkdir -p "$out"
cargo build --release -p sluice -p sluice-bench
bin=target/release/sluice

run() { # name, then bench args
  local name=$1 i=$2; shift 2
  "$bin" bench "$@" --json -q > "$out/$name-$i.json"
  echo "$name run $i: $(cat "$out/$name-$i.json")"
}

produce=(produce --count 500000 --record-size 1024 --acks all --partitions 8)
# 9766 records/s × 1024 B = 10 MB/s.
e2e=(e2e --rate 9766 --duration 10 --record-size 1024 --acks all --partitions 8)
for i in 1 2 3; do
  run produce-1k-acks-all-single "$i" "${produce[@]}" --start-broker
  run produce-1k-acks-all-rf3 "$i" "${produce[@]}" --cluster 3 --replication-factor 3
  run e2e-10mb-acks-all-single "$i" "${e2e[@]}" --start-broker
  run e2e-10mb-acks-all-rf3 "$i" "${e2e[@]}" --cluster 3 --replication-factor 3
  run e2e-10mb-acks-all-rf3-linger1 "$i" "${e2e[@]}" --cluster 3 --replication-factor 3 --linger-ms 1
done

python3 - "$out" <<'PY'
import json, statistics, sys, glob, os
out = sys.argv[1]
def runs(name):
    return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, f"{name}-[0-9].json")))]
def med(xs):
    return statistics.median(xs)
print()
for name in ["produce-1k-acks-all-single", "produce-1k-acks-all-rf3"]:
    r = runs(name)
    mb = [x["mb_per_sec"] for x in r]
    cpu = [x["broker"]["cpu_s_per_gb"] for x in r]
    print(f"{name}: median {med(mb):.1f} MB/s (runs {' / '.join(f'{v:.1f}' for v in mb)}), broker {med(cpu):.2f} CPU-s/GB")
for name in ["e2e-10mb-acks-all-single", "e2e-10mb-acks-all-rf3", "e2e-10mb-acks-all-rf3-linger1"]:
    r = runs(name)
    p50 = [x["e2e_latency_ms"]["p50_ms"] for x in r]
    p99 = [x["e2e_latency_ms"]["p99_ms"] for x in r]
    print(f"{name}: p50 {med(p50):.2f} ms, p99 {med(p99):.2f} ms (p99 runs {' / '.join(f'{v:.2f}' for v in p99)})")
PY
