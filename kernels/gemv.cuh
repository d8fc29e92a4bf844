/* gemv.cuh - matrix products for decode-sized batches (1 to 8 token rows) that stream the
 * weight matrix once at memory bandwidth, on tensor cores, with the small kernels of a decode
 * layer fused into their prologue and epilogue:
 *   prologue: RMSNorm of the input rows (the norm weights applied, rounded to the dtype);
 *   epilogue: plain store (dtype or fp32), residual add in place, SwiGLU of a fused gate/up
 *             projection, or the QKV epilogue (RoPE on q and k, k and v into the paged cache).
 * Launched as a programmatic dependent (pdl.cuh), the weight loads of its first steps run
 * before the previous kernel has finished.
 */
#ifndef CINDER_GEMV_CUH
#define CINDER_GEMV_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"
#include "rope_params.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEMV_MAX_TOKENS 8

typedef enum {
    GEMV_OUT = 0,    /* out [n_tok, n_out] (dtype) = y */
    GEMV_OUT_F32,    /* out [n_tok, n_out] (fp32) = y */
    GEMV_RESID,      /* out [n_tok, n_out] (dtype) += y, in place (the residual stream) */
    GEMV_SILU,       /* W = gate rows [0, n_out/2) then up rows: out [n_tok, n_out/2] = silu(gate) * up */
    GEMV_QKV,        /* W = q, k, v rows of n_heads, n_kv_heads, n_kv_heads heads of head_dim:
                        q and k rotated (RoPE at pos[t]); q to out [n_tok, out_stride] (its
                        first n_heads * head_dim columns); k and v to the cache rows slot[t]
                        (negative: not stored) */
} gemv_epi_kind;

typedef struct {
    gemv_epi_kind kind;
    const void *norm_w;          /* [n_in]: x is first RMS-normalized with these weights and
                                    rounded to the dtype (rmsnorm_run's arithmetic); NULL: x as is */
    float norm_eps;
    int pdl;                     /* launch as a programmatic dependent (pdl.cuh) */
    int warps_per_sm;            /* launch width: warps a multiprocessor aims at (0: 16) */
    /* GEMV_QKV only */
    int n_heads, n_kv_heads, head_dim;   /* head_dim 16..256, a multiple of 16 */
    int out_stride;              /* elements between the q rows of two tokens in OUT */
    const int32_t *pos;          /* [n_tok] */
    const int32_t *slot;         /* [n_tok] cache row of each token */
    void *k_cache, *v_cache;     /* [n_slots, n_kv_heads * head_dim] */
    rope_params rope;
} gemv_epi;

/* y[t, r] = sum_k w[r, k] * x'[t, k] in fp32 (x' = x, or its RMSNorm), for t < n_tok (1..8),
 * then EPI's epilogue. n_in a multiple of 8; with a norm, (n_tok + 1) * (n_in + 8) * 2 bytes
 * of shared memory (at most GEMV_NORM_MAX_BYTES). cudaErrorInvalidValue on bad arguments. */
cudaError_t gemv_fused_run(void *out,          /* see gemv_epi_kind */
                           const void *x,      /* [n_tok, n_in] */
                           const void *w,      /* [n_out, n_in] */
                           int n_tok, int n_out, int n_in, const gemv_epi *epi, kdtype dt,
                           cudaStream_t stream);

#define GEMV_NORM_MAX_BYTES (160 << 10)

/* The plain forms: out[t, r] = sum_k w[r, k] * x[t, k]; OUT_F32: out is fp32, else DT.
 * SILU: W holds gate rows [0, n_out/2) then up rows [n_out/2, n_out) and out [n_tok, n_out/2]
 * = silu(gate) * up (in fp32, rounded once). */
cudaError_t gemv_run(void *out,          /* [n_tok, n_out] (or [n_tok, n_out / 2] with SILU) */
                     const void *x,      /* [n_tok, n_in] */
                     const void *w,      /* [n_out, n_in] */
                     int n_tok, int n_out, int n_in, int out_f32, int silu, kdtype dt,
                     cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
