/* bench_decode_attn.cu - decode_attn_run on Llama-3-8B shapes (32 q heads, 8 kv heads, head
 * dim 128, bf16) over shuffled pages: GB/s of K/V (+ q, out) against the copy bandwidth.
 * Target: >= 75% of copy bandwidth at batch 64 x 4k context. */
#include "bench_util.cuh"
#include "../../kernels/decode_attn.cuh"
#include <stdlib.h>

static void run(const bench_ceilings *c, int n_seqs, int ctx, int bs, int splits, int n_sms)
{
    const int nh = 32, nkv = 8, hd = 128;
    int bps = (ctx + bs - 1) / bs, n_blocks = n_seqs * bps;
    size_t cache_elems = (size_t)n_blocks * bs * nkv * hd;
    void *k, *v, *q, *out, *ws = NULL;
    int32_t *bt, *lens;
    CUDA_CHECK(cudaMalloc(&k, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&v, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&q, (size_t)n_seqs * nh * hd * 2));
    CUDA_CHECK(cudaMalloc(&out, (size_t)n_seqs * nh * hd * 2));
    bench_fill16(k, cache_elems, 11, 1.f);
    bench_fill16(v, cache_elems, 12, 1.f);
    bench_fill16(q, (size_t)n_seqs * nh * hd, 13, 1.f);
    std::vector<int32_t> ids(n_blocks), hl(n_seqs, ctx);
    for (int i = 0; i < n_blocks; i++) ids[i] = i;
    srand(42);
    for (int i = n_blocks - 1; i > 0; i--) std::swap(ids[i], ids[rand() % (i + 1)]);
    CUDA_CHECK(cudaMalloc(&bt, sizeof(int32_t) * n_blocks));
    CUDA_CHECK(cudaMalloc(&lens, sizeof(int32_t) * n_seqs));
    CUDA_CHECK(cudaMemcpy(bt, ids.data(), sizeof(int32_t) * n_blocks, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(lens, hl.data(), sizeof(int32_t) * n_seqs, cudaMemcpyHostToDevice));
    int auto_splits = decode_attn_splits(n_seqs, nh, nkv, hd, ctx, n_sms);
    if (splits == 0) splits = auto_splits;
    size_t wsb = decode_attn_workspace_size(n_seqs, nh, hd, splits);
    if (wsb) CUDA_CHECK(cudaMalloc(&ws, wsb));
    double ms = bench_ms([&] {
        CUDA_CHECK(decode_attn_run(out, q, nh * hd, k, v, bt, bps, lens, n_seqs, nh, nkv, hd, bs,
                                   0.0883883f, 0, splits, ws, 0, KDT_BF16, 0));
    });
    double bytes = 2.0 * n_seqs * ctx * nkv * hd * 2 + 2.0 * n_seqs * nh * hd * 2;
    char cas[160];
    snprintf(cas, sizeof(cas), "batch %d x ctx %d, 32/8 heads x 128, bf16, block %d, splits %d%s",
             n_seqs, ctx, bs, splits, splits == auto_splits ? " (auto)" : "");
    bench_report_bw("decode_attn", cas, ms, bytes, c);
    CUDA_CHECK(cudaFree(k)); CUDA_CHECK(cudaFree(v)); CUDA_CHECK(cudaFree(q));
    CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(bt)); CUDA_CHECK(cudaFree(lens));
    if (ws) CUDA_CHECK(cudaFree(ws));
}

/* Optional argument: run only the first N cases (for profiling one launch). */
int main(int argc, char **argv)
{
    int limit = argc > 1 ? atoi(argv[1]) : 1 << 30;
    bench_ceilings c = bench_measure_ceilings();
    int dev, n_sms;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, dev));
    static const int cases[][4] = {   /* batch, context, block size, splits (0: auto) */
        {64, 4096, 16, 0}, {64, 4096, 16, 2}, {64, 4096, 16, 4}, {64, 4096, 1, 0},
        {64, 4096, 256, 0}, {256, 1024, 16, 0}, {32, 8192, 16, 0},
        {8, 4096, 16, 0}, {8, 4096, 16, 4}, {8, 4096, 16, 16},
        {1, 32768, 16, 0}, {1, 32768, 16, 16}, {1, 32768, 16, 1}, {1, 4096, 16, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && (int)i < limit; i++)
        run(&c, cases[i][0], cases[i][1], cases[i][2], cases[i][3], n_sms);
    return 0;
}
