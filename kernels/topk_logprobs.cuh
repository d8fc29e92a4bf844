/* topk_logprobs.cuh - the K most likely tokens of selected fp32 logits rows and their
 * logprobs (log-softmax of the raw row), for the requests that ask for top logprobs (OpenAI's
 * logprobs / top_logprobs). Run only when some row asks, so it costs nothing otherwise.
 * CPU reference: sampler_top_logprobs (worker/sampling.c); the same order (larger logit first,
 * lower id first on ties) and the same logprob expression,
 * (float)((double)(x - max) - log(sum of exp((double)(x - max)))).
 */
#ifndef CINDER_TOPK_LOGPROBS_CUH
#define CINDER_TOPK_LOGPROBS_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOPK_LOGPROBS_MAX 20   /* most entries per row (OpenAI's top_logprobs limit) */

/* For row r: the K[r] (0..TOPK_LOGPROBS_MAX, at most VOCAB) most likely ids of logits row
 * ROWS[r], most likely first, at IDS[r * TOPK_LOGPROBS_MAX ..] and their logprobs at
 * LOGPROBS[r * TOPK_LOGPROBS_MAX ..]; and, when K[r] > 0, the logprob of the row's sampled
 * token TOK[r] into TOK_LOGPROB[r] (so the sampled token's and the top ones come from one
 * log-sum-exp). Entries past K[r], and TOK_LOGPROB of rows with K = 0, are left untouched.
 * All pointers are device memory. */
cudaError_t topk_logprobs_run(int32_t *ids,             /* [n_rows, TOPK_LOGPROBS_MAX] */
                              float *logprobs,          /* [n_rows, TOPK_LOGPROBS_MAX] */
                              float *tok_logprob,       /* [n_rows] */
                              const float *logits,      /* [*, vocab] */
                              const int32_t *rows,      /* [n_rows] */
                              const int32_t *k,         /* [n_rows] */
                              const int32_t *tok,       /* [n_rows] each row's sampled token */
                              int n_rows, int vocab, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
