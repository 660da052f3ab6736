#!/usr/bin/env bash
# A stand-in for Apache Kafka's bin/kafka-topics.sh over Sluice's own CLI, for the librdkafka
# tests that create topics with it (test_kafka_topics() in librdkafka's tests/test.c, used when
# the test needs topic configs, e.g. 0077 compaction). run.sh points KAFKA_PATH here for the
# tests flagged `kafkatopics` in allowlist.txt.
#
# Understands --bootstrap-server, --create / --delete, --topic, --partitions,
# --replication-factor and --config k=v (repeatable); anything else is refused, so a test that
# needs more fails loudly instead of running against a topic made differently.
set -euo pipefail

sluice="${SLUICE_BIN:?kafka-topics.sh shim: SLUICE_BIN must name the sluice binary}"
fail() {
  echo "kafka-topics.sh (sluice shim): $*" >&2
  exit 2
}

action=""
topic=""
brokers=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) brokers="${2:-}"; shift 2 ;;
    --create) action=create; shift ;;
    --delete) action=delete; shift ;;
    --topic) topic="${2:-}"; shift 2 ;;
    --partitions) args+=(--partitions "${2:-}"); shift 2 ;;
    --replication-factor) args+=(--replication-factor "${2:-}"); shift 2 ;;
    --config) args+=(--config "${2:-}"); shift 2 ;;
    *) fail "unsupported argument '$1'" ;;
  esac
done
[ -n "$brokers" ] || fail "--bootstrap-server is required"
[ -n "$topic" ] || fail "--topic is required"
case "$action" in
  create) exec "$sluice" topic create "$topic" "${args[@]}" --brokers "$brokers" ;;
  delete) exec "$sluice" topic delete "$topic" --brokers "$brokers" ;;
  *) fail "give --create or --delete" ;;
esac
