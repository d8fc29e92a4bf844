/* cuda_setup.cu - the CUDA engine's setup and teardown (cuda_backend.h): the limits and shapes
 * from the options and the model, the weights (loaded, random, or the holder's through CUDA
 * IPC), the KV cache sized from free memory, the activations and pinned inputs, and the decode
 * graphs planned (captured on first use by cuda_model.cu). The forward is cuda_backend.cu's.
 */
#include "cuda_engine.h"
#include "hold.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/decode_attn.cuh"
#include "../kernels/prefill_attn_sm90.cuh"
extern "C" {
#include "../common/log.h"
}
#include "../kernels/sample_greedy.cuh"
#include "../kernels/topk_logprobs.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMMY_SEED 0                 /* the CPU backend's: same random model */
#define DEFAULT_MAX_TOKENS 2048
#define DEFAULT_MAX_SEQS 256
#define BLAS_WS_BYTES (32u << 20)
#define RESERVE_BYTES (512ull << 20) /* graphs, cuBLAS and cub internals */

static void *dev_alloc(size_t bytes, size_t *total)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    *total += bytes;
    return p;
}

size_t ce_weight_bytes(const cuda_engine *e) { return e->w.n_elems * 2; }

void ce_opts_from(ce_opts *eo, const backend_opts *o)
{
    memset(eo, 0, sizeof *eo);
    eo->model_dir = o->model_dir;
    eo->dummy_weights = o->dummy_weights;
    eo->block_size = o->block_size;
    eo->max_ctx = o->max_seq_len;
    eo->max_tokens = o->max_batch_tokens;
    eo->max_seqs = o->max_seqs;
    eo->kv_tokens = o->kv_tokens;
    eo->mem_util = o->mem_util;
    eo->fp16 = o->fp16;
    eo->no_graphs = o->no_graphs;
    eo->gemv_max_tokens = o->gemv_max_tokens == 0 ? -1 : o->gemv_max_tokens < 0 ? 0 : o->gemv_max_tokens;
    eo->gemv_warps = o->gemv_warps;
    eo->pdl_mask = o->pdl == 0 ? 1 : o->pdl < 0 ? 0 : o->pdl;
    eo->portable_attn = o->portable_attn;
    eo->hold = o->hold;
    eo->quant_fp8 = o->quant_fp8;
    eo->kv_fp8 = o->kv_fp8;
}

int ce_max_graph_batch(const cuda_engine *e)
{
    return e->n_graphs ? e->graph_bs[e->n_graphs - 1] : 0;
}

void ce_free(cuda_engine *e)
{
    if (!e)
        return;
    for (int g = 0; g < e->n_graphs; g++)
        if (e->graph[g])
            CUDA_CHECK(cudaGraphExecDestroy(e->graph[g]));
    if (e->w.borrowed && e->w.mem)
        CUDA_CHECK(cudaIpcCloseMemHandle(e->w.mem));
    cuda_weights_free(&e->w);
    ce_moe_free(e);
    ce_fp8_free(e);
    if (e->kv_held) {   /* one allocation of the holder's: K, then V */
        CUDA_CHECK(cudaIpcCloseMemHandle(e->k_cache));
        e->k_cache = e->v_cache = NULL;
    }
    void *dev[] = {e->k_cache, e->v_cache, e->x, e->xn, e->y, e->qkv, e->att, e->gu, e->act,
                   e->last, e->logits, e->dec_ws, e->d_in, e->d_bt, e->d_sp, e->d_rows,
                   e->d_pen, e->samp_ws, e->greedy_ws, e->d_tok, e->d_lp, e->d_topk,
                   e->d_top_ids, e->d_top_lps, e->blas_ws};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    void *host[] = {e->h_in, e->h_bt, e->h_sp, e->h_rows, e->h_pen, e->h_tok, e->h_lp, e->h_topk,
                    e->h_top_ids, e->h_top_lps};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++)
        if (host[i])
            CUDA_CHECK(cudaFreeHost(host[i]));
    if (e->blas)
        CUBLAS_CHECK(cublasDestroy(e->blas));
    if (e->stream)
        CUDA_CHECK(cudaStreamDestroy(e->stream));
    free(e->pen_mark);
    free(e->h_row);
    delete e;
}

