/* cuda_model.cu - the forward of the CUDA engine (see cuda_engine.h): per layer RMSNorm
 * (+ residual), fused QKV GEMM, (Qwen2 q/k/v bias, Qwen3 q/k head norm), RoPE, K/V into the
 * pages, decode attention (flash-decoding) on the decode rows and flash prefill attention
 * (over cached + new keys) on the prefill rows, both with the layer's sliding window if any,
 * O GEMM, RMSNorm + residual, fused gate/up GEMM, SiLU-mul, down GEMM; then the final norm
 * and the LM head in fp32 on the rows that sample; MoE layers run cuda_moe.cu instead of
 * the gate/up, SiLU-mul and down steps. Decode-only batches of at most gemv_max
 * tokens take the fused GEMV path (5-6 kernels a layer, programmatic dependent launches; one
 * more for Qwen's bias or q/k norms; the MoE steps for experts); decode batches are captured
 * as CUDA graphs for a set of sizes and replayed.
 */
#include "cuda_engine.h"
extern "C" {
#include "../common/log.h"
}

#include <time.h>
#include "../kernels/cuda_check.cuh"
#include "../kernels/decode_attn.cuh"
#include "../kernels/embed.cuh"
#include "../kernels/gemv.cuh"
#include "../kernels/kv_store.cuh"
#include "../kernels/prefill_attn.cuh"
#include "../kernels/qkv_prep.cuh"
#include "../kernels/rmsnorm.cuh"
#include "../kernels/rope.cuh"
#include "../kernels/silu_mul.cuh"

#include <math.h>

static const int graph_sizes[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256};

