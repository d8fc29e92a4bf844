/* sampling.h - next-token sampling over one row of logits; the CPU reference for the GPU
 * sampling kernel.
 *
 * Order, as vLLM's sampler: the suppressed ids (min_tokens: EOS and stop token ids) get -inf
 * and logit_bias is added, then penalties (repetition as HF/vLLM: positive logits divided,
 * negative multiplied, once per distinct token of prompt + output; frequency and presence:
 * logit -= frequency * count + presence * (count > 0) over the output tokens), then greedy
 * (temperature 0: argmax, lowest id on ties) or temperature, top-k, top-p (keep the most
 * likely tokens while the probability mass before each is < top_p), then one draw by inverse
 * CDF over the kept tokens in order of decreasing logit (lowest id first on ties), with a
 * uniform number that depends only on (seed, position): results do not depend on the batch
 * nor on restarts.
 * The log-probability returned is that of the chosen token under the model's own distribution:
 * the log-softmax of the raw logits, before bias, penalties, temperature and truncation
 * (vLLM's default logprobs mode, "raw_logprobs"); so are the top logprobs. Each is
 * (float)((double)(logit - max) - log(sum over the row of exp((double)(logit - max)))), the
 * same expression on the GPU (kernels/sample_full.cu, kernels/topk_logprobs.cu).
 */
#ifndef CINDER_SAMPLING_H
#define CINDER_SAMPLING_H

#include <stdint.h>
#include "../common/sampling_params.h"

typedef struct {
    int vocab;
    float *logits;      /* [vocab] processed logits */
    int32_t *count;     /* [vocab] occurrences; all zero between calls */
    struct sampling_cand { float v; int32_t id; } *cand; /* [vocab] candidates */
} sampler;

/* What sampling one row needs besides its logits. */
typedef struct {
    const sampling_params *params;
    const int32_t *tokens;   /* [n_tokens] the sequence so far: the first n_prompt are the prompt
                                (penalties); the draw uses position n_tokens */
    int n_tokens, n_prompt;
    const int32_t *suppress; /* [n_suppress] ids that must not be sampled now (min_tokens) */
    int n_suppress;
} sample_input;

/* The log-softmax of a row: logprob(i) = (float)((double)(l[i] - max) - log_sum). */
typedef struct {
    float max;
    double log_sum;          /* log of the sum of exp((double)(l[i] - max)); not finite when the
                                row holds NaN or +inf */
} row_lse;

int sampler_init(sampler *s, int vocab); /* 0 or -1 (out of memory) */
void sampler_free(sampler *s);

row_lse sampler_lse(const float *logits, int vocab);
static inline float sampler_logprob(const float *logits, row_lse z, int32_t id)
{
    return (float)((double)(logits[id] - z.max) - z.log_sum);
}

/* Samples from LOGITS [vocab] as IN says; *OUT_LOGPROB (may be NULL): the raw logprob of the
 * token (NaN when the row is not finite: a broken model, nothing sampled, 0 returned). */
int32_t sampler_sample(sampler *s, const float *logits, const sample_input *in, float *out_logprob);

/* The K (<= vocab) most likely ids of LOGITS [vocab], most likely first (lowest id first on
 * ties), into IDS [k], and their raw logprobs into LPS [k]. The CPU reference of
 * kernels/topk_logprobs.cu. */
void sampler_top_logprobs(sampler *s, const float *logits, int k, int32_t *ids, float *lps);

#endif
