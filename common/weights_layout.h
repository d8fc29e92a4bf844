/* weights_layout.h - where each HF tensor of a LLaMA-family model lives in cinder's one weight
 * buffer (q/k/v rows fused, gate/up rows fused), and how a random model fills it: one table
 * for the CPU backend (fp32), the CUDA backend (bf16/fp16), make-model and the tests, so that
 * loaded weights, random weights and written models cannot drift apart.
 *
 * Buffer: [embed][lm_head unless tied][norm][layer 0]...[layer n-1], each layer
 * [attn_norm][wqkv][wo][ffn_norm][w_gate_up][w_down]; every tensor starts at a multiple of
 * ALIGN elements (the GPU's 16-byte vector loads want 8).
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
    size_t wo;          /* [dim, q_dim] o_proj */
    size_t ffn_norm;    /* [dim] post_attention_layernorm */
    size_t w_gate_up;   /* [2 * hidden_dim, dim] rows of gate_proj, then up_proj */
    size_t w_down;      /* [dim, hidden_dim] down_proj */
} wl_layer;             /* element offsets from the layer's start */

typedef struct {
    size_t embed;       /* [vocab, dim] embed_tokens */
    size_t lm_head;     /* [vocab, dim]; == embed when tied */
    size_t norm;        /* [dim] final norm */
    size_t layer0, layer_stride;   /* layer l starts at layer0 + l * layer_stride */
    wl_layer layer;
    size_t n_elems;     /* the whole buffer */
} weights_layout;

enum wl_kind { WL_EMBED, WL_NORM, WL_MATRIX };

typedef struct {
    char name[96];      /* HF name */
    size_t offset;      /* elements from the buffer's start */
    int n_dims;
    int64_t shape[2];   /* HF shape; a row block of a fused tensor */
    int kind;           /* wl_kind: how a random model fills it */
} wl_tensor;

#define WL_MAX_TENSORS 9   /* per layer, or the model's own (layer -1) */

void weights_layout_init(weights_layout *l, const model_config *c, size_t align);
/* The HF tensors of layer LAYER (-1: embedding, final norm, lm_head): fills OUT
 * [WL_MAX_TENSORS]; returns how many. Walking layers -1 .. n_layers-1 gives every tensor in
 * the order random weights are keyed by. */
int weights_layout_tensors(const weights_layout *l, const model_config *c, int layer,
                           wl_tensor *out);
/* The random model: element i of tensor T, the ORDINAL-th of the walk, is
 * OFFSET + SCALE * rng_sym(KEY, i) (kernels/rng.h): norms 1 +- 0.1, embeddings uniform in
 * [-1, 1), matrices with std 1/sqrt(fan_in). */
void weights_layout_random(const wl_tensor *t, uint64_t seed, uint64_t ordinal, uint64_t *key,
                           float *scale, float *offset);

#ifdef __cplusplus
}
#endif

#endif
