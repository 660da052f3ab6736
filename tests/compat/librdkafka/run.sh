#!/usr/bin/env bash
# librdkafka's own test suite (tests/0nnn-*.c, *.cpp of the librdkafka sources that ship inside
# the rdkafka-sys crate) against real sluice processes.
#
#   tests/compat/librdkafka/run.sh            # every test number in allowlist.txt
#   tests/compat/librdkafka/run.sh 0012 0081  # just these (allowlisted or not)
#   tests/compat/librdkafka/run.sh --security # the security tests in security.txt, each in
#                                             # its mode: ACLs, SASL, re-authentication, TLS
#
# 1. Finds the librdkafka sources of the rdkafka-sys version in Cargo.lock in the cargo registry
#    (`cargo metadata`, then `cargo fetch`, download them from crates.io when missing). Nothing
#    of librdkafka is committed here.
# 2. Copies them to $LIBRDKAFKA_TESTS_DIR (default <repo>/target/librdkafka-tests), applies one
#    patch (replication factor capped at 1 against one broker, see below), runs plain `./configure` (Debian's
#    libraries, no --install-deps), `make libs` and builds tests/test-runner without running it.
#    The build is reused while sources, flags and package list stay the same. Missing Debian
#    packages are installed with apt-get when we are root (or have passwordless sudo).
# 3. Per test number: starts a fresh broker ($SLUICE_BIN, else <repo>/target/debug/sluice) on a
#    free port with an empty data dir, or with LRK_NODES=3 a fresh three-node cluster (racks
#    rack-1..3, replication factor 3 by default, every node in bootstrap.servers)
#    (--default-partitions 4 and auto-created topics, like
#    librdkafka's "default" test scenario; --group-initial-rebalance-delay-ms 3000, Kafka's
#    default), writes a test.conf pointing at it and runs `TESTS=nnnn ./test-runner -Q -E -L` (quick mode, no sockem
#    network emulation, none of librdkafka's local sub-tests unless the allowlist says otherwise) under a timeout. Security modes
#    (security.txt) start the broker with an authorizer, a SASL_PLAINTEXT or SSL listener,
#    users and test certificates (made with openssl into the log directory) instead, and write
#    the matching security.protocol, sasl.* and ssl.* lines into test.conf. $LRK_JOBS test
#    numbers run at once, each with its own broker. Prints "ok" or "FAIL" and the reason.
# 4. Prints "N passed, N failed" last; exits non-zero when any test failed.
#
# Environment:
#   SLUICE_BIN             broker binary
#   TEST_KAFKA_VERSION     Kafka version the tests assume (default 3.7.0, the behaviour Sluice
#                          claims; tests needing a newer broker skip themselves)
#   LRK_NODES              brokers per test number (default 1; more form a cluster)
#   LRK_JOBS               test numbers run in parallel (default 5; 4 with LRK_NODES > 1;
#                          8 with --security, whose tests mostly wait)
#   LRK_TEST_TIMEOUT       seconds per test number (default 240)
#   LIBRDKAFKA_TESTS_DIR   build/cache directory
#   LIBRDKAFKA_SRC         use this librdkafka source tree instead of rdkafka-sys's
#   LRK_KEEP_LOGS=1        keep the per-test logs even when everything passed
#   LRK_FULL=1             run every test without -Q (all sub-tests; much slower)
#   TEST_LEVEL, TEST_DEBUG, SUBTESTS are passed through to the test-runner.
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIST_FILE="$HERE/allowlist.txt"
SECURITY=0
if [ "${1:-}" = "--security" ]; then
  SECURITY=1
  LIST_FILE="$HERE/security.txt"
  shift
fi
BROKER_LISTENER_PROTOCOL=PLAINTEXT # of the broker a job starts (security_mode sets it)
BROKER_ENV=()                      # more environment for that broker
BROKER_PREFIX=()                   # a command that starts it (taskset, for the flag apart)
REPO_ROOT="$(cd "$HERE/../../.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-$REPO_ROOT/target/debug/sluice}"
CACHE="${LIBRDKAFKA_TESTS_DIR:-$REPO_ROOT/target/librdkafka-tests}"
TIMEOUT="${LRK_TEST_TIMEOUT:-240}"
NODES="${LRK_NODES:-1}"
if [ "$NODES" -gt 1 ]; then JOBS="${LRK_JOBS:-4}"; else JOBS="${LRK_JOBS:-5}"; fi
# The security tests mostly wait (re-authentication intervals, ACL propagation sleeps).
[ "$SECURITY" -eq 1 ] && JOBS="${LRK_JOBS:-8}"
export TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-3.7.0}"
# SSL stays on (0004 and others check ssl.* properties); GSSAPI and libcurl (OIDC) are not needed.
CONFIGURE_FLAGS=(--no-download --disable-gssapi --disable-curl)
# rapidjson-dev: header-only; 0053 and 0110 validate the statistics JSON with it.
DEB_PACKAGES=(build-essential pkg-config libssl-dev zlib1g-dev libzstd-dev liblz4-dev rapidjson-dev)

