#!/usr/bin/env bash
# restart.sh - (re)starts one cinder process of a running launch.
#
#   scripts/restart.sh --run-dir DIR PROCESS      PROCESS: tokenizer|router|worker|detokenizer|holder
#   --start-only: start without stopping first (used by launch.sh)
#   --reload-weights: (worker) the holder loads the weights from disk again before the new
#                 worker attaches (new weights on disk, a changed layout); KV is recomputed
#   The holder: its weights and KV cache go with it, so the worker is restarted after it
#   (unless --start-only), and attaches to the new one (the KV is recomputed).
#   --signal SIG: how to stop the old process (default TERM; KILL for crash tests)
#   --locked: the caller holds RUN_DIR/PROCESS.lock already (the supervisor)
# DIR must be the caller's own and writable by nobody else (see proc.sh); run.env is read,
# never sourced.
set -euo pipefail
umask 077
. "$(dirname "$0")/proc.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR= PROC= START_ONLY=0 SIG=TERM LOCKED=0 RELOAD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir|--signal)
      [ $# -ge 2 ] || { echo "restart.sh: $1 needs a value" >&2; exit 2; }
      if [ "$1" = --run-dir ]; then RUN_DIR=$2; else SIG=$2; fi
      shift ;;
    --start-only) START_ONLY=1 ;;
    --locked) LOCKED=1 ;;
    --reload-weights) RELOAD=1 ;;
    tokenizer|router|worker|detokenizer|holder) PROC=$1 ;;
    *) echo "restart.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$RUN_DIR" ] && [ -n "$PROC" ] && [ -f "$RUN_DIR/run.env" ] || { echo "usage: restart.sh --run-dir DIR PROCESS" >&2; exit 2; }
load_run_env "$RUN_DIR" || exit 1
RUN_DIR=$(cd -P "$RUN_DIR" && pwd -P)
[ "$PROC" != holder ] || [ "$HOLDER" = 1 ] || { echo "restart.sh: this launch runs no holder (--no-holder)" >&2; exit 2; }
[ "$RELOAD" = 0 ] || [ "$PROC" = worker ] || { echo "restart.sh: --reload-weights goes with worker" >&2; exit 2; }
pidf=$RUN_DIR/$PROC.pid
if [ "$LOCKED" = 0 ]; then # one restart of PROC at a time, and none while the supervisor acts
  exec 9>> "$RUN_DIR/$PROC.lock"
  flock 9
fi
# the process holds the launch's lock shared, as its siblings do: no second launch meanwhile
exec 8>> "$RUN_DIR/server.lock"
flock -s -w 10 8 || { echo "restart.sh: $RUN_DIR/server.lock is held by a launch.sh that is starting" >&2; exit 1; }
if [ "$START_ONLY" = 0 ] && pid=$(read_pid "$pidf") && ours "$pid" "$PROC" "$RUN_DIR"; then
  kill -"$SIG" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
fi
common=(--run-dir "$RUN_DIR" --shm "$SHM" --model-dir "$MODEL_DIR")
case $PROC in
  router) args=(--max-batch-tokens "$MAX_BATCH" --max-total-tokens "$MAX_TOTAL"
                --new-token-ratio "$RATIO" --policy "$POLICY" --pipeline-depth "$DEPTH"
                --worker-wait-ms "$(( ${WORKER_WAIT:-30} * 1000 ))")
          [ "${PREFIX_CACHING:-1}" = 1 ] || args+=(--no-prefix-caching) ;;
  worker|holder)
          args=(--backend "$BACKEND" --kv-tokens "$KV_TOKENS" --max-batch-tokens "$MAX_BATCH"
                --threads "$THREADS" --load-format "$LOAD" --gpu-memory-utilization "$MEM_UTIL")
          [ -z "$DTYPE" ] || args+=(--dtype "$DTYPE")
          [ "$EAGER" != 1 ] || args+=(--enforce-eager)
          [ -z "$GEMV_MAX" ] || args+=(--gemv-max-tokens "$GEMV_MAX")
          [ -z "$GEMV_WARPS" ] || args+=(--gemv-warps "$GEMV_WARPS")
          [ -z "$PDL" ] || args+=(--pdl "$PDL")
          [ -z "$QUANT" ] || args+=(--quantization "$QUANT")
          [ -z "$KV_DTYPE" ] || args+=(--kv-cache-dtype "$KV_DTYPE")
          [ "$RELOAD" = 0 ] || args+=(--reload-weights) ;;
  detokenizer) args=() ;;
  tokenizer) args=(--host "$HOST" --port "$PORT" --max-queue "$MAX_QUEUE" --http-threads "${HTTP_THREADS:-256}"
                   --http-queue "${HTTP_QUEUE:-4096}")
             [ -z "$SERVED_NAME" ] || args+=(--served-model-name "$SERVED_NAME")
             [ -z "$CHAT_TEMPLATE" ] || args+=(--chat-template "$CHAT_TEMPLATE")
             [ -z "$LAUNCH_ID" ] || args+=(--launch-id "$LAUNCH_ID")
             [ -z "$ALLOWED_ORIGINS" ] || args+=(--allowed-origins "$ALLOWED_ORIGINS") ;;
esac
# the API key goes to the tokenizer through its environment (the command line is public)
export CINDER_API_KEY=${API_KEY:-}
unset VLLM_API_KEY
[ ! -f "$RUN_DIR/$PROC.log" ] || chmod go= "$RUN_DIR/$PROC.log" # one from an older version
setsid "$BIN/$PROC" "${common[@]}" "${args[@]}" >> "$RUN_DIR/$PROC.log" 2>&1 < /dev/null 9>&- &
echo $! > "$pidf"
# the worker's memory was the old holder's: a new worker attaches to the new one
if [ "$PROC" = holder ] && [ "$START_ONLY" = 0 ]; then
  [ "$LOCKED" = 1 ] || exec 9>&-
  "$ROOT/scripts/restart.sh" --run-dir "$RUN_DIR" worker
fi
