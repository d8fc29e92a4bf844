/* decode_attn.cuh - paged decode attention with split-K over the context (flash-decoding).
 *
 * One query token per sequence attends to its whole context in the paged KV cache. The
 * context of each sequence is cut into N_SPLITS equal chunks (rounded to 64 tokens) that run
 * in parallel; a second kernel merges their partial softmax results. Query heads sharing a KV
 * head (GQA) are processed together, so each K/V row is read from memory once.
 */
#ifndef CINDER_DECODE_ATTN_CUH
#define CINDER_DECODE_ATTN_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Split count that fills the device for this batch in one wave: 1 when the (kv head,
 * sequence) blocks already fill the resident slots (2 blocks per multiprocessor at head_dim
 * 128, 4 below), else as many splits as fit in them, with no chunk shorter than 256 tokens and
 * at most 32 splits. */
int decode_attn_splits(int n_seqs, int n_heads, int n_kv_heads, int head_dim, int max_ctx,
                       int n_sms);

/* Bytes of fp32 workspace decode_attn_run needs for N_SPLITS > 1 (0 when N_SPLITS == 1). */
size_t decode_attn_workspace_size(int n_seqs, int n_heads, int head_dim, int n_splits);

/* out[s, h, :] = softmax(scale * q[s, h] . K_s^T) V_s over the ctx_lens[s] cached tokens of
 * sequence s, or only their last WINDOW when WINDOW > 0 (a sliding window; the query is the
 * last token), the splits then cutting the window (ctx_lens[s] == 0 writes zeros). head_dim 48, 64 or 128; any block_size >= 1;
 * n_heads a multiple of n_kv_heads. The split count is fixed by the caller (so a CUDA graph
 * can be captured once for a maximum context); each sequence's chunk length follows its own
 * ctx_lens on the device. WORKSPACE: decode_attn_workspace_size bytes, or NULL when
 * n_splits == 1. PDL: launch as a programmatic dependent (pdl.cuh; measured slower at batches
 * 2-8 on the H200, bench/RESULTS.md run F5, so the worker's default leaves it off). */
cudaError_t decode_attn_run(void *out,                  /* [n_seqs, n_heads, head_dim] */
                            const void *q,              /* [n_seqs, q_stride], heads at 0 */
                            int q_stride,               /* elements between sequences */
                            const void *k_cache,        /* [n_blocks, block_size, n_kv_heads, head_dim] */
                            const void *v_cache,        /* same */
                            const int32_t *block_tables, /* [n_seqs, max_blocks_per_seq] */
                            int max_blocks_per_seq,
                            const int32_t *ctx_lens,    /* [n_seqs] */
                            int n_seqs, int n_heads, int n_kv_heads, int head_dim,
                            int block_size, float scale, int window, int n_splits,
                            void *workspace, int pdl, kdtype dt, cudaStream_t stream);

/* The same over an E4M3 cache (--kv-cache-dtype fp8; kv_store_fp8_run wrote it): keys are
 * codes * K_SCALE, values codes * V_SCALE. */
cudaError_t decode_attn_fp8kv_run(void *out, const void *q, int q_stride, const void *k_cache,
                                  const void *v_cache, const int32_t *block_tables,
                                  int max_blocks_per_seq, const int32_t *ctx_lens, int n_seqs,
                                  int n_heads, int n_kv_heads, int head_dim, int block_size,
                                  float scale, float k_scale, float v_scale, int window,
                                  int n_splits, void *workspace, int pdl, kdtype dt,
                                  cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
