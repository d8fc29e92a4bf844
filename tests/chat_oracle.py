#!/usr/bin/python3
"""chat_oracle.py - cinder's chat templates against Python's Jinja2 (Debian python3-jinja2),
configured as transformers' apply_chat_template configures it: ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, the loopcontrols extension, tojson = json.dumps(ensure_ascii=False,
indent, separators, sort_keys), raise_exception and strftime_now globals, the special tokens of
tokenizer_config.json as variables.

Every template (the real ones of build/assets/*/tokenizer_config.json, fetched by
scripts/fetch_assets.sh, and tests/data/chat/*.jinja, which exercise the interpreter's
features) renders every conversation of tests/data/chat/conversations.json with and without
add_generation_prompt, through Jinja2 here and through build/bin/chat-template --batch. The
outputs must be byte-identical; where Jinja2 raises, cinder must fail too. A model whose
tokenizer_config.json has no chat template must make chat-template refuse it.

One cmocka-style result line per template (tests/run.sh counts them), then "N passed, N failed".

  tests/chat_oracle.py [BIN_DIR]      (default: $CINDER_BIN or build/bin)
  CHAT_ORACLE_EXTRA=DIR tests/chat_oracle.py   also every DIR/*.jinja (templates gathered
                                               by hand, for a wider check than the committed)
"""
import datetime
import glob
import json
import os
import subprocess
import sys

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1700000000  # strftime_now's clock on both sides (14 Nov 2023)
SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
           "mask_token", "additional_special_tokens"]


def raise_exception(message):
    raise ValueError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.fromtimestamp(NOW).strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token(v):
    return v.get("content") if isinstance(v, dict) else v


def templates():
    """(name, source or None, special tokens) for every template under test"""
    out = []
    for cfg in sorted(glob.glob(os.path.join(ROOT, "build/assets/*/tokenizer_config.json"))):
        name = os.path.basename(os.path.dirname(cfg))
        with open(cfg, encoding="utf-8") as f:
            c = json.load(f)
        special = {k: token(c[k]) for k in SPECIAL if c.get(k) is not None}
        if k := special.get("additional_special_tokens"):
            special["additional_special_tokens"] = [token(t) for t in k]
        src = c.get("chat_template")
        if isinstance(src, list):
            src = next((t["template"] for t in src if t.get("name") == "default"), None)
        out.append((name, src, special))
    extra = os.environ.get("CHAT_ORACLE_EXTRA")
    paths = glob.glob(os.path.join(ROOT, "tests/data/chat/*.jinja"))
    paths += glob.glob(os.path.join(extra, "*.jinja")) if extra else []
    for path in sorted(paths):
        with open(path, encoding="utf-8") as f:
            out.append((os.path.basename(path), f.read(),
                        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    return out


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CINDER_BIN", os.path.join(ROOT, "build/bin"))
    with open(os.path.join(ROOT, "tests/data/chat/conversations.json"), encoding="utf-8") as f:
        convs = json.load(f)
    env = environment()
    passed = failed = 0
    for name, src, special in templates():
        if src is None:  # the package ships none: the server must refuse the chat API
            d = os.path.join(ROOT, "build/assets", name)
            r = subprocess.run([os.path.join(bin_dir, "chat-template"), "--model-dir", d],
                               input=b'{"messages":[{"role":"user","content":"x"}]}', capture_output=True)
            ok = r.returncode == 1 and b"no chat template" in r.stderr
            print(f"[{'       OK' if ok else ' FAILED  '} ] {name}: no chat template, refused")
            passed, failed = passed + ok, failed + (not ok)
            continue
        try:
            tpl = env.from_string(src)
        except Exception as e:  # noqa: BLE001 - any Jinja2 failure
            tpl, parse_error = None, e
        cases, lines = [], []
        for conv in convs:
            for gen in (True, False):
                v = dict(special)
                v.update({"messages": conv["messages"], "tools": conv.get("tools"), "documents": None,
                          "add_generation_prompt": gen})
                v.update(conv.get("kwargs", {}))
                want = None
                if tpl is not None:
                    try:
                        want = tpl.render(**v)
                    except Exception:  # noqa: BLE001 - Jinja2 raised: cinder must fail too
                        want = None
                cases.append((conv["name"], gen, want))
                lines.append(json.dumps({"template": src, "now": NOW,
                                         "vars": json.dumps(v, ensure_ascii=False)}, ensure_ascii=False))
        r = subprocess.run([os.path.join(bin_dir, "chat-template"), "--batch"],
                           input="\n".join(lines).encode() + b"\n", capture_output=True, check=False)
        got = [json.loads(x) for x in r.stdout.decode().splitlines()]
        bad, n_ok, n_err = [], 0, 0
        if len(got) != len(cases):
            bad.append(f"chat-template gave {len(got)} results for {len(cases)} cases: {r.stderr.decode()[-400:]}")
        for (conv, gen, want), res in zip(cases, got):
            if want is None:
                n_err += 1
                if "error" not in res:
                    bad.append(f"{conv} gen={gen}: Jinja2 raised, cinder rendered {res.get('text')!r:.300}")
            elif res.get("text") != want:
                got_text = res.get("text", "(error) " + str(res.get("error")))
                at = next((i for i, (a, b) in enumerate(zip(want, got_text)) if a != b), min(len(want), len(got_text)))
                bad.append(f"{conv} gen={gen}: first difference at {at}:\n    jinja2 {want[max(0, at - 60):at + 100]!r}"
                           f"\n    cinder {got_text[max(0, at - 60):at + 100]!r}")
            else:
                n_ok += 1
        if tpl is None:
            bad = [] if all("error" in g for g in got) else [f"Jinja2 cannot parse it ({parse_error}) but cinder renders it"]
        for b in bad[:6]:
            print(f"  {name}: {b}")
        ok = not bad
        print(f"[{'       OK' if ok else ' FAILED  '} ] {name}: {n_ok} renderings identical, {n_err} errors "
              f"as in Jinja2" if ok else f"[  FAILED  ] {name}: {len(bad)} of {len(cases)} differ")
        passed, failed = passed + ok, failed + (not ok)
    if passed:
        print(f"[  PASSED  ] {passed} test(s).")
    if failed:
        print(f"[  FAILED  ] {failed} test(s), listed above.")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
