/* cpu_backend.c - the reference CPU backend (backend.h): fp32 forward of every supported
 * family over a mixed batch of prefill chunks and decodes, paged KV cache (kv_layout.h),
 * sampling (sampling.h).
 *
 * The math follows transformers' LlamaForCausalLM: RMSNorm, RoPE with half rotation (and
 * Llama-3.1 scaling), GQA attention, SiLU-gated MLP, optional tied embeddings; and per family
 * (model_config.h): q/k/v biases (Qwen2), RMSNorm of each q and k head before RoPE (Qwen3),
 * sliding-window attention (Mistral; Qwen from max_window_layers), a softmax top-k router over
 * SiLU-gated experts (Mixtral, Qwen3-MoE), computed token by token. Work is spread over a
 * thread pool by output rows (matmuls), tokens and (token, head) pairs (attention); every
 * value is computed the same way whatever else is in the batch, so a sequence's logits are
 * bit-identical alone or batched, and a chunked prefill gives the one-shot result.
 * FP8 (cpu_fp8.h): the projections' weights are their dequantized E4M3 values, their inputs
 * are rounded through per-token E4M3 first, and an E4M3 KV cache (1 byte an element, twice
 * the default capacity) is decoded row by row in attention.
 */
#include "backend.h"
#include "hold.h"
#include "cpu_ops.h"
#include "cpu_fp8.h"
#include "../kernels/fp8.h"
#include "cpu_pool.h"
#include "cpu_weights.h"
#include "kv_layout.h"
#include "sampling.h"
#include "../common/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DEFAULT_BATCH_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define DUMMY_SEED 0 /* make-model's default seed: --load-format dummy gives its weights */

typedef struct {
    backend base;          /* first: the backend * handed out points here */
    cpu_weights w;
    cpu_pool *pool;
    int n_threads;
    kv_layout kv;
    fp8_config fp8;
    float kv_scales[2];    /* E4M3 cache: k_scale, v_scale */
    size_t kv_elem;        /* bytes a KV element: 4 (fp32), 1 (E4M3) */
    void *k_cache;         /* [n_layers, n_blocks, block_size, n_kv_heads, head_dim] */
    void *v_cache;         /* same */
    void *held;            /* the holder's region mapped (weights, then K and V), or NULL */
    size_t held_bytes;
    int max_tokens, max_seqs, max_ctx;
    int q_dim, kv_dim, qkv_dim;
    float *inv_freq;       /* [head_dim / 2] */
    /* per-forward scratch */
    float *x;              /* [max_tokens, dim] residual stream */
    float *xn;             /* [max_tokens, dim] normalized */
    float *qkv;            /* [max_tokens, qkv_dim] */
    float *att;            /* [max_tokens, q_dim] attention output */
    float *gu;             /* [max_tokens, 2 * hidden_dim] gate, then up */
    float *act;            /* [max_tokens, hidden_dim] silu(gate) * up */
    float *router;         /* [max_tokens, n_experts] MoE router logits (MoE only) */
    float *moe_y;          /* [max_tokens, dim] MoE output before the residual add (MoE only) */
    int32_t *route;        /* [n_layers, max_tokens, k] experts chosen in the last forward (MoE
                              only; cpu_backend_routing) */
    float *rope_cos;       /* [max_tokens, head_dim / 2] */
    float *rope_sin;       /* [max_tokens, head_dim / 2] */
    int32_t *tok_seq;      /* [max_tokens] batch index of each token's sequence */
    int32_t *tok_pos;      /* [max_tokens] position of each token in its sequence */
    float *last_x;         /* [max_seqs, dim] final-normed last token of each sampled seq */
    float *logits;         /* [max_seqs, vocab] */
    int32_t *sample_seq;   /* [max_seqs] batch index of each logits row */
    int32_t *logit_row;    /* [max_seqs] logits row of each batch seq, -1 if it did not sample */
    int n_last_seqs;       /* seqs in the last forward */
    float *scores;         /* [n_threads, max_ctx] attention scratch */
    float *kv_rows;        /* [n_threads, head_dim] decoded E4M3 KV rows */
    sampler *samplers;     /* [n_threads] */
    /* current step, read by the tasks */
    fwd_batch *batch;
    int layer, n_tok, n_sample;
} cpu_backend;

/* ---- parallel matmul: out [n_tok, n_out] (+)= x [n_tok, n_in] . w [n_out, n_in]^T */
typedef struct {
    float *out;
    const float *x, *w;
    int n_tok, n_in, n_out, rows_per_task, accumulate;
} matmul_job;

