# proc.sh - sourced by launch.sh, restart.sh and stop.sh: process helpers.
# running PID: true while PID is a live process. A killed process whose parent does not reap
# it (a container's init may not) stays a zombie, which `kill -0` still reports as alive.
running() {
  local state
  state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}
