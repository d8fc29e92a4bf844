/* cuda_weights.cu - GPU weights: one allocation carved into fused tensors, filled from
 * safetensors or by the CPU backend's random generator run on the GPU (see cuda_weights.h).
 * One table (hf_tensors) names every HF tensor with its place and shape; loading and random
 * init both walk it, in cpu_weights_hf_tensors' order (the random keys depend on it).
 */
#include "cuda_weights.h"
extern "C" {   /* plain C headers without guards */
#include "../common/safetensors.h"
}
#include "../kernels/cuda_check.cuh"
#include "../kernels/kutil.cuh"
#include "../kernels/rng.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cpu_weights_random's key for tensor number ORDINAL (worker/rng.h rng_u64, on the host). */
static uint64_t host_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

typedef struct {
    char name[96];
    void *data;         /* device */
    int n_dims;
    int64_t shape[2];
    int is_embed;
} hf_tensor;

/* The HF tensors of layer L (or of the model, L = -1): fills up to 9; returns how many. */
static int hf_tensors(const cuda_weights *w, const model_config *c, int layer, hf_tensor *out)
{
    int n = 0;
    int64_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    int64_t q_dim = (int64_t)c->n_heads * c->head_dim, kv_dim = (int64_t)c->n_kv_heads * c->head_dim;
#define T(ptr, rows, cols, ...)                                                                \
    do {                                                                                       \
        out[n] = (hf_tensor){"", (ptr), (cols) ? 2 : 1, {rows, cols}, 0};                     \
        snprintf(out[n].name, sizeof out[n].name, __VA_ARGS__);                                \
        n++;                                                                                   \
    } while (0)
#define AT(p, off) ((void *)((uint16_t *)(p) + (off)))
    if (layer < 0) {
        T(w->embed, vocab, dim, "model.embed_tokens.weight");
        out[0].is_embed = 1;
        T(w->norm, dim, 0, "model.norm.weight");
        if (!c->tie_embeddings)
            T(w->lm_head, vocab, dim, "lm_head.weight");
        return n;
    }
    const cuda_layer *ly = &w->layers[layer];
    T(ly->attn_norm, dim, 0, "model.layers.%d.input_layernorm.weight", layer);
    T(ly->wqkv, q_dim, dim, "model.layers.%d.self_attn.q_proj.weight", layer);
    T(AT(ly->wqkv, q_dim * dim), kv_dim, dim, "model.layers.%d.self_attn.k_proj.weight", layer);
    T(AT(ly->wqkv, (q_dim + kv_dim) * dim), kv_dim, dim, "model.layers.%d.self_attn.v_proj.weight", layer);
    T(ly->wo, dim, q_dim, "model.layers.%d.self_attn.o_proj.weight", layer);
    T(ly->ffn_norm, dim, 0, "model.layers.%d.post_attention_layernorm.weight", layer);
    T(ly->w_gate_up, hid, dim, "model.layers.%d.mlp.gate_proj.weight", layer);
    T(AT(ly->w_gate_up, hid * dim), hid, dim, "model.layers.%d.mlp.up_proj.weight", layer);
    T(ly->w_down, dim, hid, "model.layers.%d.mlp.down_proj.weight", layer);
#undef AT
#undef T
    return n;
}

static int alloc_weights(cuda_weights *w, const model_config *c, kdtype dt, char *err,
                         size_t n_err)
{
    memset(w, 0, sizeof *w);
    w->dt = dt;
    size_t dim = c->dim, hid = c->hidden_dim, vocab = c->vocab_size;
    size_t q_dim = (size_t)c->n_heads * c->head_dim, kv_dim = (size_t)c->n_kv_heads * c->head_dim;
    /* every tensor starts 16-byte aligned: sizes rounded up to 8 elements */
#define R8(x) (((x) + 7) & ~(size_t)7)
    size_t per_layer = 2 * R8(dim) + (q_dim + 2 * kv_dim) * dim + dim * q_dim + 3 * hid * dim;
    w->n_elems = vocab * dim * (c->tie_embeddings ? 1 : 2) + R8(dim) + per_layer * c->n_layers;
    w->layers = (cuda_layer *)calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers || cudaMalloc(&w->mem, w->n_elems * 2) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate %zu MB of GPU weights", w->n_elems * 2 >> 20);
        w->mem = NULL;
        cuda_weights_free(w);
        return -1;
    }
    uint16_t *p = (uint16_t *)w->mem;
#define TAKE(n) (p += (n), (void *)(p - (n)))
    w->embed = TAKE(vocab * dim);
    w->lm_head = c->tie_embeddings ? w->embed : TAKE(vocab * dim);
    w->norm = TAKE(R8(dim));
    for (int l = 0; l < c->n_layers; l++) {
        cuda_layer *ly = &w->layers[l];
        ly->attn_norm = TAKE(R8(dim));
        ly->wqkv = TAKE((q_dim + 2 * kv_dim) * dim);
        ly->wo = TAKE(dim * q_dim);
        ly->ffn_norm = TAKE(R8(dim));
        ly->w_gate_up = TAKE(2 * hid * dim);
        ly->w_down = TAKE(dim * hid);
    }
