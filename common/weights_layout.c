/* weights_layout.c - the one table of a model's tensors and their places (see weights_layout.h). */
#include "weights_layout.h"
#include "../kernels/rng.h"

#include <math.h>
#include <stdio.h>

static size_t take(size_t *at, size_t n, size_t align)
{
    size_t p = *at;
    *at += (n + align - 1) / align * align;
    return p;
}

void weights_layout_init(weights_layout *l, const model_config *c, size_t align)
{
    size_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t at = 0;
    if (align < 1)
        align = 1;
    l->embed = take(&at, vocab * dim, align);
    l->lm_head = c->tie_embeddings ? l->embed : take(&at, vocab * dim, align);
    l->norm = take(&at, dim, align);
    l->layer0 = at;
    at = 0;
    l->layer.attn_norm = take(&at, dim, align);
    l->layer.wqkv = take(&at, (q_dim + 2 * kv_dim) * dim, align);
    l->layer.wo = take(&at, dim * q_dim, align);
    l->layer.ffn_norm = take(&at, dim, align);
    l->layer.w_gate_up = take(&at, 2 * hid * dim, align);
    l->layer.w_down = take(&at, dim * hid, align);
    l->layer_stride = at;
    l->n_elems = l->layer0 + l->layer_stride * (size_t)c->n_layers;
}

int weights_layout_tensors(const weights_layout *l, const model_config *c, int layer,
                           wl_tensor *out)
{
    int n = 0;
    int64_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    /* T(offset, rows, cols (0: a vector), kind, name format, args...) */
#define T(off, rows, cols, kind, ...)                                                          \
    do {                                                                                       \
        out[n] = (wl_tensor){"", (off), (cols) ? 2 : 1, {(rows), (cols)}, (kind)};            \
        snprintf(out[n].name, sizeof out[n].name, __VA_ARGS__);                                \
        n++;                                                                                   \
    } while (0)
    if (layer < 0) {
        T(l->embed, vocab, dim, WL_EMBED, "model.embed_tokens.weight");
        T(l->norm, dim, 0, WL_NORM, "model.norm.weight");
        if (!c->tie_embeddings)
            T(l->lm_head, vocab, dim, WL_MATRIX, "lm_head.weight");
        return n;
    }
    size_t b = l->layer0 + (size_t)layer * l->layer_stride;
    const wl_layer *y = &l->layer;
    T(b + y->attn_norm, dim, 0, WL_NORM, "model.layers.%d.input_layernorm.weight", layer);
    T(b + y->wqkv, q_dim, dim, WL_MATRIX, "model.layers.%d.self_attn.q_proj.weight", layer);
    T(b + y->wqkv + q_dim * dim, kv_dim, dim, WL_MATRIX, "model.layers.%d.self_attn.k_proj.weight",
      layer);
    T(b + y->wqkv + (q_dim + kv_dim) * dim, kv_dim, dim, WL_MATRIX,
      "model.layers.%d.self_attn.v_proj.weight", layer);
    T(b + y->wo, dim, q_dim, WL_MATRIX, "model.layers.%d.self_attn.o_proj.weight", layer);
    T(b + y->ffn_norm, dim, 0, WL_NORM, "model.layers.%d.post_attention_layernorm.weight", layer);
    T(b + y->w_gate_up, hid, dim, WL_MATRIX, "model.layers.%d.mlp.gate_proj.weight", layer);
    T(b + y->w_gate_up + hid * dim, hid, dim, WL_MATRIX, "model.layers.%d.mlp.up_proj.weight",
      layer);
    T(b + y->w_down, dim, hid, WL_MATRIX, "model.layers.%d.mlp.down_proj.weight", layer);
#undef T
    return n;
}

void weights_layout_random(const wl_tensor *t, uint64_t seed, uint64_t ordinal, uint64_t *key,
                           float *scale, float *offset)
{
    *key = rng_u64(seed, ordinal);
    *offset = t->kind == WL_NORM ? 1.0f : 0.0f;
    *scale = t->kind == WL_NORM ? 0.1f
           : t->kind == WL_EMBED ? 1.0f
           : sqrtf(3.0f / (float)t->shape[1]);
}
