/* moe.cuh - the mixture-of-experts steps of a MoE layer (Mixtral, Qwen3-MoE), none of which
 * waits on the host, so that every batch size can be captured in a CUDA graph:
 *   the softmax top-k router (optionally told the experts: tests compare two backends on the
 *   same routing); a plain GEMV over pairs (the router's logits at small batches);
 *   decode batches (up to MOE_ROUTER_MAX_TOK tokens): RMSNorm + router logits + top-k in one
 *   launch;
 *   small batches: the expert gate/up GEMV with SwiGLU fused, and the expert down GEMV with
 *   the router-weighted combine fused (optionally into the residual), both streaming the
 *   chosen experts' weights on tensor cores;
 *   large batches: the stable sort of (token, choice) pairs by expert with per-expert tile
 *   offsets on the device, one grouped GEMM launch over all experts (tensor cores; gate/up
 *   with SwiGLU fused), and the weighted combine through the sorted positions. */
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
#define MOE_GEMM_BM 64          /* rows of a grouped-GEMM tile: an expert's segment is cut in these */
#define MOE_ROUTER_MAX_TOK 8    /* tokens of moe_router_run */
#define MOE_SMEM_MAX (160 << 10) /* shared memory of moe_router_run's rows, moe_down_run's pairs */

/* Per token t: p = softmax(logits[t]) in fp32; ids[t, :k] the k largest (ties: the lower
 * index first) or, when FORCE is not NULL, force[t, :k]; weights[t, :k] their p, divided by
 * their sum when RENORM (as transformers' Mixtral and Qwen3-MoE with norm_topk_prob; CPU
 * reference: cpu_moe_route, worker/cpu_ops.h). */
cudaError_t moe_route_run(int32_t *ids,         /* [n_tok, k] */
                          float *weights,       /* [n_tok, k] */
                          const float *logits,  /* [n_tok, n_exp] */
                          const int32_t *force, /* [n_tok, k] or NULL */
                          int n_tok, int n_exp, int k, int renorm, cudaStream_t stream);

/* Decode batches, one launch (a programmatic dependent when PDL: the router rows are loaded
 * before the previous kernel ends): x' = x, or when NORM_W is not NULL its rows RMS-normalized
 * with NORM_W (rmsnorm_run's arithmetic) and stored to XN; logits[t, e] = dot(w_router[e], x't)
 * in fp32; then the last block to finish routes every token as moe_route_run does. COUNTER is
 * a device word that is zero before the launch and is left zero (graph replays reuse it).
 * n_tok <= MOE_ROUTER_MAX_TOK, n_tok * dim * 2 <= MOE_SMEM_MAX, dim a multiple of 8. */
cudaError_t moe_router_run(int32_t *ids,        /* [n_tok, k] */
                           float *weights,      /* [n_tok, k] */
                           float *logits,       /* [n_tok, n_exp] */
                           void *xn,            /* [n_tok, dim] written when NORM_W */
                           const void *x,       /* [n_tok, dim] */
                           const void *norm_w,  /* [dim] or NULL */
                           float eps,
                           const void *w_router, /* [n_exp, dim] */
                           const int32_t *force, /* [n_tok, k] or NULL */
                           unsigned *counter, int n_tok, int n_exp, int dim, int k, int renorm,
                           int pdl, kdtype dt, cudaStream_t stream);

/* The n_pairs = n_tok * k pairs p (pair p is token p / k's choice p % k, expert ids[p]) sorted
 * by expert, stably: expert e's pairs take sorted positions [offsets[e], offsets[e + 1]) in
 * pair order; pos[p] is pair p's position, src[i] the token of the pair at position i;
 * tiles[e] = sum over e' < e of ceil(count(e') / MOE_GEMM_BM) (tiles[n_exp]: all tiles). */
cudaError_t moe_sort_run(int32_t *offsets,      /* [n_exp + 1] */
                         int32_t *tiles,        /* [n_exp + 1] */
                         int32_t *pos,          /* [n_pairs] */
                         int32_t *src,          /* [n_pairs] */
                         const int32_t *ids,    /* [n_pairs] */
                         int n_pairs, int k, int n_exp, cudaStream_t stream);

