#!/usr/bin/env bash
# chaos.sh - faults under load on loopback, with `launch.sh --supervise`: while CLIENTS
# streaming clients run (bench-serving, the same greedy workload round after round), random
# processes (the holder too) are killed (SIGKILL, restarted by the supervisor) or stopped for
# a while (SIGSTOP, then SIGCONT). Every request must be accounted for: its text identical
# to the run without faults, or a clear error (never a hang: a request that hits the client
# timeout fails the run). At the end no slot or KV block may be held and every process must
# be up.
#
#   scripts/chaos.sh [--minutes 5] [--clients 200] [--out DIR]
# Prints one line per fault and per round, then a verdict; exits non-zero if a check fails.
set -uo pipefail
. "$(dirname "$0")/proc.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=5 CLIENTS=200 OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=${2:?--minutes needs a value}; shift ;;
    --clients) CLIENTS=${2:?--clients needs a value}; shift ;;
    --out) OUT=${2:?--out needs a value}; shift ;;
    *) echo "chaos.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
load_test_dirs chaos
N=$((CLIENTS * 2))   # requests a round
"$ROOT/scripts/launch.sh" --detach --supervise --backend cpu --run-dir "$RUN" --port "$PORT" \
  --slots $((CLIENTS + 64)) --http-threads $((CLIENTS + 64)) --worker-wait 20 || exit 1
trap '"$ROOT/scripts/stop.sh" --run-dir "$RUN" > /dev/null' EXIT
load_run_env "$RUN" || exit 1
round() {   # round FILE: one bench-serving round, the same prompts every time (seed 1)
  "$BIN/bench-serving" --port "$PORT" --backend cinder --dataset-name random \
    --random-input-len 24 --random-output-len 40 --random-range-ratio 0.5 --num-prompts "$N" \
    --max-concurrency "$CLIENTS" --seed 1 --timeout 120 --save-detailed --no-progress \
    --result-file "$1" > "$1.txt" 2>&1
}
echo "chaos: $CLIENTS clients for $MINUTES min on port $PORT; run dir $RUN"
round "$OUT/reference.json"
python3 - "$OUT/reference.json" <<'EOF' || { echo "chaos: the reference round failed"; exit 1; }
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["failed"] == 0 and r["completed"] == r["num_prompts"] else 1)
EOF

faults() {   # random SIGKILL / SIGSTOP of random processes until the file $OUT/stop exists
  local procs=($(launch_procs "$HOLDER")) p pid sig secs
  while [ ! -e "$OUT/stop" ]; do
    sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.1f", 2 + r % 40 / 10}')"
    p=${procs[RANDOM % ${#procs[@]}]}
    pid=$(read_pid "$RUN/$p.pid") || continue
    if (( RANDOM % 2 )); then
      echo "$(date +%T) fault: SIGKILL $p ($pid)"
      kill -KILL "$pid" 2>/dev/null
    else
      secs=$(awk -v r=$RANDOM 'BEGIN {printf "%.1f", 0.2 + r % 70 / 10}')
      echo "$(date +%T) fault: SIGSTOP $p ($pid) for $secs s"
      kill -STOP "$pid" 2>/dev/null; sleep "$secs"; kill -CONT "$pid" 2>/dev/null
    fi
  done
}
faults > "$OUT/faults.log" 2>&1 &
fpid=$!
end=$(( $(date +%s) + MINUTES * 60 )) i=0 status=0
echo "round  identical  errors  wrong_text  hung"
healthy() {   # waits up to 60 s for /health 200 (the supervisor brings a killed process back)
  for _ in $(seq 1 300); do
    curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  # a round starts on a healthy server (else every request of it is refused in a few
  # milliseconds, which says nothing); the faults go on during it
  healthy || { echo "FAIL: the server did not come back within 60 s"; status=1; break; }
  round "$OUT/round$i.json"
  read -r same err wrong hung < <(python3 - "$OUT/reference.json" "$OUT/round$i.json" <<'EOF'
import json, sys
ref = json.load(open(sys.argv[1]))["generated_texts"]
try:
    r = json.load(open(sys.argv[2]))
except Exception:
    print(0, 0, 0, len(ref)); sys.exit()
same = err = wrong = hung = 0
for k, (text, e) in enumerate(zip(r["generated_texts"], r["errors"])):
    if e:
        if "timeout" in e or "timed out" in e: hung += 1
        else: err += 1
    elif text == ref[k]: same += 1
    else: wrong += 1
print(same, err, wrong, hung + len(ref) - len(r["errors"]))
EOF
  )
  echo "$i      $same       $err      $wrong           $hung"
  [ "$wrong" = 0 ] && [ "$hung" = 0 ] && [ $((same + err)) = "$N" ] || status=1
done
touch "$OUT/stop"
wait "$fpid"
cat "$OUT/faults.log"
# the faults are over: once the supervisor has brought everything back, nothing may be held
healthy || { echo "FAIL: the server did not come back within 60 s"; status=1; }
sleep 2
active=$("$BIN/shm-tool" stat --name "$SHM" | python3 -c "import json,sys; print(json.load(sys.stdin)['active_slots'])")
free=$(metric cinder_kv_cache_blocks_free) total=$(metric cinder_kv_cache_blocks_capacity)
[ "$active" = 0 ] || { echo "FAIL: $active slots still held"; status=1; }
[ -n "$free" ] && [ "$free" = "$total" ] || { echo "FAIL: KV blocks free $free of $total"; status=1; }
for p in $(launch_procs "$HOLDER"); do
  pid=$(read_pid "$RUN/$p.pid") && running "$pid" || { echo "FAIL: $p is not running"; status=1; }
done
round "$OUT/after.json"   # and it still serves, the same texts
python3 - "$OUT/reference.json" "$OUT/after.json" <<'EOF' || { echo "FAIL: after the faults, texts differ or requests failed"; status=1; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(0 if b["failed"] == 0 and a["generated_texts"] == b["generated_texts"] else 1)
EOF
echo "chaos: $i rounds of $N requests, $(grep -c fault: "$OUT/faults.log") faults; slots held $active; KV free $free/$total"
[ $status = 0 ] && echo "chaos: PASS" || echo "chaos: FAIL"
exit $status
