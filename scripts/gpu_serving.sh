#!/usr/bin/env bash
# gpu_serving.sh - on the GPU machine: serving figures with the CUDA backend. For each model
# (stories15M bf16; a dummy-weight Llama-3-8B shape) and each router pipeline depth (1: the
# worker waits for the router between iterations; 2: the next step is already queued), runs
# bench-serving (random prompts, all at once, bounded concurrency) and prints the table and
# the worker's idle gap between iterations over the run (from the store's counters).
# Binaries from $CINDER_BIN; models as in gpu_e2e.sh. Results also in $OUT/serving-*.json.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CINDER_BIN:-$ROOT/build/bin}
STORIES=${CINDER_STORIES:-$ROOT/.devcarry/stories15M}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/build/assets/llama3}
OUTD=${OUT:-/tmp}
stat_of() { "$BIN/shm-tool" stat --name "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['$2'])"; }

# bench NAME MODEL_DIR DEPTH PROMPTS IN OUT CONC [launch options...]
bench() {
  local name=$1 dir=$2 depth=$3 n=$4 in=$5 out=$6 conc=$7 run port=8200
  shift 7
  run=$(mktemp -d /tmp/cinder-serving.XXXXXX)
  "$ROOT/scripts/launch.sh" --model-dir "$dir" --backend cuda --port $port --run-dir "$run" \
      --pipeline-depth "$depth" --detach "$@" > /dev/null || { echo "!! $name launch failed"; tail "$run"/*.log; return; }
  SHM=$(sed -n "s/^SHM=//p" "$run/run.env") # read, never sourced
  local g0 n0 b0 s0
  g0=$(stat_of "$SHM" step_gap_us) n0=$(stat_of "$SHM" n_step_gaps) b0=$(stat_of "$SHM" step_busy_us) s0=$(stat_of "$SHM" worker_steps)
  echo "== $name, pipeline depth $depth: $n prompts, $in in / $out out, concurrency $conc"
  "$BIN/bench-serving" --port $port --tokenizer "$dir/tokenizer.json" --dataset-name random \
      --random-input-len "$in" --random-output-len "$out" --num-prompts "$n" --max-concurrency "$conc" \
      --no-progress --result-file "$OUTD/serving-$name-d$depth.json" | sed -n '/Successful/,/=====$/p'
  local g1 n1 b1 s1
  g1=$(stat_of "$SHM" step_gap_us) n1=$(stat_of "$SHM" n_step_gaps) b1=$(stat_of "$SHM" step_busy_us) s1=$(stat_of "$SHM" worker_steps)
  python3 -c "
steps=$s1-$s0; gaps=$n1-$n0; g=($g1-$g0); b=($b1-$b0)
print(f'iterations {steps}: mean step {b/max(steps,1)/1000:.3f} ms, mean gap between iterations {g/max(gaps,1):.1f} us over {gaps} gaps, idle share {g/max(g+b,1)*100:.2f}%')"
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
}

bench stories15M "$STORIES" 1 512 64 128 128
bench stories15M "$STORIES" 2 512 64 128 128
D=$(mktemp -d /tmp/cinder-8b.XXXXXX)
cp "$ROOT/bench/forward/llama3-8b/config.json" "$D/"
if [ -f "$TOK/tokenizer.json.gz" ]; then gunzip -c "$TOK/tokenizer.json.gz" > "$D/tokenizer.json"; else cp "$TOK/tokenizer.json" "$D/"; fi
cp "$TOK/tokenizer_config.json" "$D/"
bench llama3-8b-dummy "$D" 1 256 256 128 64 --load-format dummy --max-seq-len 4096
bench llama3-8b-dummy "$D" 2 256 256 128 64 --load-format dummy --max-seq-len 4096
