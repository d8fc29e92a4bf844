/* sampling_params.h - how one request samples its tokens: one plain struct (no atomics), so
 * the store (C11), the worker's backends and the CUDA engine (C++) all use the same
 * definition. Written by the tokenizer into the request's slot; read by the router (EOS,
 * max_new_tokens) and the worker (sampling).
 */
#ifndef CINDER_SAMPLING_PARAMS_H
#define CINDER_SAMPLING_PARAMS_H

#include <stdint.h>

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
} sampling_params;

#endif
