/* cpu_ops.c - fp32 kernels of the reference CPU backend (see cpu_ops.h). Written with GCC
 * vector extensions so that -O2 without -march gives SIMD code; the summation order of each
 * dot product is fixed (8 lanes, then a fixed pairwise reduction, then the tail) and the
 * same in dot_1x4 and cpu_dot, so which kernel computes a value does not change it.
 * Contraction into FMA is turned off so that this holds on every target.
 */
#include "cpu_ops.h"
#include "cpu_fp8.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* 8 lanes as two SSE-sized vectors (no ABI dependence on AVX) */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float hsum8(v4f a, v4f b)
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
}

/* Dot products of one weight row with 4 input rows (which may repeat). */
static void dot_1x4(const float *w, const float *x0, const float *x1, const float *x2,
                    const float *x3, int n, float out[4])
{
    v4f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        v4f wa = load4(w + k), wb = load4(w + k + 4);
        a0 += wa * load4(x0 + k);
        b0 += wb * load4(x0 + k + 4);
        a1 += wa * load4(x1 + k);
        b1 += wb * load4(x1 + k + 4);
        a2 += wa * load4(x2 + k);
        b2 += wb * load4(x2 + k + 4);
        a3 += wa * load4(x3 + k);
        b3 += wb * load4(x3 + k + 4);
    }
    float s0 = hsum8(a0, b0), s1 = hsum8(a1, b1), s2 = hsum8(a2, b2), s3 = hsum8(a3, b3);
    for (; k < n; k++) {
        s0 += w[k] * x0[k];
        s1 += w[k] * x1[k];
        s2 += w[k] * x2[k];
        s3 += w[k] * x3[k];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

#define TOK_TILE 32 /* input rows kept hot in cache while a weight row streams past */

void cpu_matmul_rows(float *out, int ld_out, const float *x, int ld_x, int n_tok,
                     const float *w, int n_in, int r0, int r1, int accumulate)
{
    for (int t0 = 0; t0 < n_tok; t0 += TOK_TILE) {
        int t1 = t0 + TOK_TILE < n_tok ? t0 + TOK_TILE : n_tok;
        for (int r = r0; r < r1; r++) {
            const float *wr = w + (size_t)r * n_in;
            float d[4];
            int t = t0;
            for (; t + 4 <= t1; t += 4) {
                const float *xt = x + (size_t)t * ld_x;
                dot_1x4(wr, xt, xt + ld_x, xt + 2 * (size_t)ld_x, xt + 3 * (size_t)ld_x, n_in, d);
                for (int i = 0; i < 4; i++) {
                    float *o = out + (size_t)(t + i) * ld_out + r;
                    *o = accumulate ? *o + d[i] : d[i];
                }
            }
            for (; t < t1; t++) { /* same arithmetic as dot_1x4, one row at a time */
                float *o = out + (size_t)t * ld_out + r;
                float v = cpu_dot(wr, x + (size_t)t * ld_x, n_in);
                *o = accumulate ? *o + v : v;
            }
        }
    }
}

float cpu_dot(const float *a, const float *b, int n)
{
    v4f lo = {0}, hi = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        lo += load4(a + k) * load4(b + k);
        hi += load4(a + k + 4) * load4(b + k + 4);
    }
    float s = hsum8(lo, hi);
    for (; k < n; k++)
        s += a[k] * b[k];
    return s;
}

void cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    float ss = cpu_dot(x, x, n);
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

/* As transformers' _compute_llama3_parameters: long wavelengths are divided by the factor,
 * short ones kept, the band between interpolated. */
void cpu_rope_inv_freq(float *inv_freq, const model_config *c)
{
    int n_half = c->head_dim / 2;
    for (int i = 0; i < n_half; i++) {
        float f = (float)(1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->head_dim));
        if (c->rope_factor > 0) {
            double lo_wavelen = c->rope_orig_max_pos / c->rope_low_freq_factor;
            double hi_wavelen = c->rope_orig_max_pos / c->rope_high_freq_factor;
            double wavelen = 2 * M_PI / f;
            if (wavelen > lo_wavelen) {
                f = f / c->rope_factor;
            } else if (wavelen >= hi_wavelen) {
                double smooth = (c->rope_orig_max_pos / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (float)((1 - smooth) * f / c->rope_factor + smooth * f);
            }
        }
        inv_freq[i] = f;
    }
}

void cpu_rope_cos_sin(float *cos_t, float *sin_t, const float *inv_freq, int n_half, int pos)
{
    for (int i = 0; i < n_half; i++) {
        float angle = (float)pos * inv_freq[i]; /* fp32 product, as HF */
        cos_t[i] = (float)cos((double)angle);
        sin_t[i] = (float)sin((double)angle);
    }
}

void cpu_rope_apply(float *x, const float *cos_t, const float *sin_t, int n_half)
{
    for (int i = 0; i < n_half; i++) {
        float a = x[i], b = x[i + n_half];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + n_half] = b * cos_t[i] + a * sin_t[i];
    }
}

/* Row OFF of CACHE as fp32: in place, or decoded into ROW with *SCALE (an E4M3 cache). */
static const float *kv_row(const void *cache, size_t off, int hd, const float *scale, float *row)
{
    if (!scale)
        return (const float *)cache + off;
    cpu_fp8_kv_decode(row, (const uint8_t *)cache + off, hd, *scale);
    return row;
}

void cpu_attend(float *out, const float *q, const void *k_cache, const void *v_cache,
                const kv_layout *l, int layer, const int32_t *bt, int j0, int n_ctx,
                int kv_head, float scale, const float *kv_scales, float *row, float *scores)
{
    int hd = l->head_dim;
    float max = -INFINITY;
    for (int j = j0; j < n_ctx; j++) {
        const float *k = kv_row(k_cache, kv_token_offset(l, layer, bt, j) + (size_t)kv_head * hd,
                                hd, kv_scales, row);
        scores[j] = cpu_dot(q, k, hd) * scale;
        max = scores[j] > max ? scores[j] : max;
    }
    float sum = 0;
    for (int j = j0; j < n_ctx; j++) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    memset(out, 0, (size_t)hd * sizeof *out);
    for (int j = j0; j < n_ctx; j++) {
        const float *v = kv_row(v_cache, kv_token_offset(l, layer, bt, j) + (size_t)kv_head * hd,
                                hd, kv_scales ? kv_scales + 1 : NULL, row);
        float p = scores[j];
        for (int d = 0; d < hd; d++)
            out[d] += p * v[d];
    }
    float inv = 1.0f / sum;
    for (int d = 0; d < hd; d++)
        out[d] *= inv;
}

void cpu_moe_route(const float *logits, int n, int k, int renorm, int *sel, float *w)
{
    float max = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        max = logits[i] > max ? logits[i] : max;
    for (int i = 0; i < n; i++)
        sum += expf(logits[i] - max);
    for (int j = 0; j < k; j++) {   /* selection: k is small */
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int m = 0; m < j; m++)
                taken |= sel[m] == i;
            if (!taken && (best < 0 || logits[i] > logits[best]))
                best = i;
        }
        sel[j] = best;
        w[j] = expf(logits[best] - max) / sum;
    }
    if (!renorm)
        return;
    float s = 0;
    for (int j = 0; j < k; j++)
        s += w[j];
    for (int j = 0; j < k; j++)
        w[j] /= s;
}
