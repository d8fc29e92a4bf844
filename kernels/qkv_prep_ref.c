/* qkv_prep_ref.c - CPU reference for qkv_prep: bias add, then RMSNorm of q and k heads. */
#include <math.h>
#include "ref.h"

void qkv_prep_ref(float *qkv, int stride, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                  const float *bias, const float *q_norm, const float *k_norm, float eps)
{
    int n_all = n_heads + 2 * n_kv_heads;
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < n_all; h++) {
            float *x = qkv + (size_t)t * stride + (size_t)h * head_dim;
            if (bias)
                for (int i = 0; i < head_dim; i++) x[i] += bias[(size_t)h * head_dim + i];
            const float *w = !q_norm || h >= n_heads + n_kv_heads ? NULL
                           : h < n_heads ? q_norm : k_norm;
            if (!w) continue;
            float ss = 0.f;
            for (int i = 0; i < head_dim; i++) ss += x[i] * x[i];
            float r = 1.f / sqrtf(ss / head_dim + eps);
            for (int i = 0; i < head_dim; i++) x[i] = w[i] * (x[i] * r);
        }
}
