/* gemm_fp8.cu - cuBLASLt FP8 GEMM with per-channel and per-token scales (see gemm_fp8.cuh).
 *
 * Column-major view, as cuBLASLt's FP8 wants it (A transposed, "TN"): D^T [n_out, n_tok] =
 * W [n_out, n_in] . X^T, A = W (lda n_in, op T), B = X^T (ldb n_in), D ldd n_out. Plans
 * (descriptors, layouts, the heuristic's algorithm) are cached per shape; the scale pointers
 * are set on each call (a host-side attribute write), so a captured graph holds them.
 */
#include "gemm_fp8.cuh"
#include "kutil.cuh"

#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FG_PLANS 64

#define FG_EPILOGUE16 4   /* internal: unscaled 16-bit product, then scaled in place */

typedef struct {
    int n_tok, n_out, n_in, mode, dt;   /* key; mode: OUTER_VEC, EPILOGUE(16) or UNSCALED */
    int status;                         /* 0 ready, 1 no algorithm */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} fg_plan;

struct fp8_gemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    int n_plans, next;
    fg_plan plans[FG_PLANS];
};

#define LT_TRY(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { \
    fprintf(stderr, "%s:%d: %s: cuBLASLt status %d\n", __FILE__, __LINE__, #call, (int)s_); \
    return -1; } } while (0)

fp8_gemm *fp8_gemm_create(void *workspace, size_t ws_bytes)
{
    fp8_gemm *g = (fp8_gemm *)calloc(1, sizeof *g);
    if (!g || cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return NULL;
    }
    g->ws = workspace;
    g->ws_bytes = ws_bytes;
    return g;
}

static void plan_free(fg_plan *p)
{
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

void fp8_gemm_destroy(fp8_gemm *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) plan_free(&g->plans[i]);
    cublasLtDestroy(g->lt);
    free(g);
}

/* Builds plan P for its key: 0, or -1 on a cuBLASLt error (status 1: no algorithm). */
static int plan_make(fp8_gemm *g, fg_plan *p)
{
    cudaDataType_t dty = p->mode == FP8_GEMM_EPILOGUE ? CUDA_R_32F
                       : p->dt == KDT_F16 ? CUDA_R_16F : CUDA_R_16BF;
    float *placeholder = (float *)g->ws;   /* scale pointers are set per call */
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (p->mode == FP8_GEMM_OUTER_VEC) {
        int32_t m = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &m, sizeof m));
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &m, sizeof m));
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                              &placeholder, sizeof placeholder));
        LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                              &placeholder, sizeof placeholder));
    }
    LT_TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8F_E4M3, p->n_in, p->n_out, p->n_in));
    LT_TRY(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8F_E4M3, p->n_in, p->n_tok, p->n_in));
    LT_TRY(cublasLtMatrixLayoutCreate(&p->d, dty, p->n_out, p->n_tok, p->n_out));
    cublasLtMatmulPreference_t pref;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes, sizeof g->ws_bytes);
    cublasLtMatmulHeuristicResult_t res = {};
    int n = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->d, p->d, pref, 1, &res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    /* no algorithm: NOT_SUPPORTED, or INVALID_VALUE (what the H200 with cuBLAS 13.0 answered
       for outer-vector scales before the scale pointers were set) */
    if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE ||
        (st == CUBLAS_STATUS_SUCCESS && n == 0)) {
        p->status = 1;
        return 0;
    }
    LT_TRY(st);
    p->algo = res.algo;
    return 0;
}

static fg_plan *plan_get(fp8_gemm *g, int n_tok, int n_out, int n_in, int mode, int dt)
{
    for (int i = 0; i < g->n_plans; i++) {
        fg_plan *p = &g->plans[i];
        if (p->n_tok == n_tok && p->n_out == n_out && p->n_in == n_in && p->mode == mode &&
            p->dt == dt)
            return p;
    }
    fg_plan *p = g->n_plans < FG_PLANS ? &g->plans[g->n_plans++] : &g->plans[g->next++ % FG_PLANS];
    plan_free(p);
    p->n_tok = n_tok, p->n_out = n_out, p->n_in = n_in, p->mode = mode, p->dt = dt;
    if (plan_make(g, p) < 0) {
        plan_free(p);
        return NULL;
    }
    return p;
}

