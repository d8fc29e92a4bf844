#!/usr/bin/env bash
# launch.sh - starts cinder: the shared-memory store, then the holder (of the weights and the KV
# cache), router, worker, detokenizer and tokenizer (HTTP), each a process with RUN_DIR/NAME.pid
# and RUN_DIR/NAME.log. Prints the URL
# once /health answers, runs until Ctrl-C, SIGTERM or SIGHUP, then stops everything; the
# processes also stop by themselves when this script is gone (even after SIGKILL), unless
# --detach. `scripts/launch.sh --help` lists the options (usage() below).
set -euo pipefail
umask 077 # the run directory and all in it (run.env, logs, pid files, sockets): this user's only
. "$(dirname "$0")/proc.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL_DIR=$ROOT/models/stories15M PORT=8000 HOST=127.0.0.1 BACKEND=auto RUN_DIR=
MAX_TOTAL=0 MAX_BATCH=2048 SLOTS=256 BLOCK=16 MAX_SEQ=0 THREADS=0 LOAD=auto MEM_UTIL=0.9 DETACH=0
MAX_QUEUE=0 RATIO=1.0 POLICY=fcfs DEPTH=2 HTTP_THREADS=256 HTTP_QUEUE=4096 SUPERVISE=0 WORKER_WAIT=30
DTYPE= EAGER=0 GEMV_MAX= GEMV_WARPS= PDL=   # the CUDA worker's switches (empty: its default)
QUANT= KV_DTYPE=   # FP8: --quantization, --kv-cache-dtype (empty: the checkpoint's, 16-bit KV)
PREFIX_CACHING=1 SERVED_NAME= HOLDER=1 CHAT_TEMPLATE= ALLOWED_ORIGINS= READY_TIMEOUT=600
API_KEY=${CINDER_API_KEY:-${VLLM_API_KEY:-}}
# the supervisor: first restart after 0.2 s, doubling after each quick failure (a death within
# 30 s of the start) up to 10 s; it gives up on a process after 5 quick failures in a row
SUP_FIRST_MS=200 SUP_MAX_MS=10000 SUP_QUICK_S=30 SUP_GIVE_UP=5

