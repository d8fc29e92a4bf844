/* cpu_fp8.h - the CPU backend's FP8 (dequantize-then-compute, the GPU's math in fp32): FP8
 * projections held as their dequantized values (code * row scale), activations rounded
 * through per-token E4M3 before every FP8 product, and the E4M3 KV cache's rows.
 */
#ifndef CINDER_CPU_FP8_H
#define CINDER_CPU_FP8_H

#include <stddef.h>
#include <stdint.h>
#include "cpu_weights.h"
#include "fp8_config.h"
#include "../common/safetensors.h"

/* Tensor T (an FP8 projection) of an FP8 checkpoint, dequantized into OUT [rows, cols];
 * 0 or -1 with a message in ERR. */
int cpu_fp8_read(safetensors *st, const wl_tensor *t, float *out, char *err, size_t n_err);
/* Every projection of W quantized per output row and dequantized in place
 * (--quantization fp8 on a 16/32-bit checkpoint or random weights). 0, or -1 out of memory. */
int cpu_fp8_quantize_weights(cpu_weights *w, const model_config *c);

/* KV rows: N values of X (scaled by 1 / SCALE) to E4M3 codes, and back. */
void cpu_fp8_kv_encode(uint8_t *dst, const float *x, int n, float scale);
void cpu_fp8_kv_decode(float *dst, const uint8_t *src, int n, float scale);

#endif
