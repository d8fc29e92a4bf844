/* test_cpu_backend.c - the reference CPU backend on random tiny models made by make-model:
 * (a) a batched, paged, mixed prefill/decode forward gives each sequence bit-identical logits
 *     and tokens to running it alone;
 * (b) chunked prefill agrees with one-shot prefill (1e-5 relative);
 * (c) a naive dense double-precision reference written here (plain loops, no paging, its own
 *     RoPE / Llama-3.1 scaling) agrees on logits within 1e-4 relative, for a tied fp32 model
 *     and an untied bf16 GQA model with rope scaling;
 * (d) block sizes 1 and 16 agree bit for bit, as do dummy weights and make-model's weights
 *     (same seed) and thread counts; bad batches are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/safetensors.h"
#include "../../worker/backend.h"

static char g_make_model[4096];
static char g_dir_a[256], g_dir_b[256];

/* ---------------------------------------------------------------- helpers */

static backend *open_backend(const char *dir, int block_size, int dummy, int n_threads)
{
    char err[1024];
    backend_opts o = {.model_dir = dir, .dummy_weights = dummy, .block_size = block_size,
                      .max_seq_len = 512, .max_batch_tokens = 512, .max_seqs = 16,
                      .kv_tokens = 4096, .n_threads = n_threads};
    backend *b = cpu_backend_init(&o, err, sizeof err);
    if (!b)
        fprintf(stderr, "cpu_backend_init: %s\n", err);
    assert_non_null(b);
    assert_int_equal(b->n_kv_blocks, 4096 / block_size);
    return b;
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const double *b, int n)
{
    double d = 0, m = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

static double rel_diff_f(const float *a, const float *b, int n)
{
    double d = 0, m = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* Block table [n] of distinct random blocks from a shuffled pool of N_BLOCKS: *NEXT is the
 * first unused entry of POOL. */
static void take_blocks(int32_t *bt, int n, const int32_t *pool, int *next)
{
    for (int i = 0; i < n; i++)
        bt[i] = pool[(*next)++];
}

static int32_t *shuffled_blocks(int n)
{
    int32_t *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++)
        p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static void random_tokens(int32_t *t, int n, int vocab)
{
    for (int i = 0; i < n; i++)
        t[i] = rand() % vocab;
}

/* Runs a whole prompt [n] in chunks of sizes CHUNKS (0-terminated, the last one repeated),
 * sampling at the end; copies the last logits to OUT [vocab]; returns the sampled token. */
static int run_prefill(backend *b, const int32_t *tokens, int n, const int32_t *bt,
                       const int *chunks, const sampling_params *p, float *out)
{
    fwd_seq s = {.tokens = tokens, .block_table = bt, .params = p, .n_prompt = n};
    fwd_batch batch = {1, &s};
    int done = 0, c = 0;
    while (done < n) {
        int len = chunks[c] ? chunks[c] : chunks[c - 1];
        c += chunks[c] != 0;
        s.n_cached = done;
        s.n_new = len < n - done ? len : n - done;
        s.sample = done + s.n_new == n;
        assert_int_equal(b->forward(b, &batch), 0);
        if (!s.sample)
            assert_null(b->last_logits(b, 0));
        done += s.n_new;
    }
    memcpy(out, b->last_logits(b, 0), (size_t)b->cfg.vocab_size * sizeof *out);
    return s.out_token;
}

/* ---------------------------------------------------------------- dense reference */

typedef struct {
    model_config c;
    float *embed, *lm_head, *norm;                        /* [vocab, dim], [vocab, dim], [dim] */
    float **attn_norm, **wq, **wk, **wv, **wo;            /* per layer, HF shapes */
    float **ffn_norm, **wg, **wu, **wd;
    safetensors st;
} ref_model;

static float *ref_load(ref_model *m, const char *name, int64_t rows, int64_t cols)
{
    char err[512];
    int64_t shape[2] = {rows, cols};
    float *p = malloc((size_t)(rows * (cols ? cols : 1)) * sizeof *p);
    int rc = st_load_f32(&m->st, name, cols ? 2 : 1, shape, p, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return p;
}

static void ref_open(ref_model *m, const char *dir)
{
    char err[512], nm[128];
    assert_int_equal(model_config_load(&m->c, dir, err, sizeof err), 0);
    assert_int_equal(st_open_dir(&m->st, dir, err, sizeof err), 0);
    const model_config *c = &m->c;
    int L = c->n_layers, hd = c->head_dim;
    m->embed = ref_load(m, "model.embed_tokens.weight", c->vocab_size, c->dim);
    m->lm_head = c->tie_embeddings ? m->embed : ref_load(m, "lm_head.weight", c->vocab_size, c->dim);
    m->norm = ref_load(m, "model.norm.weight", c->dim, 0);
    float ***arrs[] = {&m->attn_norm, &m->wq, &m->wk, &m->wv, &m->wo,
                       &m->ffn_norm, &m->wg, &m->wu, &m->wd};
    for (int i = 0; i < 9; i++)
        *arrs[i] = calloc((size_t)L, sizeof(float *));
    for (int l = 0; l < L; l++) {
#define LD(arr, sfx, r, cc) (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, sfx), \
                             arr[l] = ref_load(m, nm, r, cc))
        LD(m->attn_norm, "input_layernorm.weight", c->dim, 0);
        LD(m->wq, "self_attn.q_proj.weight", c->n_heads * hd, c->dim);
        LD(m->wk, "self_attn.k_proj.weight", c->n_kv_heads * hd, c->dim);
        LD(m->wv, "self_attn.v_proj.weight", c->n_kv_heads * hd, c->dim);
        LD(m->wo, "self_attn.o_proj.weight", c->dim, c->n_heads * hd);
        LD(m->ffn_norm, "post_attention_layernorm.weight", c->dim, 0);
        LD(m->wg, "mlp.gate_proj.weight", c->hidden_dim, c->dim);
        LD(m->wu, "mlp.up_proj.weight", c->hidden_dim, c->dim);
        LD(m->wd, "mlp.down_proj.weight", c->dim, c->hidden_dim);
#undef LD
    }
}

static void ref_close(ref_model *m)
{
    float **arrs[] = {m->attn_norm, m->wq, m->wk, m->wv, m->wo, m->ffn_norm, m->wg, m->wu, m->wd};
    for (int i = 0; i < 9; i++) {
        for (int l = 0; l < m->c.n_layers; l++)
            free(arrs[i][l]);
        free(arrs[i]);
    }
    if (m->lm_head != m->embed)
        free(m->lm_head);
    free(m->embed);
    free(m->norm);
    st_free(&m->st);
}

/* y [rows] = W [rows, cols] x [cols] */
static void ref_matvec(double *y, const float *w, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < cols; k++)
            s += (double)w[(size_t)r * cols + k] * x[k];
        y[r] = s;
    }
}

