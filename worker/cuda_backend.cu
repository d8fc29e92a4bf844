/* cuda_backend.cu - the CUDA engine (cuda_backend.h): setup (weights, KV cache sized from free
 * memory, activations, pinned inputs, decode graphs) and one forward in five stages:
 *   plan     order the sequences (decodes first, then prefill chunks) and pick the path: a
 *            captured graph (decode-only batch, padded to the graph's size; captured on its
 *            first use, so that a restarted worker serves at once), the fused GEMV
 *            decode path, or the general mixed batch;
 *   pack     token ids, positions, cache slots, lengths and LM-head rows in one pinned copy,
 *            block tables in one 2D copy of their used columns;
 *   run      the model (cuda_model.cu);
 *   sample   the greedy kernel when every row is plain greedy, else the full sampler with
 *            each row's parameters and bias / penalty list; the top logprobs of the rows
 *            that ask for them;
 *   collect  wait, and write each sampled token and logprob into its fwd_seq.
 * bf16 (or fp16) weights and activations, fp32 logits; shapes of the KV cache in kv_layout.h.
 */
#include "cuda_engine.h"
#include "hold.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/decode_attn.cuh"
#include "../kernels/prefill_attn_sm90.cuh"
extern "C" {
#include "../common/log.h"
}
#include "../kernels/sample_greedy.cuh"
#include "../kernels/topk_logprobs.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DUMMY_SEED 0                 /* the CPU backend's: same random model */
static_assert(TOPK_LOGPROBS_MAX == FWD_MAX_TOP_LOGPROBS, "fwd_seq's top-logprob arrays");
#define DEFAULT_MAX_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define BLAS_WS_BYTES (32u << 20)
#define RESERVE_BYTES (512ull << 20) /* graphs, cuBLAS and cub internals */

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

/* The entry of token T in the list being built from h_pen[FIRST] on (a new one at *N). */
static sample_penalty *pen_entry(cuda_engine *e, int32_t t, size_t first, size_t *n)
{
    if (!e->pen_mark[t]) {
        e->h_pen[*n] = (sample_penalty){t, 0, 0, 0.f};
        e->pen_mark[t] = (int32_t)(++*n - first);
    }
    return &e->h_pen[first + e->pen_mark[t] - 1];
}

/* The bias and penalty entries of sequence S appended at h_pen[*n], one per distinct token
 * that is biased (logit_bias), suppressed (min_tokens: bias -inf) or penalized; grows the
 * buffers. */
