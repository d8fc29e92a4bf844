#!/usr/bin/env bash
# fuzz.sh - builds the libFuzzer targets (tests/fuzz/fuzz_*.c, rules in mk/fuzz.mk) and runs
# each for a bounded time under ASan + UBSan, two or more at once (one per core). Each target
# is one test: it passes when libFuzzer ends without a crash, leak, timeout or failed property.
# Prints cmocka-style summary lines (so tests/run.sh can count it) and, last,
# "N passed, N failed". Without clang's libFuzzer it says so and runs nothing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default $FUZZ_SECONDS or 60);
#                                           TARGET e.g. req_parse (default: all)
#
# Corpora: tests/fuzz/corpus/NAME (committed seeds, read only) plus build-fuzz/run/NAME (what
# this run found; kept until the next run). A failing input is saved as
# build-fuzz/artifacts/NAME-crash-*; replay it with build-fuzz/fuzz_NAME FILE.
# Allocations over 1 GiB return NULL (as malloc does on a small machine) instead of aborting,
# so a hostile size field must be handled, not merely survived by a large machine.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${FUZZ_SECONDS:-60}
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then SECONDS_EACH=$1; shift; fi
FUZZ_CC=${FUZZ_CC:-clang}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}

probe=$(mktemp -d)
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' > "$probe/p.c"
if ! command -v "$FUZZ_CC" >/dev/null 2>&1 ||
   ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
  rm -rf "$probe"
  echo "fuzz: SKIPPED: $FUZZ_CC with libFuzzer is not installed (Debian: apt-get install clang libclang-rt-14-dev)"
  echo "0 passed, 0 failed"
  exit 0
fi
rm -rf "$probe"

if ! ${MAKE:-make} --no-print-directory -j"$JOBS" FUZZ_CC="$FUZZ_CC" FUZZ_BUILD="$FUZZ_BUILD" fuzz-build; then
  echo "fuzz: build failed"
  echo "[  FAILED  ] 1 test(s), listed below:"
  echo "0 passed, 1 failed"
  exit 1
fi

if [ $# -gt 0 ]; then names=("$@"); else
  names=(); for f in tests/fuzz/fuzz_*.c; do n=${f#tests/fuzz/fuzz_}; names+=("${n%.c}"); done
fi
mkdir -p "$FUZZ_BUILD/artifacts" "$FUZZ_BUILD/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=1024}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() { # NAME: runs one target, its output in logs/NAME.log
  local n=$1 bin=$FUZZ_BUILD/fuzz_$1 work=$FUZZ_BUILD/run/$1 dict=()
  rm -rf "$work" && mkdir -p "$work"
  [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
  timeout $((SECONDS_EACH + 120)) "$bin" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$FUZZ_BUILD/artifacts/$n-" "${dict[@]}" \
    "$work" "tests/fuzz/corpus/$n" > "$FUZZ_BUILD/logs/$n.log" 2>&1
}

pids=() passed=0 failed=0 failed_names=()
for n in "${names[@]}"; do
  if [ ! -x "$FUZZ_BUILD/fuzz_$n" ]; then echo "fuzz: no target $n"; failed=$((failed + 1)); failed_names+=("$n"); continue; fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  run_one "$n" & pids+=("$!:$n")
done
for pn in "${pids[@]}"; do
  pid=${pn%%:*} n=${pn#*:}
  wait "$pid"; rc=$?
  log=$FUZZ_BUILD/logs/$n.log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    echo "[       OK ] fuzz_$n: ${runs:-?} runs in ${SECONDS_EACH} s, ${cov:-cov: ?}"
  else
    failed=$((failed + 1)) failed_names+=("$n")
    echo "[  FAILED  ] fuzz_$n (exit $rc): last lines of $log"
    grep -v '^#[0-9]' "$log" | tail -40 | sed 's/^/    /'
  fi
done
[ "$passed" -gt 0 ] && echo "[  PASSED  ] $passed test(s)."
if [ "$failed" -gt 0 ]; then
  echo "[  FAILED  ] $failed test(s), listed below:"
  for n in "${failed_names[@]}"; do echo "[  FAILED  ] fuzz_$n"; done
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