# shellcheck source=../../lib/tally.sh
. "$REPO_ROOT/tests/lib/tally.sh"
LOGDIR=""
declare -A RUNNING=() # job pid -> test number
declare -A SLOT_OF=() # job pid -> parallel slot (0 .. LRK_JOBS-1)

say() { echo "$*"; }
die() { # setup failure: counts as one failed check
  echo "$*" >&2
  failed=$((failed + 1))
  failures+=("setup: $*")
  exit 1
}

# Kills what the jobs started (their pids are in $LOGDIR/*.pid) when we are interrupted.
kill_jobs() {
  local f pid
  [ -n "$LOGDIR" ] || return 0
  for f in "$LOGDIR"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null)"
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done
}

finish() {
  if [ ${#RUNNING[@]} -gt 0 ]; then
    kill_jobs
    kill -TERM "${!RUNNING[@]}" 2>/dev/null
    wait 2>/dev/null
  fi
  if [ -n "$LOGDIR" ] && [ -d "$LOGDIR" ]; then
    if [ "$failed" -eq 0 ] && [ -z "${LRK_KEEP_LOGS:-}" ]; then
      rm -rf "$LOGDIR"
    else
      echo
      echo "logs (test-runner and broker output per test): $LOGDIR"
    fi
  fi
  print_summary
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- Debian packages ---------------------------------------------------------------------
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  [ "$(id -u)" != "0" ] && SUDO=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#SUDO[@]} -eq 0 ] || sudo -n true 2>/dev/null; }; then
    say "installing Debian packages: ${missing[*]}"
    { "${SUDO[@]}" apt-get update -qq >/dev/null &&
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
      die "apt-get install ${missing[*]} failed"
  else
    say "warning: missing Debian packages ${missing[*]} (not root; the build may lack features)"
  fi
fi

# --- librdkafka sources ------------------------------------------------------------------
find_src() {
  local manifest
  manifest="$(cd "$REPO_ROOT" && cargo metadata --format-version 1 --locked 2>/dev/null |
    grep -o '"manifest_path":"[^"]*/rdkafka-sys-[^"/]*/Cargo.toml"' | head -1 | cut -d'"' -f4)"
  [ -n "$manifest" ] && [ -d "$(dirname "$manifest")/librdkafka/tests" ] && echo "$(dirname "$manifest")/librdkafka"
}
if [ -n "${LIBRDKAFKA_SRC:-}" ]; then
  SRC="$LIBRDKAFKA_SRC"
else
  SRC="$(find_src)"
  if [ -z "$SRC" ]; then
    say "rdkafka-sys sources not in the cargo registry yet; cargo fetch"
    (cd "$REPO_ROOT" && cargo fetch --locked) || die "cargo fetch failed"
    SRC="$(find_src)"
  fi
fi
[ -n "$SRC" ] && [ -f "$SRC/tests/test.c" ] || die "librdkafka sources not found (rdkafka-sys in the cargo registry)"
LRK_VERSION="$(sed -n 's/^#define RD_KAFKA_VERSION *0x\([0-9a-fA-F]*\).*/\1/p' "$SRC/src/rdkafka.h")"
say "librdkafka sources: $SRC (RD_KAFKA_VERSION 0x$LRK_VERSION)"

# --- build (cached) ----------------------------------------------------------------------
# The suite assumes a 3-broker cluster: some tests create topics with replication factor 3, which
# a 1-broker cluster (Sluice, or Apache Kafka with one broker) rightly rejects with
# INVALID_REPLICATION_FACTOR. This one patch of the copied sources caps the replication factor
# that the test framework's CreateTopics helper asks for at 1 when SLUICE_SINGLE_BROKER is set
# (against one broker; a cluster run leaves it alone). Nothing else is changed.
PATCH_ID="single-broker-rf-v2"
patch_single_broker() {
  local f="$BUILD/tests/test.c"
  awk '
    /^void test_admin_create_topic\(/ { infn = 1 }
    infn && /^        if \(!\(rk = use_rk\)\)/ {
      print "        /* Sluice (tests/compat/librdkafka/run.sh): one broker. */"
      print "        if (replication_factor > 1 && getenv(\"SLUICE_SINGLE_BROKER\"))"
      print "                replication_factor = 1;"
      infn = 0; done = 1
    }
    { print }
    END { if (!done) exit 1 }
  ' "$f" >"$f.patched" && mv "$f.patched" "$f"
}
BUILD="$CACHE/src"
STAMP="$CACHE/build.stamp"
want_stamp="$SRC|${CONFIGURE_FLAGS[*]}|$PATCH_ID|${DEB_PACKAGES[*]}"
if [ -x "$BUILD/tests/test-runner" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want_stamp" ]; then
  say "using cached build in $BUILD"
else
  say "building librdkafka and its test-runner in $BUILD (about 2 minutes on 2 cores)"
  mkdir -p "$CACHE"
  rm -rf "$BUILD" "$STAMP"
  cp -a "$SRC" "$BUILD" || die "copying $SRC failed"
  chmod -R u+w "$BUILD"
  patch_single_broker || die "patching tests/test.c failed (did test_admin_create_topic change?)"
  blog="$CACHE/build.log"
  start=$SECONDS
  if ! (cd "$BUILD" && ./configure "${CONFIGURE_FLAGS[@]}" && make -j2 libs && make -j2 -C tests build) >"$blog" 2>&1; then
    tail -n 40 "$blog"
    die "librdkafka build failed (log: $blog)"
  fi
  grep -m1 'BUILT_WITH' "$blog" | sed 's/^ */configured: /'
  echo "$want_stamp" >"$STAMP"
  say "built in $((SECONDS - start)) s"
fi
TESTDIR="$BUILD/tests"
export LD_LIBRARY_PATH="$BUILD/src:$BUILD/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RDKAFKA_GITVER="rdkafka-sys:$(basename "$(dirname "$SRC")")"
# CI=true would make the test-runner triple its timeouts; we set the multiplier in test.conf.
unset CI

# --- which tests -------------------------------------------------------------------------
# allowlist.txt (security.txt with --security): one test number a line, optionally followed by
# flags, then an optional comment:
#   0049 sockem        # without -E: the test uses its in-process socket emulation (sockem)
#   0107 noautocreate  # broker with --auto-create-topics false, test-runner -s noautocreate
#   0082 full          # without -Q: every sub-test, not just the quick ones
#   0004 local         # without -L: librdkafka's local sub-tests too (mock cluster or none)
#   0091 timeout=300   # per-test timeout in seconds
#   0033 long          # takes a minute or more: starts first, so it does not end the run alone
#   0077 kafkatopics   # KAFKA_PATH points at kafka-path/, whose bin/kafka-topics.sh uses Sluice's CLI
#   0077 cleaner=1000  # broker with --log-cleaner-backoff-ms 1000
#   0000 slowcpu       # CI set for this test alone: librdkafka's unit tests then report their
#                      # speed checks (µs per message queued) as warnings, not failures
# and the security modes (security.txt; one broker only):
#   0115 acl           # authorizer on, allow-everyone-if-no-acl-found; KAFKA_PATH with kafka-acls.sh
#   0135 sasl=SCRAM-SHA-512  # SASL_PLAINTEXT listener and mechanism, user testuser/testpass
#   0142 reauth=5000   # broker with --connections-max-reauth-ms 5000
#   0097 ssl=requested # SSL listener (ssl.client.auth requested|required), client certs, SSL_* env
#   0081 subtests=Acls # SUBTESTS=Acls for the test-runner (only the sub-tests named so)
# A number may have several lines (one per mode); each line is run on its own.
ENTRY_NUM=()   # entry index -> test number
ENTRY_FLAGS=() # entry index -> its flags
while read -r num rest; do
  ENTRY_NUM+=("$num")
  ENTRY_FLAGS+=("$rest")
done < <(sed -e 's/#.*//' "$LIST_FILE" | grep -E '^[[:space:]]*[0-9]{4}([[:space:]]|$)')
is_full() { [[ " ${ENTRY_FLAGS[$1]} " == *" full "* || " ${ENTRY_FLAGS[$1]} " == *" long "* ]]; }
TESTS_LIST=() # entry indexes, in the order they run
if [ $# -gt 0 ]; then
  # Every entry of each number given (a number not listed runs once, without flags).
  for t in "$@"; do
    found=0
    for i in "${!ENTRY_NUM[@]}"; do
      [ "${ENTRY_NUM[$i]}" = "$t" ] && { TESTS_LIST+=("$i"); found=1; }
    done
    if [ "$found" -eq 0 ]; then
      ENTRY_NUM+=("$t")
      ENTRY_FLAGS+=("")
      TESTS_LIST+=($((${#ENTRY_NUM[@]} - 1)))
    fi
  done
else
  # The long runs (full mode, long) start first so that they do not end up alone at the end.
  for i in "${!ENTRY_NUM[@]}"; do is_full "$i" && TESTS_LIST+=("$i"); done
  for i in "${!ENTRY_NUM[@]}"; do is_full "$i" || TESTS_LIST+=("$i"); done
fi
[ ${#TESTS_LIST[@]} -gt 0 ] || die "no tests selected"
[ -x "$SLUICE_BIN" ] || die "sluice binary not found at $SLUICE_BIN (cargo build -p sluice, or set SLUICE_BIN)"
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/sluice-librdkafka.XXXXXX")"
# Brokers run side by side: no HTTP (metrics) listener, where the binary has one.
COMMON_BROKER_ARGS=(--group-initial-rebalance-delay-ms "${LRK_REBALANCE_DELAY_MS:-3000}" --default-partitions 4)
"$SLUICE_BIN" serve --help 2>/dev/null | grep -q -- '--http-listen' && COMMON_BROKER_ARGS+=(--http-listen off)

# --- one test number (runs as a background job) ------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_broker <pid>
stop_broker() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "broker did not stop on SIGTERM within 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
}

# start_broker <slot> <data dir> <log file> [extra serve flags...]: sets PORT and BROKER_PID.
# The one listener is BROKER_LISTENER_PROTOCOL's (PLAINTEXT: --listen); BROKER_ENV is added to
# the broker's environment, BROKER_PREFIX runs it.
# Each parallel slot draws its port from its own range, so two brokers starting at once never
# race for the same port (and a broker that lost a race is not mistaken for another's).
start_broker() {
  local slot="$1" data="$2" log="$3"
  local -a listen
  shift 3
  for _ in 1 2 3 4 5; do
    PORT=$((20000 + slot * (40000 / JOBS) + RANDOM % (40000 / JOBS)))
    port_open "$PORT" && continue
    listen=(--listen "127.0.0.1:$PORT")
    [ "$BROKER_LISTENER_PROTOCOL" = PLAINTEXT ] ||
      listen=(--listeners "$BROKER_LISTENER_PROTOCOL://127.0.0.1:$PORT")
    "${BROKER_PREFIX[@]}" env "${BROKER_ENV[@]}" "$SLUICE_BIN" serve "${listen[@]}" --data-dir "$data" "${COMMON_BROKER_ARGS[@]}" "$@" >>"$log" 2>&1 &
    BROKER_PID=$!
    echo "$BROKER_PID" >"$data.broker.pid"
    for _ in $(seq 1 300); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      if port_open "$PORT"; then
        sleep 0.1
        kill -0 "$BROKER_PID" 2>/dev/null && return 0
        break
      fi
      sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      echo "broker did not accept connections within 30 s" >>"$log"
      stop_broker "$BROKER_PID" >>"$log"
      return 1
    fi
    wait "$BROKER_PID" 2>/dev/null
    grep -qiE 'in use|AddrInUse' "$log" || break
  done
  return 1
}

# start_cluster <slot> <data dir> <log file> [extra serve flags...]: starts nodes 1..$NODES of
# one cluster (node N logs to <log file>.N; racks rack-N), waits until each logged that it
# started; sets BOOTSTRAP and BROKER_PIDS. Ports come from the slot's range, as above; when
# another process took one of them first, the whole cluster starts again on other ports.
start_cluster() {
  local attempt
  for attempt in 1 2 3 4 5; do
    start_cluster_once "$@" && return 0
    grep -qiE 'in use|AddrInUse' "$3".[0-9]* 2>/dev/null || return 1
    echo "a port was taken (attempt $attempt); starting the cluster again on other ports" >>"$3"
    rm -rf "$2" "$3".[0-9]*
  done
  return 1
}

start_cluster_once() {
  local slot="$1" data="$2" log="$3" base id voters i
  shift 3
  local span=$((40000 / JOBS))
  base=$((20000 + slot * span + RANDOM % (span - 2 * NODES)))
  voters=""
  for id in $(seq 1 "$NODES"); do
    voters="$voters${voters:+,}$id@127.0.0.1:$((base + NODES + id - 1))"
  done
  BOOTSTRAP=""
  BROKER_PIDS=()
  for id in $(seq 1 "$NODES"); do
    port_open $((base + id - 1)) && { echo "port $((base + id - 1)) is taken: address in use" >>"$log.$id"; stop_brokers; return 1; }
    BOOTSTRAP="$BOOTSTRAP${BOOTSTRAP:+,}127.0.0.1:$((base + id - 1))"
    "$SLUICE_BIN" serve --listen "127.0.0.1:$((base + id - 1))" --data-dir "$data/node-$id" \
      --node-id "$id" --cluster-listen "127.0.0.1:$((base + NODES + id - 1))" --voters "$voters" \
      --rack "rack-$id" "${COMMON_BROKER_ARGS[@]}" "$@" >>"$log.$id" 2>&1 &
    BROKER_PIDS+=($!)
  done
  echo "${BROKER_PIDS[*]}" >"$data.broker.pid"
  for _ in $(seq 1 600); do
    local started=0
    for i in "${!BROKER_PIDS[@]}"; do
      kill -0 "${BROKER_PIDS[$i]}" 2>/dev/null || { echo "node $((i + 1)) exited during startup" >>"$log"; stop_brokers >>"$log"; return 1; }
      grep -q 'Sluice .* started' "$log.$((i + 1))" 2>/dev/null && started=$((started + 1))
    done
    if [ "$started" -eq "$NODES" ]; then
      # Replicated topics need every node let in (unfenced) by the controller.
      local active
      active="$("$SLUICE_BIN" cluster info --brokers "$BOOTSTRAP" --json --request-timeout-ms 2000 2>/dev/null | grep -o '"fenced":false' | wc -l)"
      [ "$active" -eq "$NODES" ] && return 0
    fi
    sleep 0.1
  done
  echo "the cluster did not start within 60 s" >>"$log"
  stop_brokers >>"$log"
  return 1
}

# start_brokers <slot> <data dir> <log file> [extra serve flags...]: one broker, or a cluster
# with LRK_NODES > 1; sets BOOTSTRAP and BROKER_PIDS.
start_brokers() {
  if [ "$NODES" -gt 1 ]; then
    start_cluster "$@"
  else
    start_broker "$@" || return 1
    BOOTSTRAP="127.0.0.1:$PORT"
    BROKER_PIDS=("$BROKER_PID")
  fi
}

# stop_brokers: SIGTERM every node at once, then wait for each. The last node of a cluster
# stopped whole waits 3 s for a quorum that is gone before it stops (it has no one to hand
# its leaderships to); the test is over, so after 1 s the rest are killed.
stop_brokers() {
  local pid
  for pid in "${BROKER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  if [ "${#BROKER_PIDS[@]}" -gt 1 ]; then
    sleep 1
    for pid in "${BROKER_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  fi
  for pid in "${BROKER_PIDS[@]}"; do stop_broker "$pid"; done
}

# brokers_alive: whether every node still runs.
brokers_alive() {
  local pid
  for pid in "${BROKER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# broker_log_tail <log file> <lines>: the last lines of each node's log.
broker_log_tail() {
  local f
  for f in "$1" "$1".[0-9]*; do
    [ -f "$f" ] && tail -n "$2" "$f"
  done
}

# Why a test number failed: the test-runner prints '### Test "<name>" failed at <file:line>...'
# and the reason on the next line. "<MAIN>" failures (threads still running after an earlier
# failure) only when there is nothing else.
failure_reason() {
  local clean
  clean="$(sed -e 's/\x1b\[[0-9;]*m//g' -e 's/\x1b(B//g' "$1")"
  {
    awk '/^### Test "/ && !/"<MAIN>"/ { sub(/ at [A-Z][a-z][a-z] [A-Z][a-z][a-z] .*/, ""); print; getline; print }' <<<"$clean" | head -n 6
    if ! grep -q '^### Test "[^<]' <<<"$clean"; then
      awk '/^### Test "/ { sub(/ at [A-Z][a-z][a-z] [A-Z][a-z][a-z] .*/, ""); print; getline; print }' <<<"$clean" | head -n 4
      grep -E 'Timed out|timed out|Aborted|Segmentation' <<<"$clean" | head -n 3
    fi
  } | cut -c1-400 | sed 's/^/       /'
}

# Test certificates for the ssl mode, made once per run into $CERTS by make_certs.
CERTS=""
SSL_KEY_PASSWORD="sluice-test-key-password"
# The SASL user of the sasl modes (trivup's interactive default).
SASL_USER="testuser"
SASL_PASSWORD="testpass"

# make_certs: a CA, the broker's certificate for 127.0.0.1 and a client certificate
# (tests/lib/make-test-certs.sh), plus what librdkafka's 0097 reads through trivup's SSL_*
# variables: the client key encrypted with $SSL_KEY_PASSWORD, DER copies, a PKCS#12 keystore
# and a file with a second, unrelated CA after ours.
make_certs() {
  CERTS="$LOGDIR/certs"
  "$REPO_ROOT/tests/lib/make-test-certs.sh" "$CERTS/other" >/dev/null &&
    "$REPO_ROOT/tests/lib/make-test-certs.sh" "$CERTS" >/dev/null &&
    (
      cd "$CERTS" &&
        openssl pkey -in client.key -aes256 -passout "pass:$SSL_KEY_PASSWORD" -out client.enc.key &&
        openssl pkey -in client.key -outform der -out client.key.der &&
        openssl x509 -in client.pem -outform der -out client.der &&
        openssl x509 -in ca.pem -outform der -out ca.der &&
        cat ca.pem other/ca.pem >all-cas.pem &&
        openssl pkcs12 -export -in client.pem -inkey client.key -certfile ca.pem \
          -passout "pass:$SSL_KEY_PASSWORD" -out client.p12
    ) >/dev/null 2>&1
}

# security_mode <SASL mechanism or ""> <ssl client auth or "">: the listener protocol
# (BROKER_LISTENER_PROTOCOL), broker flags and environment (BROKER_ENV), test.conf lines and
# test-runner environment of a security mode; appends to run_one's broker_args, conf_lines and
# test_env. The broker is set up the way trivup sets up Kafka for the suite: an authorizer
# with allow.everyone.if.no.acl.found=true and super user User:admin, SCRAM users made at
# start, for OAUTHBEARER unsecured tokens that must have the scope requiredScope.
security_mode() {
  local mech="$1" client_auth="$2" proto=""
  [ -n "$client_auth" ] && proto="SSL"
  if [ -n "$mech" ]; then
    proto="SASL_${proto:-PLAINTEXT}"
    broker_args+=(--sasl-mechanisms "$mech" --authorizer on --allow-everyone-if-no-acl-found true
      --super-users User:admin)
    conf_lines+=("sasl.mechanisms=$mech")
    if [ "$mech" = OAUTHBEARER ]; then
      broker_args+=(--sasl-oauthbearer-required-scopes requiredScope)
      conf_lines+=(enable.sasl.oauthbearer.unsecure.jwt=true
        "sasl.oauthbearer.config=scope=requiredScope principal=admin")
    else
      BROKER_ENV+=(SLUICE_BOOTSTRAP_USER="$SASL_USER:$SASL_PASSWORD")
      conf_lines+=("sasl.username=$SASL_USER" "sasl.password=$SASL_PASSWORD")
    fi
  fi
  if [ -n "$client_auth" ]; then
    broker_args+=(--ssl-cert-file "$CERTS/server.pem" --ssl-key-file "$CERTS/server.key"
      --ssl-ca-file "$CERTS/ca.pem" --ssl-client-auth "$client_auth")
    conf_lines+=("ssl.ca.location=$CERTS/ca.pem" "ssl.certificate.location=$CERTS/client.pem"
      "ssl.key.location=$CERTS/client.enc.key" "ssl.key.password=$SSL_KEY_PASSWORD")
    test_env+=(SSL_client_auth="$client_auth" SSL_password="$SSL_KEY_PASSWORD"
      SSL_ca_pem="$CERTS/ca.pem" SSL_ca_der="$CERTS/ca.der" SSL_all_cas_pem="$CERTS/all-cas.pem"
      SSL_pub_pem="$CERTS/client.pem" SSL_pub_der="$CERTS/client.der"
      SSL_priv_pem="$CERTS/client.enc.key" SSL_priv_der="$CERTS/client.key.der"
      SSL_pkcs="$CERTS/client.p12")
  fi
  BROKER_LISTENER_PROTOCOL="${proto:-PLAINTEXT}"
  conf_lines+=("security.protocol=$BROKER_LISTENER_PROTOCOL")
}

# librdkafka's own misreport that `apart` makes rare but cannot rule out on a busy machine
# (README: "Why apart for 0097"): a certificate refused in the first SSL_connect() comes out
# as a transport failure instead of an SSL error.
SSL_CONNECT_RACE='Expected _SSL or _ALL_BROKERS_DOWN error codes, got: Local: Broker transport failure'

# run_one <test number> <slot> <key> <flags>: run_once, and with flag `apart` once more when
# the first run failed on SSL_CONNECT_RACE alone; the first run's log is kept as <key>.race.log.
run_one() {
  local t="$1" key="$3" flags="$4" res="$LOGDIR/$3.result"
  run_once "$@"
  if [[ " $flags " == *" apart "* ]] && head -n 1 "$res" | grep -q '^FAIL' &&
    [ "$(sed -e 's/\x1b\[[0-9;]*m//g' "$LOGDIR/$key.log" | grep -c "^### Test \"$t")" -eq 1 ] &&
    grep -qF "$SSL_CONNECT_RACE" "$LOGDIR/$key.log"; then
    mv "$LOGDIR/$key.log" "$LOGDIR/$key.race.log"
    run_once "$@"
    sed -i "1s/)\$/; run again after librdkafka's first-SSL_connect race)/" "$res"
  fi
}

# run_once <test number> <slot> <key> <flags>: writes $LOGDIR/<key>.result: "ok"/"FAIL" line,
# then details. <key> is the test number, or <number>-<n> when a number is run more than once.
run_once() {
  local t="$1" slot="$2" key="$3" flags="$4"
  local tlog="$LOGDIR/$key.log" blog="$LOGDIR/$key.broker.log" data="$LOGDIR/$key.data"
  local res="$LOGDIR/$key.result" tmo="$TIMEOUT" f rc start secs alive=1 table
  local n_pass n_fail n_skip detail why runner sasl_mech="" ssl_auth=""
  # -L: librdkafka's local sub-tests (its mock cluster, or no cluster) never reach Sluice.
  local -a args=(-Q -E -L) broker_args=() test_env=() conf_lines=() runner_prefix=()
  [ "$NODES" -gt 1 ] || test_env+=(SLUICE_SINGLE_BROKER=1)
  [ -n "${LRK_FULL:-}" ] && args=(-E -L)
  BROKER_ENV=()
  BROKER_PREFIX=()
  for f in $flags; do
    case "$f" in
      sockem) args=("${args[@]/-E/}") ;;
      full) args=("${args[@]/-Q/}") ;;
      local) args=("${args[@]/-L/}") ;;
      long) ;; # only the order
      slowcpu) test_env+=(CI=true) ;;
      noautocreate) args+=(-s noautocreate) broker_args+=(--auto-create-topics false) ;;
      kafkatopics) test_env+=(KAFKA_PATH="$HERE/kafka-path") ;;
      cleaner=*) broker_args+=(--log-cleaner-backoff-ms "${f#cleaner=}") ;;
      timeout=*) tmo="${f#timeout=}" ;;
      acl)
        broker_args+=(--authorizer on --allow-everyone-if-no-acl-found true)
        test_env+=(KAFKA_PATH="$HERE/kafka-path") ;;
      sasl=*) sasl_mech="${f#sasl=}" ;;
      ssl=*) ssl_auth="${f#ssl=}" ;;
      reauth=*) broker_args+=(--connections-max-reauth-ms "${f#reauth=}") ;;
      subtests=*) test_env+=(SUBTESTS="${f#subtests=}") ;;
      apart)
        # Broker on the first CPU, test-runner on the others (README: 0097).
        if [ "$(nproc)" -ge 2 ]; then
          BROKER_PREFIX=(taskset -c 0)
          runner_prefix=(taskset -c "1-$(($(nproc) - 1))")
        else
          echo "run.sh: one CPU, so 'apart' cannot keep broker and test-runner apart" >>"$tlog"
        fi ;;
      *) echo "$(basename "$LIST_FILE"): unknown flag '$f' for $t" >>"$tlog" ;;
    esac
  done
  security_mode "$sasl_mech" "$ssl_auth"
  mapfile -t args < <(printf '%s\n' "${args[@]}" | grep -v '^$')
  if ! start_brokers "$slot" "$data" "$blog" "${broker_args[@]}"; then
    { echo "FAIL - $t (broker did not start)"; broker_log_tail "$blog" 20 | uniq | tail -n 5 | sed 's/^/       /'; } >"$res.tmp"
    mv "$res.tmp" "$res"
    return
  fi
  {
    echo "# written by tests/compat/librdkafka/run.sh"
    echo "bootstrap.servers=$BOOTSTRAP"
    echo "test.timeout.multiplier=2"
    printf '%s\n' "${conf_lines[@]}"
  } >"$LOGDIR/$key.conf"
  start=$SECONDS
  # kafka-topics.sh (the shim in kafka-path/) finds the broker in BROKERS and the CLI in SLUICE_BIN.
  (cd "$TESTDIR" && env "${test_env[@]}" BROKERS="$BOOTSTRAP" SLUICE_BIN="$SLUICE_BIN" \
    RDKAFKA_TEST_CONF="$LOGDIR/$key.conf" TESTS="$t" timeout -k 10 "$tmo" "${runner_prefix[@]}" ./test-runner "${args[@]}") >"$tlog" 2>&1 &
  runner=$!
  echo "$runner" >"$data.runner.pid"
  wait "$runner"
  rc=$?
  secs=$((SECONDS - start))
  brokers_alive || alive=0
  stop_brokers >>"$blog"
  wait "${BROKER_PIDS[@]}" 2>/dev/null
  rm -rf "$data" "$data".*.pid
  # The summary table lists each sub-test (0022_consume_batch, 0022_consume_batch_local, ...).
  table="$(sed -e 's/\x1b\[[0-9;]*m//g' "$tlog" | grep -E "^\| $t[_a-z0-9]* +\| +[A-Z]+ +\|")"
  n_pass="$(grep -c '| *PASSED *|' <<<"$table")"
  n_fail="$(grep -cE '\| *(FAILED|RUNNING) *\|' <<<"$table")"
  n_skip="$(grep -c '| *SKIPPED *|' <<<"$table")"
  detail="${secs}s"
  [ -n "$flags" ] && detail="$detail, $flags"
  [ "$n_skip" -gt 0 ] && detail="$detail, $n_skip sub-test(s) skipped"
  {
    if [ "$rc" -eq 0 ] && [ "$alive" -eq 1 ] && [ "$n_pass" -gt 0 ] && [ "$n_fail" -eq 0 ]; then
      echo "ok   - $t ($(grep -oE "$t[_a-z0-9]*" <<<"$table" | sort -u | tr '\n' ' ' | sed 's/ $//'); $detail)"
    else
      case "$rc" in
        0) why="nothing ran (all skipped)" ;;
        124 | 137) why="timed out after ${tmo}s" ;;
        134) why="test failed (test-runner aborted)" ;;
        *) why="test-runner exit $rc" ;;
      esac
      [ "$alive" -eq 0 ] && why="$why; the broker died"
      echo "FAIL - $t ($why; $detail)"
      [ "$rc" -eq 0 ] && sed -e 's/\x1b\[[0-9;]*m//g' "$tlog" | grep -E "^\| $t.*SKIPPED" | sed 's/^/       /'
      failure_reason "$tlog"
      [ "$alive" -eq 0 ] && broker_log_tail "$blog" 10 | sed 's/^/       broker: /'
    fi
  } >"$res.tmp"
  mv "$res.tmp" "$res"
}

