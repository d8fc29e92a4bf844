#!/usr/bin/env bash
# bench_tokenizer.sh - single-thread encode speed, cinder vs HF tokenizers (Rust, via its Node
# binding), on the same real text, for the default model's Llama-2 tokenizer, Llama-3's and Qwen3's.
# Prints both lines and the ratio for each (tokenizer, mode).
#
#   bench/bench_tokenizer.sh [--data PROMPTS.json] [--oracle DIR] [--secs S]
# DIR holds node_modules/@anush008/tokenizers; installed there with npm when missing.
# BUILD (environment) picks the build directory, as for make.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/sharegpt_prompts_2978.json ORACLE=build/oracle SECS=3
while [ $# -gt 0 ]; do
  case $1 in
    --data) DATA=$2; shift 2 ;; --oracle) ORACLE=$2; shift 2 ;; --secs) SECS=$2; shift 2 ;;
    *) echo "usage: $0 [--data PROMPTS.json] [--oracle DIR] [--secs S]" >&2; exit 2 ;;
  esac
done
if [ ! -d "$ORACLE/node_modules/@anush008/tokenizers" ]; then
  mkdir -p "$ORACLE"
  (cd "$ORACLE" && npm install --silent --no-save @anush008/tokenizers@0.6.0 >/dev/null)
fi
BUILD=${BUILD:-build}
make -s BUILD="$BUILD" "$BUILD/bin/bench-tokenizer"
export RAYON_RS_NUM_CPUS=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1
for tk in models/stories15M/tokenizer.json build/assets/llama3/tokenizer.json build/assets/qwen3/tokenizer.json; do
  [ -f "$tk" ] || { echo "missing $tk (run scripts/setup.sh)" >&2; exit 1; }
  for mode in concat prompts; do
    c=$("$BUILD/bin/bench-tokenizer" --tokenizer "$tk" --data "$DATA" --mode $mode --secs "$SECS")
    h=$(node bench/tokenizer_hf.js --oracle "$ORACLE" --tokenizer "$tk" --data "$DATA" --mode $mode --secs "$SECS")
    echo "== $tk"
    echo "$c"
    echo "$h"
    ct=$(echo "$c" | sed -n 's/.*tokens\/pass=\([0-9]*\).*/\1/p')
    ht=$(echo "$h" | sed -n 's/.*tokens\/pass=\([0-9]*\).*/\1/p')
    [ "$ct" = "$ht" ] || echo "!! token counts differ: cinder $ct, hf $ht"
    cm=$(echo "$c" | sed -n 's/.*MB\/s=\([0-9.]*\).*/\1/p')
    hm=$(echo "$h" | sed -n 's/.*MB\/s=\([0-9.]*\).*/\1/p')
    awk -v c="$cm" -v h="$hm" -v m=$mode 'BEGIN { printf "ratio mode=%s cinder/hf = %.1fx\n", m, c / h }'
  done
done
