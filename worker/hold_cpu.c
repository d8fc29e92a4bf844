/* hold_cpu.c - the CPU backend's holder memory (hold.h): the fp32 weights and the paged KV
 * cache (kv_layout.h) in one shared-memory region that outlives the worker. */
#include "hold.h"
#include "cpu_weights.h"
#include "kv_layout.h"
#include "../common/log.h"
#include "../kernels/digest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DUMMY_SEED 0 /* make-model's default seed, as the CPU backend's --load-format dummy */

typedef struct {
    hold base;          /* first: the hold * handed out points here */
    model_config cfg;
    cpu_weights w;      /* laid out over the region */
    const char *model_dir;
    char region[256];
    void *mem;          /* the region: [weights][pad][K][V] */
    size_t bytes;
} cpu_hold;

static uint64_t cpu_digest_now(hold *base)
{
    cpu_hold *h = (cpu_hold *)base;
    return digest_ref(h->mem, h->base.info.weights_bytes);
}

static int cpu_fill(hold *base, char *err, size_t n_err)
{
    cpu_hold *h = (cpu_hold *)base;
    if (h->base.dummy) {
        if (cpu_weights_fill_random(&h->w, &h->cfg, DUMMY_SEED, NULL, err, n_err) < 0)
            return -1;
    } else if (cpu_weights_read(&h->w, &h->cfg, h->model_dir, NULL, err, n_err) < 0)
        return -1;
    return 0;
}

static void cpu_hold_free(hold *base)
{
    cpu_hold *h = (cpu_hold *)base;
    if (!h)
        return;
    cpu_weights_free(&h->w);
    if (h->mem) {
        munmap(h->mem, h->bytes);
        shm_unlink(h->region);
    }
    free(h);
}

hold *hold_cpu_init(const backend_opts *o, const char *region, char *err, size_t n_err)
{
    cpu_hold *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, n_err, "out of memory");
        return NULL;
    }
    h->base.name = "cpu";
    h->base.digest_now = cpu_digest_now;
    h->base.fill = cpu_fill;
    h->base.free = cpu_hold_free;
    h->model_dir = o->model_dir;
    h->base.dummy = o->dummy_weights;
    snprintf(h->region, sizeof h->region, "%s", region);
    kv_layout kv;
    weights_layout wl;
    if (model_config_load(&h->cfg, o->model_dir, err, n_err) < 0)
        goto fail;
    if (kv_layout_cpu(&kv, &h->cfg, o->kv_tokens, o->block_size, err, n_err) < 0)
        goto fail;
    weights_layout_init(&wl, &h->cfg, 1);
    msg_holder_attached *in = &h->base.info;
    in->kind = HOLD_CPU_F32;
    in->n_kv_blocks = kv.n_blocks;
    in->weights_bytes = wl.n_elems * sizeof(float);
    in->kv_bytes = 2 * kv_elems(&kv) * sizeof(float);
    h->bytes = hold_kv_offset(in->weights_bytes) + in->kv_bytes;
    if (!(h->mem = hold_shm_create(region, h->bytes, err, n_err)))
        goto fail;
    if (cpu_weights_init(&h->w, &h->cfg, h->mem, err, n_err) < 0)
        goto fail;
    LOG_INFO("cpu holder: region %s of %zu MB (KV %d blocks of %d tokens, %zu MB)", region,
             h->bytes >> 20, kv.n_blocks, kv.block_size, (size_t)(in->kv_bytes >> 20));
    return &h->base;
fail:
    cpu_hold_free(&h->base);
    return NULL;
}
