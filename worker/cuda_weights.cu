/* cuda_weights.cu - GPU weights: one allocation carved into fused tensors, filled from
 * safetensors (cuda_weights_read.cu) or by the CPU backend's random generator run on the GPU
 * (see cuda_weights.h).
 * Places, names, shapes and the random recipe all come from common/weights_layout.h, the
 * table the CPU backend walks too.
 */
#include "cuda_weights.h"
extern "C" {   /* plain C headers without guards */
#include "../common/safetensors.h"
}
#include "../common/weights_layout.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/kutil.cuh"
#include "../kernels/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cuda_weights_init(cuda_weights *w, const model_config *c, kdtype dt, void *mem, char *err,
                      size_t n_err)
{
    memset(w, 0, sizeof *w);
    w->dt = dt;
    weights_layout_init(&w->layout, c, 8);   /* 16-byte aligned tensors */
    w->n_elems = w->layout.n_elems;
    w->borrowed = mem != NULL;
    w->mem = mem;
    w->layers = (cuda_layer *)calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->layers || (!mem && cudaMalloc(&w->mem, w->n_elems * 2) != cudaSuccess)) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate %zu MB of GPU weights", w->n_elems * 2 >> 20);
        if (!mem)
            w->mem = NULL;
        cuda_weights_free(w);
        return -1;
    }
    const weights_layout *l = &w->layout;
    uint16_t *p = (uint16_t *)w->mem;
    w->embed = p + l->embed;
    w->lm_head = p + l->lm_head;
    w->norm = p + l->norm;
    for (int i = 0; i < c->n_layers; i++) {
        uint16_t *b = p + l->layer0 + (size_t)i * l->layer_stride;
        const wl_layer *y = &l->layer;
#define AT(off) ((off) == WL_NONE ? NULL : b + (off))
        w->layers[i] = cuda_layer{AT(y->attn_norm), AT(y->wqkv), AT(y->bqkv), AT(y->q_norm),
                                  AT(y->k_norm), AT(y->wo), AT(y->ffn_norm), AT(y->w_router),
                                  AT(y->w_gate_up), AT(y->w_down)};
#undef AT
    }
    return 0;
}

static void *tensor_ptr(const cuda_weights *w, const wl_tensor *t)
{
    return (uint16_t *)w->mem + t->offset;
}

void cuda_weights_free(cuda_weights *w)
{
    if (w->mem && !w->borrowed)
        CUDA_CHECK(cudaFree(w->mem));
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int cuda_weights_load(cuda_weights *w, const model_config *c, const char *dir, kdtype dt,
                      char *err, size_t n_err)
{
    if (cuda_weights_init(w, c, dt, NULL, err, n_err) < 0)
        return -1;
    if (cuda_weights_read(w, c, dir, err, n_err) < 0) {
        cuda_weights_free(w);
        return -1;
    }
    return 0;
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
    if (cuda_weights_init(w, c, dt, NULL, err, n_err) < 0)
        return -1;
    if (cuda_weights_fill_random(w, c, seed, err, n_err) < 0) {
        cuda_weights_free(w);
        return -1;
    }
    return 0;
}

/* One tensor of the random model (weights_layout_random_each), launched on stream 0. */
static int fill_tensor(void *arg, const wl_tensor *t, size_t n_elems, uint64_t key, float scale,
                       float offset)
{
    const cuda_weights *w = (const cuda_weights *)arg;
    CUDA_CHECK(fill(tensor_ptr(w, t), n_elems, key, scale, offset, w->dt));
    return 0;
}

int cuda_weights_fill_random(cuda_weights *w, const model_config *c, uint64_t seed, char *err,
                             size_t n_err)
{
    if (weights_layout_random_each(&w->layout, c, seed, fill_tensor, w) < 0) {
        snprintf(err, n_err, "out of host memory");
        return -1;
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}
