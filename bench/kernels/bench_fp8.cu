/* bench_fp8.cu - the FP8 kernels on Llama-3-8B shapes, each figure beside its ceiling measured
 * in the same run: the E4M3 decode GEMV (1 and 8 token rows; weight bytes against the copy
 * bandwidth, beside the bf16 GEMV on the same shape), the cuBLASLt FP8 GEMM with per-channel /
 * per-token scales for a prefill of 8192 tokens (against the unscaled cuBLASLt FP8 rate at
 * 8192^3), per-token quantization and the E4M3 KV store (bandwidth), decode and prefill
 * attention over E4M3 and bf16 caches. Weight copies rotate so L2 cannot hold them. */
#include "bench_util.cuh"
#include "../../kernels/decode_attn.cuh"
#include "../../kernels/fp8_quant.cuh"
#include "../../kernels/gemm_fp8.cuh"
#include "../../kernels/gemv.cuh"
#include "../../kernels/gemv_fp8.cuh"
#include "../../kernels/kv_store.cuh"
#include "../../kernels/prefill_attn.cuh"
#include <stdlib.h>

#define REPS 20

typedef struct {
    const char *name;
    int n_out, n_in;
    gemv_epi_kind kind;
} shape;

static const shape shapes[] = {
    {"qkv_proj", 6144, 4096, GEMV_OUT}, {"o_proj", 4096, 4096, GEMV_RESID},
    {"gate_up_proj", 28672, 4096, GEMV_SILU}, {"down_proj", 4096, 14336, GEMV_RESID},
};

static void fill8(void *p, size_t n)   /* random bytes as E4M3 codes (NaN among them: no kernel
                                         timed here depends on the values) */
{
    bench_fill16(p, n / 2, 77, 1.f);
}

