/* bench_prefill_attn.cu - prefill_attn_run_tiled, causal, head dim 128, bf16, K/V from 16-token
 * pages: TFLOP/s (4 * head_dim * heads * visible query-key pairs) against cuBLAS bf16.
 * Target: >= 330 TFLOP/s at 8k tokens (torch's FlashAttention-2 on the H200). */
#include "bench_util.cuh"
#include "../../kernels/prefill_attn.cuh"
#include <stdlib.h>

static const char *variant_names[] = {"default", "4 warps x 16 rows, 64 keys",
                                      "4 warps x 32 rows, 64 keys", "8 warps x 32 rows, 64 keys",
                                      "4 warps x 32 rows, 32 keys"};

static void run(const bench_ceilings *c, int n_seqs, int q_len, int cached, int nh, int nkv,
                int variant)
{
    const int hd = 128, bs = 16;
    int len = q_len + cached, bps = (len + bs - 1) / bs, n_blocks = n_seqs * bps;
    size_t cache_elems = (size_t)n_blocks * bs * nkv * hd, n_tok = (size_t)n_seqs * q_len;
    void *k, *v, *q, *out;
    int32_t *bt, *cu, *lens;
    CUDA_CHECK(cudaMalloc(&k, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&v, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&q, n_tok * nh * hd * 2));
    CUDA_CHECK(cudaMalloc(&out, n_tok * nh * hd * 2));
    bench_fill16(k, cache_elems, 21, 1.f);
    bench_fill16(v, cache_elems, 22, 1.f);
    bench_fill16(q, n_tok * nh * hd, 23, 1.f);
    std::vector<int32_t> ids(n_blocks), hcu(n_seqs + 1), hl(n_seqs, len);
    for (int i = 0; i < n_blocks; i++) ids[i] = i;   /* pages in order, as after a fresh prefill */
    for (int s = 0; s <= n_seqs; s++) hcu[s] = s * q_len;
    CUDA_CHECK(cudaMalloc(&bt, sizeof(int32_t) * n_blocks));
    CUDA_CHECK(cudaMalloc(&cu, sizeof(int32_t) * (n_seqs + 1)));
    CUDA_CHECK(cudaMalloc(&lens, sizeof(int32_t) * n_seqs));
    CUDA_CHECK(cudaMemcpy(bt, ids.data(), sizeof(int32_t) * n_blocks, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(cu, hcu.data(), sizeof(int32_t) * (n_seqs + 1), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(lens, hl.data(), sizeof(int32_t) * n_seqs, cudaMemcpyHostToDevice));
    double ms = bench_ms([&] {
        CUDA_CHECK(prefill_attn_run_tiled(variant, out, q, nh * hd, k, v, bt, bps, cu, lens,
                                          n_seqs, q_len, nh, nkv, hd, bs, 0.0883883f, 0, KDT_BF16,
                                          0));
    }, 10);
    double pairs = (double)n_seqs * ((double)q_len * cached + (double)q_len * (q_len + 1) / 2);
    char cas[160];
    snprintf(cas, sizeof(cas), "%d x %d new tokens + %d cached, causal, %d/%d heads x 128, bf16, "
             "block 16, variant %d (%s)", n_seqs, q_len, cached, nh, nkv, variant,
             variant_names[variant]);
    bench_report_flops("prefill_attn", cas, ms, 4.0 * hd * nh * pairs, c);
    CUDA_CHECK(cudaFree(k)); CUDA_CHECK(cudaFree(v)); CUDA_CHECK(cudaFree(q));
    CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(bt)); CUDA_CHECK(cudaFree(cu));
    CUDA_CHECK(cudaFree(lens));
}

/* Optional argument: run only the first N cases (for profiling one launch). */
int main(int argc, char **argv)
{
    int limit = argc > 1 ? atoi(argv[1]) : 1 << 30;
    bench_ceilings c = bench_measure_ceilings();
    static const int variants[] = {2, 3, 4, 1};
    for (int i = 0; i < 4 && limit > 0; i++) {
        int v = variants[i];
        if (limit-- > 0) run(&c, 1, 8192, 0, 32, 8, v);
        if (v == 1) break;
        if (limit-- > 0) run(&c, 2, 8192, 0, 32, 32, v);
        if (limit-- > 0) run(&c, 8, 1024, 0, 32, 8, v);
        if (limit-- > 0) run(&c, 4, 512, 3584, 32, 8, v);
    }
    return 0;
}
