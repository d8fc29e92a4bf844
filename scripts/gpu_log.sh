# gpu_log.sh - sourced by gpu.sh and gpu_decode.sh, the scripts run on the GPU machine.

# gpu_log_start NAME: from now on all output goes to the terminal and to log ($OUT/log, or
# ./NAME.log without $OUT), starting with the GPU's name, memory, clocks and driver.
gpu_log_start() {
  log=${OUT:-.}/log
  [ -n "${OUT:-}" ] || log=./$1.log
  exec > >(tee -a "$log") 2>&1
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,clocks.mem,driver_version \
      --format=csv 2>/dev/null || echo "nvidia-smi unavailable"
}