usage() {
  cat <<'EOF'
usage: scripts/launch.sh [OPTION...]
Starts cinder (holder, router, worker, detokenizer, tokenizer/HTTP) and prints its URL once
ready.

  --model-dir DIR       model in Hugging Face layout (default models/stories15M)
  --host H              address the HTTP port listens on (default 127.0.0.1; --host 0.0.0.0
                        serves every interface: set an API key, or firewall it)
  --port N              HTTP port (default 8000); one already in use is refused
  --backend B           auto|cpu|cuda (gpu: the same as cuda; default auto: CUDA when this
                        build and the machine have it, else the CPU). cuda without a CUDA
                        build or a GPU is an error, never a CPU fallback
  --api-key KEY         clients must send "Authorization: Bearer KEY" (all but /health,
                        /ping, /version, /metrics); better from the environment's
                        CINDER_API_KEY (or VLLM_API_KEY), which `ps` does not show
  --allowed-origins L   CORS origins: vLLM's JSON list '["https://a.example"]' or a
                        comma-separated list (default "*": any)
  --ready-timeout S     give up (and stop everything) when not ready after S seconds
                        (default 600); weights loading is shown meanwhile
  --run-dir DIR         pid files, logs, sockets and run.env (default: a new private directory
                        under /tmp). Created with mode 0700 when absent; an existing one must be
                        yours, not writable by group or others, and not in use by a running launch
  --max-total-tokens N  KV tokens the router may use (default: all the worker has)
  --max-batch-tokens N  tokens per iteration (default 2048)
  --slots N             concurrent requests (default 256)
  --block-size N        KV block size in tokens (default 16)
  --max-seq-len N       prompt + output tokens per request (default: the model's context)
  --threads N           CPU backend threads (default: all cores)
  --load-format F       auto|dummy (dummy: random weights)
  --gpu-memory-utilization F   share of GPU memory for weights and KV (default 0.9)
  --max-queue N         requests waiting beyond N (for an HTTP handler thread and in the
                        router's queue together) get 503 with Retry-After (default 0: no limit)
  --new-token-ratio F   admission estimate of output tokens (default 1.0)
  --policy P            fcfs|spf|lpm (default fcfs; lpm: longest cached prefix first)
  --no-prefix-caching   every request computes its whole prompt (on by default: requests
                        that share a prefix share its KV blocks; README "Prefix caching")
  --pipeline-depth N    steps in flight, 1 or 2 (default 2)
  --http-threads N      HTTP handler threads (default 256; at most --slots, more are cut)
  --http-queue N        requests that wait (FIFO) when every handler thread is busy; past N
                        they get 503 with Retry-After (default 4096; 0: none wait)
  --served-model-name NAME   the model's name in the OpenAI API (default: the directory's)
  --chat-template FILE  the Jinja chat template for /v1/chat/completions instead of the
                        model's own (README "Chat templates"); a model without one needs it
  --worker-wait S       requests wait at most S seconds for a worker that died or is still
                        restarting, then fail with 503 (default 30)
  --dtype D             CUDA backend: bf16 (default) or fp16 weights and activations
  --quantization Q      fp8: FP8 (E4M3) projections, a 16-bit checkpoint quantized at load per
                        output channel, activations per token (FP8 checkpoints need no flag);
                        needs --no-holder (README "FP8")
  --kv-cache-dtype D    auto (default), bf16 or fp8: an E4M3 KV cache, twice the tokens in the
                        same memory; needs --no-holder
  --enforce-eager       CUDA backend: no CUDA graphs (decode batches run eagerly)
  --gemv-max-tokens N   CUDA backend: decode batches of up to N (0..8, default 8) tokens take
                        the fused GEMV path; 0 sends them through cuBLAS
  --gemv-warps N        CUDA backend: the fused GEMVs' launch width, warps per SM (default 16)
  --pdl MASK            CUDA backend: kernels launched early (programmatic dependent launch):
                        bit 0 the GEMVs, bit 1 decode attention (default 1; 0: none)
  --no-holder           no holder process: the worker allocates and loads the weights and the
                        KV cache itself, and a restarted worker loads and recomputes (with a
                        holder, the default, it attaches to them in a second and running
                        requests go on: README "Restarts")
  --supervise           restart a process that dies: after 0.2 s, twice as long after each
                        quick failure (within 30 s of its start) up to 10 s; after 5 quick
                        failures in a row it is left down (/health 503) and the reason logged
                        in RUN_DIR/supervisor.log and on stderr
  --detach              return once ready and leave the processes running (stop them with
                        scripts/stop.sh --run-dir DIR). Without it they stop with this script,
                        however it ends (Ctrl-C, SIGTERM, SIGHUP, SIGKILL)
  -h, --help            this text

scripts/stop.sh --run-dir DIR stops a launch; scripts/restart.sh --run-dir DIR PROCESS
restarts one process.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --supervise) SUPERVISE=1 ;;
    --detach) DETACH=1 ;;
    --enforce-eager) EAGER=1 ;;
    --no-prefix-caching) PREFIX_CACHING=0 ;;
    --no-holder) HOLDER=0 ;;
    -h|--help) usage; exit 0 ;;
    --model-dir|--port|--host|--backend|--run-dir|--max-total-tokens|--max-batch-tokens|--slots|\
    --block-size|--max-seq-len|--threads|--load-format|--gpu-memory-utilization|--max-queue|\
    --new-token-ratio|--policy|--pipeline-depth|--http-threads|--http-queue|--worker-wait|--dtype|\
    --gemv-max-tokens|--gemv-warps|--pdl|--served-model-name|--chat-template|--api-key|--allowed-origins|--ready-timeout|\
    --quantization|--kv-cache-dtype)
      if [ $# -lt 2 ] || [[ $2 == --* ]] || [ -z "$2" ]; then
        echo "launch.sh: $1 needs a value (see scripts/launch.sh --help)" >&2; exit 2
      fi
      case "$1" in
        --model-dir) MODEL_DIR=$2 ;;
        --port) PORT=$2 ;;
        --host) HOST=$2 ;;
        --backend) BACKEND=$2 ;;
        --run-dir) RUN_DIR=$2 ;;
        --max-total-tokens) MAX_TOTAL=$2 ;;
        --max-batch-tokens) MAX_BATCH=$2 ;;
        --slots) SLOTS=$2 ;;
        --block-size) BLOCK=$2 ;;
        --max-seq-len) MAX_SEQ=$2 ;;
        --threads) THREADS=$2 ;;
        --load-format) LOAD=$2 ;;
        --gpu-memory-utilization) MEM_UTIL=$2 ;;
        --max-queue) MAX_QUEUE=$2 ;;
        --new-token-ratio) RATIO=$2 ;;
        --policy) POLICY=$2 ;;
        --pipeline-depth) DEPTH=$2 ;;
        --http-threads) HTTP_THREADS=$2 ;;
        --http-queue) HTTP_QUEUE=$2 ;;
        --worker-wait) WORKER_WAIT=$2 ;;
        --dtype) DTYPE=$2 ;;
        --quantization) QUANT=$2 ;;
        --kv-cache-dtype) KV_DTYPE=$2 ;;
        --gemv-max-tokens) GEMV_MAX=$2 ;;
        --gemv-warps) GEMV_WARPS=$2 ;;
        --pdl) PDL=$2 ;;
        --served-model-name) SERVED_NAME=$2 ;;
        --chat-template) CHAT_TEMPLATE=$2 ;;
        --api-key) API_KEY=$2 ;;
        --allowed-origins) ALLOWED_ORIGINS=$2 ;;
        --ready-timeout) READY_TIMEOUT=$2 ;;
      esac
      shift ;;
    *) echo "launch.sh: unknown option $1 (see scripts/launch.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