static void gemv_case(const bench_ceilings *c, const shape *g, int n_tok)
{
    size_t w_bytes = (size_t)g->n_out * g->n_in;
    int n_copies = (int)((512ull << 20) / w_bytes) + 1;
    if (n_copies > 16) n_copies = 16;
    uint8_t *w, *xq;
    float *ws, *xs;
    void *out, *w16, *x16;
    CUDA_CHECK(cudaMalloc(&w, w_bytes * n_copies));
    CUDA_CHECK(cudaMalloc(&w16, w_bytes * 2 * (n_copies / 2 + 1)));
    CUDA_CHECK(cudaMalloc(&xq, (size_t)n_tok * g->n_in));
    CUDA_CHECK(cudaMalloc(&x16, (size_t)n_tok * g->n_in * 2));
    CUDA_CHECK(cudaMalloc(&ws, g->n_out * 4));
    CUDA_CHECK(cudaMalloc(&xs, n_tok * 4));
    CUDA_CHECK(cudaMalloc(&out, (size_t)n_tok * g->n_out * 4));
    fill8(w, w_bytes * n_copies);
    fill8(xq, (size_t)n_tok * g->n_in);
    bench_fill16(w16, w_bytes * (n_copies / 2 + 1), 5, 0.05f);
    bench_fill16(x16, (size_t)n_tok * g->n_in, 6, 1.f);
    bench_fill16(out, (size_t)n_tok * g->n_out, 7, 1.f);
    std::vector<float> ones(g->n_out > n_tok ? g->n_out : n_tok, 0.01f);
    CUDA_CHECK(cudaMemcpy(ws, ones.data(), g->n_out * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(xs, ones.data(), n_tok * 4, cudaMemcpyHostToDevice));
    int it = 0;
    char cas[160];
    for (int pdl = 0; pdl < 2; pdl++) {
        double ms = bench_ms([&] {
            const uint8_t *wi = w + (it++ % n_copies) * w_bytes;
            CUDA_CHECK(gemv_fp8_run(out, xq, xs, wi, ws, n_tok, g->n_out, g->n_in, g->kind, pdl,
                                    KDT_BF16, 0));
        }, 20, REPS);
        snprintf(cas, sizeof cas, "fp8 %s %d x %d, %d token%s%s", g->name, g->n_out, g->n_in,
                 n_tok, n_tok > 1 ? "s" : "", pdl ? ", dependent launch" : "");
        bench_report_bw("gemv_fp8", cas, ms, (double)w_bytes, c);
    }
    int n16 = n_copies / 2 + 1;
    gemv_epi e = {};
    e.kind = g->kind;
    e.pdl = 1;
    double ms = bench_ms([&] {
        const char *wi = (const char *)w16 + (it++ % n16) * w_bytes * 2;
        CUDA_CHECK(gemv_fused_run(out, x16, wi, n_tok, g->n_out, g->n_in, &e, KDT_BF16, 0));
    }, 20, REPS);
    snprintf(cas, sizeof cas, "bf16 gemv (same shape, for comparison) %s, %d token%s", g->name,
             n_tok, n_tok > 1 ? "s" : "");
    bench_report_bw("gemv_fp8", cas, ms, (double)w_bytes * 2, c);
    CUDA_CHECK(cudaFree(w)); CUDA_CHECK(cudaFree(w16)); CUDA_CHECK(cudaFree(xq));
    CUDA_CHECK(cudaFree(x16)); CUDA_CHECK(cudaFree(ws)); CUDA_CHECK(cudaFree(xs));
    CUDA_CHECK(cudaFree(out));
}

/* The FP8 GEMM of M tokens x N out x K in with MODE; TFLOP/s, or -1 when unsupported. */
static double gemm_tflops(fp8_gemm *g, int M, int N, int K, int mode, float *scratch, int *used)
{
    uint8_t *a, *b;
    float *sa, *sb;
    void *d;
    CUDA_CHECK(cudaMalloc(&a, (size_t)M * K));
    CUDA_CHECK(cudaMalloc(&b, (size_t)N * K));
    CUDA_CHECK(cudaMalloc(&sa, M * 4));
    CUDA_CHECK(cudaMalloc(&sb, N * 4));
    CUDA_CHECK(cudaMalloc(&d, (size_t)M * N * 2));
    fill8(a, (size_t)M * K);
    fill8(b, (size_t)N * K);
    std::vector<float> s(M > N ? M : N, 0.01f);
    CUDA_CHECK(cudaMemcpy(sa, s.data(), M * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(sb, s.data(), N * 4, cudaMemcpyHostToDevice));
    cudaError_t e = fp8_gemm_run(g, d, a, sa, b, sb, M, N, K, mode, scratch, used, KDT_BF16, 0);
    double tf = -1;
    if (e != cudaErrorNotSupported) {
        CUDA_CHECK(e);
        double ms = bench_ms([&] {
            CUDA_CHECK(fp8_gemm_run(g, d, a, sa, b, sb, M, N, K, mode, scratch, NULL, KDT_BF16, 0));
        });
        tf = 2.0 * M * N * K / (ms * 1e9);
    }
    CUDA_CHECK(cudaFree(a)); CUDA_CHECK(cudaFree(b)); CUDA_CHECK(cudaFree(sa));
    CUDA_CHECK(cudaFree(sb)); CUDA_CHECK(cudaFree(d));
    return tf;
}

static void gemm_cases(const bench_ceilings *c)
{
    void *ws;
    float *scratch;
    CUDA_CHECK(cudaMalloc(&ws, 64 << 20));
    CUDA_CHECK(cudaMalloc(&scratch, (size_t)8192 * 28672 * 4));
    fp8_gemm *g = fp8_gemm_create(ws, 64 << 20);
    if (!g) { fprintf(stderr, "fp8_gemm_create failed\n"); exit(1); }
    int used;
    double ceil = bench_fp8_gemm_tflops();
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int mode = 1; mode <= 2; mode++) {
            double tf = gemm_tflops(g, 8192, shapes[i].n_out, shapes[i].n_in, mode, scratch, &used);
            if (tf < 0) {
                printf("RESULT gemm_fp8 | %s 8192 tokens, mode %d | not supported by cuBLASLt\n",
                       shapes[i].name, mode);
                fflush(stdout);
                continue;
            }
            double ms = 2.0 * 8192 * shapes[i].n_out * shapes[i].n_in / (tf * 1e9);
            printf("RESULT gemm_fp8 | %s %d x %d, 8192 tokens, %s scales | %.4f ms | %.1f TFLOP/s "
                   "| %.1f%% of cuBLASLt FP8 %.0f TFLOP/s\n", shapes[i].name, shapes[i].n_out,
                   shapes[i].n_in, used == FP8_GEMM_OUTER_VEC ? "outer-vector" : "epilogue-kernel",
                   ms, tf, 100 * tf / ceil, ceil);
            fflush(stdout);
        }
    fp8_gemm_destroy(g);
    CUDA_CHECK(cudaFree(ws)); CUDA_CHECK(cudaFree(scratch));
}

static void quant_store_cases(const bench_ceilings *c)
{
    int rows = 8192, n = 4096, nkv = 8, hd = 128, n_slots = 1 << 18;
    void *x, *kc, *vc;
    uint8_t *q;
    float *s;
    int32_t *slots;
    CUDA_CHECK(cudaMalloc(&x, (size_t)rows * n * 2));
    CUDA_CHECK(cudaMalloc(&q, (size_t)rows * n));
    CUDA_CHECK(cudaMalloc(&s, rows * 4));
    bench_fill16(x, (size_t)rows * n, 3, 2.f);
    double ms = bench_ms([&] { CUDA_CHECK(fp8_quant_rows_run(q, s, x, rows, n, n, 0, KDT_BF16, 0)); });
    bench_report_bw("fp8_quant", "8192 tokens x 4096, bf16 -> E4M3 per token", ms,
                    3.0 * rows * n, c);
    CUDA_CHECK(cudaMalloc(&kc, (size_t)n_slots * nkv * hd));
    CUDA_CHECK(cudaMalloc(&vc, (size_t)n_slots * nkv * hd));
    std::vector<int32_t> perm(n_slots);
    for (int i = 0; i < n_slots; i++) perm[i] = i;
    srand(7);
    for (int i = n_slots - 1; i > 0; i--) std::swap(perm[i], perm[rand() % (i + 1)]);
    CUDA_CHECK(cudaMalloc(&slots, 16384 * 4));
    CUDA_CHECK(cudaMemcpy(slots, perm.data(), 16384 * 4, cudaMemcpyHostToDevice));
    int row = nkv * hd;
    ms = bench_ms([&] {
        CUDA_CHECK(kv_store_fp8_run(kc, vc, x, row, (char *)x + (size_t)16384 * row * 2, row,
                                    slots, 16384, nkv, hd, 1.f, 1.f, KDT_BF16, 0));
    });
    bench_report_bw("kv_store_fp8", "16384 tokens x 8 kv heads x 128, bf16 -> E4M3, shuffled",
                    ms, 2.0 * 16384 * row * 3, c);
    CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(q)); CUDA_CHECK(cudaFree(s));
    CUDA_CHECK(cudaFree(kc)); CUDA_CHECK(cudaFree(vc)); CUDA_CHECK(cudaFree(slots));
}