/* The engine's limits and shapes from O and its model (no device work). */
static void engine_limits(cuda_engine *e, const ce_opts *o)
{
    const model_config *c = &e->cfg;
    e->dt = o->fp16 ? KDT_F16 : KDT_BF16;
    e->cdt = o->fp16 ? CUDA_R_16F : CUDA_R_16BF;
    e->bs = o->block_size;
    e->gemv_max = o->gemv_max_tokens < 0 ? GEMV_MAX_TOKENS : o->gemv_max_tokens;
    e->gemv_warps = o->gemv_warps;
    e->pdl_mask = o->pdl_mask;
    if (e->gemv_max > GEMV_MAX_TOKENS)
        e->gemv_max = GEMV_MAX_TOKENS;
    while (e->gemv_max > 0 && (size_t)(e->gemv_max + 1) * (c->dim + 8) * 2 > GEMV_NORM_MAX_BYTES)
        e->gemv_max--;   /* the normalized rows must fit the GEMV's shared memory */
    e->max_ctx = o->max_ctx > 0 ? o->max_ctx : c->max_seq_len;
    e->max_tokens = o->max_tokens > 0 ? o->max_tokens : DEFAULT_MAX_TOKENS;
    e->max_seqs = o->max_seqs > 0 ? o->max_seqs : DEFAULT_MAX_SEQS;
    if (e->max_seqs > e->max_tokens)
        e->max_seqs = e->max_tokens;
    e->max_bps = (e->max_ctx + e->bs - 1) / e->bs;
    e->q_dim = c->n_heads * c->head_dim;
    e->kv_dim = c->n_kv_heads * c->head_dim;
    e->qkv_dim = e->q_dim + 2 * e->kv_dim;
    e->rp = (rope_params){c->rope_theta, c->rope_factor, c->rope_low_freq_factor,
                          c->rope_high_freq_factor, c->rope_orig_max_pos};
}

typedef struct {
    void **p;
    size_t bytes;
} dev_buf;

#define MAX_DEV_BUFS 32

/* E's activation and scratch buffers and their sizes, from its limits; the count. */
static int state_bufs(cuda_engine *e, dev_buf *b)
{
    const model_config *c = &e->cfg;
    size_t M = e->max_tokens, S = e->max_seqs, V = c->vocab_size;
    int max_splits = 32, n = 0;
    e->dec_ws_bytes = decode_attn_workspace_size((int)S, c->n_heads, c->head_dim, max_splits);
    e->samp_ws_bytes = sample_full_workspace_size((int)S, (int)V);
    e->in_cap = ce_layout_ints((int)M, (int)S, (int)S, (int)S);
    e->pen_cap = 4096;
    b[n++] = dev_buf{&e->x, M * c->dim * 2};
    b[n++] = dev_buf{&e->xn, M * c->dim * 2};
    b[n++] = dev_buf{&e->y, M * c->dim * 2};
    b[n++] = dev_buf{&e->qkv, M * e->qkv_dim * 2};
    b[n++] = dev_buf{&e->att, M * e->q_dim * 2};
    b[n++] = dev_buf{&e->gu, M * 2 * c->hidden_dim * 2};
    b[n++] = dev_buf{&e->act, M * c->hidden_dim * 2};
    b[n++] = dev_buf{&e->last, S * c->dim * 2};
    b[n++] = dev_buf{(void **)&e->logits, S * V * 4};
    b[n++] = dev_buf{&e->dec_ws, e->dec_ws_bytes};
    b[n++] = dev_buf{(void **)&e->d_in, e->in_cap * 4};
    b[n++] = dev_buf{(void **)&e->d_bt, S * e->max_bps * 4};
    b[n++] = dev_buf{(void **)&e->d_sp, S * sizeof *e->d_sp};
    b[n++] = dev_buf{(void **)&e->d_rows, S * 4};
    b[n++] = dev_buf{(void **)&e->d_pen, e->pen_cap * sizeof *e->d_pen};
    b[n++] = dev_buf{&e->samp_ws, e->samp_ws_bytes};
    b[n++] = dev_buf{&e->greedy_ws, sample_greedy_workspace_size((int)S)};
    b[n++] = dev_buf{(void **)&e->d_tok, S * 4};
    b[n++] = dev_buf{(void **)&e->d_lp, S * 4};
    b[n++] = dev_buf{(void **)&e->d_topk, S * 4};
    b[n++] = dev_buf{(void **)&e->d_top_ids, S * TOPK_LOGPROBS_MAX * 4};
    b[n++] = dev_buf{(void **)&e->d_top_lps, S * TOPK_LOGPROBS_MAX * 4};
    b[n++] = dev_buf{&e->blas_ws, BLAS_WS_BYTES};
    return n;
}

