/* qkv_prep.cuh - the per-family step between the fused QKV GEMM and RoPE: Qwen2's q/k/v
 * biases and Qwen3's RMSNorm of every q and k head, in place on the fused qkv rows; and, for
 * the fused decode path, the same followed by RoPE and the K/V store in one kernel. */
#ifndef CINDER_QKV_PREP_CUH
#define CINDER_QKV_PREP_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include "kdtype.h"
#include "rope_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Row t of QKV holds n_heads q heads, then n_kv_heads k heads, then n_kv_heads v heads of
 * HEAD_DIM each. If BIAS: row += bias (rounded to the element type). Then if Q_NORM (and
 * K_NORM): each q head h = h * rsqrt(mean(h^2) + eps) * q_norm, each k head the same with
 * k_norm, in fp32 from the biased values, rounded once. head_dim even, at most 256. */
cudaError_t qkv_prep_run(void *qkv,             /* [n_tok, stride] */
                         int stride,            /* elements between rows */
                         int n_tok, int n_heads, int n_kv_heads, int head_dim,
                         const void *bias,      /* [(n_heads + 2 n_kv_heads) head_dim] or NULL */
                         const void *q_norm,    /* [head_dim] or NULL */
                         const void *k_norm,    /* [head_dim] or NULL (NULL iff q_norm is) */
                         float eps, kdtype dt, cudaStream_t stream);

/* Decode rows: qkv_prep_run's bias and head norms (the result rounded as it stores it), then
 * RoPE at pos[t] on every q and k head (rope_run's arithmetic, rounded once); the q heads stay
 * in place, the k and v heads go to cache row slot[t] (negative: not stored), as kv_store_run.
 * head_dim even, at most 256. */
cudaError_t qkv_finish_run(void *qkv, int stride, int n_tok, int n_heads, int n_kv_heads,
                           int head_dim, const void *bias, const void *q_norm,
                           const void *k_norm, float eps,
                           const int32_t *pos,  /* [n_tok] */
                           const int32_t *slot, /* [n_tok] */
                           void *k_cache,       /* [n_slots, n_kv_heads * head_dim] */
                           void *v_cache,       /* same */
                           rope_params rope, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
