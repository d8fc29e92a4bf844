#!/usr/bin/env bash
# gpu_holder.sh - issue 12's target scenario on the GPU machine: a Llama-3-8B-shaped model with
# real bf16 safetensors written by make-model (16 GB; kept in GPU_HOLDER_MODEL, default
# /tmp/cinder-llama3-8b-st, and reused), served with --backend cuda and the holder:
#   1. launch to ready from a cold page cache (the safetensors dropped from it first)
#   2. 64 streams generating; the worker SIGKILLed; scripts/restart.sh worker: the time from
#      the restart command to each running stream's next token, the recomputed tokens and
#      resumed requests (/metrics), the holder's digest check, the attach, the decode graphs
#      captured again (each on its first use)
#   3. idle: restart.sh worker, then to /health 200; the same with --reload-weights
#   4. restart.sh holder (a full restart: weights loaded again, KV recomputed), to /health 200
# Binaries from $CINDER_BIN (default .devcarry/build/bin, what scripts/gpu_carry.sh built: see
# its header); tokenizer from $CINDER_LLAMA3_TOK (default .devcarry/llama3, a directory with
# tokenizer.json[.gz] and tokenizer_config.json). Every figure is one RESULT line. Exit status:
# the number of failed checks. About 5 minutes (the first run also writes the model).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CINDER_BIN:-$ROOT/.devcarry/build/bin}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/.devcarry/llama3}
MODEL=${GPU_HOLDER_MODEL:-/tmp/cinder-llama3-8b-st}
N=${GPU_HOLDER_STREAMS:-64}
PORT=8141
failed=0
. "$ROOT/scripts/proc.sh"
fail() { echo "!! $*"; failed=$((failed + 1)); }
health() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health"; }
# wait_health T0_MS: milliseconds from T0_MS until /health answers 200 (polled every 10 ms)
wait_health() {
  local k
  for k in $(seq 1 12000); do [ "$(health)" = 200 ] && break; sleep 0.01; done
  echo $(( $(now_ms) - $1 ))
}

if [ ! -f "$MODEL/model.safetensors" ]; then
  echo "== writing the Llama-3-8B-shaped model (bf16 safetensors) to $MODEL"
  mkdir -p "$MODEL"
  "$BIN/make-model" --out "$MODEL" --config "$ROOT/bench/forward/llama3-8b/config.json" --dtype bf16 || exit 1
fi
cp "$TOK/tokenizer_config.json" "$MODEL/"
if [ -f "$TOK/tokenizer.json" ]; then cp "$TOK/tokenizer.json" "$MODEL/"
else gunzip -c "$TOK/tokenizer.json.gz" > "$MODEL/tokenizer.json"; fi
du -sh "$MODEL/model.safetensors"

