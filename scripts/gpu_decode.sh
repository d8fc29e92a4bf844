#!/usr/bin/env bash
# gpu_decode.sh - on the GPU machine: one call that checks and measures the decode path and the
# prefill attention variants: the kernel tests touched by them, the fused GEMV benchmark, the
# forward benchmark's decode breakdown (fused path, cuBLAS path with --gemv-max-tokens 0, and GEMV
# warp targets --gemv-warps), the backend tests, the prefill attention benchmark at 8k tokens.
# Binaries from $R (default .devcarry/r), libraries from .devcarry/libs. On the development
# machine, after scripts/gpu_carry.sh (which builds .devcarry/build for sm_90a):
#   B=.devcarry/build; make BUILD=$B NVFLAGS="<gpu_carry.sh's NVF>" $B/bench/bench_gemv \
#       $B/bench/bench_prefill_attn; mkdir -p .devcarry/r/{bin,test-gpu,bench}
#   cp $B/bin/{forward,make-model,st-convert} .devcarry/r/bin; cp $B/test-gpu/test_{gemv,\
#       decode_attn,prefill_attn,rope,cuda_backend,hf_compare} .devcarry/r/test-gpu
#   cp $B/bench/bench_{gemv,prefill_attn} .devcarry/r/bench; strip .devcarry/r/*/*
# and carry .devcarry/r .devcarry/libs .devcarry/stories15M (about 55 MB: within the 64 MiB a
# call carries, which the whole of .devcarry/build is not). Output to $OUT/log.
# Usage: scripts/gpu_decode.sh [STEP...]   (default: every step; names as in the step lines)
# Exit status: the number of failed steps.
set -uo pipefail
R=${R:-.devcarry/r}
export LD_LIBRARY_PATH=$PWD/.devcarry/libs:${LD_LIBRARY_PATH:-} BUILD=$R
. "$(dirname "$0")/gpu_log.sh"
gpu_log_start gpu_decode
failed=()
only=" $* "
step() {   # step SECONDS NAME COMMAND...: runs it when no step was named or NAME was
    local secs=$1 name=$2
    shift 2
    [[ $only == "  " || $only == *" $name "* ]] || return 0
    echo "== $name: $*"
    local t0=$SECONDS
    if ! timeout "$secs" "$@"; then failed+=("$name"); echo "!! $name failed"; fi
    echo "-- $name: $((SECONDS - t0)) s"
}
fwd="$R/bin/forward --breakdown --prefill 1x128"
step 60 test_gemv "$R/test-gpu/test_gemv"
step 240 forward_md "$R/bin/forward" --md
step 150 forward $fwd --decode-batches 1,2,4,8 --contexts 512,4096
step 60 bench_gemv "$R/bench/bench_gemv"
step 90 forward_cublas $fwd --gemv-max-tokens 0 --decode-batches 1,2,4,8 --contexts 512,4096
step 90 forward_w8 $fwd --gemv-warps 8 --decode-batches 1,8 --contexts 512
step 90 forward_w16 $fwd --gemv-warps 16 --decode-batches 1,2 --contexts 512
step 90 forward_w20 $fwd --gemv-warps 20 --decode-batches 1,8 --contexts 512
for w in 16 20 24; do   # warp targets over the fused path's batch sizes
    step 90 tune_w$w $fwd --gemv-max-tokens 8 --gemv-warps $w --decode-batches 1,2,4,8 --contexts 512,4096
done
step 180 test_cuda_backend "$R/test-gpu/test_cuda_backend"
step 90 test_decode_attn "$R/test-gpu/test_decode_attn"
step 30 test_rope "$R/test-gpu/test_rope"
step 150 test_prefill_attn "$R/test-gpu/test_prefill_attn"
step 90 bench_prefill_attn "$R/bench/bench_prefill_attn" 12
step 150 test_hf_compare "$R/test-gpu/test_hf_compare"
echo "== summary"
grep -hE '^[a-z_]+: [0-9]+ passed, [0-9]+ failed|^bt|passed' "$log" | grep -E "passed, [0-9]+ failed" | tail -n 20
grep -hE '^(RESULT|BREAKDOWN|CEILING)' "$log" | tail -n 80
if [ ${#failed[@]} -eq 0 ]; then echo "gpu_decode.sh: all steps succeeded"
else echo "gpu_decode.sh: FAILED: ${failed[*]}"; fi
exit ${#failed[@]}