static int alloc_state(cuda_engine *e, char *err, size_t n_err)
{
    size_t M = e->max_tokens, S = e->max_seqs, V = e->cfg.vocab_size, total = 0;
    dev_buf b[MAX_DEV_BUFS];
    int n = state_bufs(e, b);
    for (int i = 0; i < n; i++)
        if (!(*b[i].p = dev_alloc(b[i].bytes, &total))) {
            snprintf(err, n_err, "cannot allocate GPU activations for %zu tokens, %zu sequences "
                     "(%zu MB so far)", M, S, total >> 20);
            return -1;
        }
    if (cudaHostAlloc((void **)&e->h_in, e->in_cap * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_bt, S * e->max_bps * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_sp, S * sizeof *e->h_sp, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_rows, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_pen, e->pen_cap * sizeof *e->h_pen, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_tok, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_lp, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_topk, S * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_top_ids, S * TOPK_LOGPROBS_MAX * 4, 0) != cudaSuccess ||
        cudaHostAlloc((void **)&e->h_top_lps, S * TOPK_LOGPROBS_MAX * 4, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate pinned host memory");
        return -1;
    }
    e->pen_mark = (int32_t *)calloc(V, sizeof(int32_t));
    e->h_row = (float *)malloc(V * sizeof(float));
    if (!e->pen_mark || !e->h_row) {
        snprintf(err, n_err, "out of host memory");
        return -1;
    }
    memset(e->h_bt, 0, S * e->max_bps * 4);
    CUDA_CHECK(cudaMemset(e->d_bt, 0, S * e->max_bps * 4));
    return e->cfg.n_experts ? ce_moe_init(e, err, n_err) : 0;
}

int64_t ce_kv_blocks_fit(const ce_opts *o, const model_config *c, size_t extra, char *err,
                         size_t n_err)
{
    int bs = o->block_size, kv_dim = c->n_kv_heads * c->head_dim;
    size_t block_bytes = 2ull * c->n_layers * bs * kv_dim * (o->kv_fp8 ? 1 : 2);
    size_t free_b, total_b;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    double util = o->mem_util > 0 ? o->mem_util : 0.9;
    double room = (double)RESERVE_BYTES + (double)extra;
    double budget = util * (double)total_b - (double)(total_b - free_b) - room;
    double fit = (double)free_b - room;
    int64_t n = o->kv_tokens > 0 ? (o->kv_tokens + bs - 1) / bs
                                 : (int64_t)(budget / (double)block_bytes);
    if (n > INT32_MAX / bs)
        n = INT32_MAX / bs;
    if (n < 1 || (double)n * block_bytes > fit) {
        snprintf(err, n_err, "no room for the KV cache: %lld blocks of %zu KB asked, %zu MB free "
                 "of %zu MB (memory utilization %.2f, %zu MB kept for activations)",
                 (long long)n, block_bytes >> 10, free_b >> 20, total_b >> 20, util, extra >> 20);
        return -1;
    }
    return n;
}

size_t ce_state_bytes(const ce_opts *o, const model_config *c)
{
    cuda_engine *e = new cuda_engine();
    e->cfg = *c;
    engine_limits(e, o);
    dev_buf b[MAX_DEV_BUFS];
    int n = state_bufs(e, b);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += b[i].bytes;
    delete e;
    return total;
}

/* The KV cache: KV_TOKENS if asked, else what mem_util of the device leaves free. */
static int alloc_kv(cuda_engine *e, const ce_opts *o, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    int64_t n = ce_kv_blocks_fit(o, c, 0, err, n_err);
    if (n < 0)
        return -1;
    e->n_blocks = (int)n;
    e->kv_layer_elems = (size_t)n * e->bs * e->kv_dim;
    size_t bytes = e->kv_layer_elems * c->n_layers * e->kv_elem, total = 0;
    if (!(e->k_cache = dev_alloc(bytes, &total)) || !(e->v_cache = dev_alloc(bytes, &total))) {
        snprintf(err, n_err, "cannot allocate %zu MB of KV cache", 2 * bytes >> 20);
        return -1;
    }
    return 0;
}

/* Opens the holder's weights and KV cache (hold.h) through their CUDA IPC handles, after
 * checking they are this model's in this engine's element type. */
static int attach_hold(cuda_engine *e, const msg_holder_attached *h, char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    int kind = e->dt == KDT_F16 ? HOLD_CUDA_F16 : HOLD_CUDA_BF16;
    weights_layout wl;
    weights_layout_init(&wl, c, 8);
    e->n_blocks = h->n_kv_blocks;
    e->kv_layer_elems = (size_t)h->n_kv_blocks * e->bs * e->kv_dim;
    size_t kv_bytes = e->kv_layer_elems * c->n_layers * 2;
    if (h->kind != kind || h->n_kv_blocks < 1 || h->weights_bytes != wl.n_elems * 2 ||
        h->kv_bytes != 2 * kv_bytes) {
        snprintf(err, n_err, "the holder keeps another model or layout (kind %d, %llu weight "
                 "bytes, %llu KV bytes; this engine wants kind %d, %zu weight bytes)", h->kind,
                 (unsigned long long)h->weights_bytes, (unsigned long long)h->kv_bytes, kind,
                 wl.n_elems * 2);
        return -1;
    }
    cudaIpcMemHandle_t hw, hk;
    memcpy(&hw, h->ipc_weights, sizeof hw);
    memcpy(&hk, h->ipc_kv, sizeof hk);
    void *w = NULL, *kv = NULL;
    cudaError_t rc = cudaIpcOpenMemHandle(&w, hw, cudaIpcMemLazyEnablePeerAccess);
    if (rc == cudaSuccess)
        rc = cudaIpcOpenMemHandle(&kv, hk, cudaIpcMemLazyEnablePeerAccess);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        if (w)
            CUDA_CHECK(cudaIpcCloseMemHandle(w));
        snprintf(err, n_err, "cannot open the holder's memory: %s", cudaGetErrorString(rc));
        return -1;
    }
    e->kv_held = 1;
    e->k_cache = kv;
    e->v_cache = (char *)kv + kv_bytes;
    return cuda_weights_init(&e->w, c, e->dt, w, err, n_err);
}

