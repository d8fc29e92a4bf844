#!/usr/bin/env bash
# launch.sh - starts cinder: the shared-memory store, then router, worker, detokenizer and
# tokenizer (HTTP), each a process with RUN_DIR/NAME.pid and RUN_DIR/NAME.log. Prints the URL
# once /health answers, runs until Ctrl-C or SIGTERM, then stops everything.
#
#   scripts/launch.sh [--model-dir DIR] [--port N] [--host H] [--backend auto|cpu|cuda]
#       [--run-dir DIR] [--max-total-tokens N] [--max-batch-tokens N] [--slots N]
#       [--block-size N] [--max-seq-len N] [--threads N] [--load-format auto|dummy]
#       [--gpu-memory-utilization F] [--max-queue N] [--new-token-ratio F] [--policy fcfs|spf|lpm]
#       [--pipeline-depth 1|2] [--http-threads N] [--worker-wait S] [--no-prefix-caching] [--supervise] [--detach]
#   --worker-wait S: requests wait at most S seconds for a worker that died or is still
#     restarting, then fail with 503 (default 30).
#   --detach: return once ready and leave the processes running (stop with scripts/stop.sh).
#   --supervise: restart any process that dies (with --detach, a supervisor runs in the
#     background, its pid in RUN_DIR/supervisor.pid; stop.sh ends it first).
set -euo pipefail
. "$(dirname "$0")/proc.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL_DIR=$ROOT/models/stories15M PORT=8000 HOST=0.0.0.0 BACKEND=auto RUN_DIR=
MAX_TOTAL=0 MAX_BATCH=2048 SLOTS=256 BLOCK=16 MAX_SEQ=0 THREADS=0 LOAD=auto MEM_UTIL=0.9 DETACH=0
MAX_QUEUE=0 RATIO=1.0 POLICY=fcfs DEPTH=2 HTTP_THREADS=256 SUPERVISE=0 WORKER_WAIT=30 PREFIX_CACHING=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model-dir) MODEL_DIR=$2; shift ;;
    --port) PORT=$2; shift ;;
    --host) HOST=$2; shift ;;
    --backend) BACKEND=$2; shift ;;
    --run-dir) RUN_DIR=$2; shift ;;
    --max-total-tokens) MAX_TOTAL=$2; shift ;;
    --max-batch-tokens) MAX_BATCH=$2; shift ;;
    --slots) SLOTS=$2; shift ;;
    --block-size) BLOCK=$2; shift ;;
    --max-seq-len) MAX_SEQ=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --load-format) LOAD=$2; shift ;;
    --gpu-memory-utilization) MEM_UTIL=$2; shift ;;
    --max-queue) MAX_QUEUE=$2; shift ;;
    --new-token-ratio) RATIO=$2; shift ;;
    --policy) POLICY=$2; shift ;;
    --pipeline-depth) DEPTH=$2; shift ;;
    --http-threads) HTTP_THREADS=$2; shift ;;
    --worker-wait) WORKER_WAIT=$2; shift ;;
    --no-prefix-caching) PREFIX_CACHING=0 ;;
    --supervise) SUPERVISE=1 ;;
    --detach) DETACH=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

BIN=${CINDER_BIN:-$ROOT/build/bin}
if [ "$MODEL_DIR" = "$ROOT/models/stories15M" ] && [ ! -f "$MODEL_DIR/model.safetensors" ] || [ ! -x "$BIN/router" ]; then
  "$ROOT/scripts/setup.sh"
fi
[ -f "$MODEL_DIR/config.json" ] || { echo "launch.sh: no config.json in $MODEL_DIR" >&2; exit 1; }
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
[ -n "$RUN_DIR" ] || RUN_DIR=$(mktemp -d /tmp/cinder-run.XXXXXX)
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
SHM=/cinder-$(basename "$RUN_DIR")-$$

# the run directory records everything stop.sh and restart.sh need
KV_TOKENS=$MAX_TOTAL
cat > "$RUN_DIR/run.env" <<ENV
BIN=$BIN
SHM=$SHM
MODEL_DIR=$MODEL_DIR
HOST=$HOST
PORT=$PORT
BACKEND=$BACKEND
KV_TOKENS=$KV_TOKENS
MAX_TOTAL=$MAX_TOTAL
MAX_BATCH=$MAX_BATCH
THREADS=$THREADS
LOAD=$LOAD
MEM_UTIL=$MEM_UTIL
MAX_QUEUE=$MAX_QUEUE
RATIO=$RATIO
POLICY=$POLICY
DEPTH=$DEPTH
HTTP_THREADS=$HTTP_THREADS
WORKER_WAIT=$WORKER_WAIT
PREFIX_CACHING=$PREFIX_CACHING
ENV

"$BIN/shm-tool" create --name "$SHM" --model-dir "$MODEL_DIR" --slots "$SLOTS" \
  --block-size "$BLOCK" --max-seq-len "$MAX_SEQ" > "$RUN_DIR/shm.log"
for p in router worker detokenizer tokenizer; do "$ROOT/scripts/restart.sh" --run-dir "$RUN_DIR" --start-only $p; done

stop_all() { "$ROOT/scripts/stop.sh" --run-dir "$RUN_DIR"; }
trap 'stop_all; exit 1' INT TERM
for _ in $(seq 1 600); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null; then
    echo "cinder ready: http://127.0.0.1:$PORT (run dir $RUN_DIR)"
    break
  fi
  for p in router worker detokenizer tokenizer; do
    if ! running "$(cat "$RUN_DIR/$p.pid")"; then
      echo "launch.sh: $p exited during start; last lines of $RUN_DIR/$p.log:" >&2
      tail -n 20 "$RUN_DIR/$p.log" >&2
      stop_all; exit 1
    fi
  done
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" || { echo "launch.sh: not ready after 120 s" >&2; stop_all; exit 1; }

# the supervisor: a process found dead is started again (restart.sh holds RUN_DIR/NAME.lock
# while it restarts one, so a deliberate restart is never mistaken for a death)
supervise() {
  while :; do
    for p in router worker detokenizer tokenizer; do
      (
        flock -n 9 || exit 0
        pid=$(cat "$RUN_DIR/$p.pid" 2>/dev/null) || exit 0
        if ! running "$pid"; then
          echo "$(date +%T) supervisor: $p (pid $pid) died; restarting" >> "$RUN_DIR/supervisor.log"
          "$ROOT/scripts/restart.sh" --run-dir "$RUN_DIR" --start-only --locked "$p"
        fi
      ) 9> "$RUN_DIR/$p.lock"
    done
    sleep 0.2
  done
}
if [ "$SUPERVISE" = 1 ] && [ "$DETACH" = 1 ]; then
  supervise > /dev/null 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/supervisor.pid"
  disown
fi
[ "$DETACH" = 1 ] && exit 0
trap 'stop_all; exit 0' INT TERM
if [ "$SUPERVISE" = 1 ]; then
  supervise & echo $! > "$RUN_DIR/supervisor.pid"
fi
while :; do sleep 1 & wait $!; done
