/* sample_full.cuh - full next-token sampling on the GPU, the algorithm of worker/sampling.c
 * (its CPU reference): each listed token's bias (logit_bias; -inf for an id min_tokens
 * suppresses) added to the raw logits, then penalties (repetition once per distinct token of
 * the sequence, frequency/presence over the output tokens), then greedy (argmax, lowest id on
 * ties) or temperature, top-k, top-p, and one inverse-CDF draw over the kept tokens in order of
 * decreasing value (lowest id first on ties; id order when neither top-k nor top-p is set) with
 * the uniform rng_uniform(seed, counter). The logprob reported is the token's under the raw
 * logits (log-softmax before bias, penalties and temperature: vLLM's raw_logprobs). Sums are
 * in double, as on the CPU (summation order differs, so a tie with the draw within ~1e-15 may
 * pick a neighbour).
 */
#ifndef CINDER_SAMPLE_FULL_CUH
#define CINDER_SAMPLE_FULL_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float temperature;        /* <= 0: greedy */
    int32_t top_k;            /* <= 0 or >= vocab: off */
    float top_p;              /* outside (0, 1): off */
    float repetition_penalty; /* 1 (or <= 0): off */
    float frequency_penalty;  /* 0: off */
    float presence_penalty;   /* 0: off */
    int32_t pen_begin;        /* this row's entries of the penalty list: [pen_begin, pen_end) */
    int32_t pen_end;
    uint64_t seed;            /* draw: rng_uniform(seed, counter) */
    uint64_t counter;         /* tokens in the sequence so far */
} sample_row_params;

/* One distinct token of a row's list: BIAS is added to its logit first (logit_bias, or -inf
 * for an id that must not be sampled now), then, when IN_SEQ (it occurs in prompt + output),
 * the repetition penalty, and the frequency / presence penalties for its N_OUT occurrences in
 * the output. */
typedef struct {
    int32_t token;
    int32_t n_out;
    int32_t in_seq;
    float bias;
} sample_penalty;

/* Bytes of device workspace for up to N_ROWS rows of VOCAB logits. */
size_t sample_full_workspace_size(int n_rows, int vocab);

/* Samples row r of the selection: logits row ROWS[r] (not modified). ANY_SORT (host) must be
 * nonzero when some row uses top-k or top-p. PARAMS [n_rows], PENALTIES (entries named by the
 * rows' ranges) and ROWS are device arrays. */
cudaError_t sample_full_run(int32_t *token,                 /* [n_rows] */
                            float *logprob,                 /* [n_rows] */
                            const float *logits,            /* [*, vocab] */
                            const int32_t *rows,            /* [n_rows] */
                            const sample_row_params *params, /* [n_rows] */
                            const sample_penalty *penalties,
                            int n_rows, int vocab, int any_sort, void *workspace,
                            size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
