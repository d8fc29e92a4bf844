/* gemv_ref.c - CPU reference for the fused decode GEMV (gemv_fused_run): the RMSNorm, RoPE,
 * SiLU-mul and KV-store references composed around a double-precision product. */
#include <stdlib.h>
#include <string.h>
#include "ref.h"

void gemv_ref(float *out, const float *x, const float *w, int n_tok, int n_out, int n_in,
              int kind, const float *norm_w, float eps, const gemv_ref_qkv *qkv)
{
    float *xn = malloc(sizeof(float) * (size_t)n_tok * n_in);
    float *y = malloc(sizeof(float) * (size_t)n_tok * n_out);
    if (!xn || !y) abort();
    memcpy(xn, x, sizeof(float) * (size_t)n_tok * n_in);
    if (norm_w) {
        float *resid = malloc(sizeof(float) * (size_t)n_tok * n_in);
        if (!resid) abort();
        memcpy(resid, x, sizeof(float) * (size_t)n_tok * n_in);
        rmsnorm_ref(xn, resid, NULL, norm_w, n_tok, n_in, eps);
        free(resid);
    }
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < n_out; r++) {
            double acc = 0.0;
            for (int k = 0; k < n_in; k++)
                acc += (double)w[(size_t)r * n_in + k] * xn[(size_t)t * n_in + k];
            y[(size_t)t * n_out + r] = (float)acc;
        }
    size_t n = (size_t)n_tok * n_out;
    if (kind == GEMV_REF_OUT) {
        memcpy(out, y, sizeof(float) * n);
    } else if (kind == GEMV_REF_RESID) {
        for (size_t i = 0; i < n; i++) out[i] += y[i];
    } else if (kind == GEMV_REF_SILU) {
        silu_mul_ref(out, y, n_tok, n_out / 2);
    } else {   /* GEMV_REF_QKV */
        int q_dim = qkv->n_heads * qkv->head_dim, kv_dim = qkv->n_kv_heads * qkv->head_dim;
        rope_ref(y, n_out, y + q_dim, n_out, qkv->pos, n_tok, qkv->n_heads, qkv->n_kv_heads,
                 qkv->head_dim, &qkv->rope);
        for (int t = 0; t < n_tok; t++)
            memcpy(out + (size_t)t * qkv->out_stride, y + (size_t)t * n_out,
                   sizeof(float) * q_dim);
        kv_store_ref(qkv->k_cache, qkv->v_cache, y + q_dim, n_out, y + q_dim + kv_dim, n_out,
                     qkv->slot, n_tok, qkv->n_kv_heads, qkv->head_dim);
    }
    free(xn);
    free(y);
}