# Prints and counts the result of a finished job.
collect() {
  local pid="$1" t="${RUNNING[$1]}" res="$LOGDIR/${RUNNING[$1]}.result"
  t="${t%%-*}"
  unset "RUNNING[$pid]" "SLOT_OF[$pid]"
  [ -f "$res" ] || echo "FAIL - $t (the job died without a result)" >"$res"
  cat "$res"
  if head -n 1 "$res" | grep -q '^ok '; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$(head -n 1 "$res" | sed -e 's/^FAIL - //' -e 's/; [0-9]*s[,)].*$/)/')")
  fi
}

if [ "$SECURITY" -eq 1 ]; then
  [ "$NODES" -eq 1 ] || die "--security runs against one broker: unset LRK_NODES"
  command -v openssl >/dev/null || die "--security needs openssl (scripts/install-test-deps.sh)"
  make_certs || die "making the test certificates failed (openssl)"
fi
ulimit -c 0 2>/dev/null
say "broker: $SLUICE_BIN ($NODES node(s) per test); TEST_KAFKA_VERSION=$TEST_KAFKA_VERSION; ${#TESTS_LIST[@]} runs, $JOBS at a time"
echo
declare -A SEEN=()
reap() { # waits for at least one job to finish, then collects every finished one
  local pid
  wait -n 2>/dev/null
  for pid in "${!RUNNING[@]}"; do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; collect "$pid"; }
  done
}
for i in "${TESTS_LIST[@]}"; do
  t="${ENTRY_NUM[$i]}"
  while [ ${#RUNNING[@]} -ge "$JOBS" ]; do reap; done
  slot=0
  while printf '%s\n' "${SLOT_OF[@]}" | grep -qx "$slot"; do slot=$((slot + 1)); done
  SEEN[$t]=$((${SEEN[$t]:-0} + 1))
  key="$t"
  [ "${SEEN[$t]}" -gt 1 ] && key="$t-${SEEN[$t]}"
  run_one "$t" "$slot" "$key" "${ENTRY_FLAGS[$i]}" &
  RUNNING[$!]="$key"
  SLOT_OF[$!]="$slot"
done
while [ ${#RUNNING[@]} -gt 0 ]; do reap; done
[ "$failed" -eq 0 ]
