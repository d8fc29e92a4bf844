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
    double sum_rel;        /* for the mean */
    int n_rows, n_top1, n_near_tie;
    int n_over;            /* rows over BT_ROW_TOL (MoE: a token routed to another expert by a
                              rounding flips its row: the diagnostics say how many) */
    int n_ctrl;            /* control rows (bt_between): compared apart, not counted above */
    double ctrl_min_rel;   /* the smallest relative error among them */
} bt_cmp;

/* A top-1 disagreement counts as a near-tie when the reference's own gap between its top-1
 * and the other's pick is under TIE_FRAC of the reference's logit range. */
#define BT_ROW_TOL 3e-2   /* a row's relative error counted as over (diagnostics) */

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
    c->sum_rel += rel;
    c->n_over += !(rel <= BT_ROW_TOL);
    c->n_rows++;
    int a = bt_argmax(out, n), b = bt_argmax(ref, n);
    if (a == b) c->n_top1++;
    else if (ref[b] - ref[a] <= tie_frac * (hi - lo)) c->n_near_tie++;
}

/* A sequence: its tokens (cap max_len) and block table; what it samples with (parameters,
 * ids min_tokens would suppress). */
typedef struct {
    int32_t *tokens;
    int32_t *blocks;
    int n_tokens, n_cached, n_prompt;
    sampling_params sp;
    int32_t suppress[4];
    int n_suppress;
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
                     .params = &s->sp, .suppress = s->suppress, .n_suppress = s->n_suppress};
}

/* Random logit_bias entries and suppressed ids (min_tokens) for S, sometimes: what the sampler
 * lists must act on the GPU as on the CPU. */
static void bt_random_bias(bt_seq *s, int vocab)
{
    if (bt_int(0, 3) == 0)
        for (int k = 0; k < 3; k++) {
            int32_t id = bt_int(0, vocab - 1);
            int dup = 0;
            for (int j = 0; j < s->sp.n_logit_bias; j++) dup |= s->sp.bias_ids[j] == id;
            if (dup) continue;
            s->sp.bias_ids[s->sp.n_logit_bias] = id;
            s->sp.bias[s->sp.n_logit_bias++] = bt_int(0, 2) ? (float)bt_int(-5, 5) + 0.5f : 100.f;
        }
    if (bt_int(0, 3) == 0) {
        s->n_suppress = 2;
        s->suppress[0] = bt_int(0, vocab - 1);
        s->suppress[1] = bt_int(0, vocab - 1);
    }
}

/* The greedy pick of logits L [n] after S's bias and suppressed ids (no penalties in these
 * tests), and its raw logprob (the log-softmax of L itself). */
static int bt_greedy(const float *l, int n, const bt_seq *s, double *logprob)
{
    int best = -1;
    float bv = -INFINITY;
    double m = l[0], sum = 0;
    for (int i = 0; i < n; i++) {
        float v = l[i];
        for (int j = 0; j < s->sp.n_logit_bias; j++)
            if (s->sp.bias_ids[j] == i) v += s->sp.bias[j];
        for (int j = 0; j < s->n_suppress; j++)
            if (s->suppress[j] == i) v = -INFINITY;
        if (best < 0 || v > bv) {
            best = i;
            bv = v;
        }
        m = l[i] > m ? l[i] : m;
    }
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - m);
    *logprob = (double)l[best] - m - log(sum);
    return best;
}

/* The top logprobs the GPU returned for a row (K of them, IDS / LPS) against its own logits
 * L [n]: the log-softmax at each id, in order, and no other id above the K-th. 0 when so. */
static int bt_top_bad(const float *l, int n, int k, const int32_t *ids, const float *lps)
{
    double m = l[0], sum = 0;
    for (int i = 1; i < n; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - m);
    for (int j = 0; j < k; j++) {
        if (ids[j] < 0 || ids[j] >= n || fabs(lps[j] - ((double)l[ids[j]] - m - log(sum))) > 1e-3)
            return 1;
        if (j > 0 && (l[ids[j]] > l[ids[j - 1]] || (l[ids[j]] == l[ids[j - 1]] && ids[j] < ids[j - 1])))
            return 1;
    }
    int above = 0;
    for (int i = 0; i < n; i++)
        above += l[i] > l[ids[k - 1]];
    return above > k - 1;
}

/* A step entry: sequence index, tokens run now, whether it samples. */
typedef struct { int seq, n_new, sample; } step_item;

#define BT_TIE_FRAC 2e-2   /* top-1 near-tie: within 2% of the reference's logit range */