static void matmul_task(void *arg, int task, int thread)
{
    const matmul_job *j = arg;
    int r0 = task * j->rows_per_task;
    int r1 = r0 + j->rows_per_task < j->n_out ? r0 + j->rows_per_task : j->n_out;
    cpu_matmul_rows(j->out, j->n_out, j->x, j->n_in, j->n_tok, j->w, j->n_in, r0, r1,
                    j->accumulate);
}

static void matmul(cpu_backend *b, float *out, const float *x, int n_tok, const float *w,
                   int n_out, int n_in, int accumulate)
{
    int n_tasks = b->n_threads * 4;
    int rows = (n_out + n_tasks - 1) / n_tasks;
    rows = rows < 4 ? 4 : rows;
    matmul_job j = {out, x, w, n_tok, n_in, n_out, rows, accumulate};
    cpu_pool_run(b->pool, matmul_task, &j, (n_out + rows - 1) / rows);
}

/* ---- per-token steps */
static void rope_table_task(void *arg, int t, int thread)
{
    cpu_backend *b = arg;
    int n_half = b->base.cfg.head_dim / 2;
    cpu_rope_cos_sin(b->rope_cos + (size_t)t * n_half, b->rope_sin + (size_t)t * n_half,
                     b->inv_freq, n_half, b->tok_pos[t]);
}

typedef struct {
    cpu_backend *b;
    const float *weight; /* [dim] */
} norm_job;

static void norm_task(void *arg, int t, int thread)
{
    const norm_job *j = arg;
    const model_config *c = &j->b->base.cfg;
    cpu_rmsnorm(j->b->xn + (size_t)t * c->dim, j->b->x + (size_t)t * c->dim, j->weight, c->dim,
                c->norm_eps);
}

static void run_norm(cpu_backend *b, const float *weight)
{
    norm_job j = {b, weight};
    cpu_pool_run(b->pool, norm_task, &j, b->n_tok);
}

/* RoPE on the q and k heads of token T, then K and V into the token's page. */
static void rope_store_task(void *arg, int t, int thread)
{
    cpu_backend *b = arg;
    const model_config *c = &b->base.cfg;
    int hd = c->head_dim, n_half = hd / 2;
    float *q = b->qkv + (size_t)t * b->qkv_dim, *k = q + b->q_dim, *v = k + b->kv_dim;
    const float *cs = b->rope_cos + (size_t)t * n_half, *sn = b->rope_sin + (size_t)t * n_half;
    const cpu_layer *ly = &b->w.layers[b->layer];
    if (ly->bqkv)
        for (int i = 0; i < b->qkv_dim; i++)
            q[i] += ly->bqkv[i];
    if (ly->q_norm) {
        for (int h = 0; h < c->n_heads; h++)
            cpu_rmsnorm(q + h * hd, q + h * hd, ly->q_norm, hd, c->norm_eps);
        for (int h = 0; h < c->n_kv_heads; h++)
            cpu_rmsnorm(k + h * hd, k + h * hd, ly->k_norm, hd, c->norm_eps);
    }
    for (int h = 0; h < c->n_heads; h++)
        cpu_rope_apply(q + h * hd, cs, sn, n_half);
    for (int h = 0; h < c->n_kv_heads; h++)
        cpu_rope_apply(k + h * hd, cs, sn, n_half);
    const fwd_seq *s = &b->batch->seqs[b->tok_seq[t]];
    size_t off = kv_token_offset(&b->kv, b->layer, s->block_table, b->tok_pos[t]);
    if (b->fp8.kv_fp8) {
        cpu_fp8_kv_encode((uint8_t *)b->k_cache + off, k, b->kv_dim, b->kv_scales[0]);
        cpu_fp8_kv_encode((uint8_t *)b->v_cache + off, v, b->kv_dim, b->kv_scales[1]);
        return;
    }
    memcpy((float *)b->k_cache + off, k, (size_t)b->kv_dim * sizeof(float));
    memcpy((float *)b->v_cache + off, v, (size_t)b->kv_dim * sizeof(float));
}

