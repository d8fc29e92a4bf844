/* moe_ref.c - CPU references for moe_sort, moe_gemv and moe_combine (moe.cuh); the router's
 * is the CPU backend's cpu_moe_route (worker/cpu_ops.h). */
#include "ref.h"

void moe_sort_ref(int32_t *offsets, int32_t *pos, int32_t *src, const int32_t *ids, int n_pairs,
                  int k, int n_exp)
{
    int at = 0;
    for (int e = 0; e < n_exp; e++) {
        offsets[e] = at;
        for (int p = 0; p < n_pairs; p++)
            if (ids[p] == e) {
                pos[p] = at;
                src[at++] = p / k;
            }
    }
    offsets[n_exp] = at;
}

void moe_gemv_ref(float *out, const float *x, int x_div, const float *w, size_t w_stride,
                  const int32_t *ids, int n_pairs, int n_out, int n_in)
{
    for (int p = 0; p < n_pairs; p++)
        for (int r = 0; r < n_out; r++) {
            const float *wr = w + (size_t)ids[p] * w_stride + (size_t)r * n_in;
            const float *xr = x + (size_t)(p / x_div) * n_in;
            float acc = 0.f;
            for (int i = 0; i < n_in; i++) acc += wr[i] * xr[i];
            out[(size_t)p * n_out + r] = acc;
        }
}

void moe_combine_ref(float *y, const float *ys, const int32_t *pos, const float *weights,
                     int n_tok, int k, int dim)
{
    for (int t = 0; t < n_tok; t++)
        for (int d = 0; d < dim; d++) {
            float acc = 0.f;
            for (int j = 0; j < k; j++) {
                int p = t * k + j, row = pos ? pos[p] : p;
                acc += weights[p] * ys[(size_t)row * dim + d];
            }
            y[(size_t)t * dim + d] = acc;
        }
}
