/* cuda_moe.cu - the MoE MLP of the CUDA engine (Mixtral, Qwen3-MoE; see cuda_engine.h): the
 * router's fp32 logits and softmax top-k (kernels/moe.cuh): one launch with the FFN norm for
 * decode batches of up to MOE_ROUTER_MAX_TOK tokens, else the pair GEMV for small batches
 * (cuBLAS above) and the top-k kernel; then
 *  - small batches (one token, or at most half as many (token, expert) pairs as experts, so
 *    that few experts are read twice): the expert gate/up GEMV with SwiGLU, then the expert
 *    down GEMV with the router-weighted combine, each reading only the chosen experts;
 *  - larger ones: the pairs sorted by expert on the device, one grouped GEMM launch over all
 *    experts for gate/up (+ SwiGLU, the tokens read through the sort's source map), one for
 *    down, then the combine through the sorted positions.
 * Nothing waits on the host, so every decode batch is captured in a CUDA graph. The router and
 * the small-batch expert kernels launch as programmatic dependents (the GEMVs' --pdl bit). The result
 * goes to OUT (e->y like the dense MLP's down GEMM, or added into the residual stream on the
 * fused decode path).
 * Tests may force the experts (ce_moe_force): the routing given per token in batch order is
 * laid out in the engine's row order at each forward (ce_moe_pack) and read by the router.
 */
#include "cuda_engine.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/moe.cuh"
#include "../kernels/rmsnorm.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOE_GEMV_MAX_PAIRS 64   /* the expert GEMV path's grid bound */

struct ce_moe {
    float *logits;          /* [max_tokens, n_experts] router logits */
    int32_t *ids;           /* [max_pairs] expert of each pair (token t's choice j at t*k+j) */
    float *w;               /* [max_pairs] its router weight */
    int32_t *offsets;       /* [n_experts + 1] expert segments of the sorted pairs */
    int32_t *tiles;         /* [n_experts + 1] their first grouped-GEMM tiles */
    unsigned *counter;      /* the router's finished blocks, zero between launches */
    int32_t *pos, *src;     /* [max_pairs] sorted position of each pair; token of each position */
    void *act;              /* [max_pairs, hidden_dim] SwiGLU of each pair (sorted: large path) */
    void *ys;               /* [max_pairs, dim] expert outputs, sorted */
    /* forced routing (tests) */
    const int32_t *force_src;  /* host [n_layers, force_stride, k] in batch order, or NULL */
    int force_stride;
    int32_t *h_force, *d_force;  /* pinned / device [n_layers, max_tokens, k] in row order */
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
        {(void **)&m->offsets, (E + 1) * 4}, {(void **)&m->tiles, (E + 1) * 4},
        {(void **)&m->counter, 4},
        {(void **)&m->pos, P * 4}, {(void **)&m->src, P * 4},
        {&m->act, P * c->hidden_dim * 2}, {&m->ys, P * c->dim * 2}};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (cudaMalloc(bufs[i].p, bufs[i].bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(err, n_err, "cannot allocate %zu MB of MoE activations", bufs[i].bytes >> 20);
            return -1;
        }
    CUDA_CHECK(cudaMemset(m->counter, 0, 4));
    return 0;
}

void ce_moe_free(cuda_engine *e)
{
    ce_moe *m = e->moe;
    if (!m)
        return;
    void *dev[] = {m->logits, m->ids, m->w, m->offsets, m->tiles, m->counter, m->pos, m->src,
                   m->act, m->ys, m->d_force};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    if (m->h_force)
        CUDA_CHECK(cudaFreeHost(m->h_force));
    free(m);
    e->moe = NULL;
}

void ce_moe_force(cuda_engine *e, const int32_t *ids, int stride)
{
    const model_config *c = &e->cfg;
    ce_moe *m = e->moe;
    if (!m)
        return;
    size_t n = (size_t)c->n_layers * e->max_tokens * c->n_experts_used;
    if (ids && !m->d_force) {
        CUDA_CHECK(cudaMalloc((void **)&m->d_force, n * 4));
        CUDA_CHECK(cudaHostAlloc((void **)&m->h_force, n * 4, 0));
        for (size_t i = 0; i < n; i++)   /* distinct valid experts until a forward packs */
            m->h_force[i] = (int32_t)(i % c->n_experts_used);
        CUDA_CHECK(cudaMemcpy(m->d_force, m->h_force, n * 4, cudaMemcpyHostToDevice));
    }
    m->force_src = ids;
    m->force_stride = stride;
}