void ce_gemm(cuda_engine *e, void *c, cudaDataType_t ct, const void *x, const void *w,
             int n_tok, int n_out, int n_in)
{
    if (ce_fp8_gemm(e, c, ct, x, w, n_tok, n_out, n_in) || n_tok == 0)
        return;   /* an FP8 projection (cuda_fp8.cu) */
    const float alpha = 1.f, beta = 0.f;
    /* column-major view: C^T [n_out, n_tok] = W [n_out, n_in] . X^T */
    CUBLAS_CHECK(cublasGemmEx(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_out, n_tok, n_in, &alpha, w,
                              e->cdt, n_in, x, e->cdt, n_in, &beta, c, ct, n_out,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void ce_gemv(cuda_engine *e, void *out, const void *x, const void *w, int n_tok, int n_out,
             int n_in, gemv_epi_kind kind, const void *norm_w, const gemv_epi *qkv)
{
    gemv_epi epi = qkv ? *qkv : gemv_epi{};
    epi.kind = kind;
    epi.norm_w = norm_w;
    epi.norm_eps = e->cfg.norm_eps;
    epi.pdl = e->pdl_mask & 1;
    epi.warps_per_sm = e->gemv_warps;
    CUDA_CHECK(gemv_fused_run(out, x, w, n_tok, n_out, n_in, &epi, e->dt, e->stream));
}

static void *row_ptr(const cuda_engine *e, void *base, size_t row, size_t width)
{
    (void)e;
    return (uint16_t *)base + row * width;
}

/* Layer L's K and V caches, [n_blocks, block_size, n_kv_heads, head_dim] each. */
void layer_cache(cuda_engine *e, int l, void **kc, void **vc)
{
    *kc = (char *)e->k_cache + (size_t)l * e->kv_layer_elems * e->kv_elem;
    *vc = (char *)e->v_cache + (size_t)l * e->kv_layer_elems * e->kv_elem;
}

/* The first N rows' attention (flash-decoding over their paged context) into e->att; their
 * queries at Q, rows e->qkv_dim apart. */
void decode_attn(cuda_engine *e, const fwd_in *in, const void *q, const void *kc,
                        const void *vc, int n, int splits, int window)
{
    const model_config *c = &e->cfg;
    float ks, vs;
    if (ce_fp8_kv(e, &ks, &vs)) {
        CUDA_CHECK(decode_attn_fp8kv_run(e->att, q, e->qkv_dim, kc, vc, e->d_bt, e->max_bps,
                                         in->seq_len, n, c->n_heads, c->n_kv_heads, c->head_dim,
                                         e->bs, 1.f / sqrtf((float)c->head_dim), ks, vs, window,
                                         splits, splits > 1 ? e->dec_ws : NULL,
                                         (e->pdl_mask >> 1) & 1, e->dt, e->stream));
        return;
    }
    CUDA_CHECK(decode_attn_run(e->att, q, e->qkv_dim, kc, vc, e->d_bt, e->max_bps, in->seq_len, n,
                               c->n_heads, c->n_kv_heads, c->head_dim, e->bs,
                               1.f / sqrtf((float)c->head_dim), window, splits,
                               splits > 1 ? e->dec_ws : NULL, (e->pdl_mask >> 1) & 1, e->dt,
                               e->stream));
}

/* The model from embedding to logits rows [n_rows, vocab]: the final norm and the LM head run
 * on the N_ROWS token rows that GATHER lists (every row when GATHER is NULL, then n_rows =
 * n_tok <= max_seqs) and are skipped when no row samples (n_rows = 0: a prefill chunk that is
 * not a prompt's last). The logits buffer has max_seqs rows, never max_tokens. */
void ce_run_model(cuda_engine *e, const fwd_in *in, int n_tok, int n_dec, int n_pre,
                  int max_q_len, int splits, int n_rows)
{
    const model_config *c = &e->cfg;
    cudaStream_t s = e->stream;
    const int dim = c->dim, hid = c->hidden_dim, hd = c->head_dim;
    const float scale = 1.f / sqrtf((float)hd);
    CUDA_CHECK(embed_run(e->x, e->w.embed, in->tok, n_tok, c->vocab_size, dim, e->dt, s));
    for (int l = 0; l < c->n_layers; l++) {
        const cuda_layer *ly = &e->w.layers[l];
        void *kc, *vc;
        layer_cache(e, l, &kc, &vc);
        CUDA_CHECK(rmsnorm_run(e->xn, e->x, l ? e->y : NULL, ly->attn_norm, n_tok, dim,
                               c->norm_eps, e->dt, s));
        ce_gemm(e, e->qkv, e->cdt, e->xn, ly->wqkv, n_tok, e->qkv_dim, dim);
        CUDA_CHECK(qkv_prep_run(e->qkv, e->qkv_dim, n_tok, c->n_heads, c->n_kv_heads, hd,
                                ly->bqkv, ly->q_norm, ly->k_norm, c->norm_eps, e->dt, s));
        void *q = e->qkv, *k = (uint16_t *)e->qkv + e->q_dim;
        void *v = (uint16_t *)e->qkv + e->q_dim + e->kv_dim;
        CUDA_CHECK(rope_run(q, e->qkv_dim, k, e->qkv_dim, in->pos, n_tok, c->n_heads,
                            c->n_kv_heads, hd, e->rp, e->dt, s));
        float ks, vs;
        bool kv8 = ce_fp8_kv(e, &ks, &vs);
        CUDA_CHECK(kv8 ? kv_store_fp8_run(kc, vc, k, e->qkv_dim, v, e->qkv_dim, in->slot, n_tok,
                                          c->n_kv_heads, hd, ks, vs, e->dt, s)
                       : kv_store_run(kc, vc, k, e->qkv_dim, v, e->qkv_dim, in->slot, n_tok,
                                      c->n_kv_heads, hd, e->dt, s));
        int win = model_layer_window(c, l);
        if (n_dec)
            decode_attn(e, in, q, kc, vc, n_dec, splits, win);
        if (n_pre && kv8)
            CUDA_CHECK(prefill_attn_fp8kv_run(row_ptr(e, e->att, n_dec, e->q_dim),
                                              row_ptr(e, e->qkv, n_dec, e->qkv_dim), e->qkv_dim,
                                              kc, vc, e->d_bt + (size_t)n_dec * e->max_bps,
                                              e->max_bps, in->cu_q, in->seq_len + n_dec, n_pre,
                                              max_q_len, c->n_heads, c->n_kv_heads, hd, e->bs,
                                              scale, ks, vs, win, e->dt, s));
        else if (n_pre)
            CUDA_CHECK(prefill_attn_run(row_ptr(e, e->att, n_dec, e->q_dim),
                                        row_ptr(e, e->qkv, n_dec, e->qkv_dim), e->qkv_dim, kc, vc,
                                        e->d_bt + (size_t)n_dec * e->max_bps, e->max_bps,
                                        in->cu_q, in->seq_len + n_dec, n_pre, max_q_len,
                                        c->n_heads, c->n_kv_heads, hd, e->bs, scale, win, e->dt,
                                        s));
        ce_gemm(e, e->y, e->cdt, e->att, ly->wo, n_tok, dim, e->q_dim);
        CUDA_CHECK(rmsnorm_run(e->xn, e->x, e->y, ly->ffn_norm, n_tok, dim, c->norm_eps, e->dt, s));
        if (c->n_experts) {
            ce_moe_layer(e, ly, n_tok, NULL, e->y, 0);
            continue;
        }
        ce_gemm(e, e->gu, e->cdt, e->xn, ly->w_gate_up, n_tok, 2 * hid, dim);
        CUDA_CHECK(silu_mul_run(e->act, e->gu, n_tok, hid, e->dt, s));
        ce_gemm(e, e->y, e->cdt, e->act, ly->w_down, n_tok, dim, hid);
    }
    if (n_rows == 0)
        return;
    CUDA_CHECK(rmsnorm_run(e->xn, e->x, e->y, e->w.norm, n_tok, dim, c->norm_eps, e->dt, s));
    const void *rows = e->xn;
    if (in->gather) {
        CUDA_CHECK(embed_run(e->last, e->xn, in->gather, n_rows, n_tok, dim, e->dt, s));
        rows = e->last;
    }
    ce_gemm(e, e->logits, CUDA_R_32F, rows, e->w.lm_head, n_rows, c->vocab_size, dim);
}

/* Decode-only batch of N_TOK <= gemv_max sequences (one token each), logits of every row.
 * Qwen's bias or q/k head norms: the QKV GEMV stores plainly, then one kernel adds the bias,
 * normalizes, rotates and stores K/V (qkv_finish); MoE layers: the FFN norm, then the experts
 * add into the residual stream (the FFN norm fused into the router at decode sizes). */
void ce_run_model_fused(cuda_engine *e, const fwd_in *in, int n_tok, int splits)
{
    const model_config *c = &e->cfg;
    const int dim = c->dim, hid = c->hidden_dim;
    cudaStream_t s = e->stream;
    CUDA_CHECK(embed_run(e->x, e->w.embed, in->tok, n_tok, c->vocab_size, dim, e->dt, s));
    for (int l = 0; l < c->n_layers; l++) {
        if (e->fp8) {   /* the E4M3 GEMVs (cuda_fp8.cu) */
            ce_fp8_decode_layer(e, in, l, n_tok, splits);
            continue;
        }
        const cuda_layer *ly = &e->w.layers[l];
        gemv_epi qkv = {};   /* RoPE on q and k, k and v into the cache, in the epilogue */
        layer_cache(e, l, &qkv.k_cache, &qkv.v_cache);
        if (c->qkv_bias || c->qk_norm) {
            ce_gemv(e, e->qkv, e->x, ly->wqkv, n_tok, e->qkv_dim, dim, GEMV_OUT, ly->attn_norm,
                    NULL);
            CUDA_CHECK(qkv_finish_run(e->qkv, e->qkv_dim, n_tok, c->n_heads, c->n_kv_heads,
                                      c->head_dim, ly->bqkv, ly->q_norm, ly->k_norm, c->norm_eps,
                                      in->pos, in->slot, qkv.k_cache, qkv.v_cache, e->rp, e->dt,
                                      s));
        } else {
            qkv.n_heads = c->n_heads, qkv.n_kv_heads = c->n_kv_heads, qkv.head_dim = c->head_dim;
            qkv.out_stride = e->qkv_dim, qkv.pos = in->pos, qkv.slot = in->slot, qkv.rope = e->rp;
            ce_gemv(e, e->qkv, e->x, ly->wqkv, n_tok, e->qkv_dim, dim, GEMV_QKV, ly->attn_norm,
                    &qkv);
        }
        decode_attn(e, in, e->qkv, qkv.k_cache, qkv.v_cache, n_tok, splits,
                    model_layer_window(c, l));
        ce_gemv(e, e->x, e->att, ly->wo, n_tok, dim, e->q_dim, GEMV_RESID, NULL, NULL);
        if (c->n_experts) {
            ce_moe_layer(e, ly, n_tok, ly->ffn_norm, e->x, 1);
            continue;
        }
        ce_gemv(e, e->act, e->x, ly->w_gate_up, n_tok, 2 * hid, dim, GEMV_SILU, ly->ffn_norm, NULL);
        ce_gemv(e, e->x, e->act, ly->w_down, n_tok, dim, hid, GEMV_RESID, NULL, NULL);
    }
    ce_gemv(e, e->logits, e->x, e->w.lm_head, n_tok, c->vocab_size, dim, GEMV_OUT_F32, e->w.norm,
         NULL);
}

bool ce_use_fused(const cuda_engine *e, int n_tok, int n_pre)
{
    return n_pre == 0 && n_tok <= e->gemv_max && ce_fp8_fusable(e);
}

fwd_in ce_layout(const int32_t *base, int n_tok, int n_seqs, int n_pre, int n_gather)
{
    fwd_in in;
    in.tok = base;
    in.pos = base + n_tok;
    in.slot = base + 2 * n_tok;
    in.seq_len = base + 3 * n_tok;
    in.cu_q = in.seq_len + n_seqs;
    in.gather = n_gather ? in.cu_q + (n_pre + 1) : NULL;
    return in;
}

size_t ce_layout_ints(int n_tok, int n_seqs, int n_pre, int n_gather)
{
    return 3 * (size_t)n_tok + n_seqs + n_pre + 1 + n_gather;
}

int ce_graph_for(const cuda_engine *e, int n)
{
    for (int g = 0; g < e->n_graphs; g++)
        if (e->graph_bs[g] >= n)
            return g;
    return -1;
}

/* Fills a padded decode batch of G rows into the host inputs (all padding) and uploads it. */
static void upload_padding(cuda_engine *e, int G)
{
    fwd_in h = ce_layout(e->h_in, G, G, 0, 0);
    for (int i = 0; i < G; i++) {
        ((int32_t *)h.tok)[i] = 0;
        ((int32_t *)h.pos)[i] = 0;
        ((int32_t *)h.slot)[i] = -1;
        ((int32_t *)h.seq_len)[i] = 0;
    }
    ((int32_t *)h.cu_q)[0] = 0;
    CUDA_CHECK(cudaMemcpyAsync(e->d_in, e->h_in, ce_layout_ints(G, G, 0, 0) * 4,
                               cudaMemcpyHostToDevice, e->stream));
}

void ce_plan_graphs(cuda_engine *e)
{
    const model_config *c = &e->cfg;
    int cap = e->max_seqs < e->max_tokens ? e->max_seqs : e->max_tokens;
    e->n_graphs = 0;
    for (size_t i = 0; i < sizeof graph_sizes / sizeof *graph_sizes && e->n_graphs < MAX_GRAPHS; i++) {
        int G = graph_sizes[i];
        if (G > cap)
            break;
        e->graph_bs[e->n_graphs] = G;
        e->graph_splits[e->n_graphs] = decode_attn_splits(G, c->n_heads, c->n_kv_heads,
                                                          c->head_dim, e->max_ctx, e->n_sms);
        e->graph[e->n_graphs++] = NULL;
    }
}

void ce_graph_capture(cuda_engine *e, int g)
{
    if (e->graph[g])
        return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int G = e->graph_bs[g], splits = e->graph_splits[g];
    fwd_in in = ce_layout(e->d_in, G, G, 0, 0);
    upload_padding(e, G);   /* no cache slot: the warm-up writes no KV (the holder's stays) */
    for (int pass = 0; pass < 2; pass++) {   /* warm-up (attributes, cuBLAS plans), capture */
        cudaGraph_t graph;
        if (pass == 1)
            CUDA_CHECK(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
        if (ce_use_fused(e, G, 0))
            ce_run_model_fused(e, &in, G, splits);
        else
            ce_run_model(e, &in, G, G, 0, 0, splits, G);
        if (pass == 0) {
            CUDA_CHECK(cudaStreamSynchronize(e->stream));
            continue;
        }
        CUDA_CHECK(cudaStreamEndCapture(e->stream, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&e->graph[g], graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
    }
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    LOG_INFO("captured the decode graph of batch %d in %.1f ms", G, ms);
}
