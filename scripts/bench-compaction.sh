#!/usr/bin/env bash
# The log cleaner's throughput, and produce throughput while it cleans (docs/PERFORMANCE.md,
# "Log compaction"). Release build; each figure 3 times.
#
#   1. Cleaner throughput: a 1-partition topic (64 MiB segments, cleanup.policy=delete) gets
#      $RECORDS records (default 3,000,000, about 400 MB of log) of 100 B with random keys
#      out of 100,000; then its policy becomes compact (IncrementalAlterConfigs) and the
#      cleaner takes the whole log in one run. The broker's "cleaned the log" line gives
#      the bytes of log rewritten and the seconds the run took (offset map and rewrite).
#   2. Produce while cleaning: `sluice bench produce --start-broker`, $DURATION s (default
#      20) of 100 B records with random keys out of 100,000, acks=1, into 8 partitions of a
#      compacted topic with 16 MiB segments and the cleaner looking for work every 100 ms;
#      against the same run with the cleaner off (--log-cleaner-enable false). Alternating,
#      so both see the same machine. The topic's size on disk at the end shows what the
#      cleaner did meanwhile.
#
# Usage: [RECORDS=n] [DURATION=s] scripts/bench-compaction.sh [sluice-binary]
#        (default target/release/sluice; needs `cargo build --release -p sluice -p sluice-bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sluice}
bench="$(dirname "$bin")/sluice-bench"
records=${RECORDS:-3000000}
duration=${DURATION:-20}
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

echo "== cleaner throughput"
for run in 1 2 3; do
  port=$((30000 + RANDOM % 20000))
  brokers="127.0.0.1:$port"
  "$bin" serve --listen "$brokers" --data-dir "$dir/data" --http-listen off \
    --log-cleaner-backoff-ms 500 >"$dir/broker.log" 2>&1 &
  pid=$!
  until "$bin" cluster info --brokers "$brokers" >/dev/null 2>&1; do sleep 0.1; done
  "$bin" topic create cleaned --partitions 1 --config segment.bytes=67108864 --brokers "$brokers" >/dev/null
  "$bench" produce --brokers "$brokers" --topic cleaned --partitions 1 --count "$records" \
    --record-size 100 --keys random --key-space 100000 --acks 1 -q >/dev/null
  size=$(du -sb "$dir/data/cleaned-0" | cut -f1)
  "$bin" topic alter-config cleaned --set cleanup.policy=compact --brokers "$brokers" >/dev/null
  until grep -q 'cleaned the log topic=cleaned' "$dir/broker.log"; do sleep 0.5; done
  line=$(grep 'cleaned the log topic=cleaned' "$dir/broker.log" | head -1)
  read_bytes=$(grep -o ' bytes_read=[0-9]*' <<<"$line" | cut -d= -f2)
  seconds=$(grep -o ' seconds=[0-9.]*' <<<"$line" | cut -d= -f2)
  echo "run $run: log of $size bytes; cleaned $read_bytes bytes in $seconds s:" \
    "$(echo "scale=1; $read_bytes / $seconds / 1000000" | bc) MB/s;" \
    "$(grep -o 'records_read=[0-9]* records_kept=[0-9]*' <<<"$line")"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  rm -rf "$dir/data"
done

echo "== produce with and without the cleaner"
produce() {
  local label=$1 run=$2
  shift 2
  "$bench" produce --start-broker --sluice-bin "$bin" --broker-data-dir "$dir/$label-$run" \
    --topic compacted --partitions 8 --topic-config cleanup.policy=compact \
    --topic-config segment.bytes=16777216 --broker-arg=--log-cleaner-backoff-ms=100 "$@" \
    --duration "$duration" --record-size 100 --keys random --key-space 100000 --acks 1 --json -q \
    >"$dir/$label-$run.json"
  local rate cpu size
  rate=$(grep -o '"records_per_sec":[0-9.]*' "$dir/$label-$run.json" | head -1 | cut -d: -f2)
  cpu=$(grep -o '"cpu_s":[0-9.]*' "$dir/$label-$run.json" | tail -1 | cut -d: -f2)
  size=$(du -sb "$dir/$label-$run"/compacted-* | awk '{s+=$1} END {print s}')
  echo "$label, run $run: $rate records/s, broker CPU ${cpu:-?} s, topic on disk $size bytes"
  rm -rf "${dir:?}/$label-$run"
}
for run in 1 2 3; do
  produce cleaner-off "$run" --broker-arg=--log-cleaner-enable=false
  produce cleaner-on "$run"
done