void ce_moe_pack(cuda_engine *e, const fwd_seq *seqs, int n_seqs, int n_tok_run)
{
    const model_config *c = &e->cfg;
    ce_moe *m = e->moe;
    if (!m || !m->force_src)
        return;
    const int k = c->n_experts_used;
    std::vector<int> first(n_seqs);   /* batch-order row of each sequence's first new token */
    for (int i = 0, t = 0; i < n_seqs; t += seqs[i].n_new, i++)
        first[i] = t;
    for (int l = 0; l < c->n_layers; l++) {
        const int32_t *in = m->force_src + (size_t)l * m->force_stride * k;
        int32_t *out = m->h_force + (size_t)l * e->max_tokens * k;
        int t = 0;
        for (int q = 0; q < n_seqs; q++) {
            int i = e->order[q];
            for (int j = 0; j < seqs[i].n_new; j++, t++)
                memcpy(out + (size_t)t * k, in + (size_t)(first[i] + j) * k, k * sizeof *out);
        }
        for (; t < n_tok_run; t++)   /* graph padding */
            for (int j = 0; j < k; j++)
                out[(size_t)t * k + j] = j;
    }
    CUDA_CHECK(cudaMemcpyAsync(m->d_force, m->h_force,
                               (size_t)c->n_layers * e->max_tokens * k * 4,
                               cudaMemcpyHostToDevice, e->stream));
}

void ce_moe_layer(cuda_engine *e, const cuda_layer *ly, int n_tok, const void *norm_w, void *out,
                  int resid)
{
    const model_config *c = &e->cfg;
    ce_moe *m = e->moe;
    cudaStream_t s = e->stream;
    const int dim = c->dim, hid = c->hidden_dim, k = c->n_experts_used, E = c->n_experts;
    const int n_pairs = n_tok * k, pdl = e->pdl_mask & 1;
    const size_t gu_stride = e->w.layout.expert_gate_up_stride;
    const size_t dn_stride = e->w.layout.expert_down_stride;
    const int32_t *force = m->d_force && m->force_src
        ? m->d_force + (size_t)(ly - e->w.layers) * e->max_tokens * k : NULL;
    if (n_tok == 0)
        return;
    bool small = n_pairs <= MOE_GEMV_MAX_PAIRS && (n_tok == 1 || 2 * n_pairs <= E);
    if (n_tok <= MOE_ROUTER_MAX_TOK && (size_t)n_tok * dim * 2 <= MOE_SMEM_MAX) {
        CUDA_CHECK(moe_router_run(m->ids, m->w, m->logits, e->xn, norm_w ? e->x : e->xn, norm_w,
                                  c->norm_eps, ly->w_router, force, m->counter, n_tok, E, dim, k,
                                  c->moe_renorm, pdl, e->dt, s));
    } else {
        if (norm_w)
            CUDA_CHECK(rmsnorm_run(e->xn, e->x, NULL, norm_w, n_tok, dim, c->norm_eps, e->dt, s));
        if (n_tok <= MOE_GEMV_MAX_PAIRS)
            CUDA_CHECK(moe_gemv_run(m->logits, 1, e->xn, 1, ly->w_router, 0, NULL, n_tok, E, dim,
                                    e->dt, s));
        else
            ce_gemm(e, m->logits, CUDA_R_32F, e->xn, ly->w_router, n_tok, E, dim);
        CUDA_CHECK(moe_route_run(m->ids, m->w, m->logits, force, n_tok, E, k, c->moe_renorm, s));
    }
    if (small && (size_t)k * hid * 2 <= MOE_SMEM_MAX && (size_t)dim * 2 <= MOE_SMEM_MAX) {
        CUDA_CHECK(moe_gate_up_run(m->act, e->xn, ly->w_gate_up, gu_stride, m->ids, n_pairs, k,
                                   hid, dim, pdl, e->dt, s));
        CUDA_CHECK(moe_down_run(out, resid, m->act, ly->w_down, dn_stride, m->ids, m->w, n_tok, k,
                                dim, hid, pdl, e->dt, s));
        return;
    }
    CUDA_CHECK(moe_sort_run(m->offsets, m->tiles, m->pos, m->src, m->ids, n_pairs, k, E, s));
    CUDA_CHECK(moe_gemm_run(m->act, e->xn, m->src, ly->w_gate_up, gu_stride, m->offsets,
                            m->tiles, E, n_pairs, 1, hid, dim, e->dt, s));
    CUDA_CHECK(moe_gemm_run(m->ys, m->act, NULL, ly->w_down, dn_stride, m->offsets, m->tiles, E,
                            n_pairs, 0, dim, hid, e->dt, s));
    CUDA_CHECK(moe_combine_run(out, resid, m->ys, m->pos, m->w, n_tok, k, dim, e->dt, s));
}
