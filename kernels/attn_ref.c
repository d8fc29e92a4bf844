/* attn_ref.c - CPU reference for prefill_attn and decode_attn: causal attention of a
 * variable-length batch over the paged KV cache, one query row at a time, fp32, optionally
 * over a sliding window of the last WINDOW positions. */
#include <math.h>
#include <stdlib.h>
#include "ref.h"

void attn_ref(float *out, const float *q, int q_stride, const float *k_cache,
              const float *v_cache, const int32_t *block_tables, int max_blocks_per_seq,
              const int32_t *cu_seqlens_q, const int32_t *seq_lens, int n_seqs, int n_heads,
              int n_kv_heads, int head_dim, int block_size, float scale, int window)
{
    int group = n_heads / n_kv_heads, max_len = 1;
    for (int s = 0; s < n_seqs; s++)
        if (seq_lens[s] > max_len) max_len = seq_lens[s];
    float *p = malloc(sizeof(float) * max_len);   /* [max_len] scores of one row */
    for (int s = 0; s < n_seqs; s++) {
        int q_len = cu_seqlens_q[s + 1] - cu_seqlens_q[s];
        const int32_t *bt = block_tables + (size_t)s * max_blocks_per_seq;
        for (int i = 0; i < q_len; i++) {
            int tok = cu_seqlens_q[s] + i, pos = seq_lens[s] - q_len + i;
            for (int h = 0; h < n_heads; h++) {
                const float *qr = q + (size_t)tok * q_stride + (size_t)h * head_dim;
                float *o = out + ((size_t)tok * n_heads + h) * head_dim;
                int kvh = h / group, t0 = window > 0 && pos >= window ? pos - window + 1 : 0;
                float mx = -INFINITY, sum = 0.f;
                for (int t = t0; t <= pos; t++) {
                    size_t slot = (size_t)bt[t / block_size] * block_size + t % block_size;
                    const float *kr = k_cache + (slot * n_kv_heads + kvh) * head_dim;
                    float d = 0.f;
                    for (int e = 0; e < head_dim; e++) d += qr[e] * kr[e];
                    p[t] = d * scale;
                    if (p[t] > mx) mx = p[t];
                }
                for (int e = 0; e < head_dim; e++) o[e] = 0.f;
                for (int t = t0; t <= pos; t++) {
                    size_t slot = (size_t)bt[t / block_size] * block_size + t % block_size;
                    const float *vr = v_cache + (slot * n_kv_heads + kvh) * head_dim;
                    float w = expf(p[t] - mx);
                    sum += w;
                    for (int e = 0; e < head_dim; e++) o[e] += w * vr[e];
                }
                for (int e = 0; e < head_dim; e++) o[e] /= sum;
            }
        }
    }
    free(p);
}