for v in PORT MAX_TOTAL MAX_BATCH SLOTS BLOCK MAX_SEQ THREADS MAX_QUEUE DEPTH HTTP_THREADS HTTP_QUEUE WORKER_WAIT \
         READY_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "launch.sh: ${v} must be a whole number, not '${!v}'" >&2; exit 2; }
done
for v in GEMV_MAX GEMV_WARPS PDL; do
  [[ -z ${!v} || ${!v} =~ ^[0-9]+$ ]] || { echo "launch.sh: ${v} must be a whole number, not '${!v}'" >&2; exit 2; }
done
[ "$BACKEND" != gpu ] || BACKEND=cuda
[[ $BACKEND == auto || $BACKEND == cpu || $BACKEND == cuda ]] || { echo "launch.sh: --backend is auto, cpu or cuda, not '$BACKEND'" >&2; exit 2; }
[[ -z $DTYPE || $DTYPE == bf16 || $DTYPE == fp16 ]] || { echo "launch.sh: --dtype is bf16 or fp16, not '$DTYPE'" >&2; exit 2; }
[[ -z $QUANT || $QUANT == fp8 ]] || { echo "launch.sh: --quantization is fp8, not '$QUANT'" >&2; exit 2; }
[[ -z $KV_DTYPE || $KV_DTYPE =~ ^(auto|bf16|fp8|fp8_e4m3)$ ]] || { echo "launch.sh: --kv-cache-dtype is auto, bf16 or fp8, not '$KV_DTYPE'" >&2; exit 2; }
if [[ $HOLDER == 1 && ( -n $QUANT || $KV_DTYPE == fp8* ) ]]; then
  echo "launch.sh: --quantization fp8 and --kv-cache-dtype fp8 need --no-holder (the holder keeps 16-bit weights and KV)" >&2; exit 2
