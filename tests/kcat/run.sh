#!/usr/bin/env bash
# kcat (Debian's, librdkafka 2.0.2 on Debian 12) against a real sluice process.
#
#   tests/kcat/run.sh
#
# Starts its own broker on a free port with a temporary data dir (binary: $SLUICE_BIN, else
# <repo>/target/debug/sluice), runs the checks, then does the same with a second broker with
# TLS and SASL listeners (certificates made by tests/lib/make-test-certs.sh with openssl),
# stops the broker with SIGTERM, and prints "N passed, N failed". Exits non-zero if any check
# failed. Installs kcat with apt-get when it is missing and we are root.
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

# Starts a broker with data in $DATA_DIR and extra `serve` flags, in which @PORT@, @PORT2@ and
# @PORT3@ stand for free ports (@PORT@ is the one clients bootstrap from, $BROKER); waits for
# its "started" line.
DATA_DIR="$WORK/data"
start_broker() {
  local started_before
  for _ in 1 2 3; do
    PORT="$(free_port)"
    PORT2="$(free_port)"
    PORT3="$(free_port)"
    local -a args=("${@//@PORT@/$PORT}")
    args=("${args[@]//@PORT2@/$PORT2}")
    args=("${args[@]//@PORT3@/$PORT3}")
    started_before="$(grep -c 'Sluice .* started' "$LOG" 2>/dev/null)"
    "$SLUICE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
      --group-initial-rebalance-delay-ms 0 --http-listen off "${args[@]}" >>"$LOG" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 1 300); do
      if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
      if [ "$(grep -c 'Sluice .* started' "$LOG")" -gt "${started_before:-0}" ] && port_open "$PORT"; then
        BROKER="127.0.0.1:$PORT"
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker did not start within 30 s" >&2
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

# --- TLS and SASL ------------------------------------------------------------------------
# A second broker with PLAINTEXT, SSL (client certificates requested) and SASL_SSL listeners,
# certificates made by openssl, and the bootstrap user admin (SCRAM-SHA-256 and -512).
# librdkafka 2.0.2 sends a SCRAM client-final nonce that libraries checking RFC 5802 to the
# letter refuse; this kcat must log in all the same.
stop_broker
LOG="$WORK/secure-broker.log"
DATA_DIR="$WORK/secure-data"
CERTS="$WORK/certs"
if ! out="$("$REPO_ROOT/tests/lib/make-test-certs.sh" "$CERTS" 2>&1)"; then
  fail "make test certificates with openssl" "$out"
  exit 1
fi
export SLUICE_BOOTSTRAP_USER=admin:admin-secret
if ! start_broker --listeners "PLAINTEXT://127.0.0.1:@PORT@,SSL://127.0.0.1:@PORT2@,SASL_SSL://127.0.0.1:@PORT3@" \
  --ssl-cert-file "$CERTS/server.pem" --ssl-key-file "$CERTS/server.key" \
  --ssl-ca-file "$CERTS/ca.pem" --ssl-client-auth requested; then
  fail "secured broker starts"
  exit 1
fi
unset SLUICE_BOOTSTRAP_USER
SSL_BROKER="127.0.0.1:$PORT2"
SASL_SSL_BROKER="127.0.0.1:$PORT3"
echo "secured broker: PLAINTEXT $BROKER, SSL $SSL_BROKER, SASL_SSL $SASL_SSL_BROKER (pid $BROKER_PID)"

# kcat over SASL_SSL with MECHANISM USER PASSWORD, then kcat's own arguments.
kc_sasl() {
  local mechanism="$1" user="$2" password="$3"
  shift 3
  timeout "$KCAT_TIMEOUT" kcat -b "$SASL_SSL_BROKER" -X security.protocol=SASL_SSL \
    -X "ssl.ca.location=$CERTS/ca.pem" -X "sasl.mechanisms=$mechanism" \
    -X "sasl.username=$user" -X "sasl.password=$password" "$@"
}

