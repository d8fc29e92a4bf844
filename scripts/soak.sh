#!/usr/bin/env bash
# soak.sh - a bounded load test on loopback: CLIENTS concurrent streaming clients against
# stories15M for MINUTES minutes (bench-serving, run after run), then checks that nothing
# crashed, memory and shared memory stayed flat, and every slot and KV block came back.
#
#   scripts/soak.sh [--minutes 10] [--clients 1000] [--backend cpu|cuda] [--out DIR]
# Prints one line per run (requests, failures, tokens/s, RSS of each process) and a verdict;
# exits non-zero if any check fails. The server is this repository's build/bin.
set -uo pipefail
. "$(dirname "$0")/proc.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=10 CLIENTS=1000 BACKEND=cpu OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --backend) BACKEND=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
load_test_dirs soak
"$ROOT/scripts/launch.sh" --detach --backend "$BACKEND" --run-dir "$RUN" --host 127.0.0.1 --port "$PORT" \
  --slots $((CLIENTS + 64)) --http-threads $((CLIENTS + 64)) || exit 1
trap '"$ROOT/scripts/stop.sh" --run-dir "$RUN"' EXIT
load_run_env "$RUN" || exit 1
pids() { for p in $(launch_procs "$HOLDER"); do cat "$RUN/$p.pid"; done | tr '\n' ' '; }
rss() { for p in tokenizer router worker detokenizer holder; do [ ! -e "$RUN/$p.pid" ] || ps -o rss= -p "$(cat "$RUN/$p.pid")" | tr -d ' '; done | paste -sd/; }
shm_kb() { du -k "/dev/shm$SHM" | cut -f1; }

start_pids=$(pids)
echo "soak: $CLIENTS clients for $MINUTES min on port $PORT; run dir $RUN"
echo "run  requests  failed  out_tok/s  rss_kb(tok/router/worker/detok/holder)  shm_kb"
echo "0    -         -       -          $(rss)  $(shm_kb)"
end=$(( $(date +%s) + MINUTES * 60 )) i=0 failed_total=0 done_total=0
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  "$BIN/bench-serving" --port "$PORT" --backend cinder --dataset-name random --random-input-len 32 \
    --random-output-len 48 --random-range-ratio 0.5 --num-prompts $((CLIENTS * 3)) \
    --max-concurrency "$CLIENTS" --seed "$i" --no-progress --result-file "$OUT/run$i.json" \
    > "$OUT/run$i.txt" 2>&1
  read -r ok bad tps < <(python3 -c "import json,sys; r=json.load(open('$OUT/run$i.json')); \
print(r.get('completed',0), r.get('failed',0), round(r.get('output_throughput',0),1))" 2>/dev/null || echo "0 0 0")
  done_total=$((done_total + ok)) failed_total=$((failed_total + bad))
  echo "$i    $ok      $bad       $tps      $(rss)  $(shm_kb)"
done
sleep 2
status=0
[ "$(pids)" = "$start_pids" ] || { echo "FAIL: a process restarted (crashed)"; status=1; }
for p in tokenizer router worker detokenizer; do running "$(cat "$RUN/$p.pid")" || { echo "FAIL: $p is dead"; status=1; }; done
active=$("$BIN/shm-tool" stat --name "$SHM" | python3 -c "import json,sys; print(json.load(sys.stdin)['active_slots'])")
[ "$active" = 0 ] || { echo "FAIL: $active slots still held"; status=1; }
free=$(metric cinder_kv_cache_blocks_free) total=$(metric cinder_kv_cache_blocks_capacity)
[ "$free" = "$total" ] || { echo "FAIL: KV blocks free $free of $total"; status=1; }
[ "$(metric cinder_num_requests_running)" = 0 ] && [ "$(metric cinder_num_requests_waiting)" = 0 ] ||
  { echo "FAIL: requests still queued or running"; status=1; }
[ "$failed_total" = 0 ] || { echo "FAIL: $failed_total requests failed"; status=1; }
echo "soak: $done_total requests in $i runs, $failed_total failed; slots held $active; KV free $free/$total"
[ $status = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $status
