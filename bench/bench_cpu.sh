#!/usr/bin/env bash
# bench_cpu.sh - `make bench`: the benchmarks that need no GPU. The tokenizer against HF
# tokenizers (bench_tokenizer.sh), then bench-serving against stories15M on the CPU backend
# (random prompts, all at once), with the server's /metrics checked against the client's
# counts. BUILD (environment) picks the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/${BUILD:-build}/bin
bench/bench_tokenizer.sh --secs 2
RUN=$(mktemp -d /tmp/cinder-bench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
CINDER_BIN=$BIN scripts/launch.sh --detach --backend cpu --run-dir "$RUN" --host 127.0.0.1 --port $PORT
trap 'scripts/stop.sh --run-dir "$RUN"' EXIT
"$BIN/bench-serving" --port $PORT --dataset-name random --random-input-len 64 --random-output-len 64 \
  --num-prompts 100 --max-concurrency 50 --no-progress --result-file "$RUN/serving.json"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^cinder_(requests_total|generation_tokens_total|worker_step_gap)'