static void add_penalties(cuda_engine *e, const fwd_seq *s, size_t *n)
{
    int n_tokens = s->n_cached + s->n_new;
    int n_prompt = s->n_prompt < n_tokens ? s->n_prompt : n_tokens;
    const sampling_params *sp = s->params;
    bool rep = sp->repetition_penalty != 1.f && sp->repetition_penalty > 0.f;
    bool fp = sp->frequency_penalty != 0.f || sp->presence_penalty != 0.f;
    size_t most = (rep || fp ? (size_t)n_tokens : 0) + (size_t)sp->n_logit_bias + (size_t)s->n_suppress;
    if (most == 0)
        return;
    if (*n + most > e->pen_cap) {
        size_t cap = (*n + most) * 2;
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
    for (int i = rep ? 0 : n_prompt; (rep || fp) && i < n_tokens; i++) {
        sample_penalty *q = pen_entry(e, s->tokens[i], first, n);
        q->in_seq = 1;
        if (i >= n_prompt)
            q->n_out++;
    }
    for (int i = 0; i < sp->n_logit_bias; i++)   /* distinct ids (the tokenizer's check) */
        pen_entry(e, sp->bias_ids[i], first, n)->bias += sp->bias[i];
    for (int i = 0; i < s->n_suppress; i++)
        pen_entry(e, s->suppress[i], first, n)->bias = -INFINITY;
    for (size_t k = first; k < *n; k++)
        e->pen_mark[e->h_pen[k].token] = 0;
}

/* The shape of one forward: which path runs it and how many rows of what. */
typedef struct {
    int n_seqs, n_dec, n_pre, n_tok, n_sample, max_q, max_dec_ctx;
    int g;               /* captured graph replayed, or -1 */
    bool fused;          /* the fused GEMV decode path */
    int n_tok_run, n_seq_run;  /* padded to the graph's size when one replays */
    int n_gather;        /* logits rows gathered (0 on graphs and the fused path: all rows) */
} fwd_plan;

/* Orders the sequences (decodes first) and picks the path; -1 beyond the buffers' sizes. */
static int plan(cuda_engine *e, const fwd_seq *seqs, int n_seqs, fwd_plan *p)
{
    *p = fwd_plan{};
    p->n_seqs = n_seqs;
    for (int i = 0; i < n_seqs; i++)
        if (seqs[i].n_new == 1)
            e->order[p->n_dec++] = i;
    for (int i = 0, k = p->n_dec; i < n_seqs; i++)
        if (seqs[i].n_new != 1)
            e->order[k++] = i;
    for (int i = 0; i < n_seqs; i++) {
        p->n_tok += seqs[i].n_new;
        p->n_sample += seqs[i].sample != 0;
        if (seqs[i].n_new > 1 && seqs[i].n_new > p->max_q)
            p->max_q = seqs[i].n_new;
        if (seqs[i].n_new == 1 && seqs[i].n_cached + 1 > p->max_dec_ctx)
            p->max_dec_ctx = seqs[i].n_cached + 1;
    }
    if (n_seqs > e->max_seqs || p->n_tok > e->max_tokens)
        return -1;   /* the buffers are sized for these (callers check first: batch_check.c) */
    p->n_pre = n_seqs - p->n_dec;
    p->g = p->n_pre == 0 ? ce_graph_for(e, p->n_dec) : -1;
    if (p->g >= 0)
        ce_graph_capture(e, p->g);   /* its first use; before the inputs are packed */
    p->fused = p->g < 0 && ce_use_fused(e, p->n_tok, p->n_pre);
    p->n_tok_run = p->g >= 0 ? e->graph_bs[p->g] : p->n_tok;
    p->n_seq_run = p->g >= 0 ? e->graph_bs[p->g] : n_seqs;
    /* graphs and the fused path compute logits for every row (at most max_seqs of them);
       otherwise only the sampled rows are gathered, and none at all when nothing samples:
       a prefill chunk's rows can outnumber the max_seqs rows of the logits buffer (issue 10:
       a chunk of 2048 tokens wrote 2048 logits rows into a buffer of 256) */
    p->n_gather = p->g >= 0 || p->fused ? 0 : p->n_sample;
    return 0;
}

/* Packs token ids, positions, cache slots, lengths and gather rows into pinned memory and the
 * block tables' used columns, and uploads both. */
static void pack(cuda_engine *e, const fwd_seq *seqs, const fwd_plan *p)
{
    fwd_in h = ce_layout(e->h_in, p->n_tok_run, p->n_seq_run, p->n_pre, p->n_gather);
    int32_t *tok = (int32_t *)h.tok, *pos = (int32_t *)h.pos, *slot = (int32_t *)h.slot;
    int32_t *seq_len = (int32_t *)h.seq_len, *cu_q = (int32_t *)h.cu_q;
    int32_t *gather = (int32_t *)h.gather;
    int t = 0, used_bps = 1, j = 0;
    cu_q[0] = 0;
    for (int k = 0; k < p->n_seqs; k++) {
        const fwd_seq *s = &seqs[e->order[k]];
        int len = s->n_cached + s->n_new, nb = (len + e->bs - 1) / e->bs;
        for (int q = s->n_cached; q < len; q++, t++) {
            tok[t] = s->tokens[q];
            pos[t] = q;
            slot[t] = s->block_table[q / e->bs] * e->bs + q % e->bs;
        }
        seq_len[k] = len;
        if (k >= p->n_dec)
            cu_q[k - p->n_dec + 1] = t - p->n_dec;
        memcpy(e->h_bt + (size_t)k * e->max_bps, s->block_table, (size_t)nb * sizeof(int32_t));
        used_bps = nb > used_bps ? nb : used_bps;
        if (s->sample) {
            int row = p->n_gather ? j : k;
            if (gather)
                gather[j] = t - 1;
            e->h_rows[j] = row;
            e->logit_row[e->order[k]] = row;
            j++;
        }
    }
    for (int k = p->n_seqs; k < p->n_seq_run; k++) { /* graph padding */
        tok[k] = 0;
        pos[k] = 0;
        slot[k] = -1;
        seq_len[k] = 0;
    }
    CUDA_CHECK(cudaMemcpyAsync(e->d_in, e->h_in,
                               ce_layout_ints(p->n_tok_run, p->n_seq_run, p->n_pre, p->n_gather) * 4,
                               cudaMemcpyHostToDevice, e->stream));
    CUDA_CHECK(cudaMemcpy2DAsync(e->d_bt, (size_t)e->max_bps * 4, e->h_bt, (size_t)e->max_bps * 4,
                                 (size_t)used_bps * 4, p->n_seqs, cudaMemcpyHostToDevice,
                                 e->stream));
    ce_moe_pack(e, seqs, p->n_seqs, p->n_tok_run);
}

/* The model: a graph replay, the fused decode path, or the general mixed batch. */
static void run(cuda_engine *e, const fwd_plan *p)
{
    const model_config *c = &e->cfg;
    if (p->g >= 0) {
        CUDA_CHECK(cudaGraphLaunch(e->graph[p->g], e->stream));
        return;
    }
    fwd_in in = ce_layout(e->d_in, p->n_tok, p->n_seqs, p->n_pre, p->n_gather);
    int splits = p->n_dec ? decode_attn_splits(p->n_dec, c->n_heads, c->n_kv_heads, c->head_dim,
                                               p->max_dec_ctx, e->n_sms) : 1;
    if (p->fused)
        ce_run_model_fused(e, &in, p->n_tok, splits);
    else
        ce_run_model(e, &in, p->n_tok, p->n_dec, p->n_pre, p->max_q, splits, p->n_gather);
}

/* The top logprobs of the rows that ask for them (only then: no cost otherwise), after the
 * sampling kernels on the same stream, with those rows' sampled-token logprobs from the same
 * log-sum-exp (d_lp rewritten there); copied back (async). */
static void top_logprobs(cuda_engine *e, const fwd_seq *seqs, const fwd_plan *p, bool rows_up)
{
    bool any = false;
    for (int k = 0, r = 0; k < p->n_seqs; k++) {
        const fwd_seq *s = &seqs[e->order[k]];
        if (!s->sample)
            continue;
        e->h_topk[r] = s->params->n_top_logprobs;
        any |= e->h_topk[r++] > 0;
    }
    if (!any)
        return;
    int n = p->n_sample;
    cudaStream_t st = e->stream;
    size_t row = TOPK_LOGPROBS_MAX;
    if (!rows_up)
        CUDA_CHECK(cudaMemcpyAsync(e->d_rows, e->h_rows, n * sizeof *e->h_rows,
                                   cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(e->d_topk, e->h_topk, n * sizeof *e->h_topk, cudaMemcpyHostToDevice,
                               st));
    CUDA_CHECK(topk_logprobs_run(e->d_top_ids, e->d_top_lps, e->d_lp, e->logits, e->d_rows, e->d_topk,
                                 e->d_tok, n, e->cfg.vocab_size, st));
    CUDA_CHECK(cudaMemcpyAsync(e->h_top_ids, e->d_top_ids, n * row * sizeof *e->h_top_ids,
                               cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(e->h_top_lps, e->d_top_lps, n * row * sizeof *e->h_top_lps,
                               cudaMemcpyDeviceToHost, st));
}

/* Samples every sampled row: the greedy kernel when all are plain greedy, else the full
 * sampler with each row's parameters and bias / penalty list; results copied back (async),
 * then the top logprobs of the rows that ask. */
static void sample(cuda_engine *e, const fwd_seq *seqs, const fwd_plan *p)
{
    const model_config *c = &e->cfg;
    cudaStream_t st = e->stream;
    if (p->n_sample == 0)
        return;
    bool plain = true, any_sort = false;
    size_t n_pen = 0;
    for (int k = 0, r = 0; k < p->n_seqs; k++) {   /* parameters in sampled-row order */
        const fwd_seq *s = &seqs[e->order[k]];
        if (!s->sample)
            continue;
        const sampling_params *sp = s->params;
        sample_row_params *q = &e->h_sp[r];
        *q = (sample_row_params){sp->temperature, sp->top_k, sp->top_p, sp->repetition_penalty,
                                 sp->frequency_penalty, sp->presence_penalty, 0, 0, sp->seed,
                                 (uint64_t)(s->n_cached + s->n_new)};
        q->pen_begin = (int32_t)n_pen;
        add_penalties(e, s, &n_pen);
        q->pen_end = (int32_t)n_pen;
        bool greedy = !(sp->temperature > 0.f);
        if (!greedy && ((sp->top_k > 0 && sp->top_k < c->vocab_size) ||
                        (sp->top_p > 0.f && sp->top_p < 1.f)))
            any_sort = true;
        if (!greedy || q->pen_end > q->pen_begin || e->h_rows[r] != r)
            plain = false;
        r++;
    }
    int n = p->n_sample;
    if (plain) {
        CUDA_CHECK(sample_greedy_run(e->d_tok, e->d_lp, e->logits, n, c->vocab_size,
                                     e->greedy_ws, st));
    } else {
        CUDA_CHECK(cudaMemcpyAsync(e->d_sp, e->h_sp, n * sizeof *e->h_sp, cudaMemcpyHostToDevice,
                                   st));
        CUDA_CHECK(cudaMemcpyAsync(e->d_rows, e->h_rows, n * sizeof *e->h_rows,
                                   cudaMemcpyHostToDevice, st));
        if (n_pen)
            CUDA_CHECK(cudaMemcpyAsync(e->d_pen, e->h_pen, n_pen * sizeof *e->h_pen,
                                       cudaMemcpyHostToDevice, st));
        CUDA_CHECK(sample_full_run(e->d_tok, e->d_lp, e->logits, e->d_rows, e->d_sp, e->d_pen, n,
                                   c->vocab_size, any_sort, e->samp_ws, e->samp_ws_bytes, st));
    }
    top_logprobs(e, seqs, p, !plain);
    CUDA_CHECK(cudaMemcpyAsync(e->h_tok, e->d_tok, n * sizeof *e->h_tok, cudaMemcpyDeviceToHost,
                               st));
    CUDA_CHECK(cudaMemcpyAsync(e->h_lp, e->d_lp, n * sizeof *e->h_lp, cudaMemcpyDeviceToHost, st));
}

/* Waits for the step and writes each sampled token and logprob into its sequence. */
static void collect(cuda_engine *e, fwd_seq *seqs, const fwd_plan *p)
{
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    for (int k = 0, r = 0; k < p->n_seqs; k++) {
        fwd_seq *s = &seqs[e->order[k]];
        if (!s->sample)
            continue;
        s->out_token = e->h_tok[r];
        s->out_logprob = e->h_lp[r];
        int n_top = s->params->n_top_logprobs;
        if (n_top > 0) {
            memcpy(s->out_top_ids, e->h_top_ids + (size_t)r * TOPK_LOGPROBS_MAX,
                   n_top * sizeof(int32_t));
            memcpy(s->out_top_lps, e->h_top_lps + (size_t)r * TOPK_LOGPROBS_MAX,
                   n_top * sizeof(float));
        }
        r++;
    }
}

int ce_forward(cuda_engine *e, fwd_seq *seqs, int n_seqs)
{
    e->order.assign(n_seqs, 0);
    e->logit_row.assign(n_seqs, -1);
    e->n_last = n_seqs;
    if (n_seqs == 0)
        return 0;
    fwd_plan p;
    if (plan(e, seqs, n_seqs, &p) < 0)
        return -1;
    pack(e, seqs, &p);
    run(e, &p);
    sample(e, seqs, &p);
    collect(e, seqs, &p);
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

void ce_opts_from(ce_opts *eo, const backend_opts *o)
{
    memset(eo, 0, sizeof *eo);
    eo->model_dir = o->model_dir;
    eo->dummy_weights = o->dummy_weights;
    eo->block_size = o->block_size;
    eo->max_ctx = o->max_seq_len;
    eo->max_tokens = o->max_batch_tokens;
    eo->max_seqs = o->max_seqs;
    eo->kv_tokens = o->kv_tokens;
    eo->mem_util = o->mem_util;
    eo->fp16 = o->fp16;
    eo->no_graphs = o->no_graphs;
    eo->gemv_max_tokens = o->gemv_max_tokens == 0 ? -1 : o->gemv_max_tokens < 0 ? 0 : o->gemv_max_tokens;
    eo->gemv_warps = o->gemv_warps;
    eo->pdl_mask = o->pdl == 0 ? 1 : o->pdl < 0 ? 0 : o->pdl;
    eo->portable_attn = o->portable_attn;
    eo->hold = o->hold;
    eo->quant_fp8 = o->quant_fp8;
    eo->kv_fp8 = o->kv_fp8;
}

int ce_max_graph_batch(const cuda_engine *e)
{
    return e->n_graphs ? e->graph_bs[e->n_graphs - 1] : 0;
}

void ce_free(cuda_engine *e)
{
    if (!e)
        return;
    for (int g = 0; g < e->n_graphs; g++)
        if (e->graph[g])
            CUDA_CHECK(cudaGraphExecDestroy(e->graph[g]));
    if (e->w.borrowed && e->w.mem)
        CUDA_CHECK(cudaIpcCloseMemHandle(e->w.mem));
    cuda_weights_free(&e->w);
    ce_moe_free(e);
    ce_fp8_free(e);
    if (e->kv_held) {   /* one allocation of the holder's: K, then V */
        CUDA_CHECK(cudaIpcCloseMemHandle(e->k_cache));
        e->k_cache = e->v_cache = NULL;
    }
    void *dev[] = {e->k_cache, e->v_cache, e->x, e->xn, e->y, e->qkv, e->att, e->gu, e->act,
                   e->last, e->logits, e->dec_ws, e->d_in, e->d_bt, e->d_sp, e->d_rows,
                   e->d_pen, e->samp_ws, e->greedy_ws, e->d_tok, e->d_lp, e->d_topk,
                   e->d_top_ids, e->d_top_lps, e->blas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    void *host[] = {e->h_in, e->h_bt, e->h_sp, e->h_rows, e->h_pen, e->h_tok, e->h_lp, e->h_topk,
                    e->h_top_ids, e->h_top_lps};
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

/* The engine's limits and shapes from O and its model (no device work). */
static void engine_limits(cuda_engine *e, const ce_opts *o)
{
    const model_config *c = &e->cfg;
    e->dt = o->fp16 ? KDT_F16 : KDT_BF16;
    e->cdt = o->fp16 ? CUDA_R_16F : CUDA_R_16BF;
    e->bs = o->block_size;
    e->gemv_max = o->gemv_max_tokens < 0 ? GEMV_MAX_TOKENS : o->gemv_max_tokens;
    e->gemv_warps = o->gemv_warps;
    e->pdl_mask = o->pdl_mask;
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
}

typedef struct {
    void **p;
    size_t bytes;
} dev_buf;

#define MAX_DEV_BUFS 32

/* E's activation and scratch buffers and their sizes, from its limits; the count. */
static int state_bufs(cuda_engine *e, dev_buf *b)
{
    const model_config *c = &e->cfg;
    size_t M = e->max_tokens, S = e->max_seqs, V = c->vocab_size;
    int max_splits = 32, n = 0;
    e->dec_ws_bytes = decode_attn_workspace_size((int)S, c->n_heads, c->head_dim, max_splits);
    e->samp_ws_bytes = sample_full_workspace_size((int)S, (int)V);
    e->in_cap = ce_layout_ints((int)M, (int)S, (int)S, (int)S);
    e->pen_cap = 4096;
    b[n++] = dev_buf{&e->x, M * c->dim * 2};
    b[n++] = dev_buf{&e->xn, M * c->dim * 2};
    b[n++] = dev_buf{&e->y, M * c->dim * 2};
    b[n++] = dev_buf{&e->qkv, M * e->qkv_dim * 2};
    b[n++] = dev_buf{&e->att, M * e->q_dim * 2};
    b[n++] = dev_buf{&e->gu, M * 2 * c->hidden_dim * 2};
    b[n++] = dev_buf{&e->act, M * c->hidden_dim * 2};
    b[n++] = dev_buf{&e->last, S * c->dim * 2};
    b[n++] = dev_buf{(void **)&e->logits, S * V * 4};
    b[n++] = dev_buf{&e->dec_ws, e->dec_ws_bytes};
    b[n++] = dev_buf{(void **)&e->d_in, e->in_cap * 4};
    b[n++] = dev_buf{(void **)&e->d_bt, S * e->max_bps * 4};
    b[n++] = dev_buf{(void **)&e->d_sp, S * sizeof *e->d_sp};
    b[n++] = dev_buf{(void **)&e->d_rows, S * 4};
    b[n++] = dev_buf{(void **)&e->d_pen, e->pen_cap * sizeof *e->d_pen};
    b[n++] = dev_buf{&e->samp_ws, e->samp_ws_bytes};
    b[n++] = dev_buf{&e->greedy_ws, sample_greedy_workspace_size((int)S)};
    b[n++] = dev_buf{(void **)&e->d_tok, S * 4};
    b[n++] = dev_buf{(void **)&e->d_lp, S * 4};
    b[n++] = dev_buf{(void **)&e->d_topk, S * 4};
    b[n++] = dev_buf{(void **)&e->d_top_ids, S * TOPK_LOGPROBS_MAX * 4};
    b[n++] = dev_buf{(void **)&e->d_top_lps, S * TOPK_LOGPROBS_MAX * 4};
    b[n++] = dev_buf{&e->blas_ws, BLAS_WS_BYTES};
    return n;
}

static int alloc_state(cuda_engine *e, char *err, size_t n_err)
{
    size_t M = e->max_tokens, S = e->max_seqs, V = e->cfg.vocab_size, total = 0;
    dev_buf b[MAX_DEV_BUFS];
    int n = state_bufs(e, b);
    for (int i = 0; i < n; i++)
        if (!(*b[i].p = dev_alloc(b[i].bytes, &total))) {
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
        cudaHostAlloc((void **)&e->h_lp, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_topk, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_top_ids, S * TOPK_LOGPROBS_MAX * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_top_lps, S * TOPK_LOGPROBS_MAX * 4, 0) != cudaSuccess) {
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
    return e->cfg.n_experts ? ce_moe_init(e, err, n_err) : 0;
}

int64_t ce_kv_blocks_fit(const ce_opts *o, const model_config *c, size_t extra, char *err,
                         size_t n_err)
{
    int bs = o->block_size, kv_dim = c->n_kv_heads * c->head_dim;
    size_t block_bytes = 2ull * c->n_layers * bs * kv_dim * (o->kv_fp8 ? 1 : 2);
    size_t free_b, total_b;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    double util = o->mem_util > 0 ? o->mem_util : 0.9;
    double room = (double)RESERVE_BYTES + (double)extra;
    double budget = util * (double)total_b - (double)(total_b - free_b) - room;
    double fit = (double)free_b - room;
    int64_t n = o->kv_tokens > 0 ? (o->kv_tokens + bs - 1) / bs
                                 : (int64_t)(budget / (double)block_bytes);
    if (n > INT32_MAX / bs)
        n = INT32_MAX / bs;
    if (n < 1 || (double)n * block_bytes > fit) {
        snprintf(err, n_err, "no room for the KV cache: %lld blocks of %zu KB asked, %zu MB free "
                 "of %zu MB (memory utilization %.2f, %zu MB kept for activations)",
                 (long long)n, block_bytes >> 10, free_b >> 20, total_b >> 20, util, extra >> 20);
        return -1;
    }
    return n;
}

size_t ce_state_bytes(const ce_opts *o, const model_config *c)
{
    cuda_engine *e = new cuda_engine();
    e->cfg = *c;
    engine_limits(e, o);
    dev_buf b[MAX_DEV_BUFS];
    int n = state_bufs(e, b);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += b[i].bytes;
    delete e;
    return total;
}

/* The KV cache: KV_TOKENS if asked, else what mem_util of the device leaves free. */
static int alloc_kv(cuda_engine *e, const ce_opts *o, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    int64_t n = ce_kv_blocks_fit(o, c, 0, err, n_err);
    if (n < 0)
        return -1;
    e->n_blocks = (int)n;
    e->kv_layer_elems = (size_t)n * e->bs * e->kv_dim;
    size_t bytes = e->kv_layer_elems * c->n_layers * e->kv_elem, total = 0;
    if (!(e->k_cache = dev_alloc(bytes, &total)) || !(e->v_cache = dev_alloc(bytes, &total))) {
        snprintf(err, n_err, "cannot allocate %zu MB of KV cache", 2 * bytes >> 20);
        return -1;
    }
    return 0;
}

/* Opens the holder's weights and KV cache (hold.h) through their CUDA IPC handles, after
 * checking they are this model's in this engine's element type. */
static int attach_hold(cuda_engine *e, const msg_holder_attached *h, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    int kind = e->dt == KDT_F16 ? HOLD_CUDA_F16 : HOLD_CUDA_BF16;
    weights_layout wl;
    weights_layout_init(&wl, c, 8);
    e->n_blocks = h->n_kv_blocks;
    e->kv_layer_elems = (size_t)h->n_kv_blocks * e->bs * e->kv_dim;
    size_t kv_bytes = e->kv_layer_elems * c->n_layers * 2;
    if (h->kind != kind || h->n_kv_blocks < 1 || h->weights_bytes != wl.n_elems * 2 ||
        h->kv_bytes != 2 * kv_bytes) {
        snprintf(err, n_err, "the holder keeps another model or layout (kind %d, %llu weight "
                 "bytes, %llu KV bytes; this engine wants kind %d, %zu weight bytes)", h->kind,
                 (unsigned long long)h->weights_bytes, (unsigned long long)h->kv_bytes, kind,
                 wl.n_elems * 2);
        return -1;
    }
    cudaIpcMemHandle_t hw, hk;
    memcpy(&hw, h->ipc_weights, sizeof hw);
    memcpy(&hk, h->ipc_kv, sizeof hk);
    void *w = NULL, *kv = NULL;
    cudaError_t rc = cudaIpcOpenMemHandle(&w, hw, cudaIpcMemLazyEnablePeerAccess);
    if (rc == cudaSuccess)
        rc = cudaIpcOpenMemHandle(&kv, hk, cudaIpcMemLazyEnablePeerAccess);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        if (w)
            CUDA_CHECK(cudaIpcCloseMemHandle(w));
        snprintf(err, n_err, "cannot open the holder's memory: %s", cudaGetErrorString(rc));
        return -1;
    }
    e->kv_held = 1;
    e->k_cache = kv;
    e->v_cache = (char *)kv + kv_bytes;
    return cuda_weights_init(&e->w, c, e->dt, w, err, n_err);
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
    if (model_config_load(c, o->model_dir, err, n_err) < 0 || ce_fp8_config(e, o, err, n_err) < 0)
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
        engine_limits(e, o);
        CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&e->blas));
        CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
        /* decided here, outside any graph capture (the first call probes the device) */
        prefill_attn_sm90_set(!o->portable_attn);
        LOG_INFO("prefill attention: %s", prefill_attn_sm90_enabled()
                 ? "Hopper kernel (wgmma/TMA) where it applies" : "portable kernel");
    }
    {
        int rc = o->hold ? attach_hold(e, o->hold, err, n_err)
                 : o->dummy_weights ? cuda_weights_random(&e->w, c, DUMMY_SEED, e->dt, err, n_err)
                                    : ce_fp8_weights_load(e, o->model_dir, err, n_err);
        if (rc < 0 || alloc_state(e, err, n_err) < 0 || ce_fp8_init(e, err, n_err) < 0 ||
            (!o->hold && alloc_kv(e, o, err, n_err) < 0))
            goto fail;
    }
    CUBLAS_CHECK(cublasSetWorkspace(e->blas, e->blas_ws, BLAS_WS_BYTES));
    if (o->dummy_weights && !o->hold && e->kv_elem == 1) {
        ce_fp8_fill_kv(e, e->kv_layer_elems * c->n_layers);
    } else if (o->dummy_weights && !o->hold) {   /* benchmarks read KV that no prefill wrote */
        cuda_fill_random(e->k_cache, e->kv_layer_elems * c->n_layers, 11, 1.f, e->dt);
        cuda_fill_random(e->v_cache, e->kv_layer_elems * c->n_layers, 12, 1.f, e->dt);
    }
    if (!o->no_graphs)   /* captured on first use: a restarted worker is ready at once */
        ce_plan_graphs(e);
    *cfg = *c;
    *n_kv_blocks = e->n_blocks;
    return e;
fail:
    ce_free(e);
    return NULL;
}