/* out[p, r] = dot(w_e[r, :], x[p / x_div, :]) with w_e = w + ids[p] * w_stride (the expert of
 * pair p; expert 0 when IDS is NULL), fp32 accumulation, stored as fp32 (OUT_F32) or rounded
 * once to DT. n_in a multiple of 8. */
cudaError_t moe_gemv_run(void *out,             /* [n_pairs, n_out] */
                         int out_f32,
                         const void *x,         /* [n_pairs / x_div, n_in] */
                         int x_div,
                         const void *w,         /* expert 0's [n_out, n_in] */
                         size_t w_stride,       /* elements between experts */
                         const int32_t *ids,    /* [n_pairs] or NULL */
                         int n_pairs, int n_out, int n_in, kdtype dt, cudaStream_t stream);

/* Small batches, gate/up: act[p, r] = silu(g) * u with g = dot(w_e[r], x[p / k]) and
 * u = dot(w_e[hid + r], x[p / k]) (w_e = w + ids[p] * w_stride: the gate rows, then the up
 * rows), fp32, rounded once. PDL: a programmatic dependent launch (it waits before reading
 * anything, and lets the next kernel launch once every block has waited). */
cudaError_t moe_gate_up_run(void *act,          /* [n_pairs, hid] */
                            const void *x,      /* [n_pairs / k, n_in] */
                            const void *w, size_t w_stride, const int32_t *ids, int n_pairs,
                            int k, int hid, int n_in, int pdl, kdtype dt, cudaStream_t stream);

/* Small batches, down and combine: y[t, r] (+= when RESID) sum_j weights[t, j] *
 * dot(w_e[r], act[t * k + j]) over the k choices (w_e = w + ids[t * k + j] * w_stride),
 * fp32, rounded once. k * n_in * 2 <= MOE_SMEM_MAX. PDL: a programmatic dependent launch that
 * reads IDS and starts loading the experts' weights before waiting: IDS must have been written
 * before the previous kernel of the stream, and that kernel (moe_gate_up_run) lets this one
 * launch only after its own wait. */
cudaError_t moe_down_run(void *y,               /* [n_tok, n_out] */
                         int resid,
                         const void *act,       /* [n_tok * k, n_in] */
                         const void *w, size_t w_stride, const int32_t *ids,
                         const float *weights,  /* [n_tok, k] */
                         int n_tok, int k, int n_out, int n_in, int pdl, kdtype dt,
                         cudaStream_t stream);

/* Large batches: one launch over every expert's segment of the sorted pairs (offsets and
 * tiles from moe_sort_run, read on the device). Row i of expert e's segment takes input row
 * x[src[i]] (SRC NULL: x[i]);
 *   SILU:  w_e = [2 * n_out, n_in] (gate rows, then up rows), out[i, r] = silu(g) * u;
 *   plain: w_e = [n_out, n_in], out[i, r] = dot(w_e[r], x row);
 * fp32 accumulation on tensor cores, rounded once. MAX_PAIRS bounds the tiles launched
 * (ceil(max_pairs / MOE_GEMM_BM) + n_exp); n_in a multiple of 8. */
cudaError_t moe_gemm_run(void *out,             /* [n_pairs, n_out] sorted positions */
                         const void *x,         /* [*, n_in] */
                         const int32_t *src,    /* [n_pairs] or NULL */
                         const void *w, size_t w_stride, const int32_t *offsets,
                         const int32_t *tiles, int n_exp, int max_pairs, int silu, int n_out,
                         int n_in, kdtype dt, cudaStream_t stream);

/* y[t] (+= when RESID) sum_j weights[t, j] * ys[row(t * k + j)] in fp32 (j in order), rounded
 * once; row(p) = pos[p], or p when POS is NULL. */
cudaError_t moe_combine_run(void *y,            /* [n_tok, dim] */
                            int resid,
                            const void *ys,     /* [n_tok * k, dim] */
                            const int32_t *pos, /* [n_tok * k] or NULL */
                            const float *weights, /* [n_tok, k] */
                            int n_tok, int k, int dim, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