# kcat over SSL with the client certificate (CN=alice,OU=eng,O=sluice).
kc_mtls() {
  timeout "$KCAT_TIMEOUT" kcat -b "$SSL_BROKER" -X security.protocol=SSL \
    -X "ssl.ca.location=$CERTS/ca.pem" -X "ssl.certificate.location=$CERTS/client.pem" \
    -X "ssl.key.location=$CERTS/client.key" "$@"
}

# Produces 1,000 keyed records with the client command NAME (kc_sasl MECHANISM admin ...,
# kc_mtls) and reads them back exactly.
check_secure_round_trip() {
  local what="$1" topic="kcat-secure-$2-$RUN_ID" n=1000 input out
  shift 2
  input="$(for i in $(seq 0 $((n - 1))); do printf 'key-%d:value %d\n' "$((i % 37))" "$i"; done)"
  if ! out="$(printf '%s\n' "$input" | "$@" -P -t "$topic" -K: 2>"$ERR")"; then
    fail "$what: produce $n keyed records" "$out$(errs)"
    return
  fi
  if ! out="$("$@" -C -t "$topic" -e -o beginning -f '%k:%s\n' 2>"$ERR")"; then
    fail "$what: consume $n keyed records" "$out$(errs)"
    return
  fi
  if [ "$out" = "$input" ]; then
    pass "$what: produce and read back $n keyed records"
  else
    fail "$what: produce and read back $n keyed records" "$(diff <(printf '%s\n' "$input") <(printf '%s\n' "$out") | head -20)$(errs)"
  fi
}

# A client that cannot authenticate: kcat -L (waiting at most 5 s for metadata) fails with
# WANT in its log, all within 10 s.
check_refused() {
  local what="$1" want="$2" started elapsed out
  shift 2
  started="$(date +%s%N)"
  out="$("$@" -L -m 5 2>&1)"
  local rc=$?
  elapsed=$((($(date +%s%N) - started) / 1000000))
  if [ "$rc" -ne 0 ] && grep -qF -- "$want" <<<"$out" && [ "$elapsed" -lt 10000 ]; then
    pass "$what: refused within 10 s ($elapsed ms) with '$want'"
  else
    fail "$what: refused within 10 s with '$want' (exit $rc after $elapsed ms)" "$(tail -n 5 <<<"$out")"
  fi
}

check_secure_round_trip "SASL_SSL SCRAM-SHA-256" scram256 kc_sasl SCRAM-SHA-256 admin admin-secret
check_secure_round_trip "SASL_SSL SCRAM-SHA-512" scram512 kc_sasl SCRAM-SHA-512 admin admin-secret
check_secure_round_trip "SASL_SSL PLAIN" plain kc_sasl PLAIN admin admin-secret
check_secure_round_trip "SSL with a client certificate" mtls kc_mtls
SCRAM_FAILED="Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
check_refused "SCRAM-SHA-256 with a wrong password" "$SCRAM_FAILED" kc_sasl SCRAM-SHA-256 admin wrong
check_refused "SCRAM-SHA-256 as an unknown user" "$SCRAM_FAILED" kc_sasl SCRAM-SHA-256 nobody admin-secret
check_refused "PLAIN with a wrong password" "Authentication failed: Invalid username or password" \
  kc_sasl PLAIN admin wrong
check_refused "a mechanism the broker does not offer (OAUTHBEARER)" "Unsupported SASL mechanism" \
  kc_sasl OAUTHBEARER admin admin-secret -X enable.sasl.oauthbearer.unsecure.jwt=true \
  -X "sasl.oauthbearer.config=principal=admin"
check_refused "a plaintext client on the SSL port" "Failed to acquire metadata" \
  timeout "$KCAT_TIMEOUT" kcat -b "$SSL_BROKER"
if grep -q "plaintext client on TLS listener SSL://$SSL_BROKER" "$LOG"; then
  pass "the broker logs the plaintext client on its TLS listener"
else
  fail "the broker logs the plaintext client on its TLS listener" "$(tail -n 20 "$LOG")"
fi
if out="$(kc -L 2>&1)" && grep -qE "^ +broker 1 at $BROKER" <<<"$out"; then
  pass "the secured broker still serves after the refused clients"
else
  fail "the secured broker still serves after the refused clients" "$out"
fi

finish
trap - EXIT
[ "$failed" -eq 0 ]
