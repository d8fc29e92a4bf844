/* sampling_params.h - how one request samples its tokens: one plain struct (no atomics), so
 * the store (C11), the worker's backends and the CUDA engine (C++) all use the same
 * definition. Written by the tokenizer into the request's slot; read by the router (EOS,
 * max_new_tokens), the detokenizer (min_tokens: no stop string before) and the worker
 * (sampling, logprobs).
 */
#ifndef CINDER_SAMPLING_PARAMS_H
#define CINDER_SAMPLING_PARAMS_H

#include <stdint.h>

#define SAMPLING_MAX_LOGIT_BIAS 300 /* entries of logit_bias (OpenAI's limit) */

typedef struct {
    int32_t max_new_tokens;
    int32_t top_k;            /* 0 = off */
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1 = off */
    float repetition_penalty; /* 1 = off */
    float frequency_penalty;  /* 0 = off */
    float presence_penalty;   /* 0 = off */
    uint64_t seed;
    uint8_t ignore_eos;
    int32_t min_tokens;       /* EOS (unless ignore_eos) and the stop token ids are not sampled,
                                 and no stop string ends the request, before this many output
                                 tokens (0 = off) */
    int32_t n_top_logprobs;   /* the most likely tokens and their logprobs returned at each
                                 output position (0 = none; at most the store's n_top_logprobs) */
    int32_t n_logit_bias;     /* entries of bias_ids / bias, distinct ids < vocab */
    int32_t bias_ids[SAMPLING_MAX_LOGIT_BIAS];
    float bias[SAMPLING_MAX_LOGIT_BIAS]; /* added to the logit of bias_ids[i] before sampling */
} sampling_params;

#endif