static void ref_rmsnorm(double *y, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = w[i] * x[i] * r;
}

/* HF's default inverse frequencies, with Llama-3.1 scaling when configured */
static double ref_inv_freq(const model_config *c, int i)
{
    double f = pow(c->rope_theta, -2.0 * i / c->head_dim);
    if (c->rope_factor == 0)
        return f;
    double wavelen = 2 * M_PI / f;
    double lo = c->rope_orig_max_pos / c->rope_low_freq_factor;
    double hi = c->rope_orig_max_pos / c->rope_high_freq_factor;
    if (wavelen < hi)
        return f;
    if (wavelen > lo)
        return f / c->rope_factor;
    double s = (c->rope_orig_max_pos / wavelen - c->rope_low_freq_factor) /
               (c->rope_high_freq_factor - c->rope_low_freq_factor);
    return (1 - s) * f / c->rope_factor + s * f;
}

/* rotate_half convention: out = x * cos + rotate_half(x) * sin */
static void ref_rope(double *x, const model_config *c, int pos)
{
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double a = pos * ref_inv_freq(c, i), x1 = x[i], x2 = x[i + half];
        x[i] = x1 * cos(a) - x2 * sin(a);
        x[i + half] = x2 * cos(a) + x1 * sin(a);
    }
}

/* Logits [vocab] at the last of N tokens, dense and causal. */
static void ref_forward(const ref_model *m, const int32_t *tokens, int n, double *logits)
{
    const model_config *c = &m->c;
    int dim = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int hid = c->hidden_dim, group = c->n_heads / c->n_kv_heads;
    double *x = calloc((size_t)n * dim, sizeof *x), *xn = malloc(dim * sizeof *xn);
    double *q = malloc((size_t)n * qd * sizeof *q), *k = malloc((size_t)n * kvd * sizeof *k);
    double *v = malloc((size_t)n * kvd * sizeof *v), *att = malloc(qd * sizeof *att);
    double *tmp = malloc((size_t)(dim > hid ? dim : hid) * sizeof *tmp);
    double *g = malloc(hid * sizeof *g), *u = malloc(hid * sizeof *u);
    double *sc = malloc((size_t)n * sizeof *sc);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++)
            x[(size_t)t * dim + i] = m->embed[(size_t)tokens[t] * dim + i];
    for (int l = 0; l < c->n_layers; l++) {
        for (int t = 0; t < n; t++) {
            ref_rmsnorm(xn, x + (size_t)t * dim, m->attn_norm[l], dim, c->norm_eps);
            ref_matvec(q + (size_t)t * qd, m->wq[l], xn, qd, dim);
            ref_matvec(k + (size_t)t * kvd, m->wk[l], xn, kvd, dim);
            ref_matvec(v + (size_t)t * kvd, m->wv[l], xn, kvd, dim);
            for (int h = 0; h < c->n_heads; h++)
                ref_rope(q + (size_t)t * qd + h * hd, c, t);
            for (int h = 0; h < c->n_kv_heads; h++)
                ref_rope(k + (size_t)t * kvd + h * hd, c, t);
        }
        for (int t = 0; t < n; t++) {
            for (int h = 0; h < c->n_heads; h++) {
                const double *qh = q + (size_t)t * qd + h * hd;
                int kh = h / group;
                double max = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++)
                        s += qh[d] * k[(size_t)j * kvd + kh * hd + d];
                    sc[j] = s / sqrt(hd);
                    max = fmax(max, sc[j]);
                }
                for (int j = 0; j <= t; j++)
                    sum += sc[j] = exp(sc[j] - max);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j <= t; j++)
                        o += sc[j] * v[(size_t)j * kvd + kh * hd + d];
                    att[h * hd + d] = o / sum;
                }
            }
            ref_matvec(tmp, m->wo[l], att, dim, qd);
            for (int i = 0; i < dim; i++)
                x[(size_t)t * dim + i] += tmp[i];
            ref_rmsnorm(xn, x + (size_t)t * dim, m->ffn_norm[l], dim, c->norm_eps);
            ref_matvec(g, m->wg[l], xn, hid, dim);
            ref_matvec(u, m->wu[l], xn, hid, dim);
            for (int i = 0; i < hid; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_matvec(tmp, m->wd[l], g, dim, hid);
            for (int i = 0; i < dim; i++)
                x[(size_t)t * dim + i] += tmp[i];
        }
    }
    ref_rmsnorm(xn, x + (size_t)(n - 1) * dim, m->norm, dim, c->norm_eps);
    ref_matvec(logits, m->lm_head, xn, c->vocab_size, dim);
    free(x); free(xn); free(q); free(k); free(v); free(att); free(tmp); free(g); free(u); free(sc);
}

