#!/usr/bin/env bash
# stop.sh - stops every process of a launch and removes its shared memory.
#
#   scripts/stop.sh --run-dir DIR
# DIR must be the caller's own and writable by nobody else (see proc.sh); run.env is read,
# never sourced, and only a pid that runs this launch's process is signalled.
set -uo pipefail
. "$(dirname "$0")/proc.sh"
RUN_DIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) [ $# -ge 2 ] || { echo "stop.sh: --run-dir needs a value" >&2; exit 2; }
               RUN_DIR=$2; shift ;;
    *) echo "stop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/run.env" ] || { echo "usage: stop.sh --run-dir DIR" >&2; exit 2; }
load_run_env "$RUN_DIR" || exit 1
RUN_DIR=$(cd -P "$RUN_DIR" && pwd -P)
if spid=$(read_pid "$RUN_DIR/supervisor.pid"); then # first, so nothing is restarted
  kill -TERM "$spid" 2>/dev/null
  for _ in $(seq 1 40); do running "$spid" || break; sleep 0.05; done
fi
rm -f "$RUN_DIR/supervisor.pid"
pids=()
for p in tokenizer detokenizer router worker holder; do
  exec 9>> "$RUN_DIR/$p.lock"
  flock -w 10 9 # a restart under way (restart.sh, or the supervisor's last) ends first
  if pid=$(read_pid "$RUN_DIR/$p.pid") && ours "$pid" "$p" "$RUN_DIR"; then
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  fi
  rm -f "$RUN_DIR/$p.pid"
  exec 9>&-
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
