/* cuda_glue.c - the CUDA backend as backend.h sees it: checks each batch (negative on bad
 * input, as the CPU backend) and hands it to the engine, which writes the sampled tokens
 * into the same fwd_seq records. Built only when the
 * CUDA backend is (CINDER_CUDA_BACKEND, set by the Makefile when nvcc and
 * worker/cuda_backend.cu exist).
 */
#ifdef CINDER_CUDA_BACKEND
#include "backend.h"
#include "cuda_backend.h"
#include "../common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    backend base;           /* first: the backend * handed out points here */
    cuda_engine *eng;
    int max_tokens, max_seqs, max_ctx, block_size;
} cuda_backend;

static int check_batch(const cuda_backend *b, const fwd_batch *batch)
{
    fwd_limits l = {b->max_seqs, b->max_tokens, b->max_ctx, b->base.cfg.vocab_size, b->block_size,
                    b->base.n_kv_blocks};
    return fwd_batch_check(batch, &l, "cuda");
}

static int cuda_forward(backend *base, fwd_batch *batch)
{
    cuda_backend *b = (cuda_backend *)base;
    int rc = check_batch(b, batch);
    if (rc < 0)
        return rc;
    return ce_forward(b->eng, batch->seqs, batch->n_seqs);
}

static const float *cuda_last_logits(backend *base, int i)
{
    return ce_logits(((cuda_backend *)base)->eng, i);
}

cuda_engine *ce_engine_of(backend *base)
{
    return base && base->forward == cuda_forward ? ((cuda_backend *)base)->eng : NULL;
}

static void cuda_free(backend *base)
{
    cuda_backend *b = (cuda_backend *)base;
    if (!b)
        return;
    ce_free(b->eng);
    free(b);
}

backend *cuda_backend_init(const backend_opts *o, char *err, size_t n_err)
{
    cuda_backend *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    b->base.name = "cuda";
    b->base.forward = cuda_forward;
    b->base.last_logits = cuda_last_logits;
    b->base.free = cuda_free;
    if (!o->model_dir) {
        snprintf(err, n_err, "cuda backend: no model directory");
        goto fail;
    }
    ce_opts eo;
    ce_opts_from(&eo, o);
    b->eng = ce_init(&eo, &b->base.cfg, &b->base.n_kv_blocks, err, n_err);
    if (!b->eng)
        goto fail;
    b->block_size = o->block_size;
    b->max_ctx = o->max_seq_len > 0 ? o->max_seq_len : b->base.cfg.max_seq_len;
    b->max_tokens = o->max_batch_tokens > 0 ? o->max_batch_tokens : 2048;
    b->max_seqs = o->max_seqs > 0 ? o->max_seqs : 256;
    if (b->max_seqs > b->max_tokens)
        b->max_seqs = b->max_tokens;
    LOG_INFO("cuda backend: %s weights (%zu MB %s), dim %d, %d layers, %d/%d heads, vocab %d; "
             "KV %d blocks of %d tokens; decode graphs up to batch %d, each captured on first use",
             o->hold ? "the holder's" : o->dummy_weights ? "random" : "loaded", ce_weight_bytes(b->eng) >> 20,
             eo.fp16 ? "fp16" : "bf16", b->base.cfg.dim, b->base.cfg.n_layers,
             b->base.cfg.n_heads, b->base.cfg.n_kv_heads, b->base.cfg.vocab_size,
             b->base.n_kv_blocks, o->block_size, ce_max_graph_batch(b->eng));
    return &b->base;
fail:
    cuda_free(&b->base);
    return NULL;
}
#endif
