/* weights_layout.h - where each HF tensor of a model of a supported family lives in cinder's
 * one weight buffer (q/k/v rows fused, gate/up rows fused, per family: q/k/v biases, q/k norms,
 * MoE router and experts), and how a random model fills it: one table for the CPU backend
 * (fp32), the CUDA backend (bf16/fp16), make-model and the tests, so that loaded weights,
 * random weights and written models cannot drift apart.
 *
 * Buffer: [embed][lm_head unless tied][norm][layer 0]...[layer n-1], each layer
 * [attn_norm][wqkv][bqkv (qkv_bias)][q_norm k_norm (qk_norm)][wo][ffn_norm], then dense:
 * [w_gate_up][w_down], MoE: [w_router][w_gate_up of experts 0..E-1][w_down of experts 0..E-1];
 * every tensor starts at a multiple of ALIGN elements (the GPU's 16-byte vector loads want 8).
 */
#ifndef CINDER_WEIGHTS_LAYOUT_H
#define CINDER_WEIGHTS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include "model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t attn_norm;   /* [dim] input_layernorm */
    size_t wqkv;        /* [q_dim + 2 * kv_dim, dim] rows of q_proj, then k_proj, then v_proj */
    size_t bqkv;        /* [q_dim + 2 * kv_dim] their biases (qkv_bias; else WL_NONE) */
    size_t q_norm;      /* [head_dim] self_attn.q_norm (qk_norm; else WL_NONE) */
    size_t k_norm;      /* [head_dim] self_attn.k_norm (qk_norm; else WL_NONE) */
    size_t wo;          /* [dim, q_dim] o_proj */
    size_t ffn_norm;    /* [dim] post_attention_layernorm */
    size_t w_router;    /* [n_experts, dim] the MoE router (else WL_NONE) */
    size_t w_gate_up;   /* [2 * hidden_dim, dim] rows of gate_proj, then up_proj; MoE: expert
                           e's at w_gate_up + e * expert_gate_up_stride */
    size_t w_down;      /* [dim, hidden_dim] down_proj; MoE: expert e's at
                           w_down + e * expert_down_stride */
} wl_layer;             /* element offsets from the layer's start */

#define WL_NONE ((size_t)-1)   /* a tensor the family does not have */

typedef struct {
    size_t embed;       /* [vocab, dim] embed_tokens */
    size_t lm_head;     /* [vocab, dim]; == embed when tied */
    size_t norm;        /* [dim] final norm */
    size_t layer0, layer_stride;   /* layer l starts at layer0 + l * layer_stride */
    wl_layer layer;
    size_t expert_gate_up_stride, expert_down_stride;   /* MoE: elements between experts */
    size_t n_elems;     /* the whole buffer */
} weights_layout;

enum wl_kind { WL_EMBED, WL_NORM, WL_MATRIX, WL_BIAS };

typedef struct {
    char name[128];     /* HF name */
    size_t offset;      /* elements from the buffer's start */
    int n_dims;
    int64_t shape[2];   /* HF shape; a row block of a fused tensor */
    int kind;           /* wl_kind: how a random model fills it */
} wl_tensor;

void weights_layout_init(weights_layout *l, const model_config *c, size_t align);
/* The most tensors one layer of C has (and at least the model's own, layer -1). */
int weights_layout_max_tensors(const model_config *c);
/* The HF tensors of layer LAYER (-1: embedding, final norm, lm_head): fills OUT
 * [weights_layout_max_tensors(c)]; returns how many. Walking layers -1 .. n_layers-1 gives
 * every tensor in the order random weights are keyed by. */
int weights_layout_tensors(const weights_layout *l, const model_config *c, int layer,
                           wl_tensor *out);
/* The random model: element i of tensor T, the ORDINAL-th of the walk, is
 * OFFSET + SCALE * rng_sym(KEY, i) (kernels/rng.h): norms 1 +- 0.1, embeddings uniform in
 * [-1, 1), matrices with std 1/sqrt(fan_in), biases uniform in [-0.1, 0.1). */
void weights_layout_random(const wl_tensor *t, uint64_t seed, uint64_t ordinal, uint64_t *key,
                           float *scale, float *offset);
/* Called by weights_layout_random_each for tensor T of N_ELEMS elements with its
 * weights_layout_random fill; a negative return stops the walk. */
typedef int (*wl_random_fn)(void *arg, const wl_tensor *t, size_t n_elems, uint64_t key,
                            float scale, float offset);
/* The random model of SEED over layout L: FN(ARG, ...) for every tensor in walk order (the
 * walk and the ordinals every backend fills by). 0, -1 out of host memory, or FN's first
 * negative return. */
int weights_layout_random_each(const weights_layout *l, const model_config *c, uint64_t seed,
                               wl_random_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
