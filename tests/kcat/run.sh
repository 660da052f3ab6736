#!/usr/bin/env bash
# kcat (Debian's, librdkafka 2.0.2 on Debian 12) against a real sluice process.
#
#   tests/kcat/run.sh
#
# Starts its own broker on a free port with a temporary data dir (binary: $SLUICE_BIN, else
# <repo>/target/debug/sluice), runs the checks, stops the broker with SIGTERM, and prints
# "N passed, N failed". Exits non-zero if any check failed. Installs kcat with apt-get when
# it is missing and we are root.
set -u -o pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-$REPO_ROOT/target/debug/sluice}"
KCAT_TIMEOUT="${KCAT_TIMEOUT:-30}"

# shellcheck source=../lib/tally.sh
. "$REPO_ROOT/tests/lib/tally.sh"

pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
  failed=$((failed + 1))
  failures+=("$1")
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}

# --- kcat -------------------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "kcat not found; installing it with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  fi
fi
if ! command -v kcat >/dev/null 2>&1; then
  echo "kcat is not installed (apt-get install kcat)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
KCAT_VERSION="$(kcat -V 2>&1 | grep -m1 -o 'Version.*')"
echo "kcat: $KCAT_VERSION"
# Codecs this kcat's librdkafka was built with (builtin.features=gzip,snappy,...).
FEATURES="$(kcat -V 2>&1 | grep -o 'builtin.features=[^ )]*' | cut -d= -f2)"

# --- broker ------------------------------------------------------------------------------
if [ ! -x "$SLUICE_BIN" ]; then
  echo "sluice binary not found at $SLUICE_BIN (cargo build -p sluice, or set SLUICE_BIN)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-kcat.XXXXXX")"
LOG="$WORK/broker.log"
BROKER_PID=""

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for _ in $(seq 1 100); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker did not stop on SIGTERM within 10 s; sending SIGKILL" >&2
      kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID" 2>/dev/null
  fi
  BROKER_PID=""
}

# Stops the broker, shows its log when something failed (else removes the temporary
# directory), and prints the summary line last.
finish() {
  stop_broker
  if [ "$failed" -gt 0 ]; then
    echo
    echo "--- broker log $LOG (last 100 lines) ---"
    tail -n 100 "$LOG" 2>/dev/null
  elif [ -z "${SLUICE_KEEP_DATA:-}" ]; then
    rm -rf "$WORK"
  fi
  print_summary
}
trap finish EXIT
trap 'exit 130' INT TERM

start_broker() {
  for _ in 1 2 3; do
    PORT="$(free_port)"
    "$SLUICE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
      --group-initial-rebalance-delay-ms 0 --http-listen off "$@" >>"$LOG" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 300); do
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
      if port_open "$PORT"; then
        BROKER="127.0.0.1:$PORT"
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker did not accept connections within 30 s" >&2
      return 1
    fi
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=""
    grep -qiE 'in use|AddrInUse' "$LOG" || break
  done
  echo "broker exited during startup; log:" >&2
  tail -n 30 "$LOG" >&2
  return 1
}

if ! start_broker; then
  fail "broker starts"
  exit 1
fi
echo "broker: $BROKER (pid $BROKER_PID, data $WORK/data)"

kc() { timeout "$KCAT_TIMEOUT" kcat -b "$BROKER" "$@"; }
# Consumers print "% Reached end of topic ..." on stderr; keep stderr apart from the records.
ERR="$WORK/kcat.stderr"
errs() { printf -- '--- kcat stderr ---\n'; tail -n 20 "$ERR" 2>/dev/null; }

# --- checks -----------------------------------------------------------------------------
RUN_ID="$$-$RANDOM"

# Metadata: -L lists the broker (node id 1 at the advertised address) and topics.
check_metadata() {
  local topic="kcat-meta-$RUN_ID" out
  # Produce one record to have the topic auto-created with the default partition count.
  if ! out="$(printf 'x\n' | kc -P -t "$topic" 2>&1)"; then
    fail "produce to auto-create $topic" "$out"
    return
  fi
  if ! out="$(kc -L 2>&1)"; then
    fail "kcat -L" "$out"
    return
  fi
  if grep -qE "^ +broker 1 at $BROKER( \(controller\))?\$" <<<"$out"; then
    pass "kcat -L lists broker 1 at $BROKER"
  else
    fail "kcat -L lists broker 1 at $BROKER" "$out"
  fi
  if grep -qE "^ +topic \"$topic\" with 1 partitions:\$" <<<"$out" &&
    grep -qE "^ +partition 0, leader 1, replicas: 1, isrs: 1\$" <<<"$out"; then
    pass "kcat -L lists topic $topic with 1 partition led by broker 1"
  else
    fail "kcat -L lists topic $topic with 1 partition led by broker 1" "$out"
  fi
  if ! out="$(kc -L -t "$topic" 2>&1)"; then
    fail "kcat -L -t $topic" "$out"
  elif grep -q "^Metadata for $topic (from broker 1: " <<<"$out" && grep -q "topic \"$topic\" with 1 partitions" <<<"$out"; then
    pass "kcat -L -t lists just that topic"
  else
    fail "kcat -L -t lists just that topic" "$out"
  fi
  if out="$(kc -L -J 2>&1)" && grep -q "\"topic\":\"$topic\"" <<<"$out"; then
    pass "kcat -L -J (JSON metadata)"
  else
    fail "kcat -L -J (JSON metadata)" "$out"
  fi
}

