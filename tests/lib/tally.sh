# Sourced by the shell test suites (tests/kcat/run.sh, tests/compat/librdkafka/run.sh): the
# pass/fail tally and the summary line test.sh adds up, "N passed, N failed", printed last
# and once, from the suite's exit trap.

passed=0
failed=0
failures=()
SUMMARY_PRINTED=""

# Lists the failed checks, then the summary line; later calls print nothing.
print_summary() {
  [ -z "$SUMMARY_PRINTED" ] || return 0
  SUMMARY_PRINTED=1
  if [ "$failed" -gt 0 ] && [ ${#failures[@]} -gt 0 ]; then
    echo "failed:"
    printf '  %s\n' "${failures[@]}"
  fi
  echo
  echo "$passed passed, $failed failed"
}
