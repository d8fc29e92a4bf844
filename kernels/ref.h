/* ref.h - CPU references of the CUDA kernels (plain C, fp32 arithmetic on fp32 arrays).
 *
 * The GPU tests round their random inputs to bf16/fp16, run a kernel, and compare it with
 * these on the same (rounded) values. Each mirrors one kernel's launcher in kernels/NAME.cuh
 * with the same shapes; see there for the semantics.
 */
#ifndef CINDER_REF_H
#define CINDER_REF_H

#include <stddef.h>
#include <stdint.h>
#include "rope_params.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Causal attention over the paged cache for a variable-length batch: sequence s has query
 * tokens [cu_seqlens_q[s], cu_seqlens_q[s+1]), the last ones of its seq_lens[s] tokens.
 * Decode is the case q_len = 1. WINDOW > 0: the query at position p attends to keys
 * p - WINDOW < t <= p only (transformers' sliding window). out [n_tokens, n_heads, head_dim]. */
void attn_ref(float *out, const float *q, int q_stride, const float *k_cache,
              const float *v_cache, const int32_t *block_tables, int max_blocks_per_seq,
              const int32_t *cu_seqlens_q, const int32_t *seq_lens, int n_seqs, int n_heads,
              int n_kv_heads, int head_dim, int block_size, float scale, int window);

/* cache rows slot_mapping[t] (negative: skipped) <- k, v rows of token t. */
void kv_store_ref(float *k_cache, float *v_cache, const float *k, int k_stride, const float *v,
                  int v_stride, const int32_t *slot_mapping, int n_tokens, int n_kv_heads,
                  int head_dim);

/* if x: resid += x; out = resid / rms(resid) * w.  resid, x, out [n, dim]; w [dim]. */
void rmsnorm_ref(float *out, float *resid, const float *x, const float *w, int n, int dim,
                 float eps);

/* In place, HF half rotation, on n_heads rows of q and n_kv_heads rows of k per token. */
void rope_ref(float *q, int q_stride, float *k, int k_stride, const int32_t *pos, int n_tokens,
              int n_heads, int n_kv_heads, int head_dim, const rope_params *p);

/* In place on the fused qkv rows [n_tok, stride]: += bias if BIAS, then RMSNorm of every q head
 * with Q_NORM and every k head with K_NORM if given (qkv_prep.cuh). */
void qkv_prep_ref(float *qkv, int stride, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                  const float *bias, const float *q_norm, const float *k_norm, float eps);

/* MoE (moe.cuh): pairs sorted by expert (with the grouped GEMM's tile offsets, tiles of BM
 * rows); the expert GEMV over pairs; gate/up with SwiGLU; down with the weighted combine; the
 * grouped GEMM over sorted segments; the weighted combine. */
void moe_sort_ref(int32_t *offsets, int32_t *tiles, int32_t *pos, int32_t *src,
                  const int32_t *ids, int n_pairs, int k, int n_exp, int bm);
void moe_gemv_ref(float *out, const float *x, int x_div, const float *w, size_t w_stride,
                  const int32_t *ids, int n_pairs, int n_out, int n_in);
void moe_gate_up_ref(float *act, const float *x, const float *w, size_t w_stride,
                     const int32_t *ids, int n_pairs, int k, int hid, int n_in);
void moe_down_ref(float *y, int resid, const float *act, const float *w, size_t w_stride,
                  const int32_t *ids, const float *weights, int n_tok, int k, int n_out, int n_in);
void moe_gemm_ref(float *out, const float *x, const int32_t *src, const float *w,
                  size_t w_stride, const int32_t *offsets, int n_exp, int silu, int n_out,
                  int n_in);
void moe_combine_ref(float *y, int resid, const float *ys, const int32_t *pos,
                     const float *weights, int n_tok, int k, int dim);

/* out[r, i] = silu(in[r, i]) * in[r, hidden + i].  in [n, 2 * hidden]. */
void silu_mul_ref(float *out, const float *in, int n, int hidden);

/* out[t] = table[ids[t]] (zeros for an id outside [0, vocab)). */
void embed_ref(float *out, const float *table, const int32_t *ids, int n, int vocab, int dim);

/* Greedy: token = first index of the largest logit; logprob = its log-softmax. */
void sample_greedy_ref(int32_t *token, float *logprob, const float *logits, int n, int vocab);

/* Fused decode GEMV (gemv.cuh): xn = x, or rmsnorm(x) with NORM_W; y = xn . w^T (w [n_out,
 * n_in]); then by KIND: out = y [n_tok, n_out]; out += y; out [n_tok, n_out/2] = silu(gate)
 * * up; or QKV: RoPE on y's q and k heads, q rows to out [n_tok, out_stride], k and v rows to
 * the caches at slot[t] (negative: skipped). */
enum { GEMV_REF_OUT, GEMV_REF_RESID, GEMV_REF_SILU, GEMV_REF_QKV };
typedef struct {
    int n_heads, n_kv_heads, head_dim, out_stride;
    const int32_t *pos, *slot;   /* [n_tok] */
    float *k_cache, *v_cache;    /* [n_slots, n_kv_heads * head_dim] */
    rope_params rope;
} gemv_ref_qkv;
void gemv_ref(float *out, const float *x, const float *w, int n_tok, int n_out, int n_in,
              int kind, const float *norm_w, float eps, const gemv_ref_qkv *qkv);

#ifdef __cplusplus
}
#endif

#endif