static void attn_task(void *arg, int task, int thread)
{
    cpu_backend *b = arg;
    const model_config *c = &b->base.cfg;
    int t = task / c->n_heads, h = task % c->n_heads, hd = c->head_dim;
    const fwd_seq *s = &b->batch->seqs[b->tok_seq[t]];
    int win = model_layer_window(c, b->layer), end = b->tok_pos[t] + 1;
    int j0 = win > 0 && end > win ? end - win : 0;   /* transformers: kv > q - window */
    cpu_attend(b->att + (size_t)t * b->q_dim + h * hd, b->qkv + (size_t)t * b->qkv_dim + h * hd,
               b->k_cache, b->v_cache, &b->kv, b->layer, s->block_table, j0, end,
               h / (c->n_heads / c->n_kv_heads), 1.0f / sqrtf((float)hd),
               b->fp8.kv_fp8 ? b->kv_scales : NULL, b->kv_rows + (size_t)thread * hd,
               b->scores + (size_t)thread * b->max_ctx);
}

/* FP8 activations: the rows an FP8 projection reads, rounded through per-token E4M3. */
typedef struct {
    float *x;
    int n;   /* row length (and stride) */
} qdq_job;

static void qdq_task(void *arg, int t, int thread)
{
    const qdq_job *j = arg;
    fp8_qdq_row(j->x + (size_t)t * j->n, j->n);
}

/* The input X [n_tok, n_in] of a projection, quantized per token when weights are FP8. */
static void fp8_input(cpu_backend *b, float *x, int n_in)
{
    if (b->fp8.weights == FP8_W_NONE)
        return;
    qdq_job j = {x, n_in};
    cpu_pool_run(b->pool, qdq_task, &j, b->n_tok);
}

