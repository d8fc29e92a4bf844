#!/usr/bin/env python3
"""hf_tiny_tokenizers.py - writes the tokenizers of the tiny HF test models (tests/data/hf:
vocab 512), so that launch.sh serves each family end to end with a tokenizer of its own style
whose ids all fall inside the model's vocabulary (a real tokenizer has 32000 or 151643 ids):

  tests/data/hf/tok_llama2/  Llama-2 style (SentencePiece BPE: the "_" prefix normalizer, byte
                             fallback <0x00>..<0xFF>, <unk> <s> </s> at 0..2), for the Llama,
                             Mistral and Mixtral models; a [INST] chat template;
  tests/data/hf/tok_qwen/    Qwen style (NFC, the GPT-4 split regex, byte-level BPE;
                             <|im_start|> <|endoftext|> <|im_end|> at 0..2), for Qwen2, Qwen3
                             and Qwen3-MoE; the ChatML template.

Each keeps its source's pipeline (normalizer, pre-tokenizer, decoder, post-processor) and
its merges in rank order, restricted to the ones whose parts are already in the small
vocabulary, until 512 ids: the base alphabet (bytes, or printable ASCII and the "_" marker),
then the merged pieces. The specials sit at 0..2 because the tiny models' configs say bos 1,
eos 2. Sources: models/stories15M/tokenizer.json (scripts/setup.sh) and
build/assets/qwen3/tokenizer.json (scripts/fetch_assets.sh). Output is deterministic; run
from the repository root and commit what it writes.
"""
import json
import os

VOCAB = 512
OUT = "tests/data/hf"


def pair(m):
    return m.split(" ", 1) if isinstance(m, str) else m


def grow(vocab, merges, limit):
    """Adds merged pieces of MERGES (rank order) whose parts are in VOCAB, up to LIMIT ids."""
    kept = []
    for m in merges:
        if len(vocab) >= limit:
            break
        a, b = pair(m)
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            kept.append([a, b])
    return kept


def special(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True}


def write(name, tok, config):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("%s: %d ids, %d merges" % (d, len(tok["model"]["vocab"]), len(tok["model"]["merges"])))


def small(name, src_path, specials, base, config):
    """The tokenizer of SRC_PATH cut to VOCAB ids: SPECIALS at 0.., the BASE pieces, then the
    merged pieces its merges reach from them; written with CONFIG as tokenizer_config.json."""
    src = json.load(open(src_path))
    vocab = {s: i for i, s in enumerate(specials)}
    for piece in base(src):
        vocab[piece] = len(vocab)
    kept = grow(vocab, src["model"]["merges"], VOCAB)
    tok = dict(src)
    tok["added_tokens"] = [special(i, s) for i, s in enumerate(specials)]
    tok["model"] = dict(src["model"], vocab=vocab, merges=kept)
    write(name, tok, config)


def llama2():
    def base(src):   # the byte-fallback tokens, then printable ASCII and the word marker
        return ["<0x%02X>" % b for b in range(256)] + \
               list("\u2581" + "".join(chr(c) for c in range(0x21, 0x7f)))
    config = {
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
        "legacy": True, "tokenizer_class": "LlamaTokenizer",
        "chat_template": "{{ bos_token }}{% for message in messages %}"
                         "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
                         "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
    }
    small("tok_llama2", "models/stories15M/tokenizer.json", ["<unk>", "<s>", "</s>"], base, config)


def qwen():
    def base(src):   # the byte alphabet: the source's first 256 ids
        return [s for s, i in sorted(src["model"]["vocab"].items(), key=lambda kv: kv[1])[:256]]
    config = {
        "add_bos_token": False, "add_prefix_space": False, "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "clean_up_tokenization_spaces": False, "tokenizer_class": "Qwen2Tokenizer",
        "chat_template": "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                         "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    }
    small("tok_qwen", "build/assets/qwen3/tokenizer.json",
          ["<|im_start|>", "<|endoftext|>", "<|im_end|>"], base, config)


if __name__ == "__main__":
    llama2()
    qwen()
