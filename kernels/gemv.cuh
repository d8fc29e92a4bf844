/* gemv.cuh - matrix-vector products for decode-sized batches (1 to 8 token rows), streaming
 * the weight matrix once at memory bandwidth: one warp per output row, 16-byte loads, fp32
 * accumulation. Optionally fused with the SwiGLU activation of a gate/up projection.
 */
#ifndef CINDER_GEMV_CUH
#define CINDER_GEMV_CUH

#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEMV_MAX_TOKENS 8

/* out[t, r] = sum_k w[r, k] * x[t, k] for t < n_tok (1..8), r < n_out; n_in a multiple of 8.
 * OUT_F32: out is fp32, else DT. SILU: W holds gate rows [0, n_out/2) then up rows
 * [n_out/2, n_out) and out [n_tok, n_out/2] = silu(gate) * up (in fp32, rounded once). */
cudaError_t gemv_run(void *out,          /* [n_tok, n_out] (or [n_tok, n_out / 2] with SILU) */
                     const void *x,      /* [n_tok, n_in] */
                     const void *w,      /* [n_out, n_in] */
                     int n_tok, int n_out, int n_in, int out_f32, int silu, kdtype dt,
                     cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
