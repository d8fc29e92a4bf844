#!/usr/bin/env bash
# gpu_e2e.sh - end to end on the GPU machine: scripts/launch.sh --backend cuda serving
# stories15M (its bf16 copy, .devcarry/stories15M, or CINDER_STORIES) and a random-weight
# Llama-3-8B shape (--load-format dummy from bench/forward/llama3-8b/config.json with the
# Llama-3 tokenizer: build/assets/llama3, or CINDER_LLAMA3_TOK, a directory holding
# tokenizer.json[.gz] and tokenizer_config.json), one /generate request each; the request
# parameters (logprobs, logit_bias, min_tokens, n) on stories15M; then the 8B
# shape with prompts longer than --max-batch-tokens up to --max-seq-len, alone and 64 at once
# (GPU_E2E_LONG=0 skips that part).
# Binaries from $CINDER_BIN (default build/bin). Exit status: the number of failures.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STORIES=${CINDER_STORIES:-$ROOT/.devcarry/stories15M}
TOK=${CINDER_LLAMA3_TOK:-$ROOT/build/assets/llama3}
failed=0

# serve NAME MODEL_DIR PORT EXPECTED_SUBSTRING [launch.sh options...]
serve() {
  local name=$1 dir=$2 port=$3 expect=$4 run out
  shift 4
  run=$(mktemp -d /tmp/cinder-e2e.XXXXXX)
  echo "== $name: launch.sh --backend cuda --model-dir $dir $*"
  if ! "$ROOT/scripts/launch.sh" --model-dir "$dir" --backend cuda --port "$port" \
      --run-dir "$run" --detach "$@"; then
    echo "!! $name: launch failed"
    tail -n 20 "$run"/*.log
    failed=$((failed + 1))
    return
  fi
  grep -h "cuda backend" "$run/worker.log" | tail -n 1
  out=$(curl -sS -m 300 -d '{"inputs":"Once upon a time","parameters":{"max_new_tokens":40}}' \
        "http://127.0.0.1:$port/generate")
  echo "$name /generate: $out"
  if [[ $out != *generated_text* || $out != *"$expect"* ]]; then
    echo "!! $name: unexpected answer (wanted \"$expect\")"
    tail -n 20 "$run/worker.log"
    failed=$((failed + 1))
  fi
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
}

serve stories15M "$STORIES" 8123 "little girl named Lily"

# The request parameters on the CUDA backend (stories15M): logprobs (sorted, the greedy token
# first, the sampled one's equal to its entry, mass <= 1, streamed = not), logit_bias -100
# removing the greedy token, min_tokens holding off an EOS forced by +100, seeded n choices
# (reproducible, choice i = seed + i), greedy n choices equal, chat's logprobs shape.
params() {
  local port=8128 run
  run=$(mktemp -d /tmp/cinder-e2e.XXXXXX)
  echo "== parameters on the CUDA backend: stories15M"
  if ! "$ROOT/scripts/launch.sh" --model-dir "$STORIES" --backend cuda --port "$port" \
      --run-dir "$run" --chat-template "$ROOT/tests/data/chat/test_template.jinja" --detach; then
    echo "!! parameters: launch failed"; tail -n 20 "$run"/*.log; failed=$((failed + 1)); return
  fi
  if ! python3 - "$port" <<'PY'
import json, math, sys, urllib.request
port = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=120).read().decode()
def cmpl(**kw):
    return json.loads(post("/v1/completions", dict(prompt="Once upon a time", **kw)))
ids = lambda toks: [int(t.split(":")[1]) for t in toks]
r = cmpl(max_tokens=8, temperature=0, logprobs=5, return_tokens_as_token_ids=True)
lp = r["choices"][0]["logprobs"]
for tok, tlp, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
    vals = list(top.values())
    assert vals == sorted(vals, reverse=True), top
    assert list(top)[0] == tok and abs(top[tok] - tlp) < 1e-6, (tok, tlp, top)
    assert sum(math.exp(v) for v in vals) <= 1 + 1e-5, top
first, second = ids(list(lp["top_logprobs"][0])[:2])
r = cmpl(max_tokens=1, temperature=0, logprobs=0, return_tokens_as_token_ids=True,
         logit_bias={str(first): -100})
assert ids(r["choices"][0]["logprobs"]["tokens"]) == [second], r
r = cmpl(max_tokens=20, temperature=0, logit_bias={"2": 100}, min_tokens=3, logprobs=0,
         return_tokens_as_token_ids=True)
assert r["usage"]["completion_tokens"] == 4 and ids(r["choices"][0]["logprobs"]["tokens"])[-1] == 2, r
a = cmpl(max_tokens=12, temperature=1.2, n=3, seed=5)
b = cmpl(max_tokens=12, temperature=1.2, n=3, seed=5)
one = cmpl(max_tokens=12, temperature=1.2, seed=6)
texts = [c["text"] for c in a["choices"]]
assert texts == [c["text"] for c in b["choices"]] and texts[1] == one["choices"][0]["text"], (texts, one)
g = cmpl(max_tokens=12, temperature=0, n=2)
assert g["choices"][0]["text"] == g["choices"][1]["text"], g
s = post("/v1/completions", dict(prompt="Once upon a time", max_tokens=8, temperature=0, logprobs=5,
                                 return_tokens_as_token_ids=True, stream=True))
streamed = [t for line in s.split("\n") if line.startswith("data: {")
            for t in json.loads(line[6:])["choices"][0]["logprobs"]["token_logprobs"]]
assert streamed == lp["token_logprobs"], (streamed, lp["token_logprobs"])
c = json.loads(post("/v1/chat/completions", dict(messages=[{"role": "user", "content": "Once upon a time"}],
                                                 max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)))
for e in c["choices"][0]["logprobs"]["content"]:
    assert len(e["top_logprobs"]) == 3 and e["top_logprobs"][0]["logprob"] == e["logprob"], e
    assert bytes(e["bytes"]).decode() == e["token"], e
print("parameters on CUDA: logprobs, logit_bias, min_tokens, n, chat logprobs: ok")
PY
  then
    echo "!! parameters on the CUDA backend"; tail -n 20 "$run/worker.log"; failed=$((failed + 1))
  fi
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
}
params

dummy=$(mktemp -d /tmp/cinder-llama3-8b.XXXXXX)
cp "$ROOT/bench/forward/llama3-8b/config.json" "$dummy/"
cp "$TOK/tokenizer_config.json" "$dummy/"
if [ -f "$TOK/tokenizer.json" ]; then cp "$TOK/tokenizer.json" "$dummy/"
else gunzip -c "$TOK/tokenizer.json.gz" > "$dummy/tokenizer.json"; fi
serve "llama3-8b dummy" "$dummy" 8124 count_output_tokens --load-format dummy \
  --max-seq-len 4096

# Prompts longer than --max-batch-tokens (default 2048), up to --max-seq-len, one at a time
# and under 64 concurrent streams (issue 10: the second prefill chunk killed the worker).
# long NAME PORT "PROMPT_LENS" CONCURRENT_LEN [launch.sh options...]: each length in
# PROMPT_LENS alone (bench-serving random, 8 output tokens), then 64 requests of
# CONCURRENT_LEN tokens at once (64 streams); every request must succeed.
long() {
  local name=$1 port=$2 lens=$3 conc=$4 run n res
  shift 4
  run=$(mktemp -d /tmp/cinder-e2e.XXXXXX)
  echo "== long prompts, $name: launch.sh --load-format dummy $*"
  if ! "$ROOT/scripts/launch.sh" --model-dir "$dummy" --backend cuda --port "$port" \
      --run-dir "$run" --detach --load-format dummy "$@"; then
    echo "!! $name: launch failed"; tail -n 20 "$run"/*.log; failed=$((failed + 1)); return
  fi
  for n in $lens "$conc x64"; do
    local np=1 len=${n%% *}
    [[ $n == *x64 ]] && np=64
    res=$("$CINDER_BIN/bench-serving" --port "$port" --tokenizer "$dummy/tokenizer.json" \
          --dataset-name random --random-input-len "$len" --random-output-len 8 \
          --num-prompts $np --timeout 300 --no-progress 2>&1)
    local ok fl
    ok=$(sed -n 's/^Successful requests: *\([0-9]*\).*/\1/p' <<< "$res")
    fl=$(sed -n 's/^Failed requests: *\([0-9]*\).*/\1/p' <<< "$res")
    local dur tin
    dur=$(sed -n 's/^Benchmark duration (s): *\([0-9.]*\).*/\1/p' <<< "$res")
    tin=$(sed -n 's/^Total input tokens: *\([0-9]*\).*/\1/p' <<< "$res")
    echo "RESULT long $name prompt $len x$np: $ok ok, $fl failed, $tin prompt tokens in $dur s"
    if [[ $ok != "$np" || $fl != 0 ]]; then
      echo "$res" | tail -n 30; tail -n 20 "$run/worker.log"; failed=$((failed + 1))
    fi
  done
  "$ROOT/scripts/stop.sh" --run-dir "$run" > /dev/null 2>&1
}
if [[ ${GPU_E2E_LONG:-1} == 1 ]]; then
  long "max-seq-len 4096" 8125 "2000 2100 4000" 4000 --max-seq-len 4096
  long "max-seq-len 8192" 8126 "1500 2000 3000 8000" 8000 --max-seq-len 8192
  long "max-seq-len 8192, batch 4096" 8127 "3000" 3000 --max-seq-len 8192 \
    --max-batch-tokens 4096
fi
rm -rf "$dummy"
echo "gpu_e2e.sh: $failed failed"
exit $failed
