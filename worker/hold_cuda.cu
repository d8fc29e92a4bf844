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
#include <time.h>

#define DUMMY_SEED 0                    /* the backends' random model */
#define WORKER_CONTEXT_BYTES (768ull << 20) /* the worker's CUDA context and cuBLAS handles */

typedef struct {
    hold base;          /* first: the hold * handed out points here */
    model_config cfg;
    cuda_weights w;
    void *kv;           /* K then V */
    uint64_t *d_digest; /* [1] */
    const char *model_dir;
    int dummy;
} cuda_hold;

static void cuda_digest_now(hold *base, uint64_t *out, double *ms)
{
    cuda_hold *h = (cuda_hold *)base;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CUDA_CHECK(weights_digest_run(h->w.mem, h->w.n_elems * 2, h->d_digest, 0));
    CUDA_CHECK(cudaMemcpy(out, h->d_digest, sizeof *out, cudaMemcpyDeviceToHost));
    *ms = hold_ms_since(&t0);
}

static int cuda_load(hold *base, char *err, size_t n_err)
{
    cuda_hold *h = (cuda_hold *)base;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (h->dummy)
        cuda_weights_fill_random(&h->w, &h->cfg, DUMMY_SEED);
    else if (cuda_weights_read(&h->w, &h->cfg, h->model_dir, err, n_err) < 0)
        return -1;
    h->base.load_ms = hold_ms_since(&t0);
    double digest_ms;
    cuda_digest_now(base, &h->base.digest, &digest_ms);
    LOG_INFO("weights %s: %zu MB in %.0f ms (%.2f GB/s); digest %016llx in %.2f ms on the GPU",
             h->dummy ? "filled with the random model" : "loaded", h->w.n_elems * 2 >> 20,
             h->base.load_ms, h->w.n_elems * 2 / 1e6 / (h->base.load_ms > 0 ? h->base.load_ms : 1),
             (unsigned long long)h->base.digest, digest_ms);
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
    h->base.reload = cuda_load;
    h->base.free = cuda_hold_free;
    h->model_dir = o->model_dir;
    h->dummy = o->dummy_weights;
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
    if (cuda_weights_init(&h->w, c, dt, NULL, err, n_err) < 0 || cuda_load(&h->base, err, n_err) < 0)
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
    in->weights_bytes = h->w.n_elems * 2;
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
