#!/usr/bin/env bash
# gpu_sharegpt.sh - on the GPU machine: the end-to-end serving figure of issues 16 and 17 — the
# Llama-3-8B shape (dummy weights, Llama-3 tokenizer) served by launch.sh --backend cuda, and
# bench-serving sending 500 ShareGPT human turns at once, 180 output tokens each, ignore_eos.
# One run per precision given (default "bf16 fp8": fp8 = --quantization fp8 --kv-cache-dtype fp8),
# each on a fresh server, so both figures come from the same machine in the same call. Both run
# without the holder (FP8 is refused with it) and with 1024 request slots and 1024 HTTP handler
# threads, so all 500 run at once (at the defaults, 256 and 256, the rest wait in the HTTP queue).
# Dataset from $SHAREGPT (default .devcarry/data/sharegpt_prompts_2978.json: copy
# ../shared/data/sharegpt_prompts_2978.json there and carry it); binaries and tokenizer as in
# gpu_serving.sh. Results in $OUT/sharegpt-PRECISION.json. Exit status: the failed runs.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CINDER_BIN:-$ROOT/.devcarry/build/bin}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/.devcarry/llama3}
DATA=${SHAREGPT:-$ROOT/.devcarry/data/sharegpt_prompts_2978.json}
OUTD=${OUT:-/tmp}
N=${SHAREGPT_PROMPTS:-500}
failed=0
D=$(mktemp -d /tmp/cinder-8b.XXXXXX)
cp "$ROOT/bench/forward/llama3-8b/config.json" "$D/"
if [ -f "$TOK/tokenizer.json.gz" ]; then gunzip -c "$TOK/tokenizer.json.gz" > "$D/tokenizer.json"; else cp "$TOK/tokenizer.json" "$D/"; fi
cp "$TOK/tokenizer_config.json" "$D/"
for prec in ${*:-bf16 fp8}; do
  extra=(--no-holder --slots 1024 --http-threads 1024)
  [ "$prec" = fp8 ] && extra+=(--quantization fp8 --kv-cache-dtype fp8)
  run=$(mktemp -d /tmp/cinder-sharegpt.XXXXXX) port=8300
  echo "== $prec: $N ShareGPT prompts at once, 180 output tokens, ignore_eos"
  if ! CINDER_BIN="$BIN" "$ROOT/scripts/launch.sh" --model-dir "$D" --backend cuda --port $port \
      --run-dir "$run" --load-format dummy --max-seq-len 4096 --detach "${extra[@]}" > "$run/launch.out" 2>&1; then
    echo "!! $prec: launch failed"; tail -n 5 "$run/launch.out" "$run"/*.log; failed=$((failed + 1)); continue
  fi
  "$BIN/bench-serving" --port $port --tokenizer "$D/tokenizer.json" --dataset-name sharegpt \
      --dataset-path "$DATA" --num-prompts "$N" --sharegpt-output-len 180 --max-total-len 4096 \
      --seed 0 --no-progress --result-file "$OUTD/sharegpt-$prec.json" |
    sed -n '/Successful/,/=====$/p' || failed=$((failed + 1))
  grep -h "kv\|KV" "$run/worker.log" | head -3
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
done
exit $failed
