#!/usr/bin/env bash
# stop.sh - stops every process of a launch and removes its shared memory.
#
#   scripts/stop.sh --run-dir DIR
set -uo pipefail
. "$(dirname "$0")/proc.sh"
RUN_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) RUN_DIR=$2; shift ;;
    *) echo "stop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/run.env" ] || { echo "usage: stop.sh --run-dir DIR" >&2; exit 2; }
# shellcheck disable=SC1091
. "$RUN_DIR/run.env"
if [ -f "$RUN_DIR/supervisor.pid" ]; then # first, so nothing is restarted
  kill -TERM "$(cat "$RUN_DIR/supervisor.pid")" 2>/dev/null
  rm -f "$RUN_DIR/supervisor.pid"
fi
pids=()
for p in tokenizer detokenizer router worker; do
  [ -f "$RUN_DIR/$p.pid" ] || continue
  pid=$(cat "$RUN_DIR/$p.pid")
  kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  rm -f "$RUN_DIR/$p.pid"
done
for _ in $(seq 1 100); do
  alive=0
  for pid in "${pids[@]}"; do running "$pid" && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.05
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
"$BIN/shm-tool" remove --name "$SHM" 2>/dev/null
exit 0
