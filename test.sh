#!/usr/bin/env bash
# Runs Sluice's whole test suite against real broker processes:
#   formatting and lints, Rust unit and end-to-end tests (librdkafka via the
#   rdkafka crate), Node.js tests (kafkajs, kafka-node and the examples), the web
#   console in headless chromium, kcat, kafka-python and confluent-kafka, and librdkafka's
#   own test suite (an allowlist of its tests, against three-node clusters and, its smoke
#   set and its security tests, against one broker).
# Installs missing test dependencies first (see scripts/install-test-deps.sh).
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
logdir=$(mktemp -d)
passed=0
failed=0
status=0

# Each step names the time it starts at, so a slow step shows in the log.
step() { echo; echo "==> $* (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }

count_cargo() { # sums "test result: ... N passed; M failed" lines
  local p f
  p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$1" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed;' "$1" | awk '{s+=$1} END {print s+0}')
  passed=$((passed + p)); failed=$((failed + f))
}

step "installing test dependencies"
scripts/install-test-deps.sh || { echo "dependency installation failed"; exit 1; }

step "cargo fmt --check"
cargo fmt --all -- --check || status=1

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings || status=1

step "building sluice and the fault harness"
cargo build -p sluice -p sluice-chaos --quiet || { echo "build failed"; exit 1; }
export SLUICE_BIN="$PWD/target/debug/sluice"
# Test brokers run side by side; none of them should take the default HTTP port.
export SLUICE_HTTP_LISTEN=off

step "cargo test (unit and end-to-end)"
cargo test --workspace --no-fail-fast 2>&1 | tee "$logdir/cargo.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_cargo "$logdir/cargo.log"

# A short fixed-seed run of every fault kind against three nodes (tests/chaos): one test,
# passed when the checker finds no anomaly. Generous timings for a loaded 2-core machine.
step "fault harness: sluice-chaos, seed 1, every fault kind (docs/RELIABILITY.md)"
target/debug/sluice-chaos --seed 1 --duration 80 --complete-rounds --interval 1 --hold-min 2 --hold-max 4 \
  --rate 50 --transactional-producers 1 2>&1 | tee "$logdir/chaos.log"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi

step "node --test (kafkajs, examples)"
(cd tests/node && node --test --test-concurrency=2 test/) 2>&1 | tee "$logdir/node.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
p=$(grep -Eo '^# pass [0-9]+' "$logdir/node.log" | awk '{print $3}' | tail -1)
f=$(grep -Eo '^# fail [0-9]+' "$logdir/node.log" | awk '{print $3}' | tail -1)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))

step "console in a browser (node --test, playwright-core, Debian's chromium)"
(cd tests/console && node --test --test-concurrency=1 test/) 2>&1 | tee "$logdir/console.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
p=$(grep -Eo '^# pass [0-9]+' "$logdir/console.log" | awk '{print $3}' | tail -1)
f=$(grep -Eo '^# fail [0-9]+' "$logdir/console.log" | awk '{print $3}' | tail -1)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
echo "screenshots and measurements: tests/console/artifacts/"

step "kcat ($(kcat -V 2>/dev/null | grep -Eo 'librdkafka [0-9.]+' | head -1))"
tests/kcat/run.sh 2>&1 | tee "$logdir/kcat.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logdir/kcat.log" | tail -1)
passed=$((passed + $(echo "${line:-0 passed}" | awk '{print $1}')))
failed=$((failed + $(echo "${line:-0 passed, 0 failed}" | awk '{print $3}')))

# Adds the "N passed" / "N failed" counts of a suite's last summary line.
count_summary() {
  local line p f
  line=$(grep -E '[0-9]+ passed' "$1" | tail -1)
  p=$(echo "$line" | grep -Eo '[0-9]+ passed' | awk '{print $1}')
  f=$(echo "$line" | grep -Eo '[0-9]+ failed' | awk '{print $1}')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}

step "Python clients (kafka-python, confluent-kafka)"
tests/python/run.sh 2>&1 | tee "$logdir/python.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_summary "$logdir/python.log"

# The whole allowlist against three-node clusters (replication factor 3, racks); a single
# broker runs the smoke set (librdkafka's own SMOKE_TESTS plus acks, idempotence and
# cooperative rebalancing), which keeps the suite's share of CI near ten minutes.
step "librdkafka's own test suite against three-node clusters (tests/compat/librdkafka)"
LRK_NODES=3 tests/compat/librdkafka/run.sh 2>&1 | tee "$logdir/librdkafka-cluster.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count_summary "$logdir/librdkafka-cluster.log"

# The smoke set against one broker, and at the same time (both mostly wait) the security
# tests (ACLs, SASL, re-authentication, TLS), each against one broker set up the way it
# needs (tests/compat/librdkafka/security.txt); each run prints its log when both are done.
step "librdkafka's own test suite against one broker: smoke set, and security tests (ACLs, SASL, TLS)"
tests/compat/librdkafka/run.sh 0000 0001 0004 0008 0012 0017 0022 0030 0039 0049 0090 0103 0113 \
  >"$logdir/librdkafka.log" 2>&1 &
smoke=$!
tests/compat/librdkafka/run.sh --security >"$logdir/librdkafka-security.log" 2>&1 &
security=$!
wait "$smoke" || status=1
wait "$security" || status=1
for log in librdkafka librdkafka-security; do
  echo "--- $log"
  cat "$logdir/$log.log"
  count_summary "$logdir/$log.log"
done

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "a step failed outside the counted tests (see above)"
fi
echo
echo "whole suite: $((SECONDS / 60))m$((SECONDS % 60))s"
echo "${passed} passed, ${failed} failed"
exit "$status"
