/* rope.cuh - rotary position embedding (HF rotate-half convention, Llama-3.1 scaling). */
#ifndef CINDER_ROPE_CUH
#define CINDER_ROPE_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"
#include "rope_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* In place on the first n_heads head rows of each q row and n_kv_heads of each k row (Q and K
 * may point into one fused QKV buffer): pair (x[i], x[i + head_dim/2]) of token t is rotated
 * by angle pos[t] * inv_freq[i]. Angles and the rotation in fp32. head_dim a multiple of 4,
 * at most 512. */
cudaError_t rope_run(void *q, int q_stride,    /* [n_tokens, q_stride] */
                     void *k, int k_stride,    /* [n_tokens, k_stride] */
                     const int32_t *pos,       /* [n_tokens] */
                     int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                     rope_params p, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
