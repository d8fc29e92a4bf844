#!/usr/bin/env bash
# gpu_prefix.sh - on the GPU machine: prefix caching on the Llama-3-8B shape (--load-format
# dummy, the Llama-3 tokenizer), with and without the cache in the same run: a 2048-token
# system prompt shared by every request (bench-serving prefix_repetition, one prefix, 128-token
# questions, 128-token answers) and multi-turn conversations (each turn resends the history).
# Prints bench-serving's table for each and one RESULT line per run (TTFT, throughput, hit rate).
# Binaries from $CINDER_BIN (default .devcarry/build/bin); tokenizer from $CINDER_LLAMA3_TOK
# (a directory with tokenizer.json[.gz] and tokenizer_config.json).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CINDER_BIN:-$ROOT/.devcarry/build/bin}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/.devcarry/llama3}
model=$(mktemp -d /tmp/cinder-prefix-8b.XXXXXX)
cp "$ROOT/bench/forward/llama3-8b/config.json" "$TOK/tokenizer_config.json" "$model/"
if [ -f "$TOK/tokenizer.json" ]; then cp "$TOK/tokenizer.json" "$model/"
else gunzip -c "$TOK/tokenizer.json.gz" > "$model/tokenizer.json"; fi
failed=0

bench() {   # bench PORT NAME ARGS...: one bench-serving run, its table and a RESULT line
  local port=$1 name=$2 out
  shift 2
  out=$("$BIN/bench-serving" --port "$port" --tokenizer "$model/tokenizer.json" --no-progress \
        --result-file /tmp/prefix-$name.json "$@" 2>&1)
  echo "$out" | sed -n '/Serving Benchmark Result/,$p'
  python3 - "/tmp/prefix-$name.json" "$name" <<'EOF' || failed=$((failed + 1))
import json, sys
r = json.load(open(sys.argv[1]))
hit = r.get("prefix_cache_hit_rate")
print("RESULT prefix | %s | %d ok, %d failed | mean TTFT %.1f ms, p99 %.1f ms | %.0f out tok/s, %.0f total tok/s | hit rate %s"
      % (sys.argv[2], r["completed"], r["failed"], r["mean_ttft_ms"], r["p99_ttft_ms"],
         r["output_throughput"], r["total_token_throughput"],
         "%.1f%%" % (100 * hit) if hit is not None else "n/a"))
sys.exit(0 if r["failed"] == 0 else 1)
EOF
}

run() {   # run PORT LABEL [launch.sh options]: both workloads on one launch
  local port=$1 label=$2 dir
  shift 2
  dir=$(mktemp -d /tmp/cinder-prefix-run.XXXXXX)
  if ! "$ROOT/scripts/launch.sh" --model-dir "$model" --backend cuda --port "$port" \
      --run-dir "$dir" --detach --load-format dummy --max-seq-len 8192 "$@"; then
    echo "!! launch failed ($label)"; tail -n 20 "$dir"/*.log; failed=$((failed + 1)); return
  fi
  bench "$port" "system-prompt-$label" --dataset-name prefix_repetition \
    --prefix-repetition-prefix-len 2048 --prefix-repetition-suffix-len 128 \
    --prefix-repetition-num-prefixes 1 --prefix-repetition-output-len 128 \
    --num-prompts 256 --max-concurrency 64 --seed 1
  bench "$port" "multiturn-$label" --dataset-name multiturn --multiturn-turns 6 \
    --random-input-len 256 --random-output-len 128 --num-prompts 192 --max-concurrency 32 --seed 2
  "$ROOT/scripts/stop.sh" --run-dir "$dir" > /dev/null 2>&1
}

run 8131 cached
run 8132 uncached --no-prefix-caching
rm -rf "$model"
echo "gpu_prefix.sh: $failed failed"
exit $failed
