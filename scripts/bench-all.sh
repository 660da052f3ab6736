#!/usr/bin/env bash
# Reproduces the figures in docs/PERFORMANCE.md: every benchmark three times with
# a release build, plus the disk limit measured in the same run. Takes ~8 minutes.
# Usage: scripts/bench-all.sh [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results}
mkdir -p "$out"
cargo build --release -p sluice -p sluice-bench
bin=target/release/sluice
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "==> disk: dd 2 GiB with fdatasync"
dd if=/dev/zero of="$work/dd" bs=1M count=2048 conv=fdatasync 2>&1 | tail -1 | tee "$out/disk.txt"
rm -f "$work/dd"

run() { # name, then bench args
  local name=$1; shift
  for i in 1 2 3; do
    "$bin" bench "$@" --start-broker --json -q > "$out/$name-$i.json"
    echo "$name run $i: $(cat "$out/$name-$i.json")"
  done
}

run produce-1k-acks-all produce --count 1000000 --record-size 1024 --acks all --partitions 8
run produce-1k-acks-1 produce --count 1000000 --record-size 1024 --acks 1 --partitions 8
run produce-100b-acks-1 produce --count 3000000 --record-size 100 --acks 1 --partitions 8 --producers 2
rm -rf "$work/consume"
"$bin" bench produce --start-broker --broker-data-dir "$work/consume" --count 2000000 --record-size 1024 --acks 1 --partitions 8 -q >/dev/null
run consume-1k consume --broker-data-dir "$work/consume" --consumers 4
run e2e-50mb-acks-all e2e --rate 48828 --duration 10 --record-size 1024 --acks all --partitions 8
run e2e-50mb-acks-all-linger1 e2e --rate 48828 --duration 10 --record-size 1024 --acks all --partitions 8 --linger-ms 1
run e2e-50mb-acks-all-linger0.5 e2e --rate 48828 --duration 10 --record-size 1024 --acks all --partitions 8 --linger-ms 0.5

echo "==> startup after kill -9 with 2 GB of log"
scripts/bench-startup.sh "$bin" "$work/startup" | tee "$out/startup.txt"

echo "==> idle: RSS with 10 topics, CPU of 1,000 idle partitions"
scripts/bench-idle.sh "$bin" | tee "$out/idle.txt"
