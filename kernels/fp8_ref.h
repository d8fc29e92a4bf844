/* fp8_ref.h - CPU references of the FP8 kernels (plain C, fp64 sums; the quantization itself is
 * kernels/fp8.h and worker/fp8_weights.c's fp8_quantize_rows, which the kernels match bit for
 * bit): the scaled E4M3 product of gemv_fp8 / gemm_fp8 and the E4M3 KV store.
 */
#ifndef CINDER_FP8_REF_H
#define CINDER_FP8_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y [n_tok, n_out] = sum_k decode(wq[r, k]) decode(xq[t, k]) * w_scale[r] * x_scale[t]. */
void fp8_matmul_ref(float *y, const uint8_t *xq, const float *x_scale, const uint8_t *wq,
                    const float *w_scale, int n_tok, int n_out, int n_in);

/* E4M3 cache rows slot_mapping[t] (negative: skipped) <- k / k_scale, v / v_scale of token t
 * (kv_store_fp8_run's semantics; rows [n_kv_heads * head_dim], strides in elements). */
void kv_store_fp8_ref(uint8_t *k_cache, uint8_t *v_cache, const float *k, int k_stride,
                      const float *v, int v_stride, const int32_t *slot_mapping, int n_tokens,
                      int row, float k_scale, float v_scale);

#ifdef __cplusplus
}
#endif

#endif