fi
[[ $LOAD == auto || $LOAD == dummy ]] || { echo "launch.sh: --load-format is auto or dummy, not '$LOAD'" >&2; exit 2; }
[[ $POLICY == fcfs || $POLICY == spf || $POLICY == lpm ]] || { echo "launch.sh: --policy is fcfs, spf or lpm, not '$POLICY'" >&2; exit 2; }
for v in MEM_UTIL RATIO; do
  [[ ${!v} =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "launch.sh: ${v} must be a number, not '${!v}'" >&2; exit 2; }
done
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || { echo "launch.sh: --port must be 1 to 65535, not $PORT" >&2; exit 2; }
[ "$READY_TIMEOUT" -ge 1 ] || { echo "launch.sh: --ready-timeout must be at least 1 second" >&2; exit 2; }

# the port: one something already answers on is refused before anything starts (the tokenizer
# would fail to listen, and the readiness check must never take another server for ours)
PROBE_HOST=$HOST # where this script checks /health
case $HOST in 0.0.0.0|"*") PROBE_HOST=127.0.0.1 ;; "::"|"[::]") PROBE_HOST=::1 ;; esac
port_rc=0 # 0: something accepted a connection; 124: something holds it without answering
timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$PROBE_HOST" "$PORT" 2>/dev/null || port_rc=$?
if [ "$port_rc" = 0 ] || [ "$port_rc" = 124 ]; then
  echo "launch.sh: port $PORT is in use (something listens on $PROBE_HOST:$PORT); stop it or pick another --port" >&2
  exit 1
fi

BIN=${CINDER_BIN:-$ROOT/build/bin}
if [ "$MODEL_DIR" = "$ROOT/models/stories15M" ] && [ ! -f "$MODEL_DIR/model.safetensors" ] || [ ! -x "$BIN/router" ]; then
  "$ROOT/scripts/setup.sh"
fi
[ -f "$MODEL_DIR/config.json" ] || { echo "launch.sh: no config.json in $MODEL_DIR" >&2; exit 1; }
if [ "$BACKEND" = cuda ]; then # never a silent CPU fallback
  backends=$("$BIN/worker" --list-backends 2>/dev/null || true)
  [[ " $backends " == *" cuda "* ]] || { echo "launch.sh: --backend cuda: this build ($BIN) has no CUDA backend (built without nvcc)" >&2; exit 2; }
  compgen -G '/dev/nvidia[0-9]*' > /dev/null || { echo "launch.sh: --backend cuda: no NVIDIA GPU on this machine (no /dev/nvidia0)" >&2; exit 2; }
fi
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
if [ -n "$CHAT_TEMPLATE" ]; then
  [ -f "$CHAT_TEMPLATE" ] && [ -r "$CHAT_TEMPLATE" ] || { echo "launch.sh: --chat-template: cannot read $CHAT_TEMPLATE" >&2; exit 2; }
  CHAT_TEMPLATE=$(cd "$(dirname "$CHAT_TEMPLATE")" && pwd)/$(basename "$CHAT_TEMPLATE")
fi

# the run directory: stop.sh, restart.sh and the supervisor act on what it holds, as this
# user, so nobody else may be able to write there (checked, never fixed up: refused)
if [ -z "$RUN_DIR" ]; then
  RUN_DIR=$(mktemp -d /tmp/cinder-run.XXXXXX)
elif [ ! -e "$RUN_DIR" ] && [ ! -L "$RUN_DIR" ]; then
  mkdir -p -m 0700 -- "$RUN_DIR" || { echo "launch.sh: cannot create run directory $RUN_DIR" >&2; exit 1; }
fi
why=$(safe_dir "$RUN_DIR") || { echo "launch.sh: refusing run directory $RUN_DIR: $why" >&2; exit 1; }
RUN_DIR=$(cd -P "$RUN_DIR" && pwd -P)
# one launch per run directory: every process of a launch holds RUN_DIR/server.lock shared
# (inherited from here or from restart.sh) for as long as it runs
exec 8>> "$RUN_DIR/server.lock"
if ! flock -x -n 8 || ! flock -s -n 8; then
  echo "launch.sh: run directory $RUN_DIR is in use by a running server (stop it with scripts/stop.sh --run-dir $RUN_DIR, or use another --run-dir)" >&2
  exit 1
fi
find "$RUN_DIR" -mindepth 1 -maxdepth 1 ! -type l -exec chmod go= {} + # left by an older version
SHM=/cinder-$(basename "$RUN_DIR")-$$
# the tokenizer's /health answers carry it: the readiness check knows it reached this launch
LAUNCH_ID=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

