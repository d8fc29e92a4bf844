#!/usr/bin/env python3
"""hf_families.py - writes the transformers side of the model-family tests: for every family
cinder serves, a tiny random-weight model saved with transformers' own save_pretrained, and
transformers' greedy continuations of a few prompts with the logits of every step.

Run where torch and transformers are installed (no GPU needed; it runs on the CPU):
    python3 tests/gpu/hf_families.py --out DIR [--tar FILE]
and commit DIR as tests/data/hf. Per family F (llama, mistral, qwen2, qwen2_swa, qwen3,
mixtral, qwen3_moe, qwen3_moe_norm):

    F/model*.safetensors (+ index)  weights in bf16 (values exact in bf16, so fp32 runs agree);
                                    MoE experts in the per-expert names of the hub checkpoints
    F/v5/config.json                config.json as this transformers (5.x) writes it
    F/v4/config.json                the same model as transformers 4.x writes it (rope_theta /
                                    rope_scaling, torch_dtype, no layer_types; Qwen2's
                                    sliding_window kept with use_sliding_window false, as on the hub)
    F/v4, F/v5 also hold generation_config.json and links to ../model*.safetensors
    F/ref.json                      prompts, greedy ids (n_gen per prompt), the smallest top-1 /
                                    top-2 logit margin of each, versions, tensor names
    F/logits.bin                    float32 [n_prompts, n_gen, vocab]: row k produced greedy[k]

Both config styles are loaded back with from_pretrained and must give the logits of the model
in memory, so the files are exactly what transformers computes. Prompts are redrawn until
every greedy step has a top-1 margin of at least MARGIN, so that fp32 rounding order cannot
flip a greedy choice in another implementation.
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tarfile
import traceback

import torch
import transformers
from safetensors.torch import load_file, save_file

VOCAB = 512
N_PROMPTS = 3
N_GEN = 12
MARGIN = 2e-3
TV_MAJOR = int(transformers.__version__.split(".")[0])

COMMON = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
              bos_token_id=1, eos_token_id=2)


def rope(theta, scaling=None):
    """RoPE keyword arguments in this transformers' style."""
    if TV_MAJOR >= 5:
        p = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            p.update(scaling)
        return {"rope_parameters": p}
    return {"rope_theta": theta, "rope_scaling": scaling}


def families():
    """name -> (config class, model class, config kwargs, save kwargs)"""
    T = transformers
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    return {
        # sharded on purpose: the loader's index.json path
        "llama": (T.LlamaConfig, T.LlamaForCausalLM,
                  dict(intermediate_size=128, tie_word_embeddings=False, **rope(500000.0, llama3)),
                  {"max_shard_size": "150KB"}),
        "mistral": (T.MistralConfig, T.MistralForCausalLM,
                    dict(intermediate_size=128, head_dim=16, sliding_window=6,
                         tie_word_embeddings=False, **rope(1000000.0)), {}),
        "qwen2": (T.Qwen2Config, T.Qwen2ForCausalLM,
                  dict(intermediate_size=128, tie_word_embeddings=True, use_sliding_window=False,
                       sliding_window=4, max_window_layers=1, **rope(1000000.0)), {}),
        "qwen2_swa": (T.Qwen2Config, T.Qwen2ForCausalLM,
                      dict(intermediate_size=128, tie_word_embeddings=False,
                           use_sliding_window=True, sliding_window=5, max_window_layers=1,
                           **rope(10000.0)), {}),
        "qwen3": (T.Qwen3Config, T.Qwen3ForCausalLM,
                  dict(intermediate_size=128, head_dim=32, tie_word_embeddings=True,
                       attention_bias=False, use_sliding_window=False, **rope(1000000.0)), {}),
        "mixtral": (T.MixtralConfig, T.MixtralForCausalLM,
                    dict(intermediate_size=64, num_local_experts=4, num_experts_per_tok=2,
                         sliding_window=None, tie_word_embeddings=False, **rope(1000000.0)), {}),
        "qwen3_moe": (T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
                      dict(intermediate_size=128, moe_intermediate_size=32, num_experts=4,
                           num_experts_per_tok=2, norm_topk_prob=False, head_dim=32,
                           decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False,
                           use_sliding_window=False, **rope(1000000.0)), {}),
        "qwen3_moe_norm": (T.Qwen3MoeConfig, T.Qwen3MoeForCausalLM,
                           dict(intermediate_size=128, moe_intermediate_size=32, num_experts=6,
                                num_experts_per_tok=3, norm_topk_prob=True, head_dim=16,
                                decoder_sparse_step=1, mlp_only_layers=[],
                                tie_word_embeddings=True, use_sliding_window=False,
                                **rope(1000000.0)), {}),
    }


