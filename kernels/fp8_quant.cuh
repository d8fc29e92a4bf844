/* fp8_quant.cuh - dynamic per-row FP8 quantization on the GPU: activations per token before an
 * FP8 GEMM (kernels/gemm_fp8.cuh), weights per output channel at load. The math of
 * kernels/fp8.h (scale = amax / 448, code = e4m3(x / scale)), bit for bit.
 */
#ifndef CINDER_FP8_QUANT_CUH
#define CINDER_FP8_QUANT_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* q [n_rows, n] codes and scales [n_rows] of x [n_rows, ld] (elements of DT, or fp32 when
 * X_F32). n a multiple of 8 (16-bit) or 4 (fp32), ld too. */
cudaError_t fp8_quant_rows_run(uint8_t *q, float *scales, const void *x, int n_rows, int n,
                               int ld, int x_f32, kdtype dt, cudaStream_t stream);
/* The same of each row's RMSNorm with weights NORM_W [n] (DT), as rmsnorm_run computes and
 * rounds it (x / rms(x) * w, rounded to DT), quantized without being stored: the input of
 * an FP8 projection after a norm in one kernel. 16-bit rows only. */
cudaError_t fp8_quant_norm_rows_run(uint8_t *q, float *scales, const void *x, const void *norm_w,
                                    float eps, int n_rows, int n, int ld, kdtype dt,
                                    cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
