/* bench_gemm_lt.cu - the decode batches' projections (Llama-3-8B shapes, bf16, 16-256 token
 * rows): cublasGemmEx's own choice (what the engine runs without --gemm-tune) beside the best of
 * cuBLASLt's candidates (kernels/gemm_lt.cuh), each streaming weight copies that do not fit the
 * L2 cache, against the copy bandwidth (weight bytes) and the cuBLAS GEMM rate of this run.
 */
#include "bench_util.cuh"
#include "../../kernels/gemm_lt.cuh"

#define REPS 8

typedef struct {
    const char *name;
    int n_out, n_in;
} shape;

static const shape shapes[] = {
    {"qkv_proj", 6144, 4096}, {"o_proj", 4096, 4096}, {"gate_up_proj", 28672, 4096},
    {"down_proj", 4096, 14336},
};

static void shape_case(const bench_ceilings *c, cublasHandle_t blas, gemm_lt *g, const shape *s,
                       int m)
{
    size_t w_bytes = (size_t)s->n_out * s->n_in * 2;
    int n_copies = (int)((512ull << 20) / w_bytes) + 1;
    void *w, *x, *y;
    CUDA_CHECK(cudaMalloc(&w, w_bytes * n_copies));
    CUDA_CHECK(cudaMalloc(&x, (size_t)m * s->n_in * 2));
    CUDA_CHECK(cudaMalloc(&y, (size_t)m * s->n_out * 2));
    bench_fill16(w, w_bytes / 2 * n_copies, 3, 0.05f);
    bench_fill16(x, (size_t)m * s->n_in, 4, 1.f);
    int it = 0;
    const float one = 1.f, zero = 0.f;
    double def = bench_ms([&] {
        const char *wi = (const char *)w + (it++ % n_copies) * w_bytes;
        CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, s->n_out, m, s->n_in, &one, wi,
                                  CUDA_R_16BF, s->n_in, x, CUDA_R_16BF, s->n_in, &zero, y,
                                  CUDA_R_16BF, s->n_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }, 20, REPS);
    int n = gemm_lt_candidates(g, m, s->n_out, s->n_in, CUDA_R_16BF, CUDA_R_16BF), best = -1;
    double best_ms = 1e30;
    for (int a = 0; a < n; a++) {
        if (gemm_lt_run(g, a, y, x, w, m, s->n_out, s->n_in, CUDA_R_16BF, CUDA_R_16BF, 0) !=
            cudaSuccess)
            continue;
        double ms = bench_ms([&] {
            const char *wi = (const char *)w + (it++ % n_copies) * w_bytes;
            CUDA_CHECK(gemm_lt_run(g, a, y, x, wi, m, s->n_out, s->n_in, CUDA_R_16BF,
                                   CUDA_R_16BF, 0));
        }, 20, REPS);
        if (ms < best_ms) best_ms = ms, best = a;
    }
    char cas[160];
    snprintf(cas, sizeof cas, "%s %d x %d, %d rows, cublasGemmEx default", s->name, s->n_out,
             s->n_in, m);
    bench_report_bw("gemm_lt", cas, def, (double)w_bytes, c);
    snprintf(cas, sizeof cas, "%s %d x %d, %d rows, best of %d cuBLASLt candidates (#%d): %.2fx "
             "the default", s->name, s->n_out, s->n_in, m, n, best, def / best_ms);
    bench_report_bw("gemm_lt", cas, best_ms, (double)w_bytes, c);
    CUDA_CHECK(cudaFree(w)); CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(y));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    cublasHandle_t blas;
    void *ws;
    size_t ws_bytes = 32u << 20;
    CUBLAS_CHECK(cublasCreate(&blas));
    CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(blas, ws, ws_bytes));
    gemm_lt *g = gemm_lt_create(ws, ws_bytes);
    if (!g) {
        fprintf(stderr, "bench_gemm_lt: cuBLASLt did not start\n");
        return 1;
    }
    const int ms_[] = {16, 32, 64, 128, 256};
    for (int m : ms_)
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) shape_case(&c, blas, g, &shapes[i], m);
    gemm_lt_free(g);
    CUBLAS_CHECK(cublasDestroy(blas));
    CUDA_CHECK(cudaFree(ws));
    return 0;
}
