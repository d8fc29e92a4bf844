/* fp8_weights.h - reading the FP8 projections of a checkpoint (codes and scales) and
 * quantizing 16/32-bit ones at load, for both backends: one place decides what a scale tensor
 * may look like and how a row is quantized (kernels/fp8.h's math).
 */
#ifndef CINDER_FP8_WEIGHTS_H
#define CINDER_FP8_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "../common/weights_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "../common/safetensors.h"   /* a plain C header without its own guards */

/* Tensor T (an FP8 projection, HF shape [rows, cols]) of ST: its E4M3 codes into CODES
 * [rows, cols] and its scale per output row into SCALES [rows] (a per-tensor weight_scale
 * repeated). Marks both tensors used. 0, or -1 with a message in ERR (not F8_E4M3, no
 * weight_scale, a block-wise weight_scale_inv, a scale of another shape, a scale <= 0). */
int fp8_read_linear(safetensors *st, const wl_tensor *t, uint8_t *codes, float *scales,
                    char *err, size_t n_err);

/* Per-row quantization of W [rows, cols] (fp32): CODES [rows, cols], SCALES [rows]. */
void fp8_quantize_rows(uint8_t *codes, float *scales, const float *w, long rows, long cols);

#ifdef __cplusplus
}
#endif

#endif
