#!/usr/bin/env bash
# Start-up of a broker whose __consumer_offsets holds 1,000,000 offset commits of 100 groups,
# before and after the log cleaner compacted it (docs/PERFORMANCE.md, "Log compaction").
#
#   1. A broker with the log cleaner off gets 100 groups x 1,000 commits of 10 partitions
#      each: 1,000,000 offset commits (crates/client/examples/commit_load.rs).
#      __consumer_offsets has 128 KiB segments here (--offsets-topic-segment-bytes, or
#      SEGMENT_BYTES), so that most commits lie in sealed segments, the ones a cleaner may
#      compact; with Kafka's 100 MiB a partition that small is never compacted, in Kafka as
#      in Sluice. What stays in the active segments is replayed whole.
#   2. It is restarted 3 times with the cleaner still off (SIGTERM before each restart):
#      the time from `sluice serve` to the first answered Metadata request, and the records
#      the coordinator replayed.
#   3. It runs with the cleaner on until every __consumer_offsets partition is clean, then
#      is restarted 3 times the same way.
#
# Usage: scripts/bench-coordinator-startup.sh [sluice-binary]   (default target/release/sluice)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sluice}
cargo build --release -q -p sluice-client --example commit_load
load=target/release/examples/commit_load
dir=$(mktemp -d)
port=$((30000 + RANDOM % 20000))
brokers="127.0.0.1:$port"
common=(serve --listen "$brokers" --data-dir "$dir/data" --http-listen off
  --offsets-topic-segment-bytes "${SEGMENT_BYTES:-131072}" --log-cleaner-backoff-ms 1000)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

ready() { "$bin" cluster info --brokers "$brokers" --request-timeout-ms 2000 >/dev/null 2>&1; }

# start <log file> [flags…]: starts the broker and waits until it answers Metadata.
start() {
  local log=$1
  shift
  "$bin" "${common[@]}" "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do
    ready && return 0
    sleep 0.01
  done
  echo "broker did not become ready; log: $log" >&2
  exit 1
}

stop() {
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
}

# restarts <label> [flags…]: three timed restarts.
restarts() {
  local label=$1
  shift
  for i in 1 2 3; do
    local t0 t1 replayed
    t0=$(date +%s.%N)
    start "$dir/$label-$i.log" "$@"
    t1=$(date +%s.%N)
    replayed=$(grep -o 'topic="__consumer_offsets" records=[0-9]*' "$dir/$label-$i.log" | cut -d= -f3 | head -1)
    echo "$label, run $i: ready after $(echo "$t1 - $t0" | bc) s, replayed ${replayed:-0} records of __consumer_offsets"
    stop
  done
}

start "$dir/fill.log" --log-cleaner-enable false
"$load" "$brokers" commit-load 100 1000 10 8
stop
echo "__consumer_offsets: $(du -sb "$dir"/data/__consumer_offsets-* | awk '{s+=$1} END {print s}') bytes"

restarts before --log-cleaner-enable false

start "$dir/clean.log"
while :; do
  ratios=$("$bin" topic describe __consumer_offsets --json --brokers "$brokers" |
    grep -o '"dirty_ratio":[0-9.e-]*' | cut -d: -f2 | sort -u)
  [ "$ratios" = "0.0" ] && break
  sleep 1
done
grep 'cleaned the log' "$dir/clean.log" | grep -c . | sed 's/^/cleanings: /'
stop
echo "__consumer_offsets: $(du -sb "$dir"/data/__consumer_offsets-* | awk '{s+=$1} END {print s}') bytes"

restarts after
