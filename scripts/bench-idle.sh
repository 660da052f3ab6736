#!/usr/bin/env bash
# What an idle broker costs: its resident memory with 10 topics, then the CPU it
# uses in 30 s with 1,000 partitions and no clients (from /proc/PID/stat).
# Usage: scripts/bench-idle.sh [sluice-binary]
set -euo pipefail
bin=${1:-target/release/sluice}
dir=$(mktemp -d "${TMPDIR:-/tmp}/sluice-idle.XXXXXX")
port=$((30000 + RANDOM % 20000))
"$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --http-listen off 2>"$dir/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

rss_mb() { awk '/^VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/$pid/status"; }
# utime + stime of the broker, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }

for _ in $(seq 1 200); do
  "$bin" cluster --brokers "127.0.0.1:$port" info >/dev/null 2>&1 && break
  sleep 0.05
done
for i in $(seq 1 10); do
  "$bin" topic create --brokers "127.0.0.1:$port" --partitions 1 "idle-$i" >/dev/null
done
sleep 2
echo "10 topics: RSS $(rss_mb)"

"$bin" topic create --brokers "127.0.0.1:$port" --partitions 990 idle-wide >/dev/null
sleep 2
before=$(cpu_ticks)
sleep 30
after=$(cpu_ticks)
echo "1,000 partitions: $((after - before)) ticks of CPU in 30 s ($(getconf CLK_TCK) ticks/s), RSS $(rss_mb)"