/* out[t, r] = T(acc[t, r] * w_scale[r] * x_scale[t]); ACC fp32, or (ACC NULL) OUT itself */
template <typename T>
__global__ void fp8_gemm_scale_kernel(T *out, const float *acc, const float *x_scale,
                                      const float *w_scale, int n_tok, int n_out)
{
    size_t n = (size_t)n_tok * n_out;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i / n_out), r = (int)(i % n_out);
        out[i] = from_f<T>((acc ? acc[i] : to_f(out[i])) * w_scale[r] * x_scale[t]);
    }
}

static cudaError_t run_plan(fp8_gemm *g, fg_plan *p, void *d, const uint8_t *xq,
                            const float *x_scale, const uint8_t *wq, const float *w_scale,
                            cudaStream_t stream)
{
    const float one = 1.f, zero = 0.f;
    if (p->mode == FP8_GEMM_OUTER_VEC) {
        if (cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale,
                                           sizeof w_scale) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale,
                                           sizeof x_scale) != CUBLAS_STATUS_SUCCESS)
            return cudaErrorUnknown;
    }
    cublasStatus_t st = cublasLtMatmul(g->lt, p->op, &one, wq, p->a, xq, p->b, &zero, d, p->d, d,
                                       p->d, &p->algo, g->ws, g->ws_bytes, stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "gemm_fp8: cublasLtMatmul %dx%dx%d: status %d\n", p->n_tok, p->n_out,
                p->n_in, (int)st);
        return cudaErrorUnknown;
    }
    return cudaSuccess;
}

extern "C" cudaError_t fp8_gemm_run(fp8_gemm *g, void *out, const uint8_t *xq,
                                    const float *x_scale, const uint8_t *wq,
                                    const float *w_scale, int n_tok, int n_out, int n_in,
                                    int mode, float *scratch, int *used, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_tok == 0 || n_out == 0) return cudaSuccess;
    if (!g || n_tok < 0 || n_out < 0 || n_in <= 0 || n_in % 16 || !out || !xq || !wq ||
        !x_scale || !w_scale || mode < 0 || mode > 3 || (dt != KDT_BF16 && dt != KDT_F16))
        return cudaErrorInvalidValue;
    if (mode == FP8_GEMM_UNSCALED) {
        fg_plan *p = plan_get(g, n_tok, n_out, n_in, FP8_GEMM_UNSCALED, dt);
        if (!p) return cudaErrorUnknown;
        if (used) *used = FP8_GEMM_UNSCALED;
        return p->status ? cudaErrorNotSupported
                         : run_plan(g, p, out, xq, x_scale, wq, w_scale, stream);
    }
    if (mode != FP8_GEMM_EPILOGUE) {
        fg_plan *p = plan_get(g, n_tok, n_out, n_in, FP8_GEMM_OUTER_VEC, dt);
        if (!p) return cudaErrorUnknown;
        if (p->status == 0) {
            if (used) *used = FP8_GEMM_OUTER_VEC;
            return run_plan(g, p, out, xq, x_scale, wq, w_scale, stream);
        }
        if (mode == FP8_GEMM_OUTER_VEC) return cudaErrorNotSupported;
    }
    /* fp32 product into SCRATCH, else (no such algorithm, or no scratch) the 16-bit one in
       OUT, rounded twice */
    fg_plan *p = scratch ? plan_get(g, n_tok, n_out, n_in, FP8_GEMM_EPILOGUE, dt) : NULL;
    if (scratch && !p) return cudaErrorUnknown;
    if (!p || p->status) {
        scratch = NULL;
        if (!(p = plan_get(g, n_tok, n_out, n_in, FG_EPILOGUE16, dt))) return cudaErrorUnknown;
        if (p->status) return cudaErrorNotSupported;
    }
    cudaError_t e = run_plan(g, p, scratch ? (void *)scratch : out, xq, x_scale, wq, w_scale,
                             stream);
    if (e != cudaSuccess) return e;
    if (used) *used = FP8_GEMM_EPILOGUE;
    size_t n = (size_t)n_tok * n_out;
    int blocks = (int)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    KDT_DISPATCH(dt, T, fp8_gemm_scale_kernel<T><<<blocks, 256, 0, stream>>>(
                            (T *)out, scratch, x_scale, w_scale, n_tok, n_out));
    return cudaGetLastError();
}