/* Decode (64 sequences of CTX) and prefill (8 x 1024) attention over E4M3 and bf16 caches. */
static void attn_cases(const bench_ceilings *c, int n_sms)
{
    const int nh = 32, nkv = 8, hd = 128, bs = 16, n = 64, ctx = 4096;
    int bps = ctx / bs, n_blocks = n * bps;
    size_t elems = (size_t)n_blocks * bs * nkv * hd;
    void *k16, *v16, *k8, *v8, *q, *out, *ws;
    int32_t *bt, *lens, *cu;
    CUDA_CHECK(cudaMalloc(&k16, elems * 2)); CUDA_CHECK(cudaMalloc(&v16, elems * 2));
    CUDA_CHECK(cudaMalloc(&k8, elems)); CUDA_CHECK(cudaMalloc(&v8, elems));
    bench_fill16(k16, elems, 1, 1.f); bench_fill16(v16, elems, 2, 1.f);
    fill8(k8, elems); fill8(v8, elems);
    CUDA_CHECK(cudaMalloc(&q, (size_t)8192 * nh * hd * 2));
    CUDA_CHECK(cudaMalloc(&out, (size_t)8192 * nh * hd * 2));
    bench_fill16(q, (size_t)8192 * nh * hd, 3, 1.f);
    std::vector<int32_t> h(n_blocks);
    for (int i = 0; i < n_blocks; i++) h[i] = i;
    srand(5);
    for (int i = n_blocks - 1; i > 0; i--) std::swap(h[i], h[rand() % (i + 1)]);
    CUDA_CHECK(cudaMalloc(&bt, n_blocks * 4));
    CUDA_CHECK(cudaMemcpy(bt, h.data(), n_blocks * 4, cudaMemcpyHostToDevice));
    std::vector<int32_t> hl(n, ctx), hc(9);
    CUDA_CHECK(cudaMalloc(&lens, n * 4));
    CUDA_CHECK(cudaMemcpy(lens, hl.data(), n * 4, cudaMemcpyHostToDevice));
    int splits = decode_attn_splits(n, nh, nkv, hd, ctx, n_sms);
    CUDA_CHECK(cudaMalloc(&ws, decode_attn_workspace_size(n, nh, hd, 32) + 16));
    float sc = 1.f / sqrtf((float)hd);
    double kv_bytes = 2.0 * n * ctx * nkv * hd;
    double ms8 = bench_ms([&] {
        CUDA_CHECK(decode_attn_fp8kv_run(out, q, nh * hd, k8, v8, bt, bps, lens, n, nh, nkv, hd, bs,
                                         sc, 1.f, 1.f, 0, splits, ws, 0, KDT_BF16, 0));
    });
    double ms16 = bench_ms([&] {
        CUDA_CHECK(decode_attn_run(out, q, nh * hd, k16, v16, bt, bps, lens, n, nh, nkv, hd, bs, sc,
                                   0, splits, ws, 0, KDT_BF16, 0));
    });
    bench_report_bw("decode_attn_fp8kv", "64 seqs x 4096 ctx, 32/8 heads x 128, E4M3 KV", ms8,
                    kv_bytes, c);
    bench_report_bw("decode_attn_fp8kv", "64 seqs x 4096 ctx, 32/8 heads x 128, bf16 KV (same run)",
                    ms16, kv_bytes * 2, c);
    for (int s = 0; s <= 8; s++) hc[s] = s * 1024;
    CUDA_CHECK(cudaMalloc(&cu, 9 * 4));
    CUDA_CHECK(cudaMemcpy(cu, hc.data(), 9 * 4, cudaMemcpyHostToDevice));
    std::vector<int32_t> pl(8, 1024);
    CUDA_CHECK(cudaMemcpy(lens, pl.data(), 8 * 4, cudaMemcpyHostToDevice));
    double flops = 8.0 * 4 * nh * hd * (1024.0 * 1025 / 2);
    ms8 = bench_ms([&] {
        CUDA_CHECK(prefill_attn_fp8kv_run(out, q, nh * hd, k8, v8, bt, bps, cu, lens, 8, 1024, nh,
                                          nkv, hd, bs, sc, 1.f, 1.f, 0, KDT_BF16, 0));
    });
    ms16 = bench_ms([&] {
        CUDA_CHECK(prefill_attn_run(out, q, nh * hd, k16, v16, bt, bps, cu, lens, 8, 1024, nh, nkv,
                                    hd, bs, sc, 0, KDT_BF16, 0));
    });
    bench_report_flops("prefill_attn_fp8kv", "8 x 1024 causal, 32/8 heads x 128, E4M3 KV", ms8,
                       flops, c);
    bench_report_flops("prefill_attn_fp8kv", "8 x 1024 causal, 32/8 heads x 128, bf16 KV (same run)",
                       ms16, flops, c);
    CUDA_CHECK(cudaFree(k16)); CUDA_CHECK(cudaFree(v16)); CUDA_CHECK(cudaFree(k8));
    CUDA_CHECK(cudaFree(v8)); CUDA_CHECK(cudaFree(q)); CUDA_CHECK(cudaFree(out));
    CUDA_CHECK(cudaFree(ws)); CUDA_CHECK(cudaFree(bt)); CUDA_CHECK(cudaFree(lens));
    CUDA_CHECK(cudaFree(cu));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    int dev, sms;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        gemv_case(&c, &shapes[i], 1);
        gemv_case(&c, &shapes[i], 8);
    }
    gemm_cases(&c);
    quant_store_cases(&c);
    attn_cases(&c, sms);
    return 0;
}
