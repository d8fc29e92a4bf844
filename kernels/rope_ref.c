/* rope_ref.c - CPU reference for rope: HF rotate-half RoPE with Llama-3.1 frequency scaling,
 * written after transformers' _compute_llama3_parameters (wavelength thresholds, smoothing). */
#include <math.h>
#include "ref.h"

static float inv_freq_llama3(int i, int head_dim, const rope_params *p)
{
    float inv = 1.f / powf(p->theta, (float)(2 * i) / head_dim);
    if (p->factor <= 0.f) return inv;
    float low_wavelen = p->orig_max_pos / p->low_freq_factor;
    float high_wavelen = p->orig_max_pos / p->high_freq_factor;
    float wavelen = 2.f * (float)M_PI / inv;
    float scaled = wavelen > low_wavelen ? inv / p->factor : inv;
    float smooth = (p->orig_max_pos / wavelen - p->low_freq_factor) /
                   (p->high_freq_factor - p->low_freq_factor);
    int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    return medium ? (1.f - smooth) * scaled / p->factor + smooth * scaled : scaled;
}

static void rotate(float *x, int half, const float *c, const float *s)
{
    for (int i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c[i] - x2 * s[i];
        x[i + half] = x2 * c[i] + x1 * s[i];
    }
}

void rope_ref(float *q, int q_stride, float *k, int k_stride, const int32_t *pos, int n_tokens,
              int n_heads, int n_kv_heads, int head_dim, const rope_params *p)
{
    int half = head_dim / 2;
    float c[256], s[256];   /* head_dim <= 512 */
    for (int t = 0; t < n_tokens; t++) {
        for (int i = 0; i < half; i++) {
            float a = (float)pos[t] * inv_freq_llama3(i, head_dim, p);
            c[i] = cosf(a);
            s[i] = sinf(a);
        }
        for (int h = 0; h < n_heads; h++)
            rotate(q + (size_t)t * q_stride + h * head_dim, half, c, s);
        for (int h = 0; h < n_kv_heads; h++)
            rotate(k + (size_t)t * k_stride + h * head_dim, half, c, s);
    }
}