# 1. launch to ready, the weights out of the page cache first (no root needed)
python3 - "$MODEL"/*.safetensors <<'PY'
import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
PY
run=$(mktemp -d /tmp/cinder-holder.XXXXXX)
t0=$(now_ms)
if ! CINDER_BIN=$BIN "$ROOT/scripts/launch.sh" --model-dir "$MODEL" --backend cuda --port $PORT \
    --run-dir "$run" --detach --max-seq-len 4096; then
  tail -n 30 "$run"/*.log; exit 1
fi
echo "RESULT launch to ready (cold page cache): $(( $(now_ms) - t0 )) ms"
grep -h "loading weights\|weights loaded\|cuda holder\|ready" "$run/holder.log"
grep -h "attached\|cuda backend" "$run/worker.log"

# 2. N streams, the worker killed mid-generation and restarted
body='{"inputs":"Once upon a time","parameters":{"max_new_tokens":3000,"ignore_eos":true}}'
streams=$(mktemp -d /tmp/cinder-streams.XXXXXX)
pids=()
for i in $(seq 1 "$N"); do
  ( curl -sN -m 600 -d "$body" "http://127.0.0.1:$PORT/generate_stream" |
      while IFS= read -r l; do [ -n "$l" ] && echo "${EPOCHREALTIME/./}"; done > "$streams/$i" ) &
  pids+=($!)
done
for _ in $(seq 1 600); do   # every stream has tokens
  ready=0
  for i in $(seq 1 "$N"); do [ "$(wc -l < "$streams/$i")" -ge 20 ] && ready=$((ready + 1)); done
  [ $ready = "$N" ] && break
  sleep 0.1
done
echo "streams generating: $ready of $N"
recomputed0=$(metric cinder_recomputed_tokens_total) resumed0=$(metric cinder_resumed_requests_total)
kill -KILL "$(cat "$run/worker.pid")"
sleep 0.5
h_down=$(health)
tr=$(now_ms)
"$ROOT/scripts/restart.sh" --run-dir "$run" worker
h_ms=$(wait_health "$tr")
for _ in $(seq 1 600); do   # each stream's first token after the restart command
  got=0
  for i in $(seq 1 "$N"); do
    awk -v t="$tr" '$1 / 1000 > t { f = 1 } END { exit !f }' "$streams/$i" && got=$((got + 1))
  done
  [ $got = "$N" ] && break
  sleep 0.05
done
ttnt=$(for i in $(seq 1 "$N"); do
  awk -v t="$tr" '$1 / 1000 > t { print int($1 / 1000 - t); exit }' "$streams/$i"; done | sort -n)
echo "RESULT worker SIGKILL under $N streams, restart.sh worker: /health $h_down while down, 200 after $h_ms ms; next token of each running stream after (ms): min $(head -n1 <<< "$ttnt") median $(sed -n "$(( (N + 1) / 2 ))p" <<< "$ttnt") max $(tail -n1 <<< "$ttnt") ($got of $N streams)"
recomputed=$(( $(metric cinder_recomputed_tokens_total) - recomputed0 ))
resumed=$(( $(metric cinder_resumed_requests_total) - resumed0 ))
echo "RESULT recomputed tokens: $recomputed; resumed requests: $resumed"
echo "RESULT holder: $(grep -h 'digest checked' "$run/holder.log" | tail -n1 | sed 's/^.*: worker/worker/')"
echo "RESULT worker: $(grep -h 'attached to the holder' "$run/worker.log" | tail -n1 | sed 's/^.*main.c:[0-9]*: //;s/^.*attach.c:[0-9]*: //')"
echo "RESULT decode graphs captured (on first use) by the restarted worker: $(awk '/attached to the holder/ { n++ } n == 2 && /captured the decode graph/ { k++; ms += $(NF - 1) } END { printf "%d, %.1f ms in all", k, ms }' "$run/worker.log")"
echo "RESULT worker: $(grep -h 'backend up in' "$run/worker.log" | tail -n1 | sed 's/^.*: backend/backend/')"
[ "$recomputed" = 0 ] || fail "tokens were recomputed"
[ "$resumed" -gt 0 ] || fail "no request resumed"
[ "$got" = "$N" ] || fail "not every stream got a token after the restart"
[ "$h_down" = 503 ] || fail "/health was $h_down while the worker was down"
for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done   # the streams: curl and its reader
{ wait "${pids[@]}"; } 2> /dev/null

for _ in $(seq 1 300); do [ "$(metric cinder_num_requests_running)" = 0 ] && break; sleep 0.1; done

# 3. idle restarts
tr=$(now_ms); "$ROOT/scripts/restart.sh" --run-dir "$run" worker
echo "RESULT idle restart.sh worker to /health 200: $(wait_health "$tr") ms"
tr=$(now_ms); "$ROOT/scripts/restart.sh" --run-dir "$run" --reload-weights worker
echo "RESULT idle restart.sh worker --reload-weights to /health 200: $(wait_health "$tr") ms"
grep -h "weights loaded" "$run/holder.log" | tail -n 1

# 4. the holder itself: a full restart
tr=$(now_ms); "$ROOT/scripts/restart.sh" --run-dir "$run" holder
echo "RESULT restart.sh holder (weights from the page cache) to /health 200: $(wait_health "$tr") ms"
out=$(curl -sS -m 120 -d '{"inputs":"Once upon a time","parameters":{"max_new_tokens":8}}' "http://127.0.0.1:$PORT/generate")
[[ $out == *generated_text* ]] || fail "no answer after the holder restart: $out"
"$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
rm -rf "$streams"
echo "gpu_holder.sh: $failed failed (logs in $run)"
exit $failed
