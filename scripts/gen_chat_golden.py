#!/usr/bin/env python3
"""gen_chat_golden.py - writes tests/data/tok/chat.jsonl: chat templates rendered by Jinja2
exactly as transformers' apply_chat_template does (sandboxed environment, trim_blocks,
lstrip_blocks, raise_exception), the oracle for tests/unit/test_chat.c.

Only this generator needs Python's jinja2 (Debian: python3-jinja2); the test reads the
committed vectors. Each line: {"name", "template", "bos", "eos", "messages", "gen",
"out"} or "error": true where the template raises.

  python3 scripts/gen_chat_golden.py --llama3-config build/assets/llama3/tokenizer_config.json
"""
import argparse
import json

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Meta-Llama-3-8B-Instruct
LLAMA3_INSTRUCT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
    "<|end_header_id|>\n\n' }}{% endif %}")

# Llama-2-7b-chat-hf
LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == "
    "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}")

# Mistral-7B-Instruct v0.1 (EOS then a space) and v0.2 (no space)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
    "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_tokenEOS_TAIL}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}")

CONVERSATIONS = [
    [("user", "Hello")],
    [("system", "You are a helpful assistant."), ("user", "Hi there!")],
    [("user", "  spaced  \n"), ("assistant", " ok \t"), ("user", "next")],
    [("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4."), ("user", "And 3+3?"),
     ("assistant", "6.")],
    [("user", "Привет 👋 мир"), ("assistant", "日本語のテキスト"), ("user", "مرحبا")],
    [("user", "<|eot_id|> [INST] <s> </s> <<SYS>>")],
    [("user", "")],
    [("system", ""), ("user", "x")],
    [("user", "a"), ("user", "b")],
    [("assistant", "first")],
    [("system", "only a system message")],
    [("user", "\u3000x\u00a0"), ("assistant", "\x1cy\x1f"), ("user", "\u200bz\u200b"), ("assistant", "\ufeffw")],
    [("user", "call it"), ("tool", "result 42"), ("user", "thanks")],
    [("system", "  sys with spaces  "), ("user", "\n\nq\n\n")],
    [("user", "line1\nline2\r\n\ttabbed"), ("assistant", "multi\n\nparagraph\n")],
]


def raise_exception(message):
    raise ValueError(message)


def render(env, src, msgs, gen, bos, eos):
    tpl = env.from_string(src)
    return tpl.render(messages=msgs, add_generation_prompt=gen, bos_token=bos, eos_token=eos)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama3-config", required=True, help="tokenizer_config.json of Llama-3")
    ap.add_argument("--out", default="tests/data/tok/chat.jsonl")
    a = ap.parse_args()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    base = json.load(open(a.llama3_config, encoding="utf-8"))["chat_template"]
    templates = [
        ("llama3_base", base, "<|begin_of_text|>", "<|end_of_text|>"),
        ("llama3_instruct", LLAMA3_INSTRUCT, "<|begin_of_text|>", "<|eot_id|>"),
        ("llama2_chat", LLAMA2_CHAT, "<s>", "</s>"),
        ("mistral_v01", MISTRAL.replace("EOS_TAIL", " + ' ' "), "<s>", "</s>"),
        ("mistral_v02", MISTRAL.replace("EOS_TAIL", ""), "<s>", "</s>"),
    ]
    n = 0
    with open(a.out, "w", encoding="utf-8") as f:
        for name, src, bos, eos in templates:
            for conv in CONVERSATIONS:
                msgs = [{"role": r, "content": c} for r, c in conv]
                for gen in (False, True):
                    rec = {"name": name, "template": src, "bos": bos, "eos": eos,
                           "messages": msgs, "gen": gen}
                    try:
                        rec["out"] = render(env, src, msgs, gen, bos, eos)
                    except Exception:  # raise_exception, or messages[0] of an empty list
                        rec["error"] = True
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
    print(f"{a.out}: {n} renderings")


if __name__ == "__main__":
    main()
