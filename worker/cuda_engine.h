/* cuda_engine.h - the CUDA engine's state and its internal entry points, shared by the files
 * that implement it (cuda_setup.cu: setup and teardown; cuda_backend.cu: the forward's plan /
 * pack / run / sample / collect; cuda_model.cu: the model's layers and the captured decode
 * graphs) and by the decode breakdown benchmark (bench/decode_breakdown.cu). C++ only; the
 * public interface is cuda_backend.h.
 */
#ifndef CINDER_CUDA_ENGINE_H
#define CINDER_CUDA_ENGINE_H

#include "cuda_backend.h"
#include "cuda_weights.h"
#include "../kernels/gemv.cuh"
#include "../kernels/kdtype.h"
#include "../kernels/rope_params.h"
#include "../kernels/sample_full.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <vector>

#define MAX_GRAPHS 16

struct ce_moe;                 /* MoE buffers (cuda_moe.cu), NULL for a dense model */
struct ce_fp8;                 /* FP8 weights and KV (cuda_fp8.cu), NULL without */

struct cuda_engine {
    model_config cfg;
    kdtype dt;
    cudaDataType_t cdt;
    int bs, max_ctx, max_tokens, max_seqs, max_bps, n_sms;
    int gemv_max;                    /* decode-only batches up to this many tokens: fused path */
    int gemv_warps;                  /* GEMV launch width, warps a multiprocessor (0: default) */
    int pdl_mask;                    /* early launch: bit 0 the GEMVs, bit 1 decode attention */
    int q_dim, kv_dim, qkv_dim;
    rope_params rp;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;
    cuda_weights w;
    /* KV cache: k, v [n_layers, n_blocks, bs, n_kv_heads, head_dim] */
    void *k_cache, *v_cache;
    int kv_held;                     /* 1: the holder's (one IPC allocation, K then V) */
    int n_blocks;
    size_t kv_layer_elems;           /* n_blocks * bs * kv_dim */
    int kv_elem;                     /* bytes a KV element: 2, or 1 (E4M3, --kv-cache-dtype fp8) */
    /* activations (dt) */
    void *x;                         /* [max_tokens, dim] residual stream */
    void *xn;                        /* [max_tokens, dim] normalized */
    void *y;                         /* [max_tokens, dim] attention / MLP block output */
    void *qkv;                       /* [max_tokens, qkv_dim] */
    void *att;                       /* [max_tokens, q_dim] */
    void *gu;                        /* [max_tokens, 2 * hidden_dim] */
    void *act;                       /* [max_tokens, hidden_dim] */
    void *last;                      /* [max_seqs, dim] final-normed rows that sample */
    float *logits;                   /* [max_seqs, vocab] */
    void *dec_ws;                    /* decode attention split workspace */
    size_t dec_ws_bytes;
    /* packed per-step inputs: pinned host and device copies, int32 */
    int32_t *h_in, *d_in;            /* [in_cap] */
    size_t in_cap;
    int32_t *h_bt, *d_bt;            /* [max_seqs, max_bps] block tables */
    /* sampling */
    sample_row_params *h_sp, *d_sp;  /* [max_seqs] */
    int32_t *h_rows, *d_rows;        /* [max_seqs] logits row of each sampled entry */
    sample_penalty *h_pen, *d_pen;   /* [pen_cap] */
    size_t pen_cap;
    int32_t *pen_mark;               /* [vocab] host scratch: 1 + list index, or 0 */
    void *samp_ws;                   /* sample_full workspace */
    size_t samp_ws_bytes;
    void *greedy_ws;                 /* sample_greedy workspace */
    int32_t *h_tok, *d_tok;          /* [max_seqs] sampled tokens */
    float *h_lp, *d_lp;              /* [max_seqs] their logprobs */
    int32_t *h_topk, *d_topk;        /* [max_seqs] top logprobs asked per sampled row */
    int32_t *h_top_ids, *d_top_ids;  /* [max_seqs, TOPK_LOGPROBS_MAX] */
    float *h_top_lps, *d_top_lps;    /* [max_seqs, TOPK_LOGPROBS_MAX] */
    /* graphs */
    int n_graphs;
    int graph_bs[MAX_GRAPHS], graph_splits[MAX_GRAPHS];
    cudaGraphExec_t graph[MAX_GRAPHS];
    /* last forward */
    int n_last;
    std::vector<int> order, logit_row;  /* ordered -> original index; original -> logits row */
    float *h_row;                    /* [vocab] host copy for ce_logits */
    ce_moe *moe;                     /* MoE models only */
    ce_fp8 *fp8;                     /* --quantization fp8 / --kv-cache-dtype fp8 only */
};

/* Device pointers of one forward's packed inputs. */
typedef struct {
    const int32_t *tok, *pos, *slot; /* [n_tok] */
    const int32_t *seq_len;          /* [n_seqs] decodes first */
    const int32_t *cu_q;             /* [n_pre + 1] over the prefill rows */
    const int32_t *gather;           /* [n_rows] token rows for the LM head, NULL: all rows */
} fwd_in;

