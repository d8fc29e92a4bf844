/* cuda_moe.cu - the MoE MLP of the CUDA engine (Mixtral, Qwen3-MoE; see cuda_engine.h): router
 * GEMM (fp32 logits), softmax top-k (kernels/moe.cuh), then
 *  - up to CE_MOE_GEMV_PAIRS (token, expert) pairs (decode batches): the expert GEMV over the
 *    pairs for gate/up, SiLU-mul, the expert GEMV for down, the weighted combine; all on the
 *    device, so these batches are captured in CUDA graphs;
 *  - more pairs: the pairs sorted by expert, the tokens gathered in that order, and one cuBLAS
 *    GEMM per expert with tokens over its segment (gate/up, then down after one SiLU-mul over
 *    all rows), the segment offsets read back to the host first (a sync: these batches run
 *    eagerly), then the combine through the sorted positions.
 * The result goes to e->y like the dense MLP's down GEMM.
 */
#include "cuda_engine.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/embed.cuh"
#include "../kernels/moe.cuh"
#include "../kernels/silu_mul.cuh"

#include <stdio.h>
#include <stdlib.h>

struct ce_moe {
    float *logits;          /* [max_tokens, n_experts] router logits */
    int32_t *ids;           /* [max_pairs] expert of each pair (token t's choice j at t*k+j) */
    float *w;               /* [max_pairs] its router weight */
    int32_t *offsets;       /* [n_experts + 1] expert segments of the sorted pairs */
    int32_t *h_offsets;     /* pinned host copy */
    int32_t *pos, *src;     /* [max_pairs] sorted position of each pair; token of each position */
    void *xs;               /* [max_pairs, dim] tokens in sorted order */
    void *gu;               /* [max_pairs, 2 * hidden_dim] */
    void *act;              /* [max_pairs, hidden_dim] */
    void *ys;               /* [max_pairs, dim] expert outputs */
};

int ce_moe_init(cuda_engine *e, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    size_t M = e->max_tokens, P = M * c->n_experts_used, E = c->n_experts;
    ce_moe *m = (ce_moe *)calloc(1, sizeof *m);
    e->moe = m;
    if (!m) {
        snprintf(err, n_err, "out of host memory");
        return -1;
    }
    struct { void **p; size_t bytes; } bufs[] = {
        {(void **)&m->logits, M * E * 4}, {(void **)&m->ids, P * 4}, {(void **)&m->w, P * 4},
        {(void **)&m->offsets, (E + 1) * 4}, {(void **)&m->pos, P * 4}, {(void **)&m->src, P * 4},
        {&m->xs, P * c->dim * 2}, {&m->gu, P * 2 * c->hidden_dim * 2},
        {&m->act, P * c->hidden_dim * 2}, {&m->ys, P * c->dim * 2}};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (cudaMalloc(bufs[i].p, bufs[i].bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(err, n_err, "cannot allocate %zu MB of MoE activations", bufs[i].bytes >> 20);
            return -1;
        }
    if (cudaHostAlloc((void **)&m->h_offsets, (E + 1) * 4, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate pinned host memory");
        return -1;
    }
    return 0;
}

void ce_moe_free(cuda_engine *e)
{
    ce_moe *m = e->moe;
    if (!m)
        return;
    void *dev[] = {m->logits, m->ids, m->w, m->offsets, m->pos, m->src, m->xs, m->gu, m->act,
                   m->ys};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    if (m->h_offsets)
        CUDA_CHECK(cudaFreeHost(m->h_offsets));
    free(m);
    e->moe = NULL;
}

bool ce_moe_graphable(const cuda_engine *e, int n_tok)
{
    return !e->cfg.n_experts || n_tok * e->cfg.n_experts_used <= CE_MOE_GEMV_PAIRS;
}

void ce_moe_layer(cuda_engine *e, const cuda_layer *ly, int n_tok)
{
    const model_config *c = &e->cfg;
    ce_moe *m = e->moe;
    cudaStream_t s = e->stream;
    const int dim = c->dim, hid = c->hidden_dim, k = c->n_experts_used, E = c->n_experts;
    const int n_pairs = n_tok * k;
    const size_t gu_stride = e->w.layout.expert_gate_up_stride;
    const size_t dn_stride = e->w.layout.expert_down_stride;
    if (n_tok == 0)
        return;
    ce_gemm(e, m->logits, CUDA_R_32F, e->xn, ly->w_router, n_tok, E, dim);
    CUDA_CHECK(moe_route_run(m->ids, m->w, m->logits, n_tok, E, k, c->moe_renorm, s));
    if (n_pairs <= CE_MOE_GEMV_PAIRS) {
        CUDA_CHECK(moe_gemv_run(m->gu, e->xn, k, ly->w_gate_up, gu_stride, m->ids, n_pairs,
                                2 * hid, dim, e->dt, s));
        CUDA_CHECK(silu_mul_run(m->act, m->gu, n_pairs, hid, e->dt, s));
        CUDA_CHECK(moe_gemv_run(m->ys, m->act, 1, ly->w_down, dn_stride, m->ids, n_pairs, dim,
                                hid, e->dt, s));
        CUDA_CHECK(moe_combine_run(e->y, m->ys, NULL, m->w, n_tok, k, dim, e->dt, s));
        return;
    }
    CUDA_CHECK(moe_sort_run(m->offsets, m->pos, m->src, m->ids, n_pairs, k, E, s));
    CUDA_CHECK(embed_run(m->xs, e->xn, m->src, n_pairs, n_tok, dim, e->dt, s));
    CUDA_CHECK(cudaMemcpyAsync(m->h_offsets, m->offsets, (E + 1) * 4, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (int x = 0; x < E; x++) {
        int a = m->h_offsets[x], n = m->h_offsets[x + 1] - a;
        if (n > 0)
            ce_gemm(e, (uint16_t *)m->gu + (size_t)a * 2 * hid, e->cdt,
                    (uint16_t *)m->xs + (size_t)a * dim,
                    (uint16_t *)ly->w_gate_up + (size_t)x * gu_stride, n, 2 * hid, dim);
    }
    CUDA_CHECK(silu_mul_run(m->act, m->gu, n_pairs, hid, e->dt, s));
    for (int x = 0; x < E; x++) {
        int a = m->h_offsets[x], n = m->h_offsets[x + 1] - a;
        if (n > 0)
            ce_gemm(e, (uint16_t *)m->ys + (size_t)a * dim, e->cdt,
                    (uint16_t *)m->act + (size_t)a * hid,
                    (uint16_t *)ly->w_down + (size_t)x * dn_stride, n, dim, hid);
    }
    CUDA_CHECK(moe_combine_run(e->y, m->ys, m->pos, m->w, n_tok, k, dim, e->dt, s));
}
