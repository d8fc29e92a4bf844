/* prefill_attn_sm90.cuh - the Hopper (sm_90a) prefill attention kernel: wgmma + TMA,
 * FlashAttention-3 style (prefill_attn_sm90.cu). Same arguments and semantics as
 * prefill_attn_run (prefill_attn.cuh); prefill_attn_run calls it for the cases it covers when
 * it is enabled (prefill_attn_sm90_enabled) and keeps the portable kernel for the rest.
 */
#ifndef CINDER_PREFILL_ATTN_SM90_CUH
#define CINDER_PREFILL_ATTN_SM90_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* VARIANT 1: one key tile at a time per consumer warpgroup; 2: S of the next tile and PV of
 * the current one in flight together (softmax overlapped with PV); 3: 2 plus ping-pong of the
 * two consumer warpgroups; 0: the default. Returns cudaErrorNotSupported, launching nothing,
 * when the case (dtype, head_dim, block_size) or the device / build is one it does not cover
 * (see prefill_attn_sm90.cu); cudaErrorInvalidValue for arguments prefill_attn_run rejects. */
cudaError_t prefill_attn_sm90_run(int variant, void *out, const void *q, int q_stride,
                                  const void *k_cache, const void *v_cache,
                                  const int32_t *block_tables, int max_blocks_per_seq,
                                  const int32_t *cu_seqlens_q, const int32_t *seq_lens,
                                  int n_seqs, int max_q_len, int n_heads, int n_kv_heads,
                                  int head_dim, int block_size, float scale, int window,
                                  kdtype dt, cudaStream_t stream);

/* 1 when this process runs on a compute capability 9.0 device and the build carries the
 * sm_90a code (checked once with a probe launch; call outside stream capture). */
int prefill_attn_sm90_available(void);

/* 1 when prefill_attn_run should use it: available, and CINDER_PREFILL_SM90 set to anything but
 * "0" (unset: the default, SM90_DEFAULT_ON in prefill_attn_sm90.cu). */
int prefill_attn_sm90_enabled(void);

#ifdef __cplusplus
}
#endif

#endif
