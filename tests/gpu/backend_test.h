/* backend_test.h - helpers of the CUDA backend tests (plain C): the pass/fail tally, random
 * numbers, building random-weight model directories with make-model, sequences with KV block
 * tables, the logits comparison (per-row relative error and top-1 agreement up to
 * near-ties), and one step run on two backends and compared (run_step).
 */
#ifndef CINDER_BACKEND_TEST_H
#define CINDER_BACKEND_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../../worker/backend.h"

static int bt_pass, bt_fail;
static uint64_t bt_rng;

static void bt_check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) bt_pass++;
    else bt_fail++;
}

static int bt_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, bt_pass, bt_fail);
    return bt_fail ? 1 : 0;
}

static void bt_seed(const char *name)
{
    const char *env = getenv("TEST_SEED");
    bt_rng = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    printf("%s: seed %llu (TEST_SEED=%llu replays it)\n", name, (unsigned long long)bt_rng,
           (unsigned long long)bt_rng);
}

static uint64_t bt_next(void)   /* splitmix64 */
{
    uint64_t z = (bt_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int bt_int(int lo, int hi) { return lo + (int)(bt_next() % (uint64_t)(hi - lo + 1)); }

/* Runs build/bin/make-model with ARGS into a fresh directory; the path in DIR [256]. */
static int bt_make_model(char *dir, const char *args)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(dir, 256, "/tmp/cinder-cbt.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/bin/make-model --out %s %s > /dev/null", build, dir, args);
    return system(cmd) == 0 ? 0 : -1;
}

static void bt_rm_model(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static int bt_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Comparison of one logits row of the backend under test (OUT) with the reference (REF). */
typedef struct {
    double max_rel;        /* largest ||out - ref|| / ||ref|| */
    int n_rows, n_top1, n_near_tie;
} bt_cmp;

/* A top-1 disagreement counts as a near-tie when the reference's own gap between its top-1
 * and the other's pick is under TIE_FRAC of the reference's logit range. */
static void bt_compare(bt_cmp *c, const float *out, const float *ref, int n, double tie_frac)
{
    double d2 = 0, r2 = 0;
    float lo = ref[0], hi = ref[0];
    for (int i = 0; i < n; i++) {
        double d = (double)out[i] - ref[i];
        d2 += isfinite(out[i]) ? d * d : INFINITY;
        r2 += (double)ref[i] * ref[i];
        lo = ref[i] < lo ? ref[i] : lo;
        hi = ref[i] > hi ? ref[i] : hi;
    }
    double rel = sqrt(d2 / r2);
    if (!(rel <= c->max_rel)) c->max_rel = rel;   /* NaN sticks */
    c->n_rows++;
    int a = bt_argmax(out, n), b = bt_argmax(ref, n);
    if (a == b) c->n_top1++;
    else if (ref[b] - ref[a] <= tie_frac * (hi - lo)) c->n_near_tie++;
}

/* A sequence: its tokens (cap max_len) and block table. */
typedef struct {
    int32_t *tokens;
    int32_t *blocks;
    int n_tokens, n_cached, n_prompt;
    sampling_params sp;
} bt_seq;

/* Gives S room for MAX_LEN tokens with blocks taken from the shuffled pool POOL at *NEXT. */
static void bt_seq_init(bt_seq *s, int max_len, int bs, const int32_t *pool, int *next)
{
    memset(s, 0, sizeof *s);
    s->tokens = calloc((size_t)max_len, sizeof(int32_t));
    int nb = (max_len + bs - 1) / bs;
    s->blocks = calloc((size_t)nb, sizeof(int32_t));
    for (int i = 0; i < nb; i++) s->blocks[i] = pool[(*next)++];
    s->sp = (sampling_params){.max_new_tokens = max_len, .top_p = 1, .repetition_penalty = 1};
}

static void bt_seq_free(bt_seq *s)
{
    free(s->tokens);
    free(s->blocks);
}

/* Shuffled block ids 0..n-1. */
static int32_t *bt_pool(int n)
{
    int32_t *p = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = bt_int(0, i);
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static fwd_seq bt_fwd(bt_seq *s, int n_new, int sample)
{
    return (fwd_seq){.slot = 0, .n_cached = s->n_cached, .n_new = n_new, .sample = sample,
                     .tokens = s->tokens, .n_prompt = s->n_prompt, .block_table = s->blocks,
                     .params = &s->sp};
}

/* A step entry: sequence index, tokens run now, whether it samples. */
typedef struct { int seq, n_new, sample; } step_item;

#define BT_TIE_FRAC 2e-2   /* top-1 near-tie: within 2% of the reference's logit range */

/* One step on both backends: STEP[i] = (sequence, n_new, sample). Compares the sampled rows
 * into CMP, checks the GPU's greedy picks against its own logits, then advances the
 * sequences with the CPU's tokens. */
static inline int run_step(backend *cpu, backend *gpu, bt_seq *seqs, const step_item *items, int n,
                    bt_cmp *cmp, int *n_inconsistent)
{
    fwd_seq *fc = calloc((size_t)n, sizeof *fc), *fg = calloc((size_t)n, sizeof *fg);
    int rc = -1;
    for (int i = 0; i < n; i++)
        fc[i] = fg[i] = bt_fwd(&seqs[items[i].seq], items[i].n_new, items[i].sample);
    fwd_batch bc = {n, fc}, bg = {n, fg};
    if (cpu->forward(cpu, &bc) != 0 || gpu->forward(gpu, &bg) != 0)
        goto out;
    int V = cpu->cfg.vocab_size;
    for (int i = 0; i < n; i++) {
        bt_seq *s = &seqs[items[i].seq];
        s->n_cached += items[i].n_new;
        if (!items[i].sample)
            continue;
        const float *lc = cpu->last_logits(cpu, i), *lg = gpu->last_logits(gpu, i);
        if (!lc || !lg)
            goto out;
        bt_compare(cmp, lg, lc, V, BT_TIE_FRAC);
        int a = bt_argmax(lg, V);
        double m = lg[a], sum = 0;
        for (int k = 0; k < V; k++) sum += exp((double)lg[k] - m);
        if (fg[i].out_token != a || fabs(fg[i].out_logprob + log(sum)) > 1e-3)
            (*n_inconsistent)++;
        s->tokens[s->n_cached] = fc[i].out_token;
        s->n_tokens = s->n_cached + 1;
    }
    rc = 0;
out:
    free(fc);
    free(fg);
    return rc;
}

/* The checks of a comparison run: logits within REL_TOL, top-1 agreement (at most 5% of the
 * rows near-ties), and N_BAD GPU samples inconsistent with the GPU's own logits. */
static inline void bt_check_cmp(const char *name, const bt_cmp *cmp, double rel_tol, int n_bad)
{
    bt_check(cmp->max_rel < rel_tol, "%s: logits relative error %.2e < %.0e over %d rows", name,
             cmp->max_rel, rel_tol, cmp->n_rows);
    bt_check(cmp->n_top1 + cmp->n_near_tie == cmp->n_rows && cmp->n_near_tie * 20 <= cmp->n_rows,
             "%s: top-1 agrees on %d of %d rows (%d near-ties)", name, cmp->n_top1, cmp->n_rows,
             cmp->n_near_tie);
    bt_check(n_bad == 0, "%s: GPU greedy token and logprob match its logits (%d off)", name,
             n_bad);
}

#endif
