#!/usr/bin/env bash
# A stand-in for Apache Kafka's bin/kafka-acls.sh over Sluice's own CLI, for the librdkafka
# tests that add and remove ACLs with it (test_kafka_cmd() in librdkafka's tests/test.c:
# 0109, 0115, 0119). run.sh points KAFKA_PATH here for the tests flagged `acl`.
#
# Understands --bootstrap-server, --add / --remove (with --force), --allow-principal,
# --deny-principal, --allow-host, --deny-host, --operation (repeatable), one of --topic,
# --group, --transactional-id, --cluster, and --resource-pattern-type literal|prefixed;
# anything else is refused, so a test that needs more fails loudly instead of running with
# ACLs made differently.
set -euo pipefail

sluice="${SLUICE_BIN:?kafka-acls.sh shim: SLUICE_BIN must name the sluice binary}"
fail() {
  echo "kafka-acls.sh (sluice shim): $*" >&2
  exit 2
}

action=""
brokers=""
principal=""
permission=""
host="*"
pattern="literal"
operations=()
resource=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) brokers="${2:-}"; shift 2 ;;
    --add) action=add; shift ;;
    --remove) action=remove; shift ;;
    --force) shift ;; # kafka-acls.sh asks before removing unless --force; we never ask
    --allow-principal | --deny-principal)
      [ -z "$principal" ] || fail "give one principal (a second one is not supported)"
      permission="${1#--}"; permission="${permission%-principal}"
      principal="${2:-}"; shift 2 ;;
    --allow-host | --deny-host) host="${2:-}"; shift 2 ;;
    --operation) operations+=("${2:-}"); shift 2 ;;
    --topic | --group | --transactional-id)
      [ ${#resource[@]} -eq 0 ] || fail "give one resource"
      resource=("$1" "${2:-}"); shift 2 ;;
    --cluster)
      [ ${#resource[@]} -eq 0 ] || fail "give one resource"
      resource=(--cluster); shift ;;
    --resource-pattern-type) pattern="${2:-}"; shift 2 ;;
    *) fail "unsupported argument '$1'" ;;
  esac
done
[ -n "$brokers" ] || fail "--bootstrap-server is required"
[ -n "$principal" ] || fail "give --allow-principal or --deny-principal"
[ ${#operations[@]} -gt 0 ] || fail "give --operation"
[ ${#resource[@]} -gt 0 ] || fail "give --topic, --group, --transactional-id or --cluster"

case "$action" in
  add)
    args=(--"$permission" "$principal" --host "$host" --pattern "$pattern" "${resource[@]}")
    for op in "${operations[@]}"; do args+=(--operation "$op"); done
    exec "$sluice" acl create "${args[@]}" --brokers "$brokers" ;;
  remove)
    # kafka-acls.sh --remove deletes the ACLs that are exactly these (each operation).
    for op in "${operations[@]}"; do
      "$sluice" acl delete --principal "$principal" --permission "$permission" --host "$host" \
        --operation "$op" --pattern "$pattern" "${resource[@]}" --brokers "$brokers"
    done ;;
  *) fail "give --add or --remove" ;;
esac
