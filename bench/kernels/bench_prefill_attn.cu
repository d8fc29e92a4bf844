/* bench_prefill_attn.cu - the prefill attention kernels, causal, head dim 128, bf16, K/V from
 * 16-token pages: the Hopper kernel (prefill_attn_sm90_run, its variants, when the device has
 * it) and the portable one (prefill_attn_run_tiled): TFLOP/s (4 * head_dim * heads * visible
 * query-key pairs) against cuBLAS bf16, on the shapes bench/attn_peer.py times torch's SDPA
 * (cuDNN, FlashAttention-2) on. Target (issue 16): >= 1.0x cuDNN, ~620 TFLOP/s at 1 x 8192. */
#include "bench_util.cuh"
#include "../../kernels/prefill_attn.cuh"
#include "../../kernels/prefill_attn_sm90.cuh"
#include <stdlib.h>

static const char *variant_names[] = {"default", "4 warps x 16 rows, 64 keys",
                                      "4 warps x 32 rows, 64 keys", "8 warps x 32 rows, 64 keys",
                                      "4 warps x 32 rows, 32 keys"};
static const char *sm90_names[] = {"default", "sequential", "softmax overlapped with PV",
                                   "overlap + ping-pong", "persistent, sequential",
                                   "persistent, overlap", "persistent, overlap + ping-pong",
                                   "persistent, sequential, 3 stages",
                                   "persistent, overlap + ping-pong, 3 stages",
                                   "persistent, sequential + ping-pong",
                                   "persistent, sequential, 3 consumer warpgroups"};

static void run(const bench_ceilings *c, int n_seqs, int q_len, int cached, int nh, int nkv,
                int bs, int variant, bool sm90)
{
    const int hd = 128;
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
        CUDA_CHECK((sm90 ? prefill_attn_sm90_run : prefill_attn_run_tiled)(
            variant, out, q, nh * hd, k, v, bt, bps, cu, lens, n_seqs, q_len, nh, nkv, hd, bs,
            0.0883883f, 0, KDT_BF16, 0));
    }, 10);
    double pairs = (double)n_seqs * ((double)q_len * cached + (double)q_len * (q_len + 1) / 2);
    char cas[160];
    snprintf(cas, sizeof(cas), "%d x %d new tokens + %d cached, causal, %d/%d heads x 128, bf16, "
             "block %d, variant %d (%s)", n_seqs, q_len, cached, nh, nkv, bs, variant,
             sm90 ? sm90_names[variant] : variant_names[variant]);
    bench_report_flops(sm90 ? "prefill_attn_sm90" : "prefill_attn", cas, ms,
                       4.0 * hd * nh * pairs, c);
    CUDA_CHECK(cudaFree(k)); CUDA_CHECK(cudaFree(v)); CUDA_CHECK(cudaFree(q));
    CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(bt)); CUDA_CHECK(cudaFree(cu));
    CUDA_CHECK(cudaFree(lens));
}

/* Optional arguments: run only the first N cases (for profiling one launch); only the Hopper
 * kernel's variant V. */
int main(int argc, char **argv)
{
    int limit = argc > 1 ? atoi(argv[1]) : 1 << 30, only = argc > 2 ? atoi(argv[2]) : -1;
    bench_ceilings c = bench_measure_ceilings();
    /* seqs, new tokens, cached, heads, kv heads, block size; the last for the Hopper kernel
       only (one TMA box per 64 columns of a key tile instead of one per 16-token page) */
    static const int shapes[5][6] = {{1, 8192, 0, 32, 8, 16}, {2, 8192, 0, 32, 32, 16},
                                     {8, 1024, 0, 32, 8, 16}, {4, 512, 3584, 32, 8, 16},
                                     {1, 8192, 0, 32, 8, 128}};
    /* the Hopper kernel's default (what prefill_attn_run takes) and variants, then the
       portable kernel's (variant 1 at 1 x 8192 only) */
    static const struct { int variant; bool sm90; } runs[] = {
        {0, true},  {1, true},  {2, true},  {3, true},  {4, true},  {5, true},
        {6, true},  {7, true},  {8, true},  {9, true},  {10, true}, {2, false},
        {3, false}, {4, false}, {1, false}};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        if (only >= 0 && (!runs[i].sm90 || runs[i].variant != only)) continue;
        if (runs[i].sm90 && !prefill_attn_sm90_available()) {
            printf("prefill_attn_sm90: not available on this device or build; skipped\n");
            continue;
        }
        for (int sh = 0; sh < (runs[i].sm90 ? 5 : 4) && limit > 0; sh++, limit--) {
            const int *a = shapes[sh];
            run(&c, a[0], a[1], a[2], a[3], a[4], a[5], runs[i].variant, runs[i].sm90);
            if (!runs[i].sm90 && runs[i].variant == 1) break;
        }
    }
    return 0;
}
