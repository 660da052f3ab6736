#!/usr/bin/env bash
# Reproduces the failover table in docs/RELIABILITY.md: on a three-node cluster this
# machine runs (replication factor 3), 20 trials of each scenario of `sluice bench
# failover`: kill -9 of a partition leader, of an in-sync follower, of the metadata quorum
# leader, and rolling restarts (SIGTERM, node after node) under producers writing every
# partition — written by librdkafka, and once more by kafkajs (tests/node/cluster-producer.js,
# after scripts/install-test-deps.sh). Prints one summary line per figure. Takes ~12 minutes.
# Usage: scripts/bench-failover.sh [output-dir] [trials]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results/failover}
trials=${2:-20}
mkdir -p "$out"
cargo build --release -p sluice -p sluice-bench
bin=target/release/sluice

for scenario in kill-leader kill-follower kill-controller rolling-restart; do
  echo "== $scenario, $trials trials"
  "$bin" bench failover --cluster 3 --trials "$trials" --scenario "$scenario" --json \
    > "$out/$scenario.json"
done
echo "== rolling-restart under kafkajs, $trials trials"
"$bin" bench failover --cluster 3 --trials "$trials" --scenario rolling-restart \
  --kafkajs-producer tests/node/cluster-producer.js --json > "$out/rolling-restart-kafkajs.json"

python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print()
for scenario in ["kill-leader", "kill-follower", "kill-controller", "rolling-restart",
                 "rolling-restart-kafkajs"]:
    f = json.load(open(os.path.join(out, f"{scenario}.json")))
    for m in f["measures"]:
        print(f"{scenario} {m['name']}: median {m['median_ms']:.0f} ms, p99 {m['p99_ms']:.0f} ms, "
              f"max {m['max_ms']:.0f} ms over {len(m['values_ms'])} values ({m['what']})")
    if scenario.startswith("rolling-restart"):
        print(f"{scenario} client errors: {f['client_errors']}")
PY
