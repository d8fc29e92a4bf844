/* cuda_backend.cu - the CUDA forward engine of the worker (cuda_backend.h): bf16 (or fp16)
 * LLaMA over a mixed batch of prefill chunks and decodes, paged KV cache (kv_layout.h shapes),
 * cuBLAS GEMMs with fp32 accumulation, GPU sampling, decode batches replayed from CUDA graphs.
 *
 * One forward: sequences are reordered decodes first (one token each), then prefill chunks;
 * their tokens form one [n_tok, dim] activation matrix. Per layer: RMSNorm (+ residual add),
 * fused QKV GEMM, RoPE, K/V into the pages, paged decode attention (flash-decoding) on the
 * decode rows and flash prefill attention (over cached + new keys) on the prefill rows, O GEMM,
 * RMSNorm + residual, fused gate/up GEMM, SiLU-mul, down GEMM. Then the final norm, the rows
 * that sample gathered, the LM head in fp32, and sampling (sample_topp, or the greedy kernel
 * when every row is plain greedy).
 *
 * Decode-only batches of at most gemv_max tokens take the fused path (run_model_fused): per
 * layer the QKV GEMV (attention RMSNorm in its prologue, RoPE and the KV store in its
 * epilogue), decode attention, the O GEMV (residual add in its epilogue), the gate/up GEMV
 * (FFN RMSNorm in, SiLU-mul out) and the down GEMV (residual add): 5-6 kernels instead of 11,
 * the GEMVs launched as programmatic dependents (kernels/pdl.cuh), so each one's first weight
 * loads overlap the kernel before it.
 *
 * Per-step inputs (token ids, positions, cache slots, lengths) go up in one packed copy from
 * pinned memory, block tables in one 2D copy of the used columns. A decode-only batch of n
 * sequences is padded to the next captured size G (padding rows: slot -1, context 0) and
 * replays that graph; its inputs sit at fixed offsets of the same packed layout.
 */
#include "cuda_backend.h"
#include "cuda_weights.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/decode_attn.cuh"
#include "../kernels/embed.cuh"
#include "../kernels/gemv.cuh"
#include "../kernels/kv_store.cuh"
#include "../kernels/prefill_attn.cuh"
#include "../kernels/rmsnorm.cuh"
#include "../kernels/rope.cuh"
#include "../kernels/sample.cuh"
#include "../kernels/sample_topp.cuh"
#include "../kernels/silu_mul.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#define DUMMY_SEED 0                 /* the CPU backend's: same random model */
#define DEFAULT_MAX_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define BLAS_WS_BYTES (32u << 20)
#define RESERVE_BYTES (512ull << 20) /* graphs, cuBLAS and cub internals */
#define MAX_GRAPHS 16
static const int graph_sizes[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256};

struct cuda_engine {
    model_config cfg;
    kdtype dt;
    cudaDataType_t cdt;
    int bs, max_ctx, max_tokens, max_seqs, max_bps, n_sms;
    int gemv_max;                    /* decode-only batches up to this many tokens: fused path */
    int q_dim, kv_dim, qkv_dim;
    rope_params rp;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    cuda_weights w;
    /* KV cache: k, v [n_layers, n_blocks, bs, n_kv_heads, head_dim] */
    void *k_cache, *v_cache;
    int n_blocks;
    size_t kv_layer_elems;           /* n_blocks * bs * kv_dim */
    /* activations (dt) */
    void *x;                         /* [max_tokens, dim] residual stream */
    void *xn;                        /* [max_tokens, dim] normalized */
    void *y;                         /* [max_tokens, dim] attention / MLP block output */
    void *qkv;                       /* [max_tokens, qkv_dim] */
    void *att;                       /* [max_tokens, q_dim] */
    void *gu;                        /* [max_tokens, 2 * hidden_dim] */
    void *act;                       /* [max_tokens, hidden_dim] */
    void *last;                      /* [max_seqs, dim] final-normed rows that sample */
    float *logits;                   /* [max_seqs, vocab] */
    void *dec_ws;                    /* decode attention split workspace */
    size_t dec_ws_bytes;
    /* packed per-step inputs: pinned host and device copies, int32 */
    int32_t *h_in, *d_in;            /* [in_cap] */
    size_t in_cap;
    int32_t *h_bt, *d_bt;            /* [max_seqs, max_bps] block tables */
    /* sampling */
    sample_row_params *h_sp, *d_sp;  /* [max_seqs] */
    int32_t *h_rows, *d_rows;        /* [max_seqs] logits row of each sampled entry */
    sample_penalty *h_pen, *d_pen;   /* [pen_cap] */
    size_t pen_cap;
    int32_t *pen_mark;               /* [vocab] host scratch: 1 + list index, or 0 */
    void *samp_ws;                   /* sample_topp workspace */
    size_t samp_ws_bytes;
    void *greedy_ws;                 /* sample_greedy workspace */
    int32_t *h_tok, *d_tok;          /* [max_seqs] sampled tokens */
    float *h_lp, *d_lp;              /* [max_seqs] their logprobs */
    /* graphs */
    int n_graphs;
    int graph_bs[MAX_GRAPHS], graph_splits[MAX_GRAPHS];
    cudaGraphExec_t graph[MAX_GRAPHS];
    /* last forward */
    int n_last;
    std::vector<int> order, logit_row;  /* ordered -> original index; original -> logits row */
    float *h_row;                    /* [vocab] host copy for ce_logits */
};

