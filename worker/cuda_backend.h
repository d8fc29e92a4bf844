/* cuda_backend.h - plain-C interface of the CUDA forward engine (cuda_setup.cu,
 * cuda_backend.cu, cuda_model.cu; internals in cuda_engine.h). The glue in cuda_glue.c adapts
 * it to backend.h (limits, checks, logging).
 *
 * A forward takes the batch as backend.h's fwd_seq records, already validated by the caller
 * (every token in the vocabulary, every block id in range, context within max_ctx).
 */
#ifndef CINDER_CUDA_BACKEND_H
#define CINDER_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "../common/model_config.h"
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cuda_engine cuda_engine;

typedef struct {
    const char *model_dir;
    int dummy_weights;   /* random weights from config.json alone */
    int block_size;      /* KV block size in tokens, >= 1 */
    int max_ctx;         /* longest sequence (0: the model's max_position_embeddings) */
    int max_tokens;      /* most tokens in one forward */
    int max_seqs;        /* most sequences in one forward */
    int64_t kv_tokens;   /* KV capacity asked for; 0: size it from free memory */
    float mem_util;      /* fraction of device memory to use (0: 0.9) */
    int fp16;            /* 1: fp16 weights and activations instead of bf16 */
    int no_graphs;       /* 1: run decode batches eagerly (tests) */
    int gemv_max_tokens; /* decode-only forwards of at most this many tokens (<= 8) take the
                            fused GEMV path (kernels/gemv.cuh); 0: never; < 0: 8 */
    int gemv_warps;      /* GEMV launch width, warps a multiprocessor (0: 16) */
    int pdl_mask;        /* programmatic dependent launch: bit 0 the GEMVs, bit 1 decode
                            attention */
    int portable_attn;   /* 1: never the Hopper prefill attention kernel */
    int quant_fp8;       /* --quantization fp8: E4M3 projections (cuda_fp8.cu) */
    int kv_fp8;          /* --kv-cache-dtype fp8: an E4M3 KV cache */
    const msg_holder_attached *hold; /* the holder's weights and KV cache (hold.h), opened
                            through CUDA IPC instead of loaded and allocated; NULL: own */
} ce_opts;

/* The engine's options from the backend's (the worker's flags, and the holder's). */
void ce_opts_from(ce_opts *eo, const backend_opts *o);


/* Loads the model and sizes the KV cache; NULL with a message in ERR on failure. */
cuda_engine *ce_init(const ce_opts *o, model_config *cfg, int *n_kv_blocks, char *err,
                     size_t n_err);
/* Runs one forward and samples; 0, or -1 when the batch exceeds max_seqs or max_tokens (GPU
 * errors abort with file:line). */
int ce_forward(cuda_engine *e, fwd_seq *seqs, int n_seqs);
/* fp32 logits [vocab] of sequence I of the last forward, NULL if it did not sample. */
const float *ce_logits(cuda_engine *e, int i);
/* KV blocks that fit (O->kv_tokens if asked, else what mem_util of the device leaves
 * after what is allocated now and EXTRA bytes more), or -1 with a message in ERR. */
int64_t ce_kv_blocks_fit(const ce_opts *o, const model_config *c, size_t extra, char *err,
                         size_t n_err);
/* Device bytes of an engine's activations and scratch for O (what a holder leaves free). */
size_t ce_state_bytes(const ce_opts *o, const model_config *c);
/* Bytes of all weights on the device. */
size_t ce_weight_bytes(const cuda_engine *e);
/* Decode batch sizes replayed from CUDA graphs (0 if none): the largest. */
int ce_max_graph_batch(const cuda_engine *e);
void ce_free(cuda_engine *e);

struct backend;
/* The engine behind a backend from cuda_backend_init (NULL for another backend): for the
 * benchmarks that look inside it (bench/decode_breakdown.cu). */
cuda_engine *ce_engine_of(struct backend *b);
/* MoE tests (test_backend_diff): the following forwards route token t of layer l (batch
 * order, as cpu_backend_routing) to the experts ids[(l * stride + t) * n_experts_used + j]
 * instead of the router's top-k (the weights still the router's softmax at those experts,
 * renormalised as the family does), read from IDS at each forward; NULL: the router's own.
 * Call before the first forward (decode graphs capture the choice). */
void ce_moe_force(cuda_engine *e, const int32_t *ids, int stride);


#ifdef __cplusplus
}
#endif

#endif
