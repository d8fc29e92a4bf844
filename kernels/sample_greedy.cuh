/* sample_greedy.cuh - greedy next-token sampling from fp32 logits on the GPU (argmax, logprob). */
#ifndef CINDER_SAMPLE_GREEDY_CUH
#define CINDER_SAMPLE_GREEDY_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of workspace sample_greedy_run needs for N_ROWS rows (rows are split over several
 * blocks when there are few of them). */
size_t sample_greedy_workspace_size(int n_rows);

/* Greedy: token[r] = the first index of the largest logit of row r, logprob[r] = its
 * log-softmax (logit - logsumexp), in one pass over the row. -inf logits are allowed.
 * WORKSPACE: sample_greedy_workspace_size(n_rows) bytes (no initialization needed). */
cudaError_t sample_greedy_run(int32_t *token,       /* [n_rows] */
                              float *logprob,       /* [n_rows] */
                              const float *logits,  /* [n_rows, vocab] */
                              int n_rows, int vocab, void *workspace, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
