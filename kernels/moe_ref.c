/* moe_ref.c - CPU references for moe_sort, the expert GEMVs, the grouped expert GEMM and
 * moe_combine (moe.cuh); the router's is the CPU backend's cpu_moe_route (worker/cpu_ops.h). */
#include "ref.h"

#include <math.h>

void moe_sort_ref(int32_t *offsets, int32_t *tiles, int32_t *pos, int32_t *src,
                  const int32_t *ids, int n_pairs, int k, int n_exp, int bm)
{
    int at = 0, tl = 0;
    for (int e = 0; e < n_exp; e++) {
        offsets[e] = at;
        tiles[e] = tl;
        for (int p = 0; p < n_pairs; p++)
            if (ids[p] == e) {
                pos[p] = at;
                src[at++] = p / k;
            }
        tl += (at - offsets[e] + bm - 1) / bm;
    }
    offsets[n_exp] = at;
    tiles[n_exp] = tl;
}

static float dot(const float *a, const float *b, int n)
{
    float acc = 0.f;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

static float silu(float g) { return g / (1.0f + expf(-g)); }

void moe_gemv_ref(float *out, const float *x, int x_div, const float *w, size_t w_stride,
                  const int32_t *ids, int n_pairs, int n_out, int n_in)
{
    for (int p = 0; p < n_pairs; p++)
        for (int r = 0; r < n_out; r++)
            out[(size_t)p * n_out + r] =
                dot(w + (size_t)(ids ? ids[p] : 0) * w_stride + (size_t)r * n_in,
                    x + (size_t)(p / x_div) * n_in, n_in);
}

void moe_gate_up_ref(float *act, const float *x, const float *w, size_t w_stride,
                     const int32_t *ids, int n_pairs, int k, int hid, int n_in)
{
    for (int p = 0; p < n_pairs; p++) {
        const float *we = w + (size_t)ids[p] * w_stride, *xr = x + (size_t)(p / k) * n_in;
        for (int r = 0; r < hid; r++)
            act[(size_t)p * hid + r] = silu(dot(we + (size_t)r * n_in, xr, n_in)) *
                                       dot(we + (size_t)(hid + r) * n_in, xr, n_in);
    }
}

void moe_down_ref(float *y, int resid, const float *act, const float *w, size_t w_stride,
                  const int32_t *ids, const float *weights, int n_tok, int k, int n_out, int n_in)
{
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < n_out; r++) {
            float acc = 0.f;
            for (int j = 0; j < k; j++) {
                size_t p = (size_t)t * k + j;
                acc += weights[p] * dot(w + (size_t)ids[p] * w_stride + (size_t)r * n_in,
                                        act + p * n_in, n_in);
            }
            y[(size_t)t * n_out + r] = (resid ? y[(size_t)t * n_out + r] : 0.f) + acc;
        }
}

void moe_gemm_ref(float *out, const float *x, const int32_t *src, const float *w,
                  size_t w_stride, const int32_t *offsets, int n_exp, int silu_on, int n_out,
                  int n_in)
{
    for (int e = 0; e < n_exp; e++)
        for (int i = offsets[e]; i < offsets[e + 1]; i++) {
            const float *xr = x + (size_t)(src ? src[i] : i) * n_in, *we = w + (size_t)e * w_stride;
            for (int r = 0; r < n_out; r++) {
                float v = dot(we + (size_t)r * n_in, xr, n_in);
                if (silu_on)
                    v = silu(v) * dot(we + (size_t)(n_out + r) * n_in, xr, n_in);
                out[(size_t)i * n_out + r] = v;
            }
        }
}

void moe_combine_ref(float *y, int resid, const float *ys, const int32_t *pos,
                     const float *weights, int n_tok, int k, int dim)
{
    for (int t = 0; t < n_tok; t++)
        for (int d = 0; d < dim; d++) {
            float acc = 0.f;
            for (int j = 0; j < k; j++) {
                int p = t * k + j, row = pos ? pos[p] : p;
                acc += weights[p] * ys[(size_t)row * dim + d];
            }
            y[(size_t)t * dim + d] = (resid ? y[(size_t)t * dim + d] : 0.f) + acc;
        }
}