/* ---------------------------------------------------------------- tests */

/* (c) backend vs the dense reference, prefill then greedy decodes. */
static void check_reference(const char *dir, int block_size)
{
    ref_model m = {0};
    ref_open(&m, dir);
    backend *b = open_backend(dir, block_size, 0, 3);
    int V = m.c.vocab_size, n = 37;
    int32_t tokens[64], bt[64];
    int32_t *pool = shuffled_blocks(b->n_kv_blocks);
    int next = 0;
    take_blocks(bt, (64 + block_size - 1) / block_size, pool, &next);
    random_tokens(tokens, n, V);
    float *got = malloc(V * sizeof *got);
    double *want = malloc(V * sizeof *want), worst = 0;
    sampling_params greedy = {.top_p = 1, .repetition_penalty = 1};
    int chunks[] = {n, 0};
    tokens[n] = run_prefill(b, tokens, n, bt, chunks, &greedy, got);
    for (int step = 0; step < 6; step++) {
        ref_forward(&m, tokens, n, want);
        double d = rel_diff(got, want, V);
        worst = fmax(worst, d);
        assert_true(d < 1e-4);
        int best = 0;
        for (int i = 1; i < V; i++)
            best = want[i] > want[best] ? i : best;
        /* greedy token is the reference argmax unless two logits are within the error */
        if (tokens[n] != best)
            assert_true(want[best] - want[tokens[n]] < 1e-4 * fabs(want[best]));
        fwd_seq s = {.n_cached = n, .n_new = 1, .sample = 1, .tokens = tokens,
                     .block_table = bt, .params = &greedy};
        fwd_batch batch = {1, &s};
        n++;
        assert_int_equal(b->forward(b, &batch), 0);
        tokens[n] = s.out_token;
        memcpy(got, b->last_logits(b, 0), V * sizeof *got);
    }
    printf("    %s (block %d): max relative logit difference to the dense reference %.2e\n",
           dir, block_size, worst);
    free(got);
    free(want);
    free(pool);
    b->free(b);
    ref_close(&m);
}

