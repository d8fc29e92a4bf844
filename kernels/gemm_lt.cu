/* gemm_lt.cu - 16-bit GEMMs through cuBLASLt with a measured algorithm (see gemm_lt.cuh).
 * A plan per shape: the matmul descriptor, the three layouts and the heuristic's candidates;
 * the pick is set by the caller after timing them. Plans live for the handle's lifetime.
 */
#include "gemm_lt.cuh"

#include <cublasLt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GL_PLANS 96   /* 5 projections x the decode graph sizes, with room */

typedef struct {
    int n_tok, n_out, n_in;
    cudaDataType_t ab, ct;   /* key */
    int n_algo, pick;        /* pick -1: none */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo[GEMM_LT_MAX_ALGOS];
} gl_plan;

struct gemm_lt {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    int n_plans;
    gl_plan plans[GL_PLANS];
};

gemm_lt *gemm_lt_create(void *workspace, size_t ws_bytes)
{
    gemm_lt *g = (gemm_lt *)calloc(1, sizeof *g);
    if (!g || cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        free(g);
        return NULL;
    }
    g->ws = workspace;
    g->ws_bytes = ws_bytes;
    return g;
}

static void plan_free(gl_plan *p)
{
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

void gemm_lt_free(gemm_lt *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) plan_free(&g->plans[i]);
    cublasLtDestroy(g->lt);
    free(g);
}

static gl_plan *plan_find(const gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                          cudaDataType_t ct)
{
    for (int i = 0; i < g->n_plans; i++) {
        const gl_plan *p = &g->plans[i];
        if (p->n_tok == n_tok && p->n_out == n_out && p->n_in == n_in && p->ab == ab &&
            p->ct == ct)
            return (gl_plan *)p;
    }
    return NULL;
}

/* Descriptor, layouts and candidates of P's key: 0, or -1 on a cuBLASLt error. */
static int plan_make(gemm_lt *g, gl_plan *p)
{
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res[GEMM_LT_MAX_ALGOS];
    int n = 0;
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) ||
        cublasLtMatrixLayoutCreate(&p->a, p->ab, p->n_in, p->n_out, p->n_in) ||
        cublasLtMatrixLayoutCreate(&p->b, p->ab, p->n_in, p->n_tok, p->n_in) ||
        cublasLtMatrixLayoutCreate(&p->c, p->ct, p->n_out, p->n_tok, p->n_out) ||
        cublasLtMatmulPreferenceCreate(&pref) ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &g->ws_bytes, sizeof g->ws_bytes))
        goto fail;
    {
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c,
                                                           pref, GEMM_LT_MAX_ALGOS, res, &n);
        if (st == CUBLAS_STATUS_NOT_SUPPORTED)
            n = 0;
        else if (st != CUBLAS_STATUS_SUCCESS)
            goto fail;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    p->n_algo = 0;
    for (int i = 0; i < n; i++)
        if (res[i].state == CUBLAS_STATUS_SUCCESS)
            p->algo[p->n_algo++] = res[i].algo;
    p->pick = -1;
    return 0;
fail:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    return -1;
}

extern "C" int gemm_lt_candidates(gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                                  cudaDataType_t ct)
{
    if (!g || n_tok <= 0 || n_out <= 0 || n_in <= 0) return -1;
    gl_plan *p = plan_find(g, n_tok, n_out, n_in, ab, ct);
    if (p) return p->n_algo;
    if (g->n_plans == GL_PLANS) return -1;
    p = &g->plans[g->n_plans];
    memset(p, 0, sizeof *p);
    p->n_tok = n_tok, p->n_out = n_out, p->n_in = n_in, p->ab = ab, p->ct = ct;
    if (plan_make(g, p) < 0) {
        plan_free(p);
        return -1;
    }
    g->n_plans++;
    return p->n_algo;
}

extern "C" cudaError_t gemm_lt_run(gemm_lt *g, int algo, void *c, const void *x, const void *w,
                                   int n_tok, int n_out, int n_in, cudaDataType_t ab,
                                   cudaDataType_t ct, cudaStream_t stream)
{
    if (!g || !c || !x || !w) return cudaErrorInvalidValue;
    gl_plan *p = plan_find(g, n_tok, n_out, n_in, ab, ct);
    if (!p) return cudaErrorInvalidValue;
    if (algo < 0) algo = p->pick;
    if (algo < 0 || algo >= p->n_algo) return cudaErrorInvalidValue;
    const float one = 1.f, zero = 0.f;
    cublasStatus_t st = cublasLtMatmul(g->lt, p->op, &one, w, p->a, x, p->b, &zero, c, p->c, c,
                                       p->c, &p->algo[algo], g->ws, g->ws_bytes, stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "gemm_lt: cublasLtMatmul %dx%dx%d algorithm %d: status %d\n", n_tok,
                n_out, n_in, algo, (int)st);
        return cudaErrorUnknown;
    }
    return cudaSuccess;
}

extern "C" void gemm_lt_pick(gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                             cudaDataType_t ct, int algo)
{
    gl_plan *p = g ? plan_find(g, n_tok, n_out, n_in, ab, ct) : NULL;
    if (p) p->pick = algo >= 0 && algo < p->n_algo ? algo : -1;
}

extern "C" int gemm_lt_picked(const gemm_lt *g, int n_tok, int n_out, int n_in,
                              cudaDataType_t ab, cudaDataType_t ct)
{
    const gl_plan *p = g ? plan_find(g, n_tok, n_out, n_in, ab, ct) : NULL;
    return p ? p->pick : -1;
}
