/* cpu_ops.h - the fp32 building blocks of the reference CPU forward pass: matmul over a block
 * of weight rows, RMSNorm, RoPE (HF half rotation, Llama-3.1 frequency scaling), attention of
 * one query head over the paged KV cache (optionally a sliding window), the MoE router.
 *
 * Every output element is computed by the same instruction sequence whatever the batch, the
 * row range or the thread: a sequence's results are bit-identical alone or in any batch.
 */
#ifndef CINDER_CPU_OPS_H
#define CINDER_CPU_OPS_H

#include <stdint.h>
#include "../common/model_config.h"
#include "kv_layout.h"

/* out[t, r] = dot(w[r, :], x[t, :])  (or += when ACCUMULATE) for t < n_tok, r0 <= r < r1.
 * x: [n_tok, n_in] rows ld_x apart; w: [n_out, n_in]; out: [n_tok, n_out] rows ld_out apart. */
void cpu_matmul_rows(float *out, int ld_out, const float *x, int ld_x, int n_tok,
                     const float *w, int n_in, int r0, int r1, int accumulate);

float cpu_dot(const float *a, const float *b, int n);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n (out may alias x). */
void cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* inv_freq [head_dim / 2]: theta^(-2i/head_dim), with llama3 rope scaling when configured. */
void cpu_rope_inv_freq(float *inv_freq, const model_config *c);
/* cos/sin [n_half] of position POS. */
void cpu_rope_cos_sin(float *cos_t, float *sin_t, const float *inv_freq, int n_half, int pos);
/* Rotates one head X [2 * n_half]: pairs (x[i], x[i + n_half]). */
void cpu_rope_apply(float *x, const float *cos_t, const float *sin_t, int n_half);

/* out [head_dim] = softmax(q . K[j] * scale) . V[j] over positions j0 <= j < n_ctx of the
 * sequence with block table BT, KV head KV_HEAD of LAYER (j0 > 0: a sliding window).
 * The caches hold fp32, or with KV_SCALES ({k_scale, v_scale}) E4M3 codes of K / k_scale and
 * V / v_scale (row: scratch [head_dim] they are decoded into). scores: scratch [n_ctx]. */
void cpu_attend(float *out, const float *q, const void *k_cache, const void *v_cache,
                const kv_layout *l, int layer, const int32_t *bt, int j0, int n_ctx,
                int kv_head, float scale, const float *kv_scales, float *row, float *scores);

/* The MoE router of one token, as transformers: p = softmax(LOGITS [n]) in fp32, the K
 * largest (ties: the lower index first) into SEL [k] and their p into W [k], divided by
 * their sum when RENORM. */
void cpu_moe_route(const float *logits, int n, int k, int renorm, int *sel, float *w);

#endif
