#!/usr/bin/env python3
"""attn_peer.py - the attention peer: torch SDPA (cuDNN and FlashAttention backends) on the
shapes of bench/kernels/bench_prefill_attn.cu and bench_decode_attn.cu, printed in the same
RESULT format, so every attention figure in RESULTS.md has its cuDNN ratio beside it.

Run on the GPU machine in the same call as the kernel benchmarks (scripts/gpu.sh does when
python3 can import torch). torch is a reference here, never part of cinder.

The peer gets contiguous K/V (no page table) and, for decode, one query per sequence with
the whole context visible; FLOPs and bytes are counted exactly as the cinder benchmarks count
them (prefill: 4 * head_dim * heads * visible query-key pairs; decode: K/V + q + out bytes).
"""
import sys

try:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right
except Exception as e:  # no torch here: say so, and do not fail the caller
    print(f"attn_peer: torch not available ({e}); skipped")
    sys.exit(0)

HD = 128
BACKENDS = [("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)]


def time_ms(fn, iters=10):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(3):  # best of three batches of iters, as bench_util.cuh's bench_ms
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / iters)
    return best


def sdpa(backend, q, k, v, causal_mask):
    with sdpa_kernel([backend]):
        if causal_mask is True:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask, enable_gqa=True)


def prefill(n_seqs, q_len, cached, nh, nkv):
    g = torch.Generator(device="cuda").manual_seed(23)
    kv_len = q_len + cached
    q = torch.randn(n_seqs, nh, q_len, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(n_seqs, nkv, kv_len, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(n_seqs, nkv, kv_len, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    mask = True if cached == 0 else causal_lower_right(q_len, kv_len)
    pairs = n_seqs * (q_len * cached + q_len * (q_len + 1) / 2)
    flops = 4.0 * HD * nh * pairs
    case = f"{n_seqs} x {q_len} new tokens + {cached} cached, causal, {nh}/{nkv} heads x 128, bf16"
    for name, be in BACKENDS:
        try:
            ms = time_ms(lambda: sdpa(be, q, k, v, mask))
            print(f"RESULT peer_sdpa_{name} prefill | {case} | {ms:.4f} ms | "
                  f"{flops / ms / 1e9:.1f} TFLOP/s")
        except Exception as e:
            print(f"RESULT peer_sdpa_{name} prefill | {case} | unsupported: {str(e).splitlines()[0][:80]}")


def decode(n_seqs, ctx, nh=32, nkv=8):
    g = torch.Generator(device="cuda").manual_seed(24)
    q = torch.randn(n_seqs, nh, 1, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(n_seqs, nkv, ctx, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(n_seqs, nkv, ctx, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    nbytes = 2.0 * n_seqs * (2 * ctx * nkv * HD + 2 * nh * HD)
    case = f"{n_seqs} x {ctx} context, {nh}/{nkv} heads x 128, bf16"
    for name, be in BACKENDS:
        try:
            ms = time_ms(lambda: sdpa(be, q, k, v, None), iters=20)
            print(f"RESULT peer_sdpa_{name} decode | {case} | {ms:.4f} ms | "
                  f"{nbytes / ms / 1e6:.0f} GB/s")
        except Exception as e:
            print(f"RESULT peer_sdpa_{name} decode | {case} | unsupported: {str(e).splitlines()[0][:80]}")


def main():
    if not torch.cuda.is_available():
        print("attn_peer: no GPU; skipped")
        return
    print(f"attn_peer: torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    for args in [(1, 8192, 0, 32, 8), (2, 8192, 0, 32, 32), (8, 1024, 0, 32, 8), (4, 512, 3584, 32, 8)]:
        prefill(*args)
    for args in [(64, 4096), (256, 1024), (32, 8192), (8, 4096), (1, 32768), (1, 4096)]:
        decode(*args)


if __name__ == "__main__":
    main()
