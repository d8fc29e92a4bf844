/* bench_gemv.cu - the fused decode GEMV (gemv_fused_run) on the Llama-3-8B decode projections,
 * 1 and 8 token rows, bf16: GB/s of weights streamed against the copy bandwidth, beside
 * cuBLAS on the same shape. Several weight copies rotate so L2 (50-60 MB) cannot hold them.
 * Each case times REPS back-to-back launches, with and without the dependent launch. */
#include "bench_util.cuh"
#include "../../kernels/gemv.cuh"

#define REPS 20

typedef struct {
    const char *name;
    int n_out, n_in;
    gemv_epi_kind kind;
    int norm;
} gcase;

static void run(const bench_ceilings *c, cublasHandle_t h, const gcase *g, int n_tok)
{
    size_t w_elems = (size_t)g->n_out * g->n_in, w_bytes = w_elems * 2;
    int n_copies = (int)((512ull << 20) / w_bytes) + 1;   /* >= 512 MB of weights in rotation */
    if (n_copies > 16) n_copies = 16;
    void *w, *x, *out, *nw;
    CUDA_CHECK(cudaMalloc(&w, w_bytes * n_copies));
    CUDA_CHECK(cudaMalloc(&x, (size_t)n_tok * g->n_in * 2));
    CUDA_CHECK(cudaMalloc(&out, (size_t)n_tok * g->n_out * 4));
    CUDA_CHECK(cudaMalloc(&nw, (size_t)g->n_in * 2));
    bench_fill16(w, w_elems * n_copies, 51, 0.05f);
    bench_fill16(x, (size_t)n_tok * g->n_in, 52, 1.f);
    bench_fill16(nw, g->n_in, 53, 1.f);
    bench_fill16(out, (size_t)n_tok * g->n_out, 54, 1.f);   /* the residual of RESID */
    int it = 0;
    for (int pdl = 0; pdl < 2; pdl++) {
        gemv_epi e = {};
        e.kind = g->kind;
        e.norm_w = g->norm ? nw : NULL;
        e.norm_eps = 1e-5f;
        e.pdl = pdl;
        double ms = bench_ms([&] {
            const char *wi = (const char *)w + (it++ % n_copies) * w_bytes;
            CUDA_CHECK(gemv_fused_run(out, x, wi, n_tok, g->n_out, g->n_in, &e, KDT_BF16, 0));
        }, 20, REPS);
        char cas[160];
        snprintf(cas, sizeof cas, "%s %d x %d, %d token%s, %s%s%s", g->name, g->n_out, g->n_in,
                 n_tok, n_tok > 1 ? "s" : "", g->norm ? "norm + " : "",
                 g->kind == GEMV_SILU ? "silu" : g->kind == GEMV_RESID ? "resid" :
                 g->kind == GEMV_OUT_F32 ? "f32 out" : "out", pdl ? ", dependent launch" : "");
        bench_report_bw("gemv", cas, ms, (double)w_bytes, c);
    }
    const float alpha = 1.f, beta = 0.f;
    double ms = bench_ms([&] {
        const char *wi = (const char *)w + (it++ % n_copies) * w_bytes;
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, g->n_out, n_tok, g->n_in, &alpha,
                                  wi, CUDA_R_16BF, g->n_in, x, CUDA_R_16BF, g->n_in, &beta, out,
                                  CUDA_R_16BF, g->n_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }, 20, REPS);
    char cas[160];
    snprintf(cas, sizeof cas, "cuBLAS %s %d x %d, %d token%s", g->name, g->n_out, g->n_in, n_tok,
             n_tok > 1 ? "s" : "");
    bench_report_bw("gemv", cas, ms, (double)w_bytes, c);
    CUDA_CHECK(cudaFree(w)); CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(out));
    CUDA_CHECK(cudaFree(nw));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    static const gcase cases[] = {
        {"qkv", 6144, 4096, GEMV_OUT, 1},
        {"o", 4096, 4096, GEMV_RESID, 0},
        {"gate/up", 28672, 4096, GEMV_SILU, 1},
        {"down", 4096, 14336, GEMV_RESID, 0},
        {"lm head", 128256, 4096, GEMV_OUT_F32, 1},
    };
    for (int n_tok = 1; n_tok <= 8; n_tok *= 8)
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run(&c, h, &cases[i], n_tok);
    CUBLAS_CHECK(cublasDestroy(h));
    return 0;
}