#undef TAKE
#undef R8
    return 0;
}

void cuda_weights_free(cuda_weights *w)
{
    if (w->mem)
        CUDA_CHECK(cudaFree(w->mem));
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int cuda_weights_load(cuda_weights *w, const model_config *c, const char *dir, kdtype dt,
                      char *err, size_t n_err)
{
    safetensors st;
    float *f32 = NULL;
    uint16_t *h16 = NULL;
    if (st_open_dir(&st, dir, err, n_err) < 0)
        return -1;
    if (alloc_weights(w, c, dt, err, n_err) < 0) {
        st_free(&st);
        return -1;
    }
    size_t max_elems = (size_t)c->vocab_size * c->dim;
    size_t big = (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim * c->dim;
    if (big > max_elems) max_elems = big;
    if ((size_t)c->hidden_dim * c->dim > max_elems) max_elems = (size_t)c->hidden_dim * c->dim;
    if ((size_t)c->n_heads * c->head_dim * c->dim > max_elems)
        max_elems = (size_t)c->n_heads * c->head_dim * c->dim;
    f32 = (float *)malloc(max_elems * sizeof *f32);
    h16 = (uint16_t *)malloc(max_elems * sizeof *h16);
    if (!f32 || !h16) {
        snprintf(err, n_err, "out of host memory converting weights");
        goto fail;
    }
    for (int l = -1; l < c->n_layers; l++) {
        hf_tensor t[16];
        int n = hf_tensors(w, c, l, t);
        for (int i = 0; i < n; i++) {
            if (st_load_f32(&st, t[i].name, t[i].n_dims, t[i].shape, f32, err, n_err) < 0)
                goto fail;
            size_t ne = (size_t)t[i].shape[0] * (t[i].n_dims == 2 ? t[i].shape[1] : 1);
            for (size_t k = 0; k < ne; k++)
                h16[k] = dt == KDT_F16 ? st_f32_to_f16(f32[k]) : st_f32_to_bf16(f32[k]);
            CUDA_CHECK(cudaMemcpy(t[i].data, h16, ne * 2, cudaMemcpyHostToDevice));
        }
    }
    if (st_check_used(&st, model_config_unused_tensors(c), err, n_err) < 0)
        goto fail;
    free(f32);
    free(h16);
    st_free(&st);
    return 0;
fail:
    free(f32);
    free(h16);
    st_free(&st);
    cuda_weights_free(w);
    return -1;
}

/* p[i] = offset + scale * rng_sym(key, i), unfused as on the CPU, rounded to T. */
template <typename T>
__global__ void fill_kernel(T *p, size_t n, uint64_t key, float scale, float offset)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = from_f<T>(__fadd_rn(offset, __fmul_rn(scale, rng_sym(key, i))));
}

static cudaError_t fill(void *p, size_t n, uint64_t key, float scale, float offset, kdtype dt)
{
    int blocks = (int)((n + 255) / 256 < 8192 ? (n + 255) / 256 : 8192);
    KDT_DISPATCH(dt, T, fill_kernel<T><<<blocks, 256>>>((T *)p, n, key, scale, offset));
    return cudaGetLastError();
}

int cuda_fill_random(void *p, size_t n, uint64_t key, float scale, kdtype dt)
{
    CUDA_CHECK(fill(p, n, key, scale, 0.f, dt));
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

int cuda_weights_random(cuda_weights *w, const model_config *c, uint64_t seed, kdtype dt,
                        char *err, size_t n_err)
{
    if (alloc_weights(w, c, dt, err, n_err) < 0)
        return -1;
    uint64_t ordinal = 0;
    for (int l = -1; l < c->n_layers; l++) {
        hf_tensor t[16];
        int n = hf_tensors(w, c, l, t);
        for (int i = 0; i < n; i++, ordinal++) {
            size_t ne = (size_t)t[i].shape[0] * (t[i].n_dims == 2 ? t[i].shape[1] : 1);
            uint64_t key = host_mix(host_mix(seed) ^ ordinal);   /* rng_u64(seed, ordinal) */
            float scale = 1.f, offset = 0.f;                      /* embeddings: [-1, 1) */
            if (t[i].n_dims == 1) {                               /* norms: 1 +- 0.1 */
                scale = 0.1f;
                offset = 1.f;
            } else if (!t[i].is_embed) {                          /* std 1/sqrt(fan_in) */
                scale = sqrtf(3.0f / (float)t[i].shape[1]);
            }
            CUDA_CHECK(fill(t[i].data, ne, key, scale, offset, dt));
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}
