/* test_sampling.c - the sampler over one logits row: greedy is argmax, top-k 1 is greedy,
 * seeded draws are deterministic, 20k draws follow the (temperature / top-k / top-p)
 * distribution, penalties change the logits as HF/vLLM do, logit_bias and min_tokens'
 * suppressed ids act before them (vLLM's order), log-probs are the raw logits' log-softmax
 * whatever the processing, and the top logprobs are the sorted head of that distribution.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../worker/sampling.h"

static double gauss(void)
{
    double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void rand_logits(float *l, int n, double scale)
{
    for (int i = 0; i < n; i++)
        l[i] = (float)(gauss() * scale);
}

static sampling_params params(float temperature)
{
    return (sampling_params){.temperature = temperature, .top_p = 1, .repetition_penalty = 1};
}

/* One sample of L with P over the sequence TOKS [n] (prompt: the first N_PROMPT). */
static int32_t sample(sampler *s, const float *l, const sampling_params *p, const int32_t *toks,
                      int n, int n_prompt, float *lp)
{
    sample_input in = {p, toks, n, n_prompt, NULL, 0};
    return sampler_sample(s, l, &in, lp);
}

/* log-softmax of L [n] at index I, in double */
static double log_softmax(const float *l, int n, int i)
{
    double max = l[0], sum = 0;
    for (int k = 1; k < n; k++)
        max = l[k] > max ? l[k] : max;
    for (int k = 0; k < n; k++)
        sum += exp(l[k] - max);
    return l[i] - max - log(sum);
}

static void test_greedy(void **state)
{
    enum { V = 1000 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V];
    int32_t toks[1] = {0};
    for (int it = 0; it < 50; it++) {
        rand_logits(l, V, 3);
        int best = 0;
        for (int i = 1; i < V; i++)
            best = l[i] > l[best] ? i : best;
        sampling_params p = params(0);
        float lp;
        assert_int_equal(sample(&s, l, &p, toks, 1, 1, &lp), best);
        assert_true(fabs(lp - log_softmax(l, V, best)) < 1e-5);
        /* top-k 1 at any temperature is greedy; the log-prob is still the raw logits' */
        p = params(0.9f);
        p.top_k = 1;
        p.seed = (uint64_t)it;
        assert_int_equal(sample(&s, l, &p, toks, 1, 1, &lp), best);
        assert_true(fabs(lp - log_softmax(l, V, best)) < 1e-5);
    }
    /* ties go to the lowest id */
    memset(l, 0, sizeof l);
    l[7] = l[3] = 5;
    sampling_params p = params(0);
    assert_int_equal(sample(&s, l, &p, toks, 1, 1, NULL), 3);
    sampler_free(&s);
}

static void test_deterministic(void **state)
{
    enum { V = 500 };
    sampler a, b;
    assert_int_equal(sampler_init(&a, V), 0);
    assert_int_equal(sampler_init(&b, V), 0);
    float l[V];
    rand_logits(l, V, 1);
    int32_t toks[64] = {0};
    sampling_params p = params(1.0f);
    p.top_p = 0.95f;
    int n_diff = 0, prev = -1;
    for (int pos = 1; pos < 64; pos++) {
        p.seed = 42;
        int x = sample(&a, l, &p, toks, pos, pos, NULL);
        int y = sample(&b, l, &p, toks, pos, pos, NULL); /* other workspace */
        assert_int_equal(x, y);
        assert_int_equal(sample(&a, l, &p, toks, pos, pos, NULL), x); /* again */
        n_diff += x != prev;
        prev = x;
    }
    assert_true(n_diff > 30); /* positions draw different numbers */
    int same = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        p.seed = seed;
        int x = sample(&a, l, &p, toks, 10, 10, NULL);
        p.seed = seed + 1000;
        same += x == sample(&a, l, &p, toks, 10, 10, NULL);
    }
    assert_true(same < 30); /* seeds draw different numbers */
    sampler_free(&a);
    sampler_free(&b);
}

/* Draws N tokens (seeds 0..N-1) and checks the frequencies against EXPECT [V] within
 * 5 standard deviations; each draw's log-prob is the raw logits' (not EXPECT's). */
static void check_distribution(sampler *s, const float *l, sampling_params p, const double *expect,
                               int V)
{
    enum { N = 20000 };
    int count[64] = {0};
    int32_t toks[1] = {0};
    for (int i = 0; i < N; i++) {
        p.seed = (uint64_t)i * 7919 + 1;
        float lp;
        int x = sample(s, l, &p, toks, 1, 1, &lp);
        assert_true(x >= 0 && x < V);
        assert_true(expect[x] > 0);
        assert_true(fabs(lp - log_softmax(l, V, x)) < 1e-5);
        count[x]++;
    }
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N, sd = sqrt(expect[i] * (1 - expect[i]) / N);
        assert_true(fabs(f - expect[i]) <= 5 * sd + 1e-9);
    }
}

