/* cpu_weights.c - fp32 LLaMA weights: allocation, safetensors loading, random init
 * (see cpu_weights.h). One table (cpu_weights_hf_tensors) maps HF tensor names to views of
 * the fused buffers; loading, random init and model writing all go through it.
 */
#include "cpu_weights.h"
#include "rng.h"
#include "../common/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int alloc_weights(cpu_weights *w, const model_config *c, char *err, size_t n_err)
{
    memset(w, 0, sizeof *w);
    size_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    size_t per_layer = 2 * dim + (q_dim + 2 * kv_dim) * dim + dim * q_dim + 3 * hid * dim;
    w->n_floats = vocab * dim * (c->tie_embeddings ? 1 : 2) + dim + per_layer * c->n_layers;
    w->mem = malloc(w->n_floats * sizeof(float));
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->mem || !w->layers) {
        snprintf(err, n_err, "out of memory for %zu MB of fp32 weights",
                 w->n_floats * sizeof(float) >> 20);
        cpu_weights_free(w);
        return -1;
    }
    float *p = w->mem;
#define TAKE(n) (p += (n), p - (n))
    w->embed = TAKE(vocab * dim);
    w->lm_head = c->tie_embeddings ? w->embed : TAKE(vocab * dim);
    w->norm = TAKE(dim);
    for (int l = 0; l < c->n_layers; l++) {
        cpu_layer *ly = &w->layers[l];
        ly->attn_norm = TAKE(dim);
        ly->wqkv = TAKE((q_dim + 2 * kv_dim) * dim);
        ly->wo = TAKE(dim * q_dim);
        ly->ffn_norm = TAKE(dim);
        ly->w_gate_up = TAKE(2 * hid * dim);
        ly->w_down = TAKE(dim * hid);
    }
#undef TAKE
    return 0;
}

void cpu_weights_free(cpu_weights *w)
{
    free(w->mem);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int cpu_weights_hf_tensors(const cpu_weights *w, const model_config *c, int layer,
                           cpu_hf_tensor *out)
{
    int n = 0;
    int64_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
    /* T(data, rows, cols, name format, args...); cols 0 for a vector */
#define T(ptr, rows, cols, ...)                                                                \
    do {                                                                                       \
        out[n] = (cpu_hf_tensor){.data = (ptr), .n_dims = (cols) ? 2 : 1, .shape = {rows, cols}}; \
        snprintf(out[n].name, sizeof out[n].name, __VA_ARGS__);                                \
        n++;                                                                                   \
    } while (0)
    if (layer < 0) {
        T(w->embed, vocab, dim, "model.embed_tokens.weight");
        T(w->norm, dim, 0, "model.norm.weight");
        if (!c->tie_embeddings)
            T(w->lm_head, vocab, dim, "lm_head.weight");
        return n;
    }
    const cpu_layer *ly = &w->layers[layer];
    T(ly->attn_norm, dim, 0, "model.layers.%d.input_layernorm.weight", layer);
    T(ly->wqkv, q_dim, dim, "model.layers.%d.self_attn.q_proj.weight", layer);
    T(ly->wqkv + q_dim * dim, kv_dim, dim, "model.layers.%d.self_attn.k_proj.weight", layer);
    T(ly->wqkv + (q_dim + kv_dim) * dim, kv_dim, dim, "model.layers.%d.self_attn.v_proj.weight", layer);
    T(ly->wo, dim, q_dim, "model.layers.%d.self_attn.o_proj.weight", layer);
    T(ly->ffn_norm, dim, 0, "model.layers.%d.post_attention_layernorm.weight", layer);
    T(ly->w_gate_up, hid, dim, "model.layers.%d.mlp.gate_proj.weight", layer);
    T(ly->w_gate_up + hid * dim, hid, dim, "model.layers.%d.mlp.up_proj.weight", layer);
    T(ly->w_down, dim, hid, "model.layers.%d.mlp.down_proj.weight", layer);
#undef T
    return n;
}

int cpu_weights_load(cpu_weights *w, const model_config *c, const char *dir, char *err,
                     size_t n_err)
{
    safetensors st;
    if (st_open_dir(&st, dir, err, n_err) < 0)
        return -1;
    if (alloc_weights(w, c, err, n_err) < 0) {
        st_free(&st);
        return -1;
    }
    cpu_hf_tensor t[16];
    for (int l = -1; l < c->n_layers; l++) {
        int n = cpu_weights_hf_tensors(w, c, l, t);
        for (int i = 0; i < n; i++)
            if (st_load_f32(&st, t[i].name, t[i].n_dims, t[i].shape, t[i].data, err, n_err) < 0)
                goto fail;
    }
    if (st_check_used(&st, model_config_unused_tensors(c), err, n_err) < 0)
        goto fail;
    st_free(&st);
    return 0;
fail:
    st_free(&st);
    cpu_weights_free(w);
    return -1;
}

#define FILL_CHUNK (1 << 18)

typedef struct {
    float *data;
    int64_t n;
    uint64_t key;
    float scale, offset;
} fill_job;

/* data[i] = offset + scale * uniform(-1, 1) keyed by (key, i) */
static void fill_task(void *arg, int task, int thread)
{
    const fill_job *j = arg;
    int64_t i0 = (int64_t)task * FILL_CHUNK, i1 = i0 + FILL_CHUNK < j->n ? i0 + FILL_CHUNK : j->n;
    for (int64_t i = i0; i < i1; i++)
        j->data[i] = j->offset + j->scale * rng_sym(j->key, (uint64_t)i);
}

int cpu_weights_random(cpu_weights *w, const model_config *c, uint64_t seed, cpu_pool *pool,
                       char *err, size_t n_err)
{
    if (alloc_weights(w, c, err, n_err) < 0)
        return -1;
    cpu_hf_tensor t[16];
    uint64_t ordinal = 0;
    for (int l = -1; l < c->n_layers; l++) {
        int n = cpu_weights_hf_tensors(w, c, l, t);
        for (int i = 0; i < n; i++, ordinal++) {
            fill_job j = {t[i].data, t[i].shape[0] * (t[i].n_dims == 2 ? t[i].shape[1] : 1),
                          rng_u64(seed, ordinal), 0, 0};
            if (t[i].n_dims == 1) {                      /* norm weights: 1 +- 0.1 */
                j.offset = 1.0f;
                j.scale = 0.1f;
            } else if (t[i].data == w->embed) {          /* embeddings: uniform [-1, 1) */
                j.scale = 1.0f;
            } else {                                     /* std 1/sqrt(fan_in) */
                j.scale = sqrtf(3.0f / (float)t[i].shape[1]);
            }
            int n_tasks = (int)((j.n + FILL_CHUNK - 1) / FILL_CHUNK);
            if (pool)
                cpu_pool_run(pool, fill_task, &j, n_tasks);
            else
                for (int k = 0; k < n_tasks; k++)
                    fill_task(&j, k, 0);
        }
    }
    return 0;
}
