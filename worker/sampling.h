/* sampling.h - next-token sampling over one row of logits; the CPU reference for the GPU
 * sampling kernel.
 *
 * Order, as vLLM: penalties on the raw logits (repetition as HF/vLLM: positive logits divided,
 * negative multiplied, once per distinct token of prompt + output; frequency and presence:
 * logit -= frequency * count + presence * (count > 0) over the output tokens), then greedy
 * (temperature 0: argmax, lowest id on ties) or temperature, top-k, top-p (keep the most
 * likely tokens while the probability mass before each is < top_p), then one draw by inverse
 * CDF over the kept tokens in order of decreasing logit (lowest id first on ties), with a
 * uniform number that depends only on (seed, position): results do not depend on the batch
 * nor on restarts.
 * The log-probability returned is that of the chosen token under the final distribution
 * (penalized logits for greedy; penalized, scaled and truncated for sampling).
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

int sampler_init(sampler *s, int vocab); /* 0 or -1 (out of memory) */
void sampler_free(sampler *s);

/* Samples from LOGITS [vocab]. TOKENS [n_tokens] is the sequence so far, of which the first
 * N_PROMPT are the prompt (penalties); the draw uses position n_tokens. */
int32_t sampler_sample(sampler *s, const float *logits, const sampling_params *p,
                       const int32_t *tokens, int n_tokens, int n_prompt, float *out_logprob);

#endif