# Produce keyed lines (-K:) and consume them back with key, value and offset.
check_keyed_round_trip() {
  local codec="$1" topic="kcat-rt-$1-$RUN_ID" input expected out n=200 i
  local -a zopt=()
  [ "$codec" != "none" ] && zopt=(-z "$codec")
  input="$(for i in $(seq 0 $((n - 1))); do printf 'key-%d:value %d %s\n' "$i" "$i" "$codec"; done
    printf ':empty key\n'
    printf 'k-empty-value:\n')"
  expected="$(for i in $(seq 0 $((n - 1))); do printf 'key-%d=value %d %s@%d\n' "$i" "$i" "$codec" "$i"; done
    printf '=empty key@%d\n' "$n"
    printf 'k-empty-value=@%d\n' "$((n + 1))")"
  # -d msg makes librdkafka log each ProduceRequest's codec ("..., gzip)" or "..., uncompressed)").
  local -a dbg=()
  [ "$codec" != "none" ] && dbg=(-d msg)
  if ! out="$(printf '%s\n' "$input" | kc -P -t "$topic" -K: "${zopt[@]}" "${dbg[@]}" 2>"$ERR")"; then
    fail "produce keyed lines ($codec)" "$out$(errs)"
    return
  fi
  if [ "$codec" != "none" ]; then
    local sets
    sets="$(grep -E 'Produce MessageSet with|does not support compression' "$ERR" | sed 's/^.*]: //')"
    # Every batch of more than one record is compressed; a lone first record may go
    # uncompressed (librdkafka sends a batch uncompressed when compression does not
    # shrink it), so only refusals and multi-record uncompressed batches fail.
    if grep -qE ", $codec\)\$" <<<"$sets" \
      && ! grep -q 'does not support compression' <<<"$sets" \
      && ! grep -E 'uncompressed\)$' <<<"$sets" | grep -qv 'with 1 message(s)'; then
      pass "librdkafka sends $codec-compressed batches"
    else
      # librdkafka <= 2.11.0 asks whether the broker supports Produce within [0, 0] (gzip,
      # snappy, lz4) before compressing; a broker advertising Produce from v3 only gets
      # uncompressed batches. Kafka advertises Produce from v0 (before 4.0).
      fail "librdkafka sends $codec-compressed batches" "$sets"
    fi
  fi
  if ! out="$(kc -C -t "$topic" -e -o beginning -f '%k=%s@%o\n' 2>"$ERR")"; then
    fail "consume keyed lines ($codec)" "$out$(errs)"
    return
  fi
  if [ "$out" = "$expected" ]; then
    pass "produce -K: and consume back exactly, codec $codec ($((n + 2)) records)"
  else
    fail "produce -K: and consume back exactly, codec $codec" "$(diff <(printf '%s\n' "$expected") <(printf '%s\n' "$out") | head -20)$(errs)"
  fi
}

# Headers, and consuming from the end and from an absolute offset.
check_headers_and_offsets() {
  local topic="kcat-parts-$RUN_ID" out
  if ! out="$(printf 'h1\n' | kc -P -t "$topic" -H "trace=abc" -H "bin=x y" 2>&1)"; then
    fail "produce with headers" "$out"
    return
  fi
  if out="$(kc -C -t "$topic" -e -o beginning -f '%h|%s|%p|%o\n' 2>"$ERR")" && [ "$out" = "trace=abc,bin=x y|h1|0|0" ]; then
    pass "headers round-trip (-H, %h)"
  else
    fail "headers round-trip (-H, %h)" "got: $out$(errs)"
  fi
  printf 'h2\nh3\n' | kc -P -t "$topic" >/dev/null 2>&1
  if out="$(kc -C -t "$topic" -e -o -1 -f '%s@%o\n' 2>"$ERR")" && [ "$out" = "h3@2" ]; then
    pass "consume from the end (-o -1)"
  else
    fail "consume from the end (-o -1)" "got: $out$(errs)"
  fi
  if out="$(kc -C -t "$topic" -e -o 1 -c 1 -f '%s@%o\n' 2>"$ERR")" && [ "$out" = "h2@1" ]; then
    pass "consume from an absolute offset (-o 1 -c 1)"
  else
    fail "consume from an absolute offset (-o 1 -c 1)" "got: $out$(errs)"
  fi
}

# Consumer group mode (-G): balanced consumer subscribes and reads everything.
check_group_consumer() {
  local topic="kcat-group-$RUN_ID" out
  printf 'g0\ng1\ng2\n' | kc -P -t "$topic" >/dev/null 2>&1
  if out="$(timeout "$KCAT_TIMEOUT" kcat -b "$BROKER" -G "kcat-group-$RUN_ID" -X auto.offset.reset=earliest \
    -c 3 -f '%s@%o\n' "$topic" 2>"$ERR")" && [ "$out" = $'g0@0\ng1@1\ng2@2' ]; then
    pass "balanced consumer group (-G) reads all records"
  else
    fail "balanced consumer group (-G) reads all records" "got: $out$(errs)"
  fi
}

check_metadata
check_keyed_round_trip none
for codec in gzip snappy lz4 zstd; do
  if grep -qw "$codec" <<<"${FEATURES//,/ }"; then
    check_keyed_round_trip "$codec"
  else
    echo "skip - codec $codec (not in this kcat's builtin.features: $FEATURES)"
  fi
done
check_headers_and_offsets
check_group_consumer

if kill -0 "$BROKER_PID" 2>/dev/null; then
  pass "broker still running after all checks"
else
  fail "broker still running after all checks"
fi

finish
trap - EXIT
[ "$failed" -eq 0 ]