static void test_distribution(void **state)
{
    enum { V = 12 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V];
    double e[V];
    rand_logits(l, V, 1.2);
    l[5] = l[9]; /* a tie */
    /* temperature only */
    double T = 0.7, z = 0;
    for (int i = 0; i < V; i++)
        z += e[i] = exp(l[i] / T);
    for (int i = 0; i < V; i++)
        e[i] /= z;
    check_distribution(&s, l, params((float)T), e, V);
    /* order of the ids by logit, for top-k/top-p */
    int order[V];
    for (int i = 0; i < V; i++)
        order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (l[order[j]] > l[order[i]] || (l[order[j]] == l[order[i]] && order[j] < order[i])) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    /* top-k 4 */
    sampling_params p = params((float)T);
    p.top_k = 4;
    double z4 = 0;
    memset(e, 0, sizeof e);
    for (int i = 0; i < 4; i++)
        z4 += e[order[i]] = exp(l[order[i]] / T);
    for (int i = 0; i < V; i++)
        e[i] /= z4;
    check_distribution(&s, l, p, e, V);
    /* top-p 0.6: the most likely tokens while the mass before each is < 0.6 */
    p = params((float)T);
    p.top_p = 0.6f;
    double full[V], zp = 0, cum = 0;
    for (int i = 0; i < V; i++)
        full[i] = exp(l[i] / T) / z;
    memset(e, 0, sizeof e);
    for (int i = 0; i < V && cum < 0.6; i++) {
        e[order[i]] = full[order[i]];
        cum += full[order[i]];
        zp += e[order[i]];
    }
    int n_kept = 0;
    for (int i = 0; i < V; i++) {
        e[i] /= zp;
        n_kept += e[i] > 0;
    }
    assert_true(n_kept > 1 && n_kept < V);
    check_distribution(&s, l, p, e, V);
    sampler_free(&s);
}

static void test_penalties(void **state)
{
    enum { V = 50 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V], want[V];
    rand_logits(l, V, 2);
    l[3] = 4.0f;   /* positive: divided */
    l[4] = -1.5f;  /* negative: multiplied */
    /* prompt {3, 4, 3}, output {7, 7, 8, 3} */
    int32_t toks[] = {3, 4, 3, 7, 7, 8, 3};
    const int n = 7, n_prompt = 3;
    sampling_params p = params(0);
    p.repetition_penalty = 1.3f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    memcpy(want, l, sizeof l);
    for (int i = 0; i < V; i++) {
        int seen = 0, n_out = 0;
        for (int k = 0; k < n; k++) {
            seen |= toks[k] == i;
            n_out += k >= n_prompt && toks[k] == i;
        }
        if (seen)
            want[i] = want[i] > 0 ? want[i] / 1.3f : want[i] * 1.3f;
        want[i] -= 0.5f * n_out + (n_out > 0 ? 0.25f : 0);
    }
    assert_true(fabsf(want[3] - (4.0f / 1.3f - 0.5f - 0.25f)) < 1e-6f);
    assert_true(fabsf(want[4] - (-1.5f * 1.3f)) < 1e-6f);
    assert_true(fabsf(want[7] - (l[7] > 0 ? l[7] / 1.3f : l[7] * 1.3f) + 1.25f) < 1e-5f);
    int best = 0;
    for (int i = 1; i < V; i++)
        best = want[i] > want[best] ? i : best;
    float lp;
    assert_int_equal(sample(&s, l, &p, toks, n, n_prompt, &lp), best);
    assert_true(fabs(lp - log_softmax(l, V, best)) < 1e-5);   /* raw, not penalized */
    /* the penalties change the answer: token 3 wins without them */
    assert_int_equal(sample(&s, l, &(sampling_params){.top_p = 1, .repetition_penalty = 1},
                            toks, n, n_prompt, NULL), 3);
    /* and the workspace is clean afterwards: same call, same result */
    assert_int_equal(sample(&s, l, &p, toks, n, n_prompt, &lp), best);
    /* a strong repetition penalty with sampling never picks a seen token over a clear winner */
    p = params(0.5f);
    p.repetition_penalty = 100.0f;
    l[3] = 10.0f;
    l[20] = 8.0f;
    for (uint64_t seed = 0; seed < 200; seed++) {
        p.seed = seed;
        assert_int_not_equal(sample(&s, l, &p, toks, n, n_prompt, NULL), 3);
    }
    sampler_free(&s);
}

/* logit_bias: -100 removes the greedy token, +100 forces one, also when sampling; the bias
 * applies before the repetition penalty (vLLM's order); the log-prob stays the raw one. */
