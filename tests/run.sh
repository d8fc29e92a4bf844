#!/usr/bin/env bash
# run.sh - runs test binaries (cmocka or any that print cmocka's summary) one after another
# and ends with one line "N passed, N failed". A binary that crashes or exits nonzero
# without a summary counts as one failure. Exit status 0 only if nothing failed.
#
#   tests/run.sh build/test/test_a build/test/e2e_b ...
set -uo pipefail
# the binaries of this build for the scripts the tests run (launch.sh's default is build/bin)
if [ -n "${BUILD:-}" ] && [ -z "${CINDER_BIN:-}" ] && [ -d "$BUILD/bin" ]; then
  CINDER_BIN=$(cd "$BUILD/bin" && pwd); export CINDER_BIN
fi
passed=0 failed=0
for t in "$@"; do
  echo "== $t"
  out=$(mktemp)
  "$t" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  # the GPU tests' own tally: "NAME: N passed, M failed"
  p=$((p + $(sed -n 's/^[a-z_]*: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$out" | awk '{s+=$1} END {print s+0}')))
  f=$((f + $(sed -n 's/^[a-z_]*: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$out" | awk '{s+=$1} END {print s+0}')))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; echo "!! $t exited with status $rc"; fi
  passed=$((passed + p)) failed=$((failed + f))
  rm -f "$out"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
