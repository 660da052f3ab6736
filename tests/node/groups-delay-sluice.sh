#!/bin/sh
# Runs the real sluice binary ($SLUICE_REAL_BIN) with the value of
# --group-initial-rebalance-delay-ms replaced by $SLUICE_TEST_INITIAL_DELAY_MS.
# harness.js always passes `--group-initial-rebalance-delay-ms 0` (and the flag cannot be
# given twice); test/groups-delay.test.js points SLUICE_BIN here to test a non-zero delay.
replace=0
for arg do
  shift
  if [ "$replace" = 1 ]; then
    set -- "$@" "$SLUICE_TEST_INITIAL_DELAY_MS"
    replace=0
    continue
  fi
  [ "$arg" = "--group-initial-rebalance-delay-ms" ] && replace=1
  set -- "$@" "$arg"
done
echo "groups-delay-sluice.sh: exec $SLUICE_REAL_BIN $*" >&2
exec "$SLUICE_REAL_BIN" "$@"
