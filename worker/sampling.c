/* sampling.c - penalties, greedy, temperature, top-k, top-p and a counter-based draw over one
 * logits row (see sampling.h).
 */
#include "sampling.h"
#include "../kernels/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct sampling_cand cand;

int sampler_init(sampler *s, int vocab)
{
    memset(s, 0, sizeof *s);
    s->vocab = vocab;
    s->logits = malloc((size_t)vocab * sizeof *s->logits);
    s->count = calloc((size_t)vocab, sizeof *s->count);
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
    if (!s->logits || !s->count || !s->cand) {
        sampler_free(s);
        return -1;
    }
    return 0;
}

void sampler_free(sampler *s)
{
    free(s->logits);
    free(s->count);
    free(s->cand);
    memset(s, 0, sizeof *s);
}

/* a before b: larger value first, then lower id (a total order: results never depend on
 * the sorting algorithm) */
static inline int cand_before(const cand *a, const cand *b)
{
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* Moves the K first candidates in order (by cand_before) of C [n] to the front, unsorted. */
static void select_top(cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        cand pivot = c[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&c[i], &pivot))
                i++;
            while (cand_before(&pivot, &c[j]))
                j--;
            if (i <= j) {
                cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            return;
    }
}

row_lse sampler_lse(const float *l, int vocab)
{
    row_lse z = {l[0], 0};
    for (int i = 1; i < vocab; i++)
        z.max = l[i] > z.max ? l[i] : z.max;
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)(l[i] - z.max));
    z.log_sum = log(sum);
    return z;
}

void sampler_top_logprobs(sampler *s, const float *logits, int k, int32_t *ids, float *lps)
{
    cand *c = s->cand;
    for (int i = 0; i < s->vocab; i++)
        c[i] = (cand){logits[i], i};
    select_top(c, s->vocab, k);
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
    row_lse z = sampler_lse(logits, s->vocab);
    for (int i = 0; i < k; i++) {
        ids[i] = c[i].id;
        lps[i] = sampler_logprob(logits, z, c[i].id);
    }
}

/* min_tokens and logit_bias, before the penalties (vLLM's order) */
static void apply_bias(sampler *s, const sample_input *in)
{
    const sampling_params *p = in->params;
    float *l = s->logits;
    for (int i = 0; i < p->n_logit_bias; i++)
        l[p->bias_ids[i]] += p->bias[i];
    for (int i = 0; i < in->n_suppress; i++)
        l[in->suppress[i]] = -INFINITY;
}

static void apply_penalties(sampler *s, const sampling_params *p, const int32_t *tokens,
                            int n_tokens, int n_prompt)
{
    float *l = s->logits;
    if (p->repetition_penalty != 1.0f && p->repetition_penalty > 0) {
        /* once per distinct token: count[] marks the ones done */
        for (int i = 0; i < n_tokens; i++) {
            int32_t t = tokens[i];
            if (s->count[t]++ == 0)
                l[t] = l[t] > 0 ? l[t] / p->repetition_penalty : l[t] * p->repetition_penalty;
        }
        for (int i = 0; i < n_tokens; i++)
            s->count[tokens[i]] = 0;
    }
    if (p->frequency_penalty != 0 || p->presence_penalty != 0) {
        for (int i = n_prompt; i < n_tokens; i++)
            s->count[tokens[i]]++;
        for (int i = n_prompt; i < n_tokens; i++) {
            int32_t t = tokens[i];
            if (s->count[t] > 0) {
                l[t] -= p->frequency_penalty * (float)s->count[t] + p->presence_penalty;
                s->count[t] = 0;
            }
        }
    }
}

/* The token drawn from the processed logits s->logits (temperature > 0). */
static int32_t draw(sampler *s, const sampling_params *p, int n_tokens)
{
    const int vocab = s->vocab;
    float *l = s->logits;

    float inv_t = 1.0f / p->temperature;
    cand *c = s->cand;
    for (int i = 0; i < vocab; i++)
        c[i] = (cand){l[i] * inv_t, i};
    int n = vocab;
    int top_k = p->top_k > 0 && p->top_k < vocab ? p->top_k : 0;
    int top_p = p->top_p > 0 && p->top_p < 1;
    if (top_k) {
        select_top(c, n, top_k);
        n = top_k;
    }
    if (top_k || top_p)
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
    float max = c[0].v;
    for (int i = 1; i < n; i++)
        max = c[i].v > max ? c[i].v : max;
    /* unnormalized probabilities are exp(v - max); TOTAL is their sum over the kept set */
    double total = 0;
    for (int i = 0; i < n; i++)
        total += exp((double)(c[i].v - max));
    int n_keep = n;
    if (top_p) {
        double cum = 0, limit = (double)p->top_p * total;
        for (int i = 0; i < n; i++) {
            if (cum >= limit) {
                n_keep = i;
                break;
            }
            cum += exp((double)(c[i].v - max));
        }
        if (n_keep < n)
            total = cum;
    }
    double u = rng_uniform(p->seed, (uint64_t)n_tokens) * total, cum = 0;
    int pick = n_keep - 1;
    for (int i = 0; i < n_keep; i++) {
        cum += exp((double)(c[i].v - max));
        if (u < cum) {
            pick = i;
            break;
        }
    }
    return c[pick].id;
}

int32_t sampler_sample(sampler *s, const float *logits, const sample_input *in, float *out_logprob)
{
    const int vocab = s->vocab;
    const sampling_params *p = in->params;
    float *l = s->logits;
    row_lse z = sampler_lse(logits, vocab);
    if (!isfinite(z.log_sum)) {   /* NaN or +inf logits, a broken model: no distribution */
        if (out_logprob)
            *out_logprob = NAN;
        return 0;
    }
    memcpy(l, logits, (size_t)vocab * sizeof *l);
    apply_bias(s, in);
    apply_penalties(s, p, in->tokens, in->n_tokens, in->n_prompt);
    int32_t tok = 0;
    if (!(p->temperature > 0)) {
        for (int i = 1; i < vocab; i++)
            if (l[i] > l[tok])
                tok = i;
    } else {
        tok = draw(s, p, in->n_tokens);
    }
    if (out_logprob)
        *out_logprob = sampler_logprob(logits, z, tok);
    return tok;
}