# the run directory records everything stop.sh and restart.sh need, one KEY=VALUE a line
# (read back by load_run_env in proc.sh, never sourced)
KV_TOKENS=$MAX_TOTAL
env_lines=""
for k in $RUN_ENV_KEYS; do
  [[ ${!k} != *$'\n'* ]] || { echo "launch.sh: $k holds a newline" >&2; exit 2; }
  env_lines+="$k=${!k}"$'\n'
done
rm -f "$RUN_DIR/run.env"
printf '%s' "$env_lines" > "$RUN_DIR/run.env"

STOPPED=0 KEEP=0
stop_all() { [ "$STOPPED" = 1 ] || { STOPPED=1; "$ROOT/scripts/stop.sh" --run-dir "$RUN_DIR"; }; }
# any failure from here on (a step that fails, a signal) stops whatever was started; only a
# --detach launch that became ready leaves its processes running
trap '[ "$KEEP" = 1 ] || stop_all' EXIT
trap 'stop_all; exit 1' INT TERM HUP
# the store names this script (its pid and start time): without --detach every process stops,
# and the router removes the shared memory, once it is gone, however it ended
LAUNCHER=$$
[ "$DETACH" = 1 ] && LAUNCHER=0
holder_flag=()
[ "$HOLDER" = 0 ] || holder_flag=(--holder)
"$BIN/shm-tool" create --name "$SHM" --model-dir "$MODEL_DIR" --slots "$SLOTS" \
  --block-size "$BLOCK" --max-seq-len "$MAX_SEQ" --launcher-pid "$LAUNCHER" "${holder_flag[@]}" > "$RUN_DIR/shm.log"
PROCS=$(launch_procs "$HOLDER")
for p in $PROCS; do "$ROOT/scripts/restart.sh" --run-dir "$RUN_DIR" --start-only $p; done

# ready: /health 200 from this launch's tokenizer; meanwhile the loading progress of the
# process that reads the weights (the holder, or the worker without one)
LOADER=worker
[ "$HOLDER" = 0 ] || LOADER=holder
t_ready=$(now_ms) shown= last_note=$SECONDS
while :; do
  head=$(curl -sS -D - -o /dev/null --max-time 2 "http://$PROBE_HOST:$PORT/health" 2>/dev/null || true)
  if [[ $head == "HTTP/1.1 200"* ]]; then
    if ! grep -qi "^X-Cinder-Launch: $LAUNCH_ID" <<< "${head//$'\r'/}"; then
      echo "launch.sh: another server answers on $PROBE_HOST:$PORT; not ours, stopping" >&2
      exit 1
    fi
    sed -n 's/.*\(ready: .* backend\).*/launch.sh: worker \1/p' "$RUN_DIR/worker.log" | tail -n 1
    echo "cinder ready: http://$PROBE_HOST:$PORT (run dir $RUN_DIR)"
    break
  fi
  for p in $PROCS; do
    if ! running "$(read_pid "$RUN_DIR/$p.pid")"; then
      echo "launch.sh: $p exited during start; last lines of $RUN_DIR/$p.log:" >&2
      tail -n 20 "$RUN_DIR/$p.log" >&2
      exit 1
    fi
  done
  line=$(sed -n 's/.*\(loading weights: .*\)/\1/p' "$RUN_DIR/$LOADER.log" 2>/dev/null | tail -n 1)
  if [ -n "$line" ] && [ "$line" != "$shown" ]; then
    echo "launch.sh: $line"
    shown=$line last_note=$SECONDS
  elif [ $((SECONDS - last_note)) -ge 15 ]; then
    echo "launch.sh: waiting for the server ($((($(now_ms) - t_ready) / 1000)) s of --ready-timeout $READY_TIMEOUT)"
    last_note=$SECONDS
  fi
  if [ $(($(now_ms) - t_ready)) -ge $((READY_TIMEOUT * 1000)) ]; then
    echo "launch.sh: not ready after $READY_TIMEOUT s (--ready-timeout); stopping. Logs: $RUN_DIR" >&2
    exit 1
  fi
  sleep 0.2