/* Called between the CPU's forward and the GPU's when set: may change what the GPU is told
 * (test_backend_diff forces the CPU's MoE routing) and returns the batch index of a sampled
 * entry whose row is a control (deliberately broken: compared into CMP's ctrl fields only),
 * or -1. */
static int (*bt_between)(backend *cpu, backend *gpu, const step_item *items, int n);

/* One step on both backends: STEP[i] = (sequence, n_new, sample). Compares the sampled rows
 * into CMP, checks the GPU's greedy picks (after each sequence's logit_bias and suppressed
 * ids), their raw logprobs and the top logprobs asked for against its own logits, then
 * advances the sequences with the CPU's tokens. */
static inline int run_step(backend *cpu, backend *gpu, bt_seq *seqs, const step_item *items, int n,
                    bt_cmp *cmp, int *n_inconsistent)
{
    int ctrl = -1;
    fwd_seq *fc = calloc((size_t)n, sizeof *fc), *fg = calloc((size_t)n, sizeof *fg);
    int32_t *top_ids = calloc((size_t)n * 2 * FWD_MAX_TOP_LOGPROBS, sizeof *top_ids);
    float *top_lps = calloc((size_t)n * 2 * FWD_MAX_TOP_LOGPROBS, sizeof *top_lps);
    int rc = -1;
    for (int i = 0; i < n; i++) {
        fc[i] = fg[i] = bt_fwd(&seqs[items[i].seq], items[i].n_new, items[i].sample);
        fc[i].out_top_ids = top_ids + (size_t)(2 * i) * FWD_MAX_TOP_LOGPROBS;
        fc[i].out_top_lps = top_lps + (size_t)(2 * i) * FWD_MAX_TOP_LOGPROBS;
        fg[i].out_top_ids = top_ids + (size_t)(2 * i + 1) * FWD_MAX_TOP_LOGPROBS;
        fg[i].out_top_lps = top_lps + (size_t)(2 * i + 1) * FWD_MAX_TOP_LOGPROBS;
    }
    fwd_batch bc = {n, fc}, bg = {n, fg};
    if (cpu->forward(cpu, &bc) != 0)
        goto out;
    if (bt_between)
        ctrl = bt_between(cpu, gpu, items, n);
    if (gpu->forward(gpu, &bg) != 0)
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
        if (i == ctrl) {
            bt_cmp one = {0};
            bt_compare(&one, lg, lc, V, BT_TIE_FRAC);
            if (cmp->n_ctrl++ == 0 || one.max_rel < cmp->ctrl_min_rel)
                cmp->ctrl_min_rel = one.max_rel;
        } else {
            bt_compare(cmp, lg, lc, V, BT_TIE_FRAC);
        }
        double lp;
        int a = bt_greedy(lg, V, s, &lp);
        if (fg[i].out_token != a || fabs(fg[i].out_logprob - lp) > 1e-3)
            (*n_inconsistent)++;
        if (s->sp.n_top_logprobs > 0 && bt_top_bad(lg, V, s->sp.n_top_logprobs, fg[i].out_top_ids,
                                                   fg[i].out_top_lps))
            (*n_inconsistent)++;
        s->tokens[s->n_cached] = fc[i].out_token;
        s->n_tokens = s->n_cached + 1;
    }
    rc = 0;
out:
    free(fc);
    free(fg);
    free(top_ids);
    free(top_lps);
    return rc;
}

/* The checks of a comparison run: logits within REL_TOL, top-1 agreement (at most 5% of the
 * rows near-ties), and N_BAD GPU samples (tokens, logprobs, top logprobs) inconsistent with
 * the GPU's own logits. */
static inline void bt_check_cmp(const char *name, const bt_cmp *cmp, double rel_tol, int n_bad)
{
    bt_check(cmp->max_rel < rel_tol, "%s: logits relative error %.2e < %.0e over %d rows (mean %.2e, "
             "%d rows over %.0e)", name, cmp->max_rel, rel_tol, cmp->n_rows,
             cmp->n_rows ? cmp->sum_rel / cmp->n_rows : 0.0, cmp->n_over, BT_ROW_TOL);
    bt_check(cmp->n_top1 + cmp->n_near_tie == cmp->n_rows && cmp->n_near_tie * 20 <= cmp->n_rows,
             "%s: top-1 agrees on %d of %d rows (%d near-ties)", name, cmp->n_top1, cmp->n_rows,
             cmp->n_near_tie);
    bt_check(n_bad == 0, "%s: GPU greedy token, logprob and top logprobs match its logits (%d off)",
             name, n_bad);
}

#endif
