#!/usr/bin/env bash
# gpu.sh - run on the GPU machine: every kernel test (build/test-gpu/*), then every kernel
# benchmark (build/bench/*), all built beforehand on the development machine (the GPU machine
# lacks our Debian libraries: bundle them with shared/device/bundle-libs.sh into build/lib).
# Output goes to the terminal and to $OUT/log (./gpu.log without $OUT).
#
# Usage: scripts/gpu.sh [all|tests|bench|forward|e2e] [SUBSTRING]   (SUBSTRING filters program names)
# forward: the single-forward benchmark of the CUDA backend ($build/bin/forward, Llama-3-8B
# shape, dummy weights; bf16 then FP8, each with its --compare table); e2e: scripts/gpu_e2e.sh (launch.sh --backend cuda, /generate).
# Exit status: the number of failed programs.
set -uo pipefail
what=${1:-all}
filter=${2:-}
build=${BUILD:-build}
export LD_LIBRARY_PATH=$PWD/$build/lib:${LD_LIBRARY_PATH:-}
. "$(dirname "$0")/gpu_log.sh"
gpu_log_start gpu
failed=()
run_dir() {
    local dir=$1 p
    for p in "$dir"/*; do
        [ -x "$p" ] && [ -f "$p" ] || continue
        [[ -z $filter || $(basename "$p") == *"$filter"* ]] || continue
        echo "== $p"
        if ! "$p"; then failed+=("$(basename "$p")"); echo "!! $p failed"; fi
    done
}
[[ $what == all || $what == tests ]] && run_dir "$build/test-gpu"
[[ $what == all || $what == bench ]] && run_dir "$build/bench"
# the attention peer (torch SDPA, cuDNN and flash backends) on the same shapes, same call
if [[ $what == all || $what == bench ]] && python3 -c 'import torch' 2>/dev/null; then
    echo "== bench/attn_peer.py"
    python3 bench/attn_peer.py || { failed+=("attn_peer"); echo "!! attn_peer failed"; }
fi

# CUDA backend: forward benchmark and end to end
if [[ $what == all || $what == forward ]] && [ -x "$build/bin/forward" ]; then
    # bf16, then FP8 weights and KV: each case beside its floor and its baseline (--compare)
    for q in "" "--quantization fp8 --kv-cache-dtype fp8"; do
        echo "== $build/bin/forward --md --compare $q"
        "$build/bin/forward" --md --compare $q || { failed+=("forward $q"); echo "!! forward $q failed"; }
    done
fi
if [[ $what == all || $what == e2e ]]; then
    echo "== scripts/gpu_e2e.sh"
    CINDER_BIN=$PWD/$build/bin scripts/gpu_e2e.sh || { failed+=("gpu_e2e"); echo "!! gpu_e2e failed"; }
fi

echo "== summary"
grep -hE '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 50 || true
grep -h '^RESULT' "$log" | tail -n 60 || true
if [ ${#failed[@]} -eq 0 ]; then echo "gpu.sh: all programs succeeded"
else echo "gpu.sh: FAILED: ${failed[*]}"; fi
exit ${#failed[@]}
