#!/usr/bin/env bash
# gpu_e2e.sh - end to end on the GPU machine: scripts/launch.sh --backend cuda serving
# stories15M (its bf16 copy, .devcarry/stories15M, or CINDER_STORIES) and a random-weight
# Llama-3-8B shape (--load-format dummy from bench/forward/llama3-8b/config.json with the
# Llama-3 tokenizer: build/assets/llama3, or CINDER_LLAMA3_TOK, a directory holding
# tokenizer.json[.gz] and tokenizer_config.json), one /generate request each.
# Binaries from $CINDER_BIN (default build/bin). Exit status: the number of failures.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STORIES=${CINDER_STORIES:-$ROOT/.devcarry/stories15M}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/build/assets/llama3}
failed=0

# serve NAME MODEL_DIR PORT EXPECTED_SUBSTRING [launch.sh options...]
serve() {
  local name=$1 dir=$2 port=$3 expect=$4 run out
  shift 4
  run=$(mktemp -d /tmp/cinder-e2e.XXXXXX)
  echo "== $name: launch.sh --backend cuda --model-dir $dir $*"
  if ! "$ROOT/scripts/launch.sh" --model-dir "$dir" --backend cuda --port "$port" \
      --run-dir "$run" --detach "$@"; then
    echo "!! $name: launch failed"
    tail -n 20 "$run"/*.log
    failed=$((failed + 1))
    return
  fi
  grep -h "cuda backend" "$run/worker.log" | tail -n 1
  out=$(curl -sS -m 300 -d '{"inputs":"Once upon a time","parameters":{"max_new_tokens":40}}' \
        "http://127.0.0.1:$port/generate")
  echo "$name /generate: $out"
  if [[ $out != *generated_text* || $out != *"$expect"* ]]; then
    echo "!! $name: unexpected answer (wanted \"$expect\")"
    tail -n 20 "$run/worker.log"
    failed=$((failed + 1))
  fi
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
}

serve stories15M "$STORIES" 8123 "little girl named Lily"

dummy=$(mktemp -d /tmp/cinder-llama3-8b.XXXXXX)
cp "$ROOT/bench/forward/llama3-8b/config.json" "$dummy/"
cp "$TOK/tokenizer_config.json" "$dummy/"
if [ -f "$TOK/tokenizer.json" ]; then cp "$TOK/tokenizer.json" "$dummy/"
else gunzip -c "$TOK/tokenizer.json.gz" > "$dummy/tokenizer.json"; fi
serve "llama3-8b dummy" "$dummy" 8124 count_output_tokens --load-format dummy \
  --max-seq-len 4096
rm -rf "$dummy"
echo "gpu_e2e.sh: $failed failed"
exit $failed
