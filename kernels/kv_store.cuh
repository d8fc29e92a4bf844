/* kv_store.cuh - write this step's K and V rows into the paged cache. */
#ifndef CINDER_KV_STORE_CUH
#define CINDER_KV_STORE_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Cache row slot_mapping[t] (= block * block_size + offset; negative: padding, skipped) of
 * every kv head <- k/v of token t. head_dim a multiple of 8; strides multiples of 8. */
cudaError_t kv_store_run(void *k_cache,             /* [n_blocks, block_size, n_kv_heads, head_dim] */
                         void *v_cache,             /* same */
                         const void *k, int k_stride, /* [n_tokens, k_stride], heads at 0 */
                         const void *v, int v_stride, /* [n_tokens, v_stride] */
                         const int32_t *slot_mapping, /* [n_tokens] */
                         int n_tokens, int n_kv_heads, int head_dim, kdtype dt,
                         cudaStream_t stream);

/* The same into an E4M3 cache (--kv-cache-dtype fp8, kv_store_fp8.cu): 1-byte elements,
 * code = e4m3(k / k_scale), e4m3(v / v_scale) (per-tensor scales > 0). */
cudaError_t kv_store_fp8_run(void *k_cache, void *v_cache, const void *k, int k_stride,
                             const void *v, int v_stride, const int32_t *slot_mapping,
                             int n_tokens, int n_kv_heads, int head_dim, float k_scale,
                             float v_scale, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