static void test_reference(void **state)
{
    check_reference(g_dir_a, 16);
    check_reference(g_dir_b, 3);
}

/* (b) chunked prefill == one-shot prefill, and decodes after it */
static void test_chunked(void **state)
{
    backend *b = open_backend(g_dir_b, 8, 0, 2);
    int V = b->cfg.vocab_size, n = 100;
    int32_t tok1[128], tok2[128], bt1[16], bt2[16];
    int32_t *pool = shuffled_blocks(b->n_kv_blocks);
    int next = 0;
    take_blocks(bt1, 16, pool, &next);
    take_blocks(bt2, 16, pool, &next);
    random_tokens(tok1, n, V);
    memcpy(tok2, tok1, sizeof tok1);
    float *l1 = malloc(V * sizeof *l1), *l2 = malloc(V * sizeof *l2);
    sampling_params greedy = {.top_p = 1, .repetition_penalty = 1};
    int one[] = {n, 0}, several[] = {7, 30, 1, 50, 0};
    tok1[n] = run_prefill(b, tok1, n, bt1, one, &greedy, l1);
    tok2[n] = run_prefill(b, tok2, n, bt2, several, &greedy, l2);
    assert_true(rel_diff_f(l2, l1, V) < 1e-5);
    assert_int_equal(tok1[n], tok2[n]);
    for (int step = 0; step < 5; step++) {
        int32_t *toks[2] = {tok1, tok2}, *bts[2] = {bt1, bt2};
        float *ls[2] = {l1, l2};
        for (int k = 0; k < 2; k++) {
            fwd_seq s = {.n_cached = n + step, .n_new = 1, .sample = 1, .tokens = toks[k],
                         .block_table = bts[k], .params = &greedy};
            fwd_batch batch = {1, &s};
            assert_int_equal(b->forward(b, &batch), 0);
            toks[k][n + step + 1] = s.out_token;
            memcpy(ls[k], b->last_logits(b, 0), V * sizeof(float));
        }
        assert_true(rel_diff_f(l2, l1, V) < 1e-5);
        assert_int_equal(tok1[n + step + 1], tok2[n + step + 1]);
    }
    free(l1);
    free(l2);
    free(pool);
    b->free(b);
}

/* (a) a mixed batch (prefill chunks and decodes of sequences starting at different steps)
 * gives each sequence exactly the logits and tokens it gets alone. */
enum { N_SEQ = 6, MAX_STEPS = 12, MAX_TOK = 160 };

typedef struct {
    int start;              /* step at which the sequence joins */
    int n_prompt;
    int chunk;              /* prefill chunk size */
    sampling_params p;
    int32_t tokens[MAX_TOK];
    int32_t bt[MAX_TOK];
    int n_cached;
    float logits[MAX_STEPS][512]; /* at each sampling step */
    int n_logits;
} plan_seq;

/* This step's piece of S: fills F; 0 if S is not running at STEP. */
static int plan_piece(plan_seq *s, int step, fwd_seq *f)
{
    if (step < s->start || s->n_cached >= s->n_prompt + 5)
        return 0;
    int n_have = s->n_cached < s->n_prompt ? s->n_prompt : s->n_cached + 1;
    int n_new = s->n_cached < s->n_prompt ? s->chunk : 1;
    n_new = n_new < n_have - s->n_cached ? n_new : n_have - s->n_cached;
    *f = (fwd_seq){.n_cached = s->n_cached, .n_new = n_new,
                   .sample = s->n_cached + n_new >= s->n_prompt, .tokens = s->tokens,
                   .block_table = s->bt, .params = &s->p, .n_prompt = s->n_prompt};
    return 1;
}

