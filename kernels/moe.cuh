/* moe.cuh - the mixture-of-experts steps of a MoE layer (Mixtral, Qwen3-MoE): the softmax
 * top-k router, the stable sort of (token, choice) pairs by expert (segments for one GEMM per
 * expert), an expert GEMV over pairs for small batches (no host round trip, so it can be
 * captured in a CUDA graph), and the weighted combine of the chosen experts' outputs. */
#ifndef CINDER_MOE_CUH
#define CINDER_MOE_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_MAX_EXPERTS 512
#define MOE_MAX_K 16

/* Per token t: p = softmax(logits[t]) in fp32; ids[t, :k] the k largest (ties: the lower
 * index first), weights[t, :k] their p, divided by their sum when RENORM (as transformers'
 * Mixtral and Qwen3-MoE with norm_topk_prob; CPU reference: cpu_moe_route, worker/cpu_ops.h). */
cudaError_t moe_route_run(int32_t *ids,         /* [n_tok, k] */
                          float *weights,       /* [n_tok, k] */
                          const float *logits,  /* [n_tok, n_exp] */
                          int n_tok, int n_exp, int k, int renorm, cudaStream_t stream);

/* The n_pairs = n_tok * k pairs p (pair p is token p / k's choice p % k, expert ids[p]) sorted
 * by expert, stably: expert e's pairs take sorted positions [offsets[e], offsets[e + 1]) in
 * pair order; pos[p] is pair p's position, src[i] the token of the pair at position i. */
cudaError_t moe_sort_run(int32_t *offsets,      /* [n_exp + 1] */
                         int32_t *pos,          /* [n_pairs] */
                         int32_t *src,          /* [n_pairs] */
                         const int32_t *ids,    /* [n_pairs] */
                         int n_pairs, int k, int n_exp, cudaStream_t stream);

/* out[p, r] = dot(w_e[r, :], x[p / x_div, :]) with w_e = w + ids[p] * w_stride (the expert of
 * pair p), fp32 accumulation, rounded once. n_in a multiple of 8. */
cudaError_t moe_gemv_run(void *out,             /* [n_pairs, n_out] */
                         const void *x,         /* [n_pairs / x_div, n_in] */
                         int x_div,
                         const void *w,         /* expert 0's [n_out, n_in] */
                         size_t w_stride,       /* elements between experts */
                         const int32_t *ids,    /* [n_pairs] */
                         int n_pairs, int n_out, int n_in, kdtype dt, cudaStream_t stream);

/* y[t] = sum_j weights[t, j] * ys[row(t * k + j)] in fp32 (j in order), rounded once;
 * row(p) = pos[p], or p when POS is NULL. */
cudaError_t moe_combine_run(void *y,            /* [n_tok, dim] */
                            const void *ys,     /* [n_tok * k, dim] */
                            const int32_t *pos, /* [n_tok * k] or NULL */
                            const float *weights, /* [n_tok, k] */
                            int n_tok, int k, int dim, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
