#!/usr/bin/env bash
# gpu_carry.sh - on the development machine: prepares .devcarry/ (git-ignored) for a run on the
# GPU machine within the 64 MiB a call may carry: the programs and CUDA tests built for sm_90a
# only (the PTX of the default build makes each CUDA binary ~13 MB), stripped; the shared
# libraries they need; stories15M in bf16 (30 MB); the Llama-3 tokenizer gzipped.
# The programs, tests and libraries go into one archive, .devcarry/pack.tar.xz (~3 MB instead
# of ~30: the CUDA fat binaries compress well). Then carry .devcarry/pack.tar.xz
# .devcarry/stories15M .devcarry/llama3 and, there:
#   tar -xJf .devcarry/pack.tar.xz -C .devcarry
#   export LD_LIBRARY_PATH=$PWD/.devcarry/libs:$LD_LIBRARY_PATH BUILD=.devcarry/build
#   make test-gpu PREBUILT=1 BUILD=.devcarry/build          (or test-gpu-sanitize, bench-gpu)
#   .devcarry/build/bin/forward --md
#   CINDER_BIN=$PWD/.devcarry/build/bin CINDER_LLAMA3_TOK=$PWD/.devcarry/llama3 scripts/gpu_e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=.devcarry/build
NVF="-O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xcompiler -fPIC,-Wall -MMD -MP"
progs="worker holder router tokenizer detokenizer shm-tool make-model forward st-convert bench-serving"
tests=$(ls tests/gpu/test_*.c tests/gpu/test_*.cu | sed 's|tests/gpu/\(.*\)\.cu*$|\1|')
benches=$(ls bench/kernels/bench_*.cu | sed 's|bench/kernels/\(.*\)\.cu$|\1|')
make -j"$(nproc)" BUILD=$B NVFLAGS="$NVF" $(for p in $progs; do echo $B/bin/$p; done) \
    $(for t in $tests; do echo $B/test-gpu/$t; done) $(for b in $benches; do echo $B/bench/$b; done)
strip $B/bin/* $B/test-gpu/* $B/bench/*
rm -rf .devcarry/libs && ../shared/device/bundle-libs.sh $B/bin .devcarry/libs
mkdir -p .devcarry/stories15M .devcarry/llama3
[ -f models/stories15M/model.safetensors ] || scripts/setup.sh
$B/bin/st-convert --in models/stories15M --out .devcarry/stories15M/model.safetensors --dtype bf16
cp models/stories15M/{config.json,tokenizer.json,tokenizer_config.json} .devcarry/stories15M/
[ -f build/assets/llama3/tokenizer.json ] || scripts/fetch_assets.sh
gzip -9 -c build/assets/llama3/tokenizer.json > .devcarry/llama3/tokenizer.json.gz
cp build/assets/llama3/tokenizer_config.json .devcarry/llama3/
tar -cJf .devcarry/pack.tar.xz -C .devcarry build/bin build/test-gpu build/bench libs
du -sh .devcarry/pack.tar.xz .devcarry/stories15M .devcarry/llama3
