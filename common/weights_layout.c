/* weights_layout.c - the one table of a model's tensors and their places (see weights_layout.h). */
#include "weights_layout.h"
#include "../kernels/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static size_t take(size_t *at, size_t n, size_t align)
{
    size_t p = *at;
    *at += (n + align - 1) / align * align;
    return p;
}

static size_t round_up(size_t n, size_t align)
{
    return (n + align - 1) / align * align;
}

void weights_layout_init(weights_layout *l, const model_config *c, size_t align)
{
    size_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size, hd = c->head_dim;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd;
    size_t n_exp = c->n_experts > 0 ? (size_t)c->n_experts : 1, at = 0;
    if (align < 1)
        align = 1;
    l->embed = take(&at, vocab * dim, align);
    l->lm_head = c->tie_embeddings ? l->embed : take(&at, vocab * dim, align);
    l->norm = take(&at, dim, align);
    l->layer0 = at;
    at = 0;
    wl_layer *y = &l->layer;
    y->attn_norm = take(&at, dim, align);
    y->wqkv = take(&at, (q_dim + 2 * kv_dim) * dim, align);
    y->bqkv = c->qkv_bias ? take(&at, q_dim + 2 * kv_dim, align) : WL_NONE;
    y->q_norm = c->qk_norm ? take(&at, hd, align) : WL_NONE;
    y->k_norm = c->qk_norm ? take(&at, hd, align) : WL_NONE;
    y->wo = take(&at, dim * q_dim, align);
    y->ffn_norm = take(&at, dim, align);
    y->w_router = c->n_experts > 0 ? take(&at, (size_t)c->n_experts * dim, align) : WL_NONE;
    l->expert_gate_up_stride = round_up(2 * hid * dim, align);
    l->expert_down_stride = round_up(dim * hid, align);
    y->w_gate_up = take(&at, n_exp * l->expert_gate_up_stride, 1);
    y->w_down = take(&at, n_exp * l->expert_down_stride, 1);
    l->layer_stride = at;
    l->n_elems = l->layer0 + l->layer_stride * (size_t)c->n_layers;
}

int weights_layout_max_tensors(const model_config *c)
{
    return 12 + 3 * (c->n_experts > 0 ? c->n_experts : 1);
}

int weights_layout_tensors(const weights_layout *l, const model_config *c, int layer,
                           wl_tensor *out)
{
    int n = 0;
    int64_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size, hd = c->head_dim;
    int64_t q_dim = (int64_t)c->n_heads * hd, kv_dim = (int64_t)c->n_kv_heads * hd;
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
    char pre[64];
    T(b + y->attn_norm, dim, 0, WL_NORM, "model.layers.%d.input_layernorm.weight", layer);
    snprintf(pre, sizeof pre, "model.layers.%d.self_attn", layer);
    T(b + y->wqkv, q_dim, dim, WL_MATRIX, "%s.q_proj.weight", pre);
    T(b + y->wqkv + q_dim * dim, kv_dim, dim, WL_MATRIX, "%s.k_proj.weight", pre);
    T(b + y->wqkv + (q_dim + kv_dim) * dim, kv_dim, dim, WL_MATRIX, "%s.v_proj.weight", pre);
    if (c->qkv_bias) {
        T(b + y->bqkv, q_dim, 0, WL_BIAS, "%s.q_proj.bias", pre);
        T(b + y->bqkv + q_dim, kv_dim, 0, WL_BIAS, "%s.k_proj.bias", pre);
        T(b + y->bqkv + q_dim + kv_dim, kv_dim, 0, WL_BIAS, "%s.v_proj.bias", pre);
    }
    if (c->qk_norm) {
        T(b + y->q_norm, hd, 0, WL_NORM, "%s.q_norm.weight", pre);
        T(b + y->k_norm, hd, 0, WL_NORM, "%s.k_norm.weight", pre);
    }
    T(b + y->wo, dim, q_dim, WL_MATRIX, "%s.o_proj.weight", pre);
    T(b + y->ffn_norm, dim, 0, WL_NORM, "model.layers.%d.post_attention_layernorm.weight", layer);
    if (c->n_experts == 0) {
        T(b + y->w_gate_up, hid, dim, WL_MATRIX, "model.layers.%d.mlp.gate_proj.weight", layer);
        T(b + y->w_gate_up + hid * dim, hid, dim, WL_MATRIX, "model.layers.%d.mlp.up_proj.weight",
          layer);
        T(b + y->w_down, dim, hid, WL_MATRIX, "model.layers.%d.mlp.down_proj.weight", layer);
        return n;
    }
    /* the hub's per-expert names: Mixtral's block_sparse_moe w1 (gate), w3 (up), w2 (down);
       Qwen3-MoE's mlp gate_proj, up_proj, down_proj */
    int mix = c->arch == MODEL_MIXTRAL;
    snprintf(pre, sizeof pre, mix ? "model.layers.%d.block_sparse_moe" : "model.layers.%d.mlp",
             layer);
    const char *g = mix ? "w1" : "gate_proj", *u = mix ? "w3" : "up_proj",
               *d = mix ? "w2" : "down_proj";
    T(b + y->w_router, c->n_experts, dim, WL_MATRIX, "%s.gate.weight", pre);
    for (int e = 0; e < c->n_experts; e++) {
        size_t gu = b + y->w_gate_up + e * l->expert_gate_up_stride;
        T(gu, hid, dim, WL_MATRIX, "%s.experts.%d.%s.weight", pre, e, g);
        T(gu + hid * dim, hid, dim, WL_MATRIX, "%s.experts.%d.%s.weight", pre, e, u);
        T(b + y->w_down + e * l->expert_down_stride, dim, hid, WL_MATRIX,
          "%s.experts.%d.%s.weight", pre, e, d);
    }
#undef T
    return n;
}

void weights_layout_random(const wl_tensor *t, uint64_t seed, uint64_t ordinal, uint64_t *key,
                           float *scale, float *offset)
{
    *key = rng_u64(seed, ordinal);
    *offset = t->kind == WL_NORM ? 1.0f : 0.0f;
    *scale = t->kind == WL_NORM || t->kind == WL_BIAS ? 0.1f
           : t->kind == WL_EMBED ? 1.0f
           : sqrtf(3.0f / (float)t->shape[1]);
}

int weights_layout_random_each(const weights_layout *l, const model_config *c, uint64_t seed,
                               wl_random_fn fn, void *arg)
{
    wl_tensor *t = malloc((size_t)weights_layout_max_tensors(c) * sizeof *t);
    if (!t)
        return -1;
    uint64_t ordinal = 0;
    int rc = 0;
    for (int layer = -1; layer < c->n_layers && rc >= 0; layer++) {
        int n = weights_layout_tensors(l, c, layer, t);
        for (int i = 0; i < n && rc >= 0; i++, ordinal++) {
            uint64_t key;
            float scale, offset;
            weights_layout_random(&t[i], seed, ordinal, &key, &scale, &offset);
            rc = fn(arg, &t[i], (size_t)t[i].shape[0] * (t[i].n_dims == 2 ? t[i].shape[1] : 1),
                    key, scale, offset);
        }
    }
    free(t);
    return rc < 0 ? rc : 0;
}
