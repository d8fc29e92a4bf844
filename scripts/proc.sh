# proc.sh - sourced by launch.sh, restart.sh and stop.sh (and soak.sh, chaos.sh, gpu_holder.sh):
# process helpers, the only way these scripts read a run directory (checked first, never
# sourced: see load_run_env), and the places of a load test.

# running PID: true while PID is a live process. A killed process whose parent does not reap
# it (a container's init may not) stays a zombie, which `kill -0` still reports as alive.
running() {
  local state
  state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}

# now_ms: wall-clock milliseconds (bash's SECONDS counts whole seconds, so a deadline on it can
# fire up to a second early)
now_ms() { echo $(( ${EPOCHREALTIME//[!0-9]/} / 1000 )); }

# start_time PID: field 22 of /proc/PID/stat (clock ticks after boot), which tells a process
# from a later one that reuses its pid. Empty if there is no such process.
start_time() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) } # after "pid (comm) ": field 3 onwards; comm may hold spaces and ')'
  set -- $s
  echo "${20}"
}

# safe_dir DIR: prints why DIR must not be trusted, and fails, unless DIR is a directory
# (not a symbolic link) owned by the caller and not writable by group or others, and every
# directory above it is owned by root or the caller and is not writable by others (or has the
# sticky bit, as /tmp). Another user who can write there could replace run.env or a pid file.
safe_dir() {
  local d=$1 me st owner mode
  me=$(id -u)
  [ -d "$d" ] && [ ! -L "$d" ] || { echo "$d is not a directory"; return 1; }
  st=$(stat -c '%u %a' "$d") || return 1
  owner=${st% *} mode=$((8#${st#* }))
  [ "$owner" = "$me" ] || { echo "$d is owned by uid $owner, not by uid $me who runs this"; return 1; }
  (( mode & 8#022 )) && { echo "$d is writable by group or others (mode ${st#* })"; return 1; }
  d=$(cd -P "$d" && pwd -P) || return 1
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    st=$(stat -c '%u %a' "$d") || return 1
    owner=${st% *} mode=$((8#${st#* }))
    if [ "$owner" != 0 ] && [ "$owner" != "$me" ]; then
      echo "$d (above the run directory) is owned by uid $owner"; return 1
    fi
    if (( mode & 8#022 )) && ! (( mode & 8#1000 )); then
      echo "$d (above the run directory) is writable by group or others without the sticky bit"; return 1
    fi
  done
}

# safe_file FILE: FILE is a regular file (not a link) owned by the caller, not writable by
# group or others. Only checked inside a safe_dir.
safe_file() {
  local st
  [ -f "$1" ] && [ ! -L "$1" ] || return 1
  st=$(stat -c '%u %a' "$1") || return 1
  [ "${st% *}" = "$(id -u)" ] && ! (( $((8#${st#* })) & 8#022 ))
}

# launch_procs HOLDER: the processes of a launch in start order (HOLDER 0: no holder; a run.env
# of an older version has no HOLDER: none).
launch_procs() {
  if [ "${1:-0}" = 1 ]; then echo holder router worker detokenizer tokenizer; else echo router worker detokenizer tokenizer; fi
}

# load_run_env DIR: sets the variables of DIR/run.env after checking DIR and the file. Lines
# are KEY=VALUE; only the keys below are taken, their values literally (never evaluated).
RUN_ENV_KEYS=" BIN SHM MODEL_DIR HOST PORT BACKEND KV_TOKENS MAX_TOTAL MAX_BATCH THREADS LOAD MEM_UTIL
  MAX_QUEUE RATIO POLICY DEPTH HTTP_THREADS HTTP_QUEUE WORKER_WAIT DTYPE EAGER GEMV_MAX GEMV_WARPS PDL
  QUANT KV_DTYPE PREFIX_CACHING SERVED_NAME HOLDER CHAT_TEMPLATE LAUNCH_ID ALLOWED_ORIGINS API_KEY "
load_run_env() {
  local why line key
  why=$(safe_dir "$1") || { echo "refusing run directory $1: $why" >&2; return 1; }
  safe_file "$1/run.env" || { echo "refusing $1/run.env: not a regular file of uid $(id -u) writable only by it" >&2; return 1; }
  for key in $RUN_ENV_KEYS; do printf -v "$key" '%s' ""; done
  while IFS= read -r line || [ -n "$line" ]; do
    key=${line%%=*}
    [ "$key" != "$line" ] && [[ $key =~ ^[A-Z_]+$ ]] || continue
    case $RUN_ENV_KEYS in *[[:space:]]"$key"[[:space:]]*) printf -v "$key" '%s' "${line#*=}" ;; esac
  done < "$1/run.env"
  [ -n "$BIN" ] && [ -n "$SHM" ] || { echo "refusing $1/run.env: no BIN or SHM" >&2; return 1; }
}

# read_pid FILE: the pid in FILE (in a directory load_run_env checked), if FILE is the
# caller's own regular file and holds one number above 1; fails otherwise.
read_pid() {
  local pid
  safe_file "$1" || return 1
  pid=$(head -c 32 "$1") || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] || return 1
  echo "$pid"
}

# ours PID NAME DIR: PID runs cinder's NAME with --run-dir DIR (a pid file outlives its process,
# and the pid may have been reused since).
ours() {
  local args
  args=$(tr '\0' '\n' 2>/dev/null < "/proc/$1/cmdline") || return 1
  [[ ${args%%$'\n'*} == */"$2" ]] && [[ $args == *$'\n'--run-dir$'\n'"$3"$'\n'* ]]
}

# load_test_dirs NAME: the places of a load test on loopback (soak.sh, chaos.sh; ROOT set):
# BIN the server's programs (CINDER_BIN, else ROOT/build/bin), OUT as given or a new
# /tmp/cinder-NAME.XXXXXX (made), RUN=OUT/run its run directory, PORT a random one in 20000..39999.
load_test_dirs() {
  BIN=${CINDER_BIN:-$ROOT/build/bin}
  OUT=${OUT:-$(mktemp -d "/tmp/cinder-$1.XXXXXX")}
  RUN=$OUT/run
  PORT=$((20000 + RANDOM % 20000))
  mkdir -p "$OUT"
}

# metric NAME: the value of the first sample of Prometheus metric NAME (any labels) on the
# server at 127.0.0.1:$PORT/metrics; empty when absent. Used by soak.sh, chaos.sh, gpu_holder.sh.
metric() {
  curl -s "http://127.0.0.1:$PORT/metrics" |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 {print $2; exit}'
}
