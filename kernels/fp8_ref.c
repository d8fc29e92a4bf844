/* fp8_ref.c - CPU references of the FP8 kernels (see fp8_ref.h). */
#include "fp8_ref.h"
#include "fp8.h"

#include <stddef.h>
#include <stdlib.h>

void fp8_matmul_ref(float *y, const uint8_t *xq, const float *x_scale, const uint8_t *wq,
                    const float *w_scale, int n_tok, int n_out, int n_in)
{
    double *x = malloc((size_t)n_tok * n_in * sizeof *x), *w = malloc((size_t)n_in * sizeof *w);
    if (!x || !w)
        abort();
    for (size_t i = 0; i < (size_t)n_tok * n_in; i++)   /* decoded once: the sums are exact */
        x[i] = fp8_e4m3_decode(xq[i]);
    for (int r = 0; r < n_out; r++) {
        for (int k = 0; k < n_in; k++)
            w[k] = fp8_e4m3_decode(wq[(size_t)r * n_in + k]);
        for (int t = 0; t < n_tok; t++) {
            const double *xt = x + (size_t)t * n_in;
            double s = 0;
            for (int k = 0; k < n_in; k++)
                s += w[k] * xt[k];
            y[(size_t)t * n_out + r] = (float)(s * w_scale[r] * x_scale[t]);
        }
    }
    free(x);
    free(w);
}

void kv_store_fp8_ref(uint8_t *k_cache, uint8_t *v_cache, const float *k, int k_stride,
                      const float *v, int v_stride, const int32_t *slot_mapping, int n_tokens,
                      int row, float k_scale, float v_scale)
{
    for (int t = 0; t < n_tokens; t++) {
        if (slot_mapping[t] < 0)
            continue;
        size_t o = (size_t)slot_mapping[t] * row;
        fp8_quantize(k_cache + o, k + (size_t)t * k_stride, row, k_scale);
        fp8_quantize(v_cache + o, v + (size_t)t * v_stride, row, v_scale);
    }
}
