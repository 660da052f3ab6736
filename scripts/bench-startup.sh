#!/usr/bin/env bash
# Time from `sluice serve` to the first answered Metadata request, on a data dir
# holding 2 GB of log whose broker was killed with SIGKILL (so recovery runs).
# Usage: scripts/bench-startup.sh [sluice-binary] [data-dir]
set -euo pipefail
bin=${1:-target/release/sluice}
dir=${2:-$(mktemp -d)}
port=$((30000 + RANDOM % 20000))
rm -rf "$dir"

wait_ready() {
  for _ in $(seq 1 500); do
    if timeout 2 kcat -b "127.0.0.1:$port" -L -m 1 >/dev/null 2>&1; then return 0; fi
    sleep 0.01
  done
  echo "broker did not become ready" >&2
  return 1
}

"$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir" --http-listen off 2>/dev/null &
pid=$!
wait_ready
"$(dirname "$bin")/sluice-bench" produce --brokers "127.0.0.1:$port" --count 2000000 --record-size 1024 \
  --acks 1 --partitions 8 -q >/dev/null
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "log size: $(du -sh "$dir" | cut -f1)"
for i in 1 2 3; do
  start=$(date +%s.%N)
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir" --http-listen off 2>"$dir.log" &
  pid=$!
  wait_ready
  end=$(date +%s.%N)
  echo "run $i: ready after $(echo "$end - $start" | bc) s ($(grep -o 'recovery="[^"]*"' "$dir.log" | head -1))"
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
done
rm -rf "$dir" "$dir.log"