static void plan_done(plan_seq *s, backend *b, const fwd_seq *f, int i)
{
    s->n_cached += f->n_new;
    if (!f->sample)
        return;
    memcpy(s->logits[s->n_logits++], b->last_logits(b, i), b->cfg.vocab_size * sizeof(float));
    s->tokens[s->n_cached] = f->out_token;
}

static void test_batch_invariance(void **state)
{
    backend *b = open_backend(g_dir_a, 4, 0, 3);
    int V = b->cfg.vocab_size;
    assert_true(V <= 512);
    static plan_seq alone[N_SEQ], batched[N_SEQ];
    int32_t *pool = shuffled_blocks(b->n_kv_blocks);
    int next = 0;
    for (int i = 0; i < N_SEQ; i++) {
        plan_seq *s = &alone[i];
        memset(s, 0, sizeof *s);
        s->start = rand() % 4;
        s->n_prompt = 1 + rand() % 120;
        s->chunk = i % 2 ? s->n_prompt : 1 + rand() % 40;
        s->p = (sampling_params){.top_p = 1, .repetition_penalty = 1};
        if (i % 3 == 1) { /* seeded sampling with penalties */
            s->p = (sampling_params){.temperature = 0.9f, .top_k = 50, .top_p = 0.9f,
                                     .repetition_penalty = 1.2f, .frequency_penalty = 0.3f,
                                     .seed = 1000 + i};
        }
        random_tokens(s->tokens, s->n_prompt, V);
        take_blocks(s->bt, (s->n_prompt + 6 + 3) / 4, pool, &next);
        batched[i] = *s;
    }
    /* alone, each with its own chunking */
    for (int i = 0; i < N_SEQ; i++)
        for (int step = 0; step < 64; step++) {
            fwd_seq f;
            if (!plan_piece(&alone[i], step, &f))
                continue;
            fwd_batch batch = {1, &f};
            assert_int_equal(b->forward(b, &batch), 0);
            plan_done(&alone[i], b, &f, 0);
        }
    /* all together (the KV pages are rewritten with the same values) */
    int n_batches = 0, max_in_batch = 0;
    for (int step = 0; step < 64; step++) {
        fwd_seq f[N_SEQ];
        int idx[N_SEQ], n = 0;
        for (int i = N_SEQ - 1; i >= 0; i--) /* reverse order: positions differ from alone */
            if (plan_piece(&batched[i], step, &f[n]))
                idx[n++] = i;
        if (n == 0)
            continue;
        fwd_batch batch = {n, f};
        assert_int_equal(b->forward(b, &batch), 0);
        for (int k = 0; k < n; k++)
            plan_done(&batched[idx[k]], b, &f[k], k);
        n_batches++;
        max_in_batch = n > max_in_batch ? n : max_in_batch;
    }
    assert_true(max_in_batch >= 3);
    for (int i = 0; i < N_SEQ; i++) {
        assert_int_equal(alone[i].n_logits, 6);
        assert_int_equal(batched[i].n_logits, alone[i].n_logits);
        for (int k = 0; k < alone[i].n_logits; k++)
            assert_memory_equal(alone[i].logits[k], batched[i].logits[k], V * sizeof(float));
        assert_memory_equal(alone[i].tokens, batched[i].tokens,
                            (alone[i].n_prompt + 6) * sizeof(int32_t));
    }
    free(pool);
    b->free(b);
}

