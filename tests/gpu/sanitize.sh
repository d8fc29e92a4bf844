#!/usr/bin/env bash
# sanitize.sh - `make test-gpu-sanitize`: every GPU test under compute-sanitizer's memcheck
# (out-of-bounds and misaligned accesses, including in cuBLAS and in replayed CUDA graphs), and
# the kernels that use shared memory also under racecheck. A test fails when the sanitizer
# reports an error (--error-exitcode) or the test itself fails. Ends with "N passed, N failed".
#
#   tests/gpu/sanitize.sh build/test-gpu/test_a build/test-gpu/test_b ...
set -uo pipefail
san=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}
[ -x "$san" ] || { echo "sanitize.sh: compute-sanitizer not found"; echo "0 passed, 1 failed"; exit 1; }
# kernels with shared memory (kernels/*.cu that declare __shared__): racecheck too
racy="test_decode_attn test_gemv test_prefill_attn test_rmsnorm test_rope test_sample_greedy test_sample_full test_topk_logprobs"
passed=0 failed=0
run() {   # TOOL TEST
  local tool=$1 t=$2 log rc
  log=$(mktemp)
  echo "== $tool: $t"
  "$san" --tool "$tool" --error-exitcode 99 --print-limit 20 "$t" > "$log" 2>&1
  rc=$?
  grep -E "^(=========|[a-z_]+: [0-9]+ passed)" "$log" | tail -n 25
  if [ $rc = 0 ]; then passed=$((passed + 1)); echo "ok   $tool $(basename "$t")"
  else failed=$((failed + 1)); echo "FAIL $tool $(basename "$t") (status $rc)"; tail -n 40 "$log"; fi
  rm -f "$log"
}
for t in "$@"; do
  run memcheck "$t"
  [[ " $racy " == *" $(basename "$t") "* ]] && run racecheck "$t"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