static void test_logit_bias(void **state)
{
    enum { V = 64 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V];
    rand_logits(l, V, 2);
    int32_t toks[4] = {1, 2, 3, 4};
    int best = 0, second = -1;
    for (int i = 1; i < V; i++)
        best = l[i] > l[best] ? i : best;
    for (int i = 0; i < V; i++)
        if (i != best && (second < 0 || l[i] > l[second]))
            second = i;
    sampling_params p = params(0);
    p.n_logit_bias = 1;
    p.bias_ids[0] = best;
    p.bias[0] = -100;
    float lp;
    assert_int_equal(sample(&s, l, &p, toks, 4, 4, &lp), second);
    assert_true(fabs(lp - log_softmax(l, V, second)) < 1e-5);
    p.bias_ids[0] = 17 == best ? 18 : 17;
    p.bias[0] = 100;
    assert_int_equal(sample(&s, l, &p, toks, 4, 4, NULL), p.bias_ids[0]);
    p.temperature = 1.0f;
    for (uint64_t seed = 0; seed < 100; seed++) {
        p.seed = seed;
        assert_int_equal(sample(&s, l, &p, toks, 4, 4, NULL), p.bias_ids[0]);
    }
    /* bias first, then the repetition penalty: token 3 (seen) at 4 - 2 = 2, / 2 = 1 beats
       token 9 at 0.5 (penalty first would give 4 / 2 - 2 = 0) */
    for (int i = 0; i < V; i++)
        l[i] = -5;
    l[3] = 4;
    l[9] = 0.5f;
    p = params(0);
    p.repetition_penalty = 2;
    p.n_logit_bias = 1;
    p.bias_ids[0] = 3;
    p.bias[0] = -2;
    assert_int_equal(sample(&s, l, &p, toks, 4, 4, NULL), 3);
    sampler_free(&s);
}

/* Suppressed ids (min_tokens: EOS and stop ids) are never drawn, greedy or not. */
static void test_suppress(void **state)
{
    enum { V = 16 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V];
    for (int i = 0; i < V; i++)
        l[i] = (float)i * 0.1f;
    l[2] = 9;   /* EOS, say: the clear winner */
    l[5] = 8;
    int32_t toks[1] = {0}, sup[] = {2, 5};
    sampling_params p = params(0);
    sample_input in = {&p, toks, 1, 1, sup, 2};
    float lp;
    assert_int_equal(sampler_sample(&s, l, &in, &lp), 15);
    assert_true(fabs(lp - log_softmax(l, V, 15)) < 1e-5);
    p.temperature = 2.0f;
    for (uint64_t seed = 0; seed < 300; seed++) {
        p.seed = seed;
        int32_t x = sampler_sample(&s, l, &in, NULL);
        assert_true(x != 2 && x != 5);
    }
    in.n_suppress = 0;
    p.temperature = 0;
    assert_int_equal(sampler_sample(&s, l, &in, NULL), 2);
    sampler_free(&s);
}

/* The top logprobs: the K largest raw logits, largest first, lowest id first on ties, their
 * log-softmax; the sampled token's log-prob under greedy is the first; all of them sum to 1. */
static void test_top_logprobs(void **state)
{
    enum { V = 300 };
    sampler s;
    assert_int_equal(sampler_init(&s, V), 0);
    float l[V], lps[V];
    int32_t ids[V], toks[1] = {0};
    for (int it = 0; it < 20; it++) {
        rand_logits(l, V, 3);
        if (it % 3 == 1)
            for (int i = 0; i < V; i++)
                l[i] = (float)(rand() % 4);   /* ties everywhere */
        int k = 1 + rand() % 20;
        sampler_top_logprobs(&s, l, k, ids, lps);
        double mass = 0;
        for (int j = 0; j < k; j++) {
            assert_true(fabs(lps[j] - log_softmax(l, V, ids[j])) < 1e-5);
            if (j > 0)
                assert_true(l[ids[j - 1]] > l[ids[j]] || (l[ids[j - 1]] == l[ids[j]] && ids[j - 1] < ids[j]));
            mass += exp(lps[j]);
            /* nothing left out beats the last */
            for (int i = 0; i < V; i++) {
                int in_top = 0;
                for (int q = 0; q < k; q++)
                    in_top |= ids[q] == i;
                assert_true(in_top || l[i] < l[ids[k - 1]] || (l[i] == l[ids[k - 1]] && i > ids[k - 1]));
            }
        }
        assert_true(mass <= 1 + 1e-6);
        sampling_params p = params(0);
        float lp;
        assert_int_equal(sample(&s, l, &p, toks, 1, 1, &lp), ids[0]);
        assert_true(lp == lps[0]);
    }
    sampler_top_logprobs(&s, l, V, ids, lps);
    double total = 0;
    for (int j = 0; j < V; j++)
        total += exp(lps[j]);
    assert_true(fabs(total - 1) < 1e-5);
    sampler_free(&s);
}

int main(void)
{
    srand(777);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_suppress),
        cmocka_unit_test(test_top_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
