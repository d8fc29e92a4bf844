/* gemv_fp8.cuh - decode-batch products (1 to 8 token rows) with E4M3 weights: half the bytes
 * of kernels/gemv.cuh's 16-bit GEMV streamed once, on FP8 tensor cores (mma m16n8k32 E4M3).
 * The token rows come quantized (per token, kernels/fp8_quant.cuh).
 */
#ifndef CINDER_GEMV_FP8_CUH
#define CINDER_GEMV_FP8_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "gemv.cuh"
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[t, r] = sum_k w[r, k] * xq[t, k] * w_scale[r] * x_scale[t] (fp32), XQ and X_SCALE the
 * per-token E4M3 quantization of the input (fp8_quant_rows_run), then KIND's epilogue:
 * GEMV_OUT, GEMV_OUT_F32, GEMV_RESID or GEMV_SILU as gemv.cuh says (not GEMV_QKV). n_tok
 * 1..8, n_in a multiple of 16, at most GEMV_FP8_MAX_IN. cudaErrorInvalidValue on bad
 * arguments. */
#define GEMV_FP8_MAX_IN 16384
cudaError_t gemv_fp8_run(void *out,              /* see gemv_epi_kind */
                         const uint8_t *xq,      /* [n_tok, n_in] E4M3 */
                         const float *x_scale,   /* [n_tok] */
                         const uint8_t *w,       /* [n_out, n_in] E4M3 */
                         const float *w_scale,   /* [n_out] */
                         int n_tok, int n_out, int n_in, gemv_epi_kind kind, int pdl, kdtype dt,
                         cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