def randomize(model, seed):
    """Weights with real spread (transformers' init, std 0.02, gives near-flat logits), rounded
    to bf16 so that the bf16 files hold them exactly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                v = 1.0 + 0.2 * (torch.rand(p.shape, generator=g) - 0.5)
            elif p.dim() == 1:                       # biases
                v = 0.3 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            else:                                    # [.., out, in]: std 1/sqrt(in)
                v = torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5
            p.copy_(v.to(torch.bfloat16).to(torch.float32))


def hub_names(sd, fam):
    """Fused 3-D expert tensors ([E, 2I, H] gate_up_proj, [E, H, I] down_proj) as the hub's
    per-expert 2-D tensors: Mixtral block_sparse_moe.experts.e.w1/w3/w2, Qwen3-MoE
    mlp.experts.e.gate_proj/up_proj/down_proj. A state dict already per expert is kept."""
    out = {}
    mix = fam == "mixtral"
    for k, t in sd.items():
        nk = k.replace(".mlp.", ".block_sparse_moe.") if mix else k
        if k.endswith(".experts.gate_up_proj"):
            base = nk[: -len("gate_up_proj")]
            half = t.shape[1] // 2
            for e in range(t.shape[0]):
                out[base + f"{e}." + ("w1" if mix else "gate_proj") + ".weight"] = t[e, :half].clone()
                out[base + f"{e}." + ("w3" if mix else "up_proj") + ".weight"] = t[e, half:].clone()
        elif k.endswith(".experts.down_proj"):
            base = nk[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[base + f"{e}." + ("w2" if mix else "down_proj") + ".weight"] = t[e].clone()
        else:
            out[nk] = t
    return out


def v4_config(cfg, fam):
    """config.json as transformers 4.x writes it."""
    c = dict(cfg)
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        rp = dict(rp)
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types", None)
    if fam == "qwen2":   # the hub's Qwen2.5 configs: a window given, but not used
        c["sliding_window"] = 4
        c["use_sliding_window"] = False
    c["transformers_version"] = "4.51.3"
    return c


def load(path, model_cls):
    return model_cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()


def greedy(model, prompt):
    """Greedy decode with the KV cache (transformers' decode path): ids, logits [N_GEN, V],
    smallest top-1 margin; then one full forward must give the same last-step logits."""
    ids, rows, margin = [], [], float("inf")
    with torch.no_grad():
        r = model(input_ids=torch.tensor([prompt]), use_cache=True)
        pkv, logits = r.past_key_values, r.logits[0, -1].float()
        for k in range(N_GEN):
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            tok = int(torch.argmax(logits))
            ids.append(tok)
            rows.append(logits.clone())
            if k + 1 == N_GEN:
                break
            r = model(input_ids=torch.tensor([[tok]]), past_key_values=pkv, use_cache=True)
            pkv, logits = r.past_key_values, r.logits[0, -1].float()
        full = model(input_ids=torch.tensor([prompt + ids[:-1]])).logits[0, -1].float()
    drift = float((full - rows[-1]).abs().max())
    return ids, torch.stack(rows), margin, drift


def write_family(out, fam, spec, seed):
    cfg_cls, model_cls, kw, save_kw = spec
    d = os.path.join(out, fam)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(seed)
    config = cfg_cls(**COMMON, **kw)
    print(fam, {k: getattr(config, k, "-") for k in (
        "sliding_window", "use_sliding_window", "layer_types", "head_dim", "num_experts",
        "num_local_experts", "num_experts_per_tok", "norm_topk_prob", "tie_word_embeddings")},
        flush=True)
    try:
        model = model_cls._from_config(config, attn_implementation="eager").eval()
    except TypeError:
        model = model_cls(config).eval()
    randomize(model, seed)
    tmp = os.path.join(out, "_tmp_" + fam)
    shutil.rmtree(tmp, ignore_errors=True)
    # a bf16 copy: casting the model itself would round its fp32 rotary inv_freq buffer too
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(tmp, **save_kw)
    native = sorted(f for f in os.listdir(tmp) if f.startswith("model"))
    print(f"{fam}: save_pretrained wrote {native}", flush=True)
    keys = []
    if any(f.endswith(".index.json") for f in native):          # sharded: keep as written
        for f in native:
            shutil.copy(os.path.join(tmp, f), d)
            if f.endswith(".safetensors"):
                keys += list(load_file(os.path.join(tmp, f)).keys())
    else:
        sd = load_file(os.path.join(tmp, "model.safetensors"))
        print(f"{fam}: layer-0 tensors as saved: " + ", ".join(
            f"{k}{list(v.shape)}" for k, v in sd.items() if ".layers.0." in k), flush=True)
        sd = hub_names(sd, fam)
        keys = list(sd.keys())
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(d, "model.safetensors"),
                  metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json")) as f:
        cfg5 = json.load(f)
    for style, cfg in (("v5", cfg5), ("v4", v4_config(cfg5, fam))):
        sd_dir = os.path.join(d, style)
        os.makedirs(sd_dir)
        with open(os.path.join(sd_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        if os.path.exists(os.path.join(tmp, "generation_config.json")):
            shutil.copy(os.path.join(tmp, "generation_config.json"), sd_dir)
        for f in os.listdir(d):
            if f.startswith("model"):
                os.symlink(os.path.join("..", f), os.path.join(sd_dir, f))
    shutil.rmtree(tmp)

    # the reference is what transformers computes from the files (v5 style); the v4-style
    # config and the model in memory must agree with it
    loaded = {s: load(os.path.join(d, s), model_cls) for s in ("v5", "v4")}
    ref_model = loaded["v5"]
    g = torch.Generator().manual_seed(seed + 1)
    prompts, gens, margins, drifts, logit_rows = [], [], [], [], []
    agree = {"v4": 0.0, "in_memory": 0.0}
    lengths = [5, 11, 17]
    for p in range(N_PROMPTS):
        for attempt in range(500):
            prompt = torch.randint(3, VOCAB, (lengths[p],), generator=g).tolist()
            ids, rows, margin, drift = greedy(ref_model, prompt)
            if margin >= MARGIN:
                break
        else:
            raise RuntimeError(f"{fam}: no prompt of length {lengths[p]} without near-ties")
        with torch.no_grad():
            x = torch.tensor([prompt + ids])
            want = ref_model(input_ids=x).logits[0]
            for name, m in (("v4", loaded["v4"]), ("in_memory", model)):
                err = float((m(input_ids=x).logits[0] - want).abs().max())
                agree[name] = max(agree[name], err / max(1.0, float(want.abs().max())))
        prompts.append(prompt)
        gens.append(ids)
        margins.append(margin)
        drifts.append(drift)
        logit_rows.append(rows)
    if agree["v4"] > 1e-5:
        print(f"{fam}: WARNING the v4-style config gives other logits (rel {agree['v4']:.2e}); "
              "v4 dropped", flush=True)
        shutil.rmtree(os.path.join(d, "v4"))
    ref = {"family": fam, "architecture": cfg5.get("architectures", [None])[0],
           "transformers": transformers.__version__, "torch": torch.__version__,
           "n_gen": N_GEN, "vocab": VOCAB, "prompts": prompts, "greedy": gens,
           "min_margin": margins, "cache_vs_full_max_abs": drifts,
           "v4_vs_v5_max_rel": agree["v4"], "in_memory_vs_files_max_rel": agree["in_memory"],
           "tensors": sorted(keys)}
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    with open(os.path.join(d, "logits.bin"), "wb") as f:
        f.write(torch.stack(logit_rows).to(torch.float32).numpy().tobytes())
    print(f"{fam}: ok, margins {['%.3g' % m for m in margins]}, cache drift "
          f"{max(drifts):.2e}, v4/v5 {agree['v4']:.1e}, memory/files {agree['in_memory']:.1e}, "
          f"{len(keys)} tensors", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tar", help="also pack OUT into this tar file")
    ap.add_argument("--only", help="comma-separated families")
    a = ap.parse_args()
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    os.makedirs(a.out, exist_ok=True)
    fams = families()
    names = a.only.split(",") if a.only else list(fams)
    failed = []
    for i, fam in enumerate(names):
        try:
            write_family(a.out, fam, fams[fam], 1000 + 17 * i)
        except Exception:  # noqa: BLE001 - report every family, then fail
            traceback.print_exc()
            failed.append(fam)
            shutil.rmtree(os.path.join(a.out, fam), ignore_errors=True)
    if a.tar:
        with tarfile.open(a.tar, "w") as t:
            t.add(a.out, arcname="hf")
    if failed:
        print("FAILED: " + ", ".join(failed), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