/* cuda_model.cu */
/* C^T [n_out, n_tok] = W [n_out, n_in] . X^T on the engine's stream (cuBLAS, fp32 accumulate). */
void ce_gemm(cuda_engine *e, void *c, cudaDataType_t ct, const void *x, const void *w, int n_tok,
             int n_out, int n_in);
/* One fused decode GEMV (kernels/gemv.cuh) on the engine's stream, as a dependent launch. */
void ce_gemv(cuda_engine *e, void *out, const void *x, const void *w, int n_tok, int n_out,
             int n_in, gemv_epi_kind kind, const void *norm_w, const gemv_epi *qkv);
/* The model over a mixed batch (decodes first), logits of N_ROWS gathered rows. */
void ce_run_model(cuda_engine *e, const fwd_in *in, int n_tok, int n_dec, int n_pre,
                  int max_q_len, int splits, int n_rows);
/* A decode-only batch of N_TOK <= gemv_max sequences on the fused GEMV path. */
void ce_run_model_fused(cuda_engine *e, const fwd_in *in, int n_tok, int splits);
/* Whether a batch of N_TOK tokens, N_PRE of its sequences prefills, takes the fused path. */
bool ce_use_fused(const cuda_engine *e, int n_tok, int n_pre);
/* Packed input layout of a batch of N_TOK tokens and N_SEQS sequences (N_PRE prefills) at
 * BASE, and its size in int32s. */
fwd_in ce_layout(const int32_t *base, int n_tok, int n_seqs, int n_pre, int n_gather);
size_t ce_layout_ints(int n_tok, int n_seqs, int n_pre, int n_gather);
/* The smallest graph (captured or not yet) that holds a decode batch of N, or -1. */
int ce_graph_for(const cuda_engine *e, int n);
/* The decode graph sizes that fit the engine (graph_sizes), none captured yet: each is
 * captured on its first use (ce_graph_capture), so a (re)started worker is ready at once. */
void ce_plan_graphs(cuda_engine *e);
/* Captures graph G unless it is already (logs the time it took). */
void ce_graph_capture(cuda_engine *e, int g);

/* cuda_model.cu's: layer L's K and V caches; the first N rows' decode attention into e->att */
void layer_cache(cuda_engine *e, int l, void **kc, void **vc);
void decode_attn(cuda_engine *e, const fwd_in *in, const void *q, const void *kc,
                 const void *vc, int n, int splits, int window);

/* cuda_fp8.cu */
/* Whether the fused decode path runs (no FP8, or FP8 weights: ce_fp8_decode_layer). */
bool ce_fp8_fusable(const cuda_engine *e);
/* Layer L of a decode-only batch of N_TOK <= GEMV_MAX_TOKENS on the E4M3 GEMVs: norm and
 * quantization in one kernel, SwiGLU and the residual adds in the GEMV epilogues. */
void ce_fp8_decode_layer(cuda_engine *e, const fwd_in *in, int l, int n_tok, int splits);
/* The four E4M3 GEMVs of layer L with their input quantization, as ce_fp8_decode_layer runs
 * them, plain epilogues into scratch: the products alone, for bench/decode_breakdown.cu. */
void ce_fp8_layer_products(cuda_engine *e, int l, int n_tok);
/* FP8 from config.json and O (fp8_config.h), before the weights are read; sets kv_elem. */
int ce_fp8_config(cuda_engine *e, const ce_opts *o, char *err, size_t n_err);
/* The 16-bit weights of model directory DIR (cuda_weights_load, an FP8 checkpoint's
 * projections left to ce_fp8_init). */
int ce_fp8_weights_load(cuda_engine *e, const char *dir, char *err, size_t n_err);
/* Quantizes the loaded projections, or reads an FP8 checkpoint's (after the activations are
 * allocated). */
int ce_fp8_init(cuda_engine *e, char *err, size_t n_err);
/* ce_gemm's product on FP8 tensor cores when W is an FP8 projection: true if it ran. */
bool ce_fp8_gemm(cuda_engine *e, void *out, cudaDataType_t ct, const void *x, const void *w,
                 int n_tok, int n_out, int n_in);
/* Whether the KV cache is E4M3, with its scales. */
bool ce_fp8_kv(const cuda_engine *e, float *k_scale, float *v_scale);
/* Random E4M3 codes in the first N elements of both caches (benchmarks). */
void ce_fp8_fill_kv(cuda_engine *e, size_t n);
void ce_fp8_free(cuda_engine *e);

/* cuda_moe.cu */
int ce_moe_init(cuda_engine *e, char *err, size_t n_err);
void ce_moe_free(cuda_engine *e);
/* The MoE MLP of layer LY into OUT [n_tok, dim] (added to it when RESID), on e->xn [n_tok,
 * dim] (ffn-normed) when NORM_W is NULL, else on e->x normalized with NORM_W into e->xn. */
void ce_moe_layer(cuda_engine *e, const cuda_layer *ly, int n_tok, const void *norm_w, void *out,
                  int resid);
/* The forced routing (ce_moe_force) of the batch SEQS in the engine's row order (e->order,
 * N_TOK_RUN rows with the graph's padding), uploaded on the stream; nothing when not forced. */
void ce_moe_pack(cuda_engine *e, const fwd_seq *seqs, int n_seqs, int n_tok_run);

#endif