/* Device pointers of one forward's packed inputs. */
typedef struct {
    const int32_t *tok, *pos, *slot; /* [n_tok] */
    const int32_t *seq_len;          /* [n_seqs] decodes first */
    const int32_t *cu_q;             /* [n_pre + 1] over the prefill rows */
    const int32_t *gather;           /* [n_rows] token rows for the LM head, NULL: all rows */
} fwd_in;

static void *dev_alloc(size_t bytes, size_t *total)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    *total += bytes;
    return p;
}

static void gemm(cuda_engine *e, void *c, cudaDataType_t ct, const void *x, const void *w,
                 int n_tok, int n_out, int n_in)
{
    if (n_tok == 0)
        return;
    const float alpha = 1.f, beta = 0.f;
    /* column-major view: C^T [n_out, n_tok] = W [n_out, n_in] . X^T */
    CUBLAS_CHECK(cublasGemmEx(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, n_out, n_tok, n_in, &alpha, w,
                              e->cdt, n_in, x, e->cdt, n_in, &beta, c, ct, n_out,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* One fused decode GEMV (kernels/gemv.cuh) on the engine's stream, as a dependent launch. */
static void gemv(cuda_engine *e, void *out, const void *x, const void *w, int n_tok, int n_out,
                 int n_in, gemv_epi_kind kind, const void *norm_w, const gemv_epi *qkv)
{
    gemv_epi epi = qkv ? *qkv : gemv_epi{};
    epi.kind = kind;
    epi.norm_w = norm_w;
    epi.norm_eps = e->cfg.norm_eps;
    epi.pdl = 1;
    CUDA_CHECK(gemv_fused_run(out, x, w, n_tok, n_out, n_in, &epi, e->dt, e->stream));
}

static void *row_ptr(const cuda_engine *e, void *base, size_t row, size_t width)
{
    (void)e;
    return (uint16_t *)base + row * width;
}

/* The model from embedding to logits rows [n_rows, vocab]: the final norm and the LM head run
 * on the N_ROWS token rows that GATHER lists (every row when GATHER is NULL, then n_rows =
 * n_tok <= max_seqs) and are skipped when no row samples (n_rows = 0: a prefill chunk that is
 * not a prompt's last). The logits buffer has max_seqs rows, never max_tokens. */
static void run_model(cuda_engine *e, const fwd_in *in, int n_tok, int n_dec, int n_pre,
                      int max_q_len, int splits, int n_rows)
{
    const model_config *c = &e->cfg;
    cudaStream_t s = e->stream;
    const int dim = c->dim, hid = c->hidden_dim, hd = c->head_dim;
    const float scale = 1.f / sqrtf((float)hd);
    CUDA_CHECK(embed_run(e->x, e->w.embed, in->tok, n_tok, c->vocab_size, dim, e->dt, s));
    for (int l = 0; l < c->n_layers; l++) {
        const cuda_layer *ly = &e->w.layers[l];
        void *kc = row_ptr(e, e->k_cache, (size_t)l, e->kv_layer_elems);
        void *vc = row_ptr(e, e->v_cache, (size_t)l, e->kv_layer_elems);
        CUDA_CHECK(rmsnorm_run(e->xn, e->x, l ? e->y : NULL, ly->attn_norm, n_tok, dim,
                               c->norm_eps, e->dt, s));
        gemm(e, e->qkv, e->cdt, e->xn, ly->wqkv, n_tok, e->qkv_dim, dim);
        void *q = e->qkv, *k = (uint16_t *)e->qkv + e->q_dim;
        void *v = (uint16_t *)e->qkv + e->q_dim + e->kv_dim;
        CUDA_CHECK(rope_run(q, e->qkv_dim, k, e->qkv_dim, in->pos, n_tok, c->n_heads,
                            c->n_kv_heads, hd, e->rp, e->dt, s));
        CUDA_CHECK(kv_store_run(kc, vc, k, e->qkv_dim, v, e->qkv_dim, in->slot, n_tok,
                                c->n_kv_heads, hd, e->dt, s));
        if (n_dec)
            CUDA_CHECK(decode_attn_run(e->att, q, e->qkv_dim, kc, vc, e->d_bt, e->max_bps,
                                       in->seq_len, n_dec, c->n_heads, c->n_kv_heads, hd, e->bs,
                                       scale, splits, splits > 1 ? e->dec_ws : NULL, e->dt, s));
        if (n_pre)
            CUDA_CHECK(prefill_attn_run(row_ptr(e, e->att, n_dec, e->q_dim),
                                        row_ptr(e, e->qkv, n_dec, e->qkv_dim), e->qkv_dim, kc, vc,
                                        e->d_bt + (size_t)n_dec * e->max_bps, e->max_bps,
                                        in->cu_q, in->seq_len + n_dec, n_pre, max_q_len,
                                        c->n_heads, c->n_kv_heads, hd, e->bs, scale, e->dt, s));
        gemm(e, e->y, e->cdt, e->att, ly->wo, n_tok, dim, e->q_dim);
        CUDA_CHECK(rmsnorm_run(e->xn, e->x, e->y, ly->ffn_norm, n_tok, dim, c->norm_eps, e->dt, s));
        gemm(e, e->gu, e->cdt, e->xn, ly->w_gate_up, n_tok, 2 * hid, dim);
        CUDA_CHECK(silu_mul_run(e->act, e->gu, n_tok, hid, e->dt, s));
        gemm(e, e->y, e->cdt, e->act, ly->w_down, n_tok, dim, hid);
    }
    if (n_rows == 0)
        return;
    CUDA_CHECK(rmsnorm_run(e->xn, e->x, e->y, e->w.norm, n_tok, dim, c->norm_eps, e->dt, s));
    const void *rows = e->xn;
    if (in->gather) {
        CUDA_CHECK(embed_run(e->last, e->xn, in->gather, n_rows, n_tok, dim, e->dt, s));
        rows = e->last;
    }
    gemm(e, e->logits, CUDA_R_32F, rows, e->w.lm_head, n_rows, c->vocab_size, dim);
}

/* Decode-only batch of N_TOK <= gemv_max sequences (one token each), logits of every row. */
static void run_model_fused(cuda_engine *e, const fwd_in *in, int n_tok, int splits)
{
    const model_config *c = &e->cfg;
    cudaStream_t s = e->stream;
    const int dim = c->dim, hid = c->hidden_dim, hd = c->head_dim;
    const float scale = 1.f / sqrtf((float)hd);
    CUDA_CHECK(embed_run(e->x, e->w.embed, in->tok, n_tok, c->vocab_size, dim, e->dt, s));
    for (int l = 0; l < c->n_layers; l++) {
        const cuda_layer *ly = &e->w.layers[l];
        void *kc = row_ptr(e, e->k_cache, (size_t)l, e->kv_layer_elems);
        void *vc = row_ptr(e, e->v_cache, (size_t)l, e->kv_layer_elems);
        gemv_epi qkv = {};
        qkv.n_heads = c->n_heads, qkv.n_kv_heads = c->n_kv_heads, qkv.head_dim = hd;
        qkv.out_stride = e->qkv_dim, qkv.pos = in->pos, qkv.slot = in->slot;
        qkv.k_cache = kc, qkv.v_cache = vc, qkv.rope = e->rp;
        gemv(e, e->qkv, e->x, ly->wqkv, n_tok, e->qkv_dim, dim, GEMV_QKV, ly->attn_norm, &qkv);
        CUDA_CHECK(decode_attn_run(e->att, e->qkv, e->qkv_dim, kc, vc, e->d_bt, e->max_bps,
                                   in->seq_len, n_tok, c->n_heads, c->n_kv_heads, hd, e->bs,
                                   scale, splits, splits > 1 ? e->dec_ws : NULL, e->dt, s));
        gemv(e, e->x, e->att, ly->wo, n_tok, dim, e->q_dim, GEMV_RESID, NULL, NULL);
        gemv(e, e->act, e->x, ly->w_gate_up, n_tok, 2 * hid, dim, GEMV_SILU, ly->ffn_norm, NULL);
        gemv(e, e->x, e->act, ly->w_down, n_tok, dim, hid, GEMV_RESID, NULL, NULL);
    }
    gemv(e, e->logits, e->x, e->w.lm_head, n_tok, c->vocab_size, dim, GEMV_OUT_F32, e->w.norm,
         NULL);
}

/* Whether a batch of N_TOK tokens, N_PRE of its sequences prefills, takes the fused path. */
static bool use_fused(const cuda_engine *e, int n_tok, int n_pre)
{
    return n_pre == 0 && n_tok <= e->gemv_max;
}

/* Packed input layout of a batch of N_TOK tokens and N_SEQS sequences (N_PRE prefills). */
static fwd_in layout(const int32_t *base, int n_tok, int n_seqs, int n_pre, int n_gather)
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

static size_t layout_ints(int n_tok, int n_seqs, int n_pre, int n_gather)
{
    return 3 * (size_t)n_tok + n_seqs + n_pre + 1 + n_gather;
}

static int graph_for(const cuda_engine *e, int n)
{
    for (int g = 0; g < e->n_graphs; g++)
        if (e->graph_bs[g] >= n)
            return g;
    return -1;
}

/* Fills a padded decode batch of G rows into the host inputs (all padding) and uploads it. */
static void upload_padding(cuda_engine *e, int G)
{
    fwd_in h = layout(e->h_in, G, G, 0, 0);
    for (int i = 0; i < G; i++) {
        ((int32_t *)h.tok)[i] = 0;
        ((int32_t *)h.pos)[i] = 0;
        ((int32_t *)h.slot)[i] = -1;
        ((int32_t *)h.seq_len)[i] = 0;
    }
    ((int32_t *)h.cu_q)[0] = 0;
    CUDA_CHECK(cudaMemcpyAsync(e->d_in, e->h_in, layout_ints(G, G, 0, 0) * 4,
                               cudaMemcpyHostToDevice, e->stream));
}

static void capture_graphs(cuda_engine *e)
{
    const model_config *c = &e->cfg;
    int cap = e->max_seqs < e->max_tokens ? e->max_seqs : e->max_tokens;
    for (size_t i = 0; i < sizeof graph_sizes / sizeof *graph_sizes && e->n_graphs < MAX_GRAPHS; i++) {
        int G = graph_sizes[i];
        if (G > cap)
            break;
        int splits = decode_attn_splits(G, c->n_heads, c->n_kv_heads, c->head_dim,
                                        e->max_ctx, e->n_sms);
        fwd_in in = layout(e->d_in, G, G, 0, 0);
        upload_padding(e, G);
        for (int pass = 0; pass < 2; pass++) {   /* warm-up (attributes, cuBLAS plans), capture */
            cudaGraph_t graph;
            if (pass == 1)
                CUDA_CHECK(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
            if (use_fused(e, G, 0))
                run_model_fused(e, &in, G, splits);
            else
                run_model(e, &in, G, G, 0, 0, splits, G);
            if (pass == 0) {
                CUDA_CHECK(cudaStreamSynchronize(e->stream));
                continue;
            }
            CUDA_CHECK(cudaStreamEndCapture(e->stream, &graph));
            CUDA_CHECK(cudaGraphInstantiate(&e->graph[e->n_graphs], graph, 0));
            CUDA_CHECK(cudaGraphDestroy(graph));
        }
        e->graph_bs[e->n_graphs] = G;
        e->graph_splits[e->n_graphs] = splits;
        e->n_graphs++;
    }
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
}

/* Penalty entries of sequence S appended at h_pen[*n]; grows the buffers. */
static void add_penalties(cuda_engine *e, const fwd_seq *s, size_t *n)
{
    int n_tokens = s->n_cached + s->n_new;
    int n_prompt = s->n_prompt < n_tokens ? s->n_prompt : n_tokens;
    const sampling_params *sp = s->params;
    bool rep = sp->repetition_penalty != 1.f && sp->repetition_penalty > 0.f;
    bool fp = sp->frequency_penalty != 0.f || sp->presence_penalty != 0.f;
    if (!rep && !fp)
        return;
    if (*n + n_tokens > e->pen_cap) {
        size_t cap = (*n + n_tokens) * 2;
        sample_penalty *h;
        CUDA_CHECK(cudaHostAlloc((void **)&h, cap * sizeof *h, cudaHostAllocDefault));
        memcpy(h, e->h_pen, *n * sizeof *h);
        CUDA_CHECK(cudaFreeHost(e->h_pen));
        CUDA_CHECK(cudaFree(e->d_pen));
        CUDA_CHECK(cudaMalloc((void **)&e->d_pen, cap * sizeof *h));
        e->h_pen = h;
        e->pen_cap = cap;
    }
    size_t first = *n;
    for (int i = rep ? 0 : n_prompt; i < n_tokens; i++) {
        int32_t t = s->tokens[i];
        if (!e->pen_mark[t]) {
            e->h_pen[*n] = (sample_penalty){t, 0};
            e->pen_mark[t] = (int32_t)(++*n - first);
        }
        if (i >= n_prompt)
            e->h_pen[first + e->pen_mark[t] - 1].n_out++;
    }
    for (size_t k = first; k < *n; k++)
        e->pen_mark[e->h_pen[k].token] = 0;
}

int ce_forward(cuda_engine *e, fwd_seq *seqs, int n_seqs)
{
    const model_config *c = &e->cfg;
    cudaStream_t st = e->stream;
    e->order.assign(n_seqs, 0);
    e->logit_row.assign(n_seqs, -1);
    e->n_last = n_seqs;
    if (n_seqs == 0)
        return 0;
    int n_dec = 0, n_tok = 0, n_sample = 0, max_q = 0, max_dec_ctx = 0;
    for (int i = 0; i < n_seqs; i++)
        if (seqs[i].n_new == 1)
            e->order[n_dec++] = i;
    for (int i = 0, k = n_dec; i < n_seqs; i++)
        if (seqs[i].n_new != 1)
            e->order[k++] = i;
    for (int i = 0; i < n_seqs; i++) {
        n_tok += seqs[i].n_new;
        n_sample += seqs[i].sample != 0;
        if (seqs[i].n_new > 1 && seqs[i].n_new > max_q)
            max_q = seqs[i].n_new;
        if (seqs[i].n_new == 1 && seqs[i].n_cached + 1 > max_dec_ctx)
            max_dec_ctx = seqs[i].n_cached + 1;
    }
    if (n_seqs > e->max_seqs || n_tok > e->max_tokens)
        return -1;   /* the buffers are sized for these (callers check first: batch_check.c) */
    const int n_pre = n_seqs - n_dec;
    int g = n_pre == 0 ? graph_for(e, n_dec) : -1;
    const int G = g >= 0 ? e->graph_bs[g] : 0;
    const bool fused = g < 0 && use_fused(e, n_tok, n_pre);
    /* graphs and the fused path compute logits for every row (at most max_seqs of them);
       otherwise only the sampled rows are gathered, and none at all when nothing samples:
       a prefill chunk's rows can outnumber the max_seqs rows of the logits buffer (issue 10:
       a chunk of 2048 tokens wrote 2048 logits rows into a buffer of 256) */
    const int n_tok_run = g >= 0 ? G : n_tok, n_seq_run = g >= 0 ? G : n_seqs;
    const int n_gather = g >= 0 || fused ? 0 : n_sample;
    fwd_in h = layout(e->h_in, n_tok_run, n_seq_run, n_pre, n_gather);
    int32_t *tok = (int32_t *)h.tok, *pos = (int32_t *)h.pos, *slot = (int32_t *)h.slot;
    int32_t *seq_len = (int32_t *)h.seq_len, *cu_q = (int32_t *)h.cu_q;
    int32_t *gather = (int32_t *)h.gather;
    int t = 0, used_bps = 1, j = 0;
    cu_q[0] = 0;
    for (int k = 0; k < n_seqs; k++) {
        const fwd_seq *s = &seqs[e->order[k]];
        int len = s->n_cached + s->n_new, nb = (len + e->bs - 1) / e->bs;
        for (int p = s->n_cached; p < len; p++, t++) {
            tok[t] = s->tokens[p];
            pos[t] = p;
            slot[t] = s->block_table[p / e->bs] * e->bs + p % e->bs;
        }
        seq_len[k] = len;
        if (k >= n_dec)
            cu_q[k - n_dec + 1] = t - n_dec;
        memcpy(e->h_bt + (size_t)k * e->max_bps, s->block_table, (size_t)nb * sizeof(int32_t));
        used_bps = nb > used_bps ? nb : used_bps;
        if (s->sample) {
            int row = g >= 0 || fused ? k : j;
            if (gather)
                gather[j] = t - 1;
            e->h_rows[j] = row;
            e->logit_row[e->order[k]] = row;
            j++;
        }
    }
    for (int k = n_seqs; k < n_seq_run; k++) { /* graph padding */
        tok[k] = 0;
        pos[k] = 0;
        slot[k] = -1;
        seq_len[k] = 0;
    }
    CUDA_CHECK(cudaMemcpyAsync(e->d_in, e->h_in,
                               layout_ints(n_tok_run, n_seq_run, n_pre, n_gather) * 4,
                               cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpy2DAsync(e->d_bt, (size_t)e->max_bps * 4, e->h_bt, (size_t)e->max_bps * 4,
                                 (size_t)used_bps * 4, n_seqs, cudaMemcpyHostToDevice, st));
    if (g >= 0) {
        CUDA_CHECK(cudaGraphLaunch(e->graph[g], st));
    } else {
        fwd_in in = layout(e->d_in, n_tok, n_seqs, n_pre, n_gather);
        int splits = n_dec ? decode_attn_splits(n_dec, c->n_heads, c->n_kv_heads, c->head_dim, max_dec_ctx,
                                                e->n_sms) : 1;
        if (fused)
            run_model_fused(e, &in, n_tok, splits);
        else
            run_model(e, &in, n_tok, n_dec, n_pre, max_q, splits, n_gather);
    }
    if (n_sample > 0) {
        /* sampling parameters in the order of the sampled rows */
        bool plain = true, any_sort = false;
        size_t n_pen = 0;
        for (int k = 0, r = 0; k < n_seqs; k++) {
            const fwd_seq *s = &seqs[e->order[k]];
            if (!s->sample)
                continue;
            const sampling_params *sp = s->params;
            sample_row_params *p = &e->h_sp[r];
            *p = (sample_row_params){sp->temperature, sp->top_k, sp->top_p, sp->repetition_penalty,
                                     sp->frequency_penalty, sp->presence_penalty, 0, 0, sp->seed,
                                     (uint64_t)(s->n_cached + s->n_new)};
            p->pen_begin = (int32_t)n_pen;
            add_penalties(e, s, &n_pen);
            p->pen_end = (int32_t)n_pen;
            bool greedy = !(sp->temperature > 0.f);
            if (!greedy && ((sp->top_k > 0 && sp->top_k < c->vocab_size) ||
                            (sp->top_p > 0.f && sp->top_p < 1.f)))
                any_sort = true;
            if (!greedy || p->pen_end > p->pen_begin || e->h_rows[r] != r)
                plain = false;
            r++;
        }
        if (plain) {
            CUDA_CHECK(sample_greedy_run(e->d_tok, e->d_lp, e->logits, n_sample, c->vocab_size,
                                         e->greedy_ws, st));
        } else {
            CUDA_CHECK(cudaMemcpyAsync(e->d_sp, e->h_sp, n_sample * sizeof *e->h_sp,
                                       cudaMemcpyHostToDevice, st));
            CUDA_CHECK(cudaMemcpyAsync(e->d_rows, e->h_rows, n_sample * sizeof *e->h_rows,
                                       cudaMemcpyHostToDevice, st));
            if (n_pen)
                CUDA_CHECK(cudaMemcpyAsync(e->d_pen, e->h_pen, n_pen * sizeof *e->h_pen,
                                           cudaMemcpyHostToDevice, st));
            CUDA_CHECK(sample_topp_run(e->d_tok, e->d_lp, e->logits, e->d_rows, e->d_sp, e->d_pen,
                                       n_sample, c->vocab_size, any_sort, e->samp_ws,
                                       e->samp_ws_bytes, st));
        }
        CUDA_CHECK(cudaMemcpyAsync(e->h_tok, e->d_tok, n_sample * sizeof *e->h_tok,
                                   cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaMemcpyAsync(e->h_lp, e->d_lp, n_sample * sizeof *e->h_lp,
                                   cudaMemcpyDeviceToHost, st));
    }
    CUDA_CHECK(cudaStreamSynchronize(st));
    for (int k = 0, r = 0; k < n_seqs; k++) {
        fwd_seq *s = &seqs[e->order[k]];
        if (!s->sample)
            continue;
        s->out_token = e->h_tok[r];
        s->out_logprob = e->h_lp[r];
        r++;
    }
    return 0;
}

const float *ce_logits(cuda_engine *e, int i)
{
    if (i < 0 || i >= e->n_last || e->logit_row[i] < 0)
        return NULL;
    size_t v = e->cfg.vocab_size;
    CUDA_CHECK(cudaMemcpy(e->h_row, e->logits + (size_t)e->logit_row[i] * v, v * sizeof(float),
                          cudaMemcpyDeviceToHost));
    return e->h_row;
}

size_t ce_weight_bytes(const cuda_engine *e) { return e->w.n_elems * 2; }

int ce_max_graph_batch(const cuda_engine *e)
{
    return e->n_graphs ? e->graph_bs[e->n_graphs - 1] : 0;
}

void ce_free(cuda_engine *e)
{
    if (!e)
        return;
    for (int g = 0; g < e->n_graphs; g++)
        CUDA_CHECK(cudaGraphExecDestroy(e->graph[g]));
    cuda_weights_free(&e->w);
    void *dev[] = {e->k_cache, e->v_cache, e->x, e->xn, e->y, e->qkv, e->att, e->gu, e->act,
                   e->last, e->logits, e->dec_ws, e->d_in, e->d_bt, e->d_sp, e->d_rows,
                   e->d_pen, e->samp_ws, e->greedy_ws, e->d_tok, e->d_lp, e->blas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    void *host[] = {e->h_in, e->h_bt, e->h_sp, e->h_rows, e->h_pen, e->h_tok, e->h_lp};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++)
        if (host[i])
            CUDA_CHECK(cudaFreeHost(host[i]));
    if (e->blas)
        CUBLAS_CHECK(cublasDestroy(e->blas));
    if (e->stream)
        CUDA_CHECK(cudaStreamDestroy(e->stream));
    free(e->pen_mark);
    free(e->h_row);
    delete e;
}

static int alloc_state(cuda_engine *e, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    size_t M = e->max_tokens, S = e->max_seqs, V = c->vocab_size, total = 0;
    int max_splits = 32;
    e->dec_ws_bytes = decode_attn_workspace_size((int)S, c->n_heads, c->head_dim, max_splits);
    e->samp_ws_bytes = sample_topp_workspace_size((int)S, (int)V);
    e->in_cap = layout_ints((int)M, (int)S, (int)S, (int)S);
    e->pen_cap = 4096;
    if (!(e->x = dev_alloc(M * c->dim * 2, &total)) || !(e->xn = dev_alloc(M * c->dim * 2, &total)) ||
        !(e->y = dev_alloc(M * c->dim * 2, &total)) ||
        !(e->qkv = dev_alloc(M * e->qkv_dim * 2, &total)) ||
        !(e->att = dev_alloc(M * e->q_dim * 2, &total)) ||
        !(e->gu = dev_alloc(M * 2 * c->hidden_dim * 2, &total)) ||
        !(e->act = dev_alloc(M * c->hidden_dim * 2, &total)) ||
        !(e->last = dev_alloc(S * c->dim * 2, &total)) ||
        !(e->logits = (float *)dev_alloc(S * V * 4, &total)) ||
        !(e->dec_ws = dev_alloc(e->dec_ws_bytes, &total)) ||
        !(e->d_in = (int32_t *)dev_alloc(e->in_cap * 4, &total)) ||
        !(e->d_bt = (int32_t *)dev_alloc(S * e->max_bps * 4, &total)) ||
        !(e->d_sp = (sample_row_params *)dev_alloc(S * sizeof *e->d_sp, &total)) ||
        !(e->d_rows = (int32_t *)dev_alloc(S * 4, &total)) ||
        !(e->d_pen = (sample_penalty *)dev_alloc(e->pen_cap * sizeof *e->d_pen, &total)) ||
        !(e->samp_ws = dev_alloc(e->samp_ws_bytes, &total)) ||
        !(e->greedy_ws = dev_alloc(sample_greedy_workspace_size((int)S), &total)) ||
        !(e->d_tok = (int32_t *)dev_alloc(S * 4, &total)) ||
        !(e->d_lp = (float *)dev_alloc(S * 4, &total)) ||
        !(e->blas_ws = dev_alloc(BLAS_WS_BYTES, &total))) {
        snprintf(err, n_err, "cannot allocate GPU activations for %zu tokens, %zu sequences "
                 "(%zu MB so far)", M, S, total >> 20);
        return -1;
    }
    if (cudaHostAlloc((void **)&e->h_in, e->in_cap * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_bt, S * e->max_bps * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_sp, S * sizeof *e->h_sp, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_rows, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_pen, e->pen_cap * sizeof *e->h_pen, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_tok, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_lp, S * 4, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate pinned host memory");
        return -1;
    }
    e->pen_mark = (int32_t *)calloc(V, sizeof(int32_t));
    e->h_row = (float *)malloc(V * sizeof(float));
    if (!e->pen_mark || !e->h_row) {
        snprintf(err, n_err, "out of host memory");
        return -1;
    }
    memset(e->h_bt, 0, S * e->max_bps * 4);
    CUDA_CHECK(cudaMemset(e->d_bt, 0, S * e->max_bps * 4));
    return 0;
}

/* KV blocks: KV_TOKENS if asked, else what mem_util of the device leaves free. */
static int alloc_kv(cuda_engine *e, const ce_opts *o, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    size_t block_bytes = 2ull * c->n_layers * e->bs * e->kv_dim * 2;
    size_t free_b, total_b;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    double util = o->mem_util > 0 ? o->mem_util : 0.9;
    double budget = util * (double)total_b - (double)(total_b - free_b) - (double)RESERVE_BYTES;
    double fit = (double)free_b - (double)RESERVE_BYTES;
    int64_t n = o->kv_tokens > 0 ? (o->kv_tokens + e->bs - 1) / e->bs
                                 : (int64_t)(budget / (double)block_bytes);
    if (n > INT32_MAX / e->bs)
        n = INT32_MAX / e->bs;
    if (n < 1 || (double)n * block_bytes > fit) {
        snprintf(err, n_err, "no room for the KV cache: %lld blocks of %zu KB asked, %zu MB free "
                 "of %zu MB (memory utilization %.2f)", (long long)n, block_bytes >> 10,
                 free_b >> 20, total_b >> 20, util);
        return -1;
    }
    e->n_blocks = (int)n;
    e->kv_layer_elems = (size_t)n * e->bs * e->kv_dim;
    size_t bytes = e->kv_layer_elems * c->n_layers * 2, total = 0;
    if (!(e->k_cache = dev_alloc(bytes, &total)) || !(e->v_cache = dev_alloc(bytes, &total))) {
        snprintf(err, n_err, "cannot allocate %zu MB of KV cache", 2 * bytes >> 20);
        return -1;
    }
    return 0;
}

cuda_engine *ce_init(const ce_opts *o, model_config *cfg, int *n_kv_blocks, char *err,
                     size_t n_err)
{
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "no CUDA device");
        return NULL;
    }
    cuda_engine *e = new cuda_engine();
    model_config *c = &e->cfg;
    if (model_config_load(c, o->model_dir, err, n_err) < 0)
        goto fail;
    if (o->block_size < 1) {
        snprintf(err, n_err, "block size %d", o->block_size);
        goto fail;
    }
    if ((c->head_dim != 48 && c->head_dim != 64 && c->head_dim != 128) ||
        c->n_heads % c->n_kv_heads || c->dim % 8 || c->hidden_dim % 8) {
        snprintf(err, n_err, "unsupported shape: head_dim %d (48, 64 or 128), %d heads over %d "
                 "KV heads, dim %d and hidden %d (multiples of 8)", c->head_dim, c->n_heads,
                 c->n_kv_heads, c->dim, c->hidden_dim);
        goto fail;
    }
    {
        int dev;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&e->n_sms, cudaDevAttrMultiProcessorCount, dev));
        e->dt = o->fp16 ? KDT_F16 : KDT_BF16;
        e->cdt = o->fp16 ? CUDA_R_16F : CUDA_R_16BF;
        e->bs = o->block_size;
        e->gemv_max = o->gemv_max_tokens < 0 ? GEMV_MAX_TOKENS : o->gemv_max_tokens;
        if (e->gemv_max > GEMV_MAX_TOKENS)
            e->gemv_max = GEMV_MAX_TOKENS;
        while (e->gemv_max > 0 && (size_t)(e->gemv_max + 1) * (c->dim + 8) * 2 > GEMV_NORM_MAX_BYTES)
            e->gemv_max--;   /* the normalized rows must fit the GEMV's shared memory */
        e->max_ctx = o->max_ctx > 0 ? o->max_ctx : c->max_seq_len;
        e->max_tokens = o->max_tokens > 0 ? o->max_tokens : DEFAULT_MAX_TOKENS;
        e->max_seqs = o->max_seqs > 0 ? o->max_seqs : DEFAULT_MAX_SEQS;
        if (e->max_seqs > e->max_tokens)
            e->max_seqs = e->max_tokens;
        e->max_bps = (e->max_ctx + e->bs - 1) / e->bs;
        e->q_dim = c->n_heads * c->head_dim;
        e->kv_dim = c->n_kv_heads * c->head_dim;
        e->qkv_dim = e->q_dim + 2 * e->kv_dim;
        e->rp = (rope_params){c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                              c->rope_high_freq_factor, c->rope_orig_max_pos};
        CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&e->blas));
        CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
    }
    {
        int rc = o->dummy_weights ? cuda_weights_random(&e->w, c, DUMMY_SEED, e->dt, err, n_err)
                                  : cuda_weights_load(&e->w, c, o->model_dir, e->dt, err, n_err);
        if (rc < 0 || alloc_state(e, err, n_err) < 0 || alloc_kv(e, o, err, n_err) < 0)
            goto fail;
    }
    CUBLAS_CHECK(cublasSetWorkspace(e->blas, e->blas_ws, BLAS_WS_BYTES));
    if (o->dummy_weights) {   /* benchmarks read KV that no prefill wrote: make it data */
        cuda_fill_random(e->k_cache, e->kv_layer_elems * c->n_layers, 11, 1.f, e->dt);
        cuda_fill_random(e->v_cache, e->kv_layer_elems * c->n_layers, 12, 1.f, e->dt);
    }
    if (!o->no_graphs)
        capture_graphs(e);
    *cfg = *c;
    *n_kv_blocks = e->n_blocks;
    return e;
fail:
    ce_free(e);
    return NULL;
}

static float median_ms(std::vector<float> &v);

/* Median event time of ITERS runs of F on the engine's stream, after two warm-ups. */
template <typename F> static double time_stream(cuda_engine *e, int iters, F f)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(iters > 0 ? iters : 1);
    for (int i = -2; i < (int)ms.size(); i++) {
        CUDA_CHECK(cudaEventRecord(a, e->stream));
        f();
        CUDA_CHECK(cudaEventRecord(b, e->stream));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return median_ms(ms);
}

int ce_decode_breakdown(cuda_engine *e, int n, int iters, double *graph_ms, double *gemm_ms)
{
    int g = graph_for(e, n);
    if (g < 0)
        return -1;
    const model_config *c = &e->cfg;
    int G = e->graph_bs[g], dim = c->dim, hid = c->hidden_dim;
    *graph_ms = time_stream(e, iters, [&] { CUDA_CHECK(cudaGraphLaunch(e->graph[g], e->stream)); });
    const bool fused = use_fused(e, G, 0);
    *gemm_ms = time_stream(e, iters, [&] {
        for (int l = 0; l < c->n_layers; l++) {
            const cuda_layer *ly = &e->w.layers[l];
            if (fused) {   /* the same GEMVs with plain epilogues, into scratch */
                gemv(e, e->gu, e->x, ly->wqkv, G, e->qkv_dim, dim, GEMV_OUT, ly->attn_norm, NULL);
                gemv(e, e->y, e->att, ly->wo, G, dim, e->q_dim, GEMV_OUT, NULL, NULL);
                gemv(e, e->act, e->x, ly->w_gate_up, G, 2 * hid, dim, GEMV_SILU, ly->ffn_norm,
                     NULL);
                gemv(e, e->y, e->act, ly->w_down, G, dim, hid, GEMV_OUT, NULL, NULL);
            } else {
                gemm(e, e->qkv, e->cdt, e->xn, ly->wqkv, G, e->qkv_dim, dim);
                gemm(e, e->y, e->cdt, e->att, ly->wo, G, dim, e->q_dim);
                gemm(e, e->gu, e->cdt, e->xn, ly->w_gate_up, G, 2 * hid, dim);
                gemm(e, e->y, e->cdt, e->act, ly->w_down, G, dim, hid);
            }
        }
        if (fused)
            gemv(e, e->logits, e->x, e->w.lm_head, G, c->vocab_size, dim, GEMV_OUT_F32, e->w.norm,
                 NULL);
        else
            gemm(e, e->logits, CUDA_R_32F, e->xn, e->w.lm_head, G, c->vocab_size, dim);
    });
    return 0;
}

/* ---- device ceilings for the benchmarks */
__global__ static void ceil_fill_kernel(uint16_t *p, size_t n, uint64_t seed)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + seed) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
        float v = (float)((z >> 40) & 0xffffff) * (2.f / 16777216.f) - 1.f;
        p[i] = __bfloat16_as_ushort(__float2bfloat16(v));
    }
}