done

# the supervisor: a process found dead is started again after a delay that doubles with each
# quick failure; after SUP_GIVE_UP of them in a row the process is left down. restart.sh
# holds RUN_DIR/NAME.lock while it restarts one, so a deliberate restart is never mistaken for
# a death, and a process started by hand (restart.sh) is watched again.
LAUNCH_START=$(start_time $$)
sup_log() {
  echo "$(date +%T.%3N) supervisor: $*" >> "$RUN_DIR/supervisor.log"
}
supervise() {
  trap - EXIT # the launch's cleanup is launch.sh's own, not this child's
  local p pid now lived delay k
  local -A known started fails due gave_up
  now=$(now_ms)
  for p in $PROCS; do   # all were started just now
    known[$p]= started[$p]=$now fails[$p]=0 due[$p]=0 gave_up[$p]=0
  done
  while :; do
    # a foreground launch.sh gone (SIGKILL): its processes stop by themselves, and so do we
    if [ "$DETACH" = 0 ] && { ! running $$ || [ "$(start_time $$)" != "$LAUNCH_START" ]; }; then
      exit 0
    fi
    for p in $PROCS; do
      exec 9>> "$RUN_DIR/$p.lock"
      if flock -n 9 && pid=$(read_pid "$RUN_DIR/$p.pid"); then
        now=$(now_ms)
        if running "$pid"; then
          if [ -z "${known[$p]}" ]; then # the first look: started when the supervisor was
            known[$p]=$pid
          elif [ "$pid" != "${known[$p]}" ]; then # started by restart.sh
            known[$p]=$pid started[$p]=$now fails[$p]=0 gave_up[$p]=0 due[$p]=0
          fi
        elif [ "${gave_up[$p]}" = 0 ] && [ "${due[$p]}" = 0 ]; then
          lived=$(( now - started[$p] ))
          if [ $lived -lt $((SUP_QUICK_S * 1000)) ]; then fails[$p]=$(( fails[$p] + 1 )); else fails[$p]=0; fi
          if [ "${fails[$p]}" -ge $SUP_GIVE_UP ]; then
            gave_up[$p]=1
            sup_log "giving up on $p (pid $pid): it failed $SUP_GIVE_UP times in a row within ${SUP_QUICK_S} s of its start; it stays down (/health answers 503) until scripts/restart.sh --run-dir $RUN_DIR $p (see $RUN_DIR/$p.log)"
            tail -n 1 "$RUN_DIR/supervisor.log" >&2
          else
            delay=$SUP_FIRST_MS
            for ((k = 1; k < fails[$p]; k++)); do delay=$(( delay * 2 )); done
            [ $delay -le $SUP_MAX_MS ] || delay=$SUP_MAX_MS
            due[$p]=$(( now + delay ))
            sup_log "$p (pid $pid) exited after $(( lived / 1000 )).$(printf %03d $(( lived % 1000 ))) s; restarting in $(( delay / 1000 )).$(printf %03d $(( delay % 1000 ))) s (quick failures in a row: ${fails[$p]} of $SUP_GIVE_UP)"
          fi
        elif [ "${due[$p]}" != 0 ] && [ "$now" -ge "${due[$p]}" ]; then
          due[$p]=0 started[$p]=$now
          "$ROOT/scripts/restart.sh" --run-dir "$RUN_DIR" --start-only --locked "$p" || true
          known[$p]=$(read_pid "$RUN_DIR/$p.pid" || true)
        fi
      fi
      exec 9>&-
    done
    sleep 0.1
  done
}
if [ "$SUPERVISE" = 1 ] && [ "$DETACH" = 1 ]; then
  supervise > /dev/null 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/supervisor.pid"
  disown
fi
if [ "$DETACH" = 1 ]; then KEEP=1; exit 0; fi
trap 'stop_all; exit 0' INT TERM HUP
if [ "$SUPERVISE" = 1 ]; then
  supervise & echo $! > "$RUN_DIR/supervisor.pid"
fi
while :; do sleep 1 & wait $!; done