cuda_engine *ce_init(const ce_opts *o, model_config *cfg, int *n_kv_blocks, char *err,
                     size_t n_err)
{
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "no CUDA device");
        return NULL;
    }
    cuda_engine *e = new cuda_engine();
    model_config *c = &e->cfg;
    if (model_config_load(c, o->model_dir, err, n_err) < 0 || ce_fp8_config(e, o, err, n_err) < 0)
        goto fail;
    if (o->block_size < 1) {
        snprintf(err, n_err, "block size %d", o->block_size);
        goto fail;
    }
    if ((c->head_dim != 48 && c->head_dim != 64 && c->head_dim != 128) ||
        c->n_heads % c->n_kv_heads || c->dim % 8 || c->hidden_dim % 8) {
        snprintf(err, n_err, "unsupported shape: head_dim %d (48, 64 or 128), %d heads over %d "
                 "KV heads, dim %d and hidden %d (multiples of 8)", c->head_dim, c->n_heads,
                 c->n_kv_heads, c->dim, c->hidden_dim);
        goto fail;
    }
    {
        int dev;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&e->n_sms, cudaDevAttrMultiProcessorCount, dev));
        engine_limits(e, o);
        CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&e->blas));
        CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
        /* decided here, outside any graph capture (the first call probes the device) */
        prefill_attn_sm90_set(!o->portable_attn);
        LOG_INFO("prefill attention: %s", prefill_attn_sm90_enabled()
                 ? "Hopper kernel (wgmma/TMA) where it applies" : "portable kernel");
    }
    {
        int rc = o->hold ? attach_hold(e, o->hold, err, n_err)
                 : o->dummy_weights ? cuda_weights_random(&e->w, c, DUMMY_SEED, e->dt, err, n_err)
                                    : ce_fp8_weights_load(e, o->model_dir, err, n_err);
        if (rc < 0 || alloc_state(e, err, n_err) < 0 || ce_fp8_init(e, err, n_err) < 0 ||
            (!o->hold && alloc_kv(e, o, err, n_err) < 0))
            goto fail;
    }
    CUBLAS_CHECK(cublasSetWorkspace(e->blas, e->blas_ws, BLAS_WS_BYTES));
    if (o->dummy_weights && !o->hold && e->kv_elem == 1) {
        ce_fp8_fill_kv(e, e->kv_layer_elems * c->n_layers);
    } else if (o->dummy_weights && !o->hold) {   /* benchmarks read KV that no prefill wrote */
        cuda_fill_random(e->k_cache, e->kv_layer_elems * c->n_layers, 11, 1.f, e->dt);
        cuda_fill_random(e->v_cache, e->kv_layer_elems * c->n_layers, 12, 1.f, e->dt);
    }
    if (!o->no_graphs)   /* captured on first use: a restarted worker is ready at once */
        ce_plan_graphs(e);
    *cfg = *c;
    *n_kv_blocks = e->n_blocks;
    return e;
fail:
    ce_free(e);
    return NULL;
}