static float median_ms(std::vector<float> &v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void ce_measure_ceilings(double *copy_gbs, double *gemm_tflops, int m, int n, int k)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    size_t bytes = (size_t)1 << 30;
    void *src, *dst;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)src, bytes / 2, 1);
    CUDA_CHECK(cudaGetLastError());
    std::vector<float> ms(15);
    for (int i = -3; i < (int)ms.size(); i++) {
        CUDA_CHECK(cudaEventRecord(a));
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    *copy_gbs = 2.0 * bytes / (median_ms(ms) * 1e6);
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));

    void *A, *B, *C;
    CUDA_CHECK(cudaMalloc(&A, (size_t)m * k * 2));
    CUDA_CHECK(cudaMalloc(&B, (size_t)k * n * 2));
    CUDA_CHECK(cudaMalloc(&C, (size_t)m * n * 2));
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)A, (size_t)m * k, 2);
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)B, (size_t)k * n, 3);
    CUDA_CHECK(cudaGetLastError());
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    const float alpha = 1.f, beta = 0.f;
    for (int i = -3; i < (int)ms.size(); i++) {
        CUDA_CHECK(cudaEventRecord(a));
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, A, CUDA_R_16BF, k,
                                  B, CUDA_R_16BF, k, &beta, C, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    *gemm_tflops = 2.0 * m * n * (double)k / (median_ms(ms) * 1e9);
    CUBLAS_CHECK(cublasDestroy(h));
    CUDA_CHECK(cudaFree(A));
    CUDA_CHECK(cudaFree(B));
    CUDA_CHECK(cudaFree(C));
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
}
