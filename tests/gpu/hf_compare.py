#!/usr/bin/env python3
"""hf_compare.py - the HF transformers side of test_hf_compare: loads a LlamaForCausalLM model
directory (safetensors), upcast to fp32 on the GPU (the higher-precision reference), runs the
prompt, then N greedy decode steps with the KV cache, and writes, per step, the logits of the
last position and the greedy token:

    int32 n_rows, int32 vocab, then n_rows x (int32 token, float32 logits[vocab])

Row 0 is the prefill (its token is the first generated one); row k the k-th decode step.
usage: hf_compare.py MODEL_DIR PROMPT_IDS(comma-separated) N_DECODE OUT_FILE
Exit status 3 when torch or transformers cannot be imported.
"""
import struct
import sys

try:
    import torch
    from transformers import LlamaForCausalLM
except Exception as e:  # noqa: BLE001 - any import failure means "no reference here"
    print(f"hf_compare: cannot import torch/transformers: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    model_dir, ids, n_dec, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    prompt = [int(x) for x in ids.split(",")]
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    except TypeError:
        model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model = model.cuda().eval()
    print(f"hf_compare: transformers model with rope {getattr(model.config, 'rope_scaling', None)}")
    rows = []
    with torch.no_grad():
        x = torch.tensor([prompt], device="cuda")
        r = model(input_ids=x, use_cache=True)
        pkv = r.past_key_values
        logits = r.logits[0, -1].float()
        for step in range(n_dec + 1):
            tok = int(torch.argmax(logits))
            rows.append((tok, logits.cpu().numpy().astype("float32")))
            if step == n_dec:
                break
            r = model(input_ids=torch.tensor([[tok]], device="cuda"), past_key_values=pkv,
                      use_cache=True)
            pkv = r.past_key_values
            logits = r.logits[0, -1].float()
    vocab = rows[0][1].shape[0]
    with open(out, "wb") as f:
        f.write(struct.pack("<ii", len(rows), vocab))
        for tok, l in rows:
            f.write(struct.pack("<i", tok))
            f.write(l.tobytes())
    print(f"hf_compare: wrote {len(rows)} rows of {vocab} logits to {out}")


if __name__ == "__main__":
    main()
