/* gemm_fp8.cuh - FP8 GEMM for prefill and large batches on Hopper's FP8 tensor cores through
 * cuBLASLt: E4M3 activations (per-token scales, kernels/fp8_quant.cuh) times E4M3 weights
 * (per-output-channel scales), fp32 accumulation, 16-bit output.
 *
 * Scales: cuBLASLt's outer-vector scale mode (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F on the
 * A and B scale pointers: D[r, t] = acc[r, t] * w_scale[r] * x_scale[t], inside its epilogue;
 * cuBLAS 13.0 runs it on the H200, but its heuristic answers INVALID_VALUE unless the scale
 * pointers are set before the query); otherwise (FP8_GEMM_EPILOGUE, or AUTO when the
 * outer-vector mode finds no algorithm) the product runs with unit scales into fp32 scratch
 * (or, without scratch or such an algorithm, rounded to 16 bits in the output) and a small
 * kernel applies both scales and rounds (measured 1.2-1.7x slower on the H200).
 */
#ifndef CINDER_GEMM_FP8_CUH
#define CINDER_GEMM_FP8_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { FP8_GEMM_AUTO = 0, FP8_GEMM_OUTER_VEC = 1, FP8_GEMM_EPILOGUE = 2,
       FP8_GEMM_UNSCALED = 3 /* no scales at all: the plain cuBLASLt FP8 rate (benchmarks) */ };

typedef struct fp8_gemm fp8_gemm;   /* a cuBLASLt handle, its workspace and cached plans */

/* NULL when cuBLASLt cannot start. WORKSPACE [ws_bytes] device memory it may use. */
fp8_gemm *fp8_gemm_create(void *workspace, size_t ws_bytes);
void fp8_gemm_destroy(fp8_gemm *g);

/* out [n_tok, n_out] (DT) = sum_k xq[t, k] wq[r, k] * x_scale[t] * w_scale[r].
 * n_in a multiple of 16. SCRATCH: fp32 [n_tok, n_out] for the epilogue path (NULL: the
 * unscaled product is rounded to DT first). cudaErrorNotSupported when MODE's path has no algorithm
 * for the shape; cudaErrorUnknown on another cuBLASLt failure (printed). *USED (may be NULL):
 * the path that ran. */
cudaError_t fp8_gemm_run(fp8_gemm *g, void *out, const uint8_t *xq, const float *x_scale,
                         const uint8_t *wq, const float *w_scale, int n_tok, int n_out, int n_in,
                         int mode, float *scratch, int *used, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
