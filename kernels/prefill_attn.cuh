/* prefill_attn.cuh - causal flash attention for prefill and chunked prefill over the paged KV.
 *
 * Variable-length batch: sequence s has q_len = cu_seqlens_q[s+1] - cu_seqlens_q[s] new query
 * tokens, which are the LAST q_len of its seq_lens[s] tokens (positions seq_lens[s] - q_len ..
 * seq_lens[s] - 1); earlier tokens are context from previous chunks. ALL keys and values,
 * the new tokens' included, are read from the paged cache, so kv_store_run must have written
 * this step's K/V into the pages first. Query i attends to keys 0 .. its position (causal),
 * or with WINDOW > 0 to the keys of positions p - WINDOW < t <= p only (sliding window: key
 * tiles wholly before a query tile's window are not read).
 */
#ifndef CINDER_PREFILL_ATTN_CUH
#define CINDER_PREFILL_ATTN_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* head_dim 48, 64 or 128; block_size >= 1; n_heads a multiple of n_kv_heads; MAX_Q_LEN (host)
 * at least the largest q_len in the batch (it sizes the grid). */
cudaError_t prefill_attn_run(void *out,                 /* [n_tokens, n_heads, head_dim] */
                             const void *q,             /* [n_tokens, q_stride], heads at 0 */
                             int q_stride,              /* elements between tokens */
                             const void *k_cache,       /* [n_blocks, block_size, n_kv_heads, head_dim] */
                             const void *v_cache,       /* same */
                             const int32_t *block_tables, /* [n_seqs, max_blocks_per_seq] */
                             int max_blocks_per_seq,
                             const int32_t *cu_seqlens_q, /* [n_seqs + 1], device */
                             const int32_t *seq_lens,   /* [n_seqs] cached + new, device */
                             int n_seqs, int max_q_len, int n_heads, int n_kv_heads,
                             int head_dim, int block_size, float scale, int window,
                             kdtype dt, cudaStream_t stream);

/* The launchers that take a tiling VARIANT: prefill_attn_run_tiled below and the Hopper
 * kernel's prefill_attn_sm90_run (prefill_attn_sm90.cuh), declared with this one type so that
 * tests and benchmarks call either through one pointer. The other arguments are
 * prefill_attn_run's. */
typedef cudaError_t prefill_attn_launch_fn(int variant, void *out, const void *q, int q_stride,
                                           const void *k_cache, const void *v_cache,
                                           const int32_t *block_tables, int max_blocks_per_seq,
                                           const int32_t *cu_seqlens_q, const int32_t *seq_lens,
                                           int n_seqs, int max_q_len, int n_heads,
                                           int n_kv_heads, int head_dim, int block_size,
                                           float scale, int window, kdtype dt,
                                           cudaStream_t stream);

/* prefill_attn_run with the tiling chosen, for tests and benchmarks comparing them (query rows
 * per warp x warps, keys per tile): VARIANT 1 = 16 x 4, 64 keys; 2 = 32 x 4, 64 keys; 3 = 32 x
 * 8, 64 keys; 4 = 32 x 4, 32 keys; 0 = the default that prefill_attn_run uses (the fastest
 * measured on the H200: 3 when max_q_len >= 2048, else 2). */
prefill_attn_launch_fn prefill_attn_run_tiled;

/* prefill_attn_run over an E4M3 cache (--kv-cache-dtype fp8): keys are codes * K_SCALE,
 * values codes * V_SCALE. */
cudaError_t prefill_attn_fp8kv_run(void *out, const void *q, int q_stride, const void *k_cache,
                                   const void *v_cache, const int32_t *block_tables,
                                   int max_blocks_per_seq, const int32_t *cu_seqlens_q,
                                   const int32_t *seq_lens, int n_seqs, int max_q_len,
                                   int n_heads, int n_kv_heads, int head_dim, int block_size,
                                   float scale, float k_scale, float v_scale, int window,
                                   kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