/* (d) block size 1 vs 16, and dummy weights vs the make-model file (same seed), thread counts */
static void test_block_sizes_and_dummy(void **state)
{
    int n = 45;
    int32_t tokens[64], bt1[64], bt16[4];
    backend *b1 = open_backend(g_dir_a, 1, 0, 1);
    backend *b16 = open_backend(g_dir_a, 16, 1, 4); /* dummy weights, 4 threads */
    int V = b1->cfg.vocab_size;
    random_tokens(tokens, n, V);
    int32_t *p1 = shuffled_blocks(b1->n_kv_blocks), *p16 = shuffled_blocks(b16->n_kv_blocks);
    int n1 = 0, n16 = 0;
    take_blocks(bt1, 64, p1, &n1);
    take_blocks(bt16, 4, p16, &n16);
    float *l1 = malloc(V * sizeof *l1), *l16 = malloc(V * sizeof *l16);
    sampling_params greedy = {.top_p = 1, .repetition_penalty = 1};
    int chunks1[] = {n, 0}, chunks16[] = {20, 0};
    run_prefill(b1, tokens, n, bt1, chunks1, &greedy, l1);
    run_prefill(b16, tokens, n, bt16, chunks16, &greedy, l16);
    assert_memory_equal(l1, l16, V * sizeof(float));
    /* another prompt gives other logits (the comparison can fail) */
    tokens[n / 2] = (tokens[n / 2] + 1) % V;
    run_prefill(b16, tokens, n, bt16, chunks16, &greedy, l16);
    assert_true(rel_diff_f(l16, l1, V) > 1e-3);
    /* invalid batches are refused */
    fwd_seq s = {.n_cached = 0, .n_new = 3, .sample = 1, .tokens = tokens, .block_table = bt16,
                 .params = &greedy};
    fwd_batch batch = {1, &s};
    int32_t bad_bt[4] = {0, b16->n_kv_blocks, 1, 2};
    s.block_table = bad_bt;
    s.n_cached = 20; /* uses block_table[1] */
    assert_true(b16->forward(b16, &batch) < 0);
    s.block_table = bt16;
    s.n_new = 0;
    assert_true(b16->forward(b16, &batch) < 0);
    s.n_new = 600;
    assert_true(b16->forward(b16, &batch) < 0);
    int32_t bad_tok[4] = {1, 2, V, 3};
    s.tokens = bad_tok;
    s.n_cached = 0;
    s.n_new = 4;
    assert_true(b16->forward(b16, &batch) < 0);
    free(l1);
    free(l16);
    free(p1);
    free(p16);
    b1->free(b1);
    b16->free(b16);
}

static int make_model(char *dir, const char *args);
static void remove_model(const char *dir);

/* (e) a checkpoint with tensors config.json does not explain is refused: a config.json that
 * says 1 layer over a file of 2 (it loaded, and served another model, before) */
static void test_unexplained_tensors_refused(void **state)
{
    char dir[256], cfg[300], cmd[1024], err[1024];
    assert_int_equal(make_model(dir, "--dim 64 --layers 2 --heads 4 --kv-heads 2 --vocab 300"), 0);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"num_hidden_layers\": *2/\"num_hidden_layers\": 1/' %s"
             " && grep -q '\"num_hidden_layers\": *1' %s", cfg, cfg);
    assert_int_equal(system(cmd), 0);
    backend_opts o = {.model_dir = dir, .block_size = 16, .max_seq_len = 512,
                      .max_batch_tokens = 512, .max_seqs = 16, .kv_tokens = 4096, .n_threads = 1};
    backend *b = cpu_backend_init(&o, err, sizeof err);
    assert_null(b);
    assert_non_null(strstr(err, "model.layers.1."));
    assert_non_null(strstr(err, "does not explain"));
    remove_model(dir);
}

static int make_model(char *dir, const char *args)
{
    snprintf(dir, 256, "/tmp/cinder_cpu_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s --out %s %s >/dev/null", g_make_model, dir, args);
    return system(cmd) == 0 ? 0 : -1;
}

static void remove_model(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    srand(4242);
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_make_model, sizeof g_make_model, "%s/../bin/make-model", dirname(self));
    if (make_model(g_dir_a, "--dim 64 --layers 2 --heads 4 --kv-heads 2 --vocab 300") < 0 ||
        make_model(g_dir_b, "--dim 96 --hidden 100 --layers 3 --heads 6 --kv-heads 2 "
                            "--vocab 257 --tie 0 --dtype bf16 --llama3-scaling 8 "
                            "--rope-theta 10000 --seed 7") < 0) {
        fprintf(stderr, "cannot run %s\n", g_make_model);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_block_sizes_and_dummy),
        cmocka_unit_test(test_unexplained_tensors_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_model(g_dir_a);
    remove_model(g_dir_b);
    return rc;
}
