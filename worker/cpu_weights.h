/* cpu_weights.h - model weights (every supported family) in fp32 for the CPU backend, with q/k/v and gate/up fused
 * so that one matmul computes each group. Loaded from safetensors (F32/F16/BF16, HF names),
 * or random (same values for the same config and seed: `make-model` writes exactly these).
 */
#ifndef CINDER_CPU_WEIGHTS_H
#define CINDER_CPU_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "../common/model_config.h"
#include "../common/weights_layout.h"
#include "cpu_pool.h"

struct fp8_config;   /* fp8_config.h */

typedef struct {
    float *attn_norm;   /* [dim] input_layernorm */
    float *wqkv;        /* [q_dim + 2 * kv_dim, dim] rows of q_proj, then k_proj, then v_proj */
    float *bqkv;        /* [q_dim + 2 * kv_dim] their biases; NULL without qkv_bias */
    float *q_norm;      /* [head_dim] RMSNorm weight of every q head; NULL without qk_norm */
    float *k_norm;      /* [head_dim] same for k */
    float *wo;          /* [dim, q_dim] o_proj */
    float *ffn_norm;    /* [dim] post_attention_layernorm */
    float *w_router;    /* [n_experts, dim] MoE router; NULL for a dense MLP */
    float *w_gate_up;   /* [2 * hidden_dim, dim] rows of gate_proj, then up_proj; MoE: expert
                           e's at w_gate_up + e * layout.expert_gate_up_stride */
    float *w_down;      /* [dim, hidden_dim] down_proj; MoE: + e * layout.expert_down_stride */
} cpu_layer;

typedef struct {
    float *embed;       /* [vocab, dim] embed_tokens */
    float *lm_head;     /* [vocab, dim] == embed when tied */
    float *norm;        /* [dim] final norm */
    cpu_layer *layers;  /* [n_layers] */
    float *mem;         /* [n_floats] one allocation holding all of the above */
    size_t n_floats;
    int borrowed;       /* 1: mem is not ours to free (the holder's shared memory) */
    weights_layout layout;  /* where each HF tensor lives in mem (align 1) */
} cpu_weights;

/* Lays the weights of model C out over MEM [layout.n_elems floats] (NULL: allocates it);
 * the values are left as they are. 0, or negative with a message in ERR. */
int cpu_weights_init(cpu_weights *w, const model_config *c, float *mem, char *err, size_t n_err);
/* Reads the safetensors of model directory DIR into initialized weights; 0 or negative.
 * FP8 (NULL: none): a checkpoint's FP8 projections are dequantized, --quantization fp8
 * quantizes the projections per row after reading (cpu_fp8.h). */
int cpu_weights_read(cpu_weights *w, const model_config *c, const char *dir,
                     const struct fp8_config *fp8, char *err, size_t n_err);
/* Fills initialized weights with the random model of SEED (below). POOL may be NULL.
 * 0, or -1 out of memory (said in ERR). */
int cpu_weights_fill_random(cpu_weights *w, const model_config *c, uint64_t seed, cpu_pool *pool,
                            char *err, size_t n_err);
/* Init (allocating) and read: loads the safetensors of model directory DIR; 0 or negative
 * with a message in ERR. */
int cpu_weights_load(cpu_weights *w, const model_config *c, const char *dir,
                     const struct fp8_config *fp8, char *err, size_t n_err);
/* Random weights: norms near 1, matrices uniform with std 1/sqrt(fan_in), embeddings in
 * [-1, 1). POOL may be NULL; FP8 as cpu_weights_read (quantized when it asks). */
int cpu_weights_random(cpu_weights *w, const model_config *c, uint64_t seed, cpu_pool *pool,
                       const struct fp8_config *fp8, char *err, size_t n_err);
void cpu_weights_free(cpu_weights *w);

#endif
