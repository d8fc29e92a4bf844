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
#include "prefill_attn.cuh"   /* prefill_attn_launch_fn */

#ifdef __cplusplus
extern "C" {
#endif

/* VARIANT 1: one key tile at a time per consumer warpgroup; 2: S of the next tile and PV of
 * the current one in flight together (softmax overlapped with PV); 3: 2 plus ping-pong of the
 * two consumer warpgroups; 4, 5, 6: 1, 2, 3 on a persistent grid (one CTA per SM looping over
 * the query tiles); 7, 8: 4 and 6 with three K/V stages instead of two; 9: 4 with ping-pong;
 * 10: 4 with three consumer warpgroups (192 query rows per CTA); 0: the default. Returns cudaErrorNotSupported, launching nothing,
 * when the case (dtype, head_dim, block_size) or the device / build is one it does not cover
 * (see prefill_attn_sm90.cu); cudaErrorInvalidValue for arguments prefill_attn_run rejects. */
prefill_attn_launch_fn prefill_attn_sm90_run;

/* 1 when this process runs on a compute capability 9.0 device and the build carries the
 * sm_90a code (checked once with a probe launch; call outside stream capture). */
int prefill_attn_sm90_available(void);

/* Process-wide switch for prefill_attn_run (on by default; the worker's --prefill-attn
 * portable turns it off), and whether prefill_attn_run takes this kernel: on and available. */
void prefill_attn_sm90_set(int on);
int prefill_attn_sm90_enabled(void);

#ifdef __cplusplus
}
#endif

#endif
