/* cuda_backend.cu - the CUDA engine's forward (cuda_backend.h; its setup is cuda_setup.cu's),
 * in five stages:
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
#include "../kernels/cuda_check.cuh"
#include "../kernels/decode_attn.cuh"
#include "../kernels/sample_greedy.cuh"
#include "../kernels/topk_logprobs.cuh"

#include <math.h>
#include <string.h>

static_assert(TOPK_LOGPROBS_MAX == FWD_MAX_TOP_LOGPROBS, "fwd_seq's top-logprob arrays");

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