static void silu_task(void *arg, int t, int thread)
{
    cpu_backend *b = arg;
    int hid = b->base.cfg.hidden_dim;
    const float *g = b->gu + (size_t)t * 2 * hid, *u = g + hid;
    float *a = b->act + (size_t)t * hid;
    for (int i = 0; i < hid; i++)
        a[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* The MoE MLP of token T (xn normed): route, then each chosen expert's gate/up, SiLU-mul and
 * down, weighted and summed in the router's order, then added to the residual x. */
static void moe_task(void *arg, int t, int thread)
{
    cpu_backend *b = arg;
    const model_config *c = &b->base.cfg;
    const cpu_layer *ly = &b->w.layers[b->layer];
    const weights_layout *wl = &b->w.layout;
    int dim = c->dim, hid = c->hidden_dim, n_exp = c->n_experts;
    const float *xn = b->xn + (size_t)t * dim;
    float *logits = b->router + (size_t)t * n_exp, *y = b->moe_y + (size_t)t * dim;
    float *gu = b->gu + (size_t)t * 2 * hid, *x = b->x + (size_t)t * dim;
    int sel[MODEL_MAX_EXPERTS_USED];
    float wt[MODEL_MAX_EXPERTS_USED];
    cpu_matmul_rows(logits, n_exp, xn, dim, 1, ly->w_router, dim, 0, n_exp, 0);
    cpu_moe_route(logits, n_exp, c->n_experts_used, c->moe_renorm, sel, wt);
    int32_t *route = b->route + ((size_t)b->layer * b->max_tokens + t) * c->n_experts_used;
    for (int k = 0; k < c->n_experts_used; k++)
        route[k] = sel[k];
    memset(y, 0, (size_t)dim * sizeof *y);
    for (int k = 0; k < c->n_experts_used; k++) {
        const float *w_gu = ly->w_gate_up + (size_t)sel[k] * wl->expert_gate_up_stride;
        const float *w_dn = ly->w_down + (size_t)sel[k] * wl->expert_down_stride;
        cpu_matmul_rows(gu, 2 * hid, xn, dim, 1, w_gu, dim, 0, 2 * hid, 0);
        silu_task(b, t, thread);
        for (int r = 0; r < dim; r++)
            y[r] += wt[k] * cpu_dot(w_dn + (size_t)r * hid, b->act + (size_t)t * hid, hid);
    }
    for (int r = 0; r < dim; r++)
        x[r] += y[r];
}

static void sample_task(void *arg, int k, int thread)
{
    cpu_backend *b = arg;
    fwd_seq *s = &b->batch->seqs[b->sample_seq[k]];
    int n = s->n_cached + s->n_new;
    int n_prompt = s->n_prompt < n ? s->n_prompt : n;
    const float *logits = b->logits + (size_t)k * b->base.cfg.vocab_size;
    sample_input in = {s->params, s->tokens, n, n_prompt, s->suppress, s->n_suppress};
    s->out_token = sampler_sample(&b->samplers[thread], logits, &in, &s->out_logprob);
    if (s->params->n_top_logprobs > 0)
        sampler_top_logprobs(&b->samplers[thread], logits, s->params->n_top_logprobs, s->out_top_ids,
                             s->out_top_lps);
}

static int check_batch(const cpu_backend *b, const fwd_batch *batch)
{
    fwd_limits l = {b->max_seqs, b->max_tokens, b->max_ctx, b->base.cfg.vocab_size, b->kv.block_size,
                    b->kv.n_blocks};
    return fwd_batch_check(batch, &l, "cpu");
}

static int cpu_forward(backend *base, fwd_batch *batch)
{
    cpu_backend *b = (cpu_backend *)base;
    const model_config *c = &base->cfg;
    const int dim = c->dim, hid = c->hidden_dim;
    int rc = check_batch(b, batch);
    if (rc < 0)
        return rc;
    b->batch = batch;
    b->n_tok = 0;
    b->n_sample = 0;
    b->n_last_seqs = batch->n_seqs;
    for (int i = 0; i < batch->n_seqs; i++) {
        const fwd_seq *s = &batch->seqs[i];
        for (int j = 0; j < s->n_new; j++, b->n_tok++) {
            int pos = s->n_cached + j;
            b->tok_seq[b->n_tok] = i;
            b->tok_pos[b->n_tok] = pos;
            memcpy(b->x + (size_t)b->n_tok * dim, b->w.embed + (size_t)s->tokens[pos] * dim,
                   (size_t)dim * sizeof(float));
        }
    }
    const int n_tok = b->n_tok;
    cpu_pool_run(b->pool, rope_table_task, b, n_tok);
    for (int l = 0; l < c->n_layers; l++) {
        const cpu_layer *ly = &b->w.layers[l];
        b->layer = l;
        run_norm(b, ly->attn_norm);
        fp8_input(b, b->xn, dim);
        matmul(b, b->qkv, b->xn, n_tok, ly->wqkv, b->qkv_dim, dim, 0);
        cpu_pool_run(b->pool, rope_store_task, b, n_tok);
        cpu_pool_run(b->pool, attn_task, b, n_tok * c->n_heads);
        fp8_input(b, b->att, b->q_dim);
        matmul(b, b->x, b->att, n_tok, ly->wo, dim, b->q_dim, 1);
        run_norm(b, ly->ffn_norm);
        if (c->n_experts > 0) {
            cpu_pool_run(b->pool, moe_task, b, n_tok);
            continue;
        }
        fp8_input(b, b->xn, dim);
        matmul(b, b->gu, b->xn, n_tok, ly->w_gate_up, 2 * hid, dim, 0);
        cpu_pool_run(b->pool, silu_task, b, n_tok);
        fp8_input(b, b->act, hid);
        matmul(b, b->x, b->act, n_tok, ly->w_down, dim, hid, 1);
    }
    int t_end = 0;
    for (int i = 0; i < batch->n_seqs; i++) {
        const fwd_seq *s = &batch->seqs[i];
        t_end += s->n_new;
        b->logit_row[i] = -1;
        if (!s->sample)
            continue;
        cpu_rmsnorm(b->last_x + (size_t)b->n_sample * dim, b->x + (size_t)(t_end - 1) * dim,
                    b->w.norm, dim, c->norm_eps);
        b->sample_seq[b->n_sample] = i;
        b->logit_row[i] = b->n_sample++;
    }
    if (b->n_sample > 0) {
        matmul(b, b->logits, b->last_x, b->n_sample, b->w.lm_head, c->vocab_size, dim, 0);
        cpu_pool_run(b->pool, sample_task, b, b->n_sample);
    }
    b->batch = NULL;
    return 0;
}

static const float *cpu_last_logits(backend *base, int i)
{
    cpu_backend *b = (cpu_backend *)base;
    if (i < 0 || i >= b->n_last_seqs || b->logit_row[i] < 0)
        return NULL;
    return b->logits + (size_t)b->logit_row[i] * base->cfg.vocab_size;
}

const int32_t *cpu_backend_routing(backend *base)
{
    if (!base || strcmp(base->name, "cpu") != 0)
        return NULL;
    return ((cpu_backend *)base)->route;
}

static void cpu_free(backend *base)
{
    cpu_backend *b = (cpu_backend *)base;
    if (!b)
        return;
    cpu_weights_free(&b->w);
    if (b->samplers)
        for (int i = 0; i < b->n_threads; i++)
            sampler_free(&b->samplers[i]);
    free(b->samplers);
    cpu_pool_free(b->pool);
    if (b->held)
        munmap(b->held, b->held_bytes);
    else {
        free(b->k_cache);
        free(b->v_cache);
    }
    free(b->inv_freq);
    free(b->x);
    free(b->xn);
    free(b->qkv);
    free(b->att);
    free(b->gu);
    free(b->act);
    free(b->router);
    free(b->moe_y);
    free(b->route);
    free(b->rope_cos);
    free(b->rope_sin);
    free(b->tok_seq);
    free(b->tok_pos);
    free(b->last_x);
    free(b->logits);
    free(b->sample_seq);
    free(b->logit_row);
    free(b->scores);
    free(b->kv_rows);
    free(b);
}

static int alloc_state(cpu_backend *b, char *err, size_t n_err)
{
    const model_config *c = &b->base.cfg;
    size_t M = (size_t)b->max_tokens, S = (size_t)b->max_seqs, half = (size_t)c->head_dim / 2;
    if (!b->held) {
        b->k_cache = calloc(kv_elems(&b->kv), b->kv_elem); /* pages mapped on first touch */
        b->v_cache = calloc(kv_elems(&b->kv), b->kv_elem);
    }
    b->inv_freq = malloc(half * sizeof(float));
    b->x = malloc(M * c->dim * sizeof(float));
    b->xn = malloc(M * c->dim * sizeof(float));
    b->qkv = malloc(M * b->qkv_dim * sizeof(float));
    b->att = malloc(M * b->q_dim * sizeof(float));
    b->gu = malloc(M * 2 * c->hidden_dim * sizeof(float));
    b->act = malloc(M * c->hidden_dim * sizeof(float));
    if (c->n_experts > 0) {
        b->router = malloc(M * c->n_experts * sizeof(float));
        b->moe_y = malloc(M * c->dim * sizeof(float));
        b->route = malloc((size_t)c->n_layers * M * c->n_experts_used * sizeof(int32_t));
        if (!b->router || !b->moe_y || !b->route)
            goto oom;
    }
    b->rope_cos = malloc(M * half * sizeof(float));
    b->rope_sin = malloc(M * half * sizeof(float));
    b->tok_seq = malloc(M * sizeof(int32_t));
    b->tok_pos = malloc(M * sizeof(int32_t));
    b->last_x = malloc(S * c->dim * sizeof(float));
    b->logits = malloc(S * c->vocab_size * sizeof(float));
    b->sample_seq = malloc(S * sizeof(int32_t));
    b->logit_row = malloc(S * sizeof(int32_t));
    b->scores = malloc((size_t)b->n_threads * b->max_ctx * sizeof(float));
    b->kv_rows = malloc((size_t)b->n_threads * c->head_dim * sizeof(float));
    b->samplers = calloc((size_t)b->n_threads, sizeof(sampler));
    if (!b->k_cache || !b->v_cache || !b->inv_freq || !b->x || !b->xn || !b->qkv || !b->att ||
        !b->gu || !b->act || !b->rope_cos || !b->rope_sin || !b->tok_seq || !b->tok_pos ||
        !b->last_x || !b->logits || !b->sample_seq || !b->logit_row || !b->scores ||
        !b->kv_rows || !b->samplers)
        goto oom;
    for (int i = 0; i < b->n_threads; i++)
        if (sampler_init(&b->samplers[i], c->vocab_size) < 0)
            goto oom;
    cpu_rope_inv_freq(b->inv_freq, c);
    return 0;
oom:
    snprintf(err, n_err, "cpu backend: out of memory (KV cache %zu MB, %d batch tokens)",
             2 * kv_elems(&b->kv) * b->kv_elem >> 20, b->max_tokens);
    return -1;
}

/* Maps the holder's region (hold.h) and lays the weights and the KV cache out over it,
 * after checking that it holds this model's weights and a cache of its shape. */
static int attach_hold(cpu_backend *b, const backend_opts *o, char *err, size_t n_err)
{
    const msg_holder_attached *h = o->hold;
    const model_config *c = &b->base.cfg;
    weights_layout wl;
    weights_layout_init(&wl, c, 1);
    b->kv = (kv_layout){c->n_layers, h->n_kv_blocks, o->block_size, c->n_kv_heads, c->head_dim};
    if (h->kind != HOLD_CPU_F32 || h->n_kv_blocks < 1 || h->weights_bytes != wl.n_elems * sizeof(float) ||
        h->kv_bytes != 2 * kv_elems(&b->kv) * sizeof(float)) {
        snprintf(err, n_err, "cpu backend: the holder keeps another model or layout (kind %d, "
                 "%llu weight bytes, %llu KV bytes; this model wants %zu weight bytes)",
                 h->kind, (unsigned long long)h->weights_bytes, (unsigned long long)h->kv_bytes,
                 wl.n_elems * sizeof(float));
        return -1;
    }
    size_t kv_off = hold_kv_offset(h->weights_bytes);
    b->held_bytes = kv_off + h->kv_bytes;
    if (!(b->held = hold_shm_map(o->hold_region, b->held_bytes, err, n_err)))
        return -1;
    b->k_cache = (char *)b->held + kv_off;
    b->v_cache = (float *)b->k_cache + kv_elems(&b->kv);
    return cpu_weights_init(&b->w, c, b->held, err, n_err);
}

backend *cpu_backend_init(const backend_opts *o, char *err, size_t n_err)
{
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    b->base.name = "cpu";
    b->base.forward = cpu_forward;
    b->base.last_logits = cpu_last_logits;
    b->base.free = cpu_free;
    model_config *c = &b->base.cfg;
    if (!o->model_dir) {
        snprintf(err, n_err, "cpu backend: no model directory");
        goto fail;
    }
    if (model_config_load(c, o->model_dir, err, n_err) < 0 ||
        fp8_config_load(&b->fp8, o->model_dir, c, o->quant_fp8, o->kv_fp8, err, n_err) < 0)
        goto fail;
    if (o->hold && (b->fp8.weights || b->fp8.kv_fp8)) {
        snprintf(err, n_err, "cpu backend: FP8 weights or KV cache are not supported with the "
                 "holder (run without it: launch.sh --no-holder)");
        goto fail;
    }
    b->kv_scales[0] = b->fp8.k_scale;
    b->kv_scales[1] = b->fp8.v_scale;
    b->kv_elem = b->fp8.kv_fp8 ? 1 : sizeof(float);
    if (o->block_size <= 0) {
        snprintf(err, n_err, "cpu backend: block size %d", o->block_size);
        goto fail;
    }
    b->pool = cpu_pool_init(o->n_threads);
    if (!b->pool) {
        snprintf(err, n_err, "cpu backend: cannot start threads");
        goto fail;
    }
    b->n_threads = cpu_pool_threads(b->pool);
    b->q_dim = c->n_heads * c->head_dim;
    b->kv_dim = c->n_kv_heads * c->head_dim;
    b->qkv_dim = b->q_dim + 2 * b->kv_dim;
    b->max_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : DEFAULT_BATCH_TOKENS;
    b->max_seqs = o->max_seqs > 0 ? o->max_seqs : DEFAULT_MAX_SEQS;
    b->max_ctx = o->max_seq_len > 0 ? o->max_seq_len : c->max_seq_len;
    if (o->hold) {
        if (attach_hold(b, o, err, n_err) < 0)
            goto fail;
    } else if (kv_layout_cpu(&b->kv, c, o->kv_tokens > 0 ? o->kv_tokens
                                        : (b->fp8.kv_fp8 ? 2 : 1) * KV_CPU_DEFAULT_TOKENS,
                             o->block_size, err, n_err) < 0) {
        goto fail;
    }
    b->base.n_kv_blocks = b->kv.n_blocks;
    if (alloc_state(b, err, n_err) < 0)
        goto fail;
    int rc = o->hold ? 0
             : o->dummy_weights ? cpu_weights_random(&b->w, c, DUMMY_SEED, b->pool, &b->fp8, err, n_err)
                                : cpu_weights_load(&b->w, c, o->model_dir, &b->fp8, err, n_err);
    if (rc < 0)
        goto fail;
    LOG_INFO("cpu backend: %s, %s weights (%s), dim %d, %d layers, %d/%d heads, vocab %d; "
             "KV %d blocks of %d tokens (%zu MB); %d threads", model_arch_name(c->arch),
             o->hold ? "the holder's" : o->dummy_weights ? "random" : "loaded", fp8_describe(&b->fp8),
             c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, b->kv.n_blocks,
             b->kv.block_size, 2 * kv_elems(&b->kv) * b->kv_elem >> 20, b->n_threads);
    return &b->base;
fail:
    cpu_free(&b->base);
    return NULL;
}
