/* cpu_fp8.c - FP8 for the reference CPU backend (see cpu_fp8.h). */
#include "cpu_fp8.h"
#include "fp8_weights.h"
#include "../kernels/fp8.h"

#include <stdio.h>
#include <stdlib.h>

int cpu_fp8_read(safetensors *st, const wl_tensor *t, float *out, char *err, size_t n_err)
{
    long rows = (long)t->shape[0], cols = (long)t->shape[1];
    uint8_t *codes = malloc((size_t)rows * cols);
    float *scales = malloc((size_t)rows * sizeof *scales);
    int rc = -1;
    if (!codes || !scales)
        snprintf(err, n_err, "out of memory");
    else if ((rc = fp8_read_linear(st, t, codes, scales, err, n_err)) == 0)
        for (long r = 0; r < rows; r++)
            for (long k = 0; k < cols; k++)
                out[r * cols + k] = fp8_e4m3_decode(codes[r * cols + k]) * scales[r];
    free(codes);
    free(scales);
    return rc;
}

int cpu_fp8_quantize_weights(cpu_weights *w, const model_config *c)
{
    wl_tensor *t = malloc((size_t)weights_layout_max_tensors(c) * sizeof *t);
    if (!t)
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        int n = weights_layout_tensors(&w->layout, c, l, t);
        for (int i = 0; i < n; i++)
            if (fp8_is_linear(&t[i], l))
                for (int64_t r = 0; r < t[i].shape[0]; r++)
                    fp8_qdq_row(w->mem + t[i].offset + r * t[i].shape[1], (long)t[i].shape[1]);
    }
    free(t);
    return 0;
}

void cpu_fp8_kv_encode(uint8_t *dst, const float *x, int n, float scale)
{
    fp8_quantize(dst, x, n, scale);
}

void cpu_fp8_kv_decode(float *dst, const uint8_t *src, int n, float scale)
{
    for (int i = 0; i < n; i++)
        dst[i] = fp8_e4m3_decode(src[i]) * scale;
}
