/* hold_cuda.cu - the CUDA backend's holder memory (hold.h): the weights (bf16/fp16, the
 * engine's layout: cuda_weights.h) and the KV cache (K then V in one allocation, the
 * engine's [n_layers, n_blocks, block_size, n_kv_heads, head_dim] each) in device memory of
 * the holder's, exported with cudaIpcGetMemHandle. The KV is sized as the worker would size
 * it for itself, leaving room for the worker's activations (ce_state_bytes) and its own
 * CUDA context. The digest runs on the GPU (kernels/weights_digest.cu). */
#include "hold.h"
#include "cuda_backend.h"
#include "cuda_weights.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/weights_digest.cuh"
extern "C" {
#include "../common/log.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMMY_SEED 0                    /* the backends' random model */
#define WORKER_CONTEXT_BYTES (768ull << 20) /* the worker's CUDA context and cuBLAS handles */

typedef struct {
    hold base;          /* first: the hold * handed out points here */
    model_config cfg;
    cuda_weights w;
    void *kv;           /* K then V */
    uint64_t *d_digest; /* [1] */
    const char *model_dir;
} cuda_hold;

static uint64_t cuda_digest_now(hold *base)
{
    cuda_hold *h = (cuda_hold *)base;
    uint64_t d;
    CUDA_CHECK(weights_digest_run(h->w.mem, h->w.n_elems * 2, h->d_digest, 0));
    CUDA_CHECK(cudaMemcpy(&d, h->d_digest, sizeof d, cudaMemcpyDeviceToHost));
    return d;
}

static int cuda_fill(hold *base, char *err, size_t n_err)
{
    cuda_hold *h = (cuda_hold *)base;
    if (h->base.dummy) {
        if (cuda_weights_fill_random(&h->w, &h->cfg, DUMMY_SEED, err, n_err) < 0)
            return -1;
    } else if (cuda_weights_read(&h->w, &h->cfg, h->model_dir, err, n_err) < 0)
        return -1;
    return 0;
}

static void cuda_hold_free(hold *base)
{
    cuda_hold *h = (cuda_hold *)base;
    if (!h)
        return;
    cuda_weights_free(&h->w);
    if (h->kv)
        CUDA_CHECK(cudaFree(h->kv));
    if (h->d_digest)
        CUDA_CHECK(cudaFree(h->d_digest));
    delete h;
}

extern "C" hold *hold_cuda_init(const backend_opts *o, char *err, size_t n_err)
{
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "no CUDA device");
        return NULL;
    }
    cuda_hold *h = new cuda_hold();
    h->base.name = "cuda";
    h->base.digest_now = cuda_digest_now;
    h->base.fill = cuda_fill;
    h->base.free = cuda_hold_free;
    h->model_dir = o->model_dir;
    h->base.dummy = o->dummy_weights;
    ce_opts eo;
    ce_opts_from(&eo, o);
    const model_config *c = &h->cfg;
    msg_holder_attached *in = &h->base.info;
    kdtype dt = o->fp16 ? KDT_F16 : KDT_BF16;
    int64_t n_blocks;
    size_t block_bytes;
    cudaIpcMemHandle_t hw, hk;
    if (model_config_load(&h->cfg, o->model_dir, err, n_err) < 0)
        goto fail;
    if (o->block_size < 1) {
        snprintf(err, n_err, "block size %d", o->block_size);
        goto fail;
    }
    CUDA_CHECK(cudaMalloc((void **)&h->d_digest, sizeof *h->d_digest));
    if (cuda_weights_init(&h->w, c, dt, NULL, err, n_err) < 0)
        goto fail;
    n_blocks = ce_kv_blocks_fit(&eo, c, ce_state_bytes(&eo, c) + WORKER_CONTEXT_BYTES, err, n_err);
    if (n_blocks < 0)
        goto fail;
    block_bytes = 2ull * c->n_layers * o->block_size * c->n_kv_heads * c->head_dim * 2;
    if (cudaMalloc(&h->kv, (size_t)n_blocks * block_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        h->kv = NULL;
        snprintf(err, n_err, "cannot allocate %zu MB of KV cache", (size_t)n_blocks * block_bytes >> 20);
        goto fail;
    }
    CUDA_CHECK(cudaIpcGetMemHandle(&hw, h->w.mem));
    CUDA_CHECK(cudaIpcGetMemHandle(&hk, h->kv));
    in->kind = dt == KDT_F16 ? HOLD_CUDA_F16 : HOLD_CUDA_BF16;
    in->n_kv_blocks = (int32_t)n_blocks;
    in->weights_bytes = h->w.n_elems * 2;   /* hold_load reports with it */
    in->kv_bytes = (uint64_t)n_blocks * block_bytes;
    memcpy(in->ipc_weights, &hw, sizeof hw);
    memcpy(in->ipc_kv, &hk, sizeof hk);
    LOG_INFO("cuda holder: KV %lld blocks of %d tokens (%zu MB), room left for the worker's "
             "activations", (long long)n_blocks, o->block_size, (size_t)(in->kv_bytes >> 20));
    return &h->base;
fail:
    cuda_hold_free(&h->base);
    return NULL;
}
