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
#include <time.h>

#define DUMMY_SEED 0 /* make-model's default seed, as the CPU backend's --load-format dummy */

typedef struct {
    hold base;          /* first: the hold * handed out points here */
    model_config cfg;
    cpu_weights w;      /* laid out over the region */
    const char *model_dir;
    int dummy;
    char region[256];
    void *mem;          /* the region: [weights][pad][K][V] */
    size_t bytes;
} cpu_hold;

static void cpu_digest_now(hold *base, uint64_t *out, double *ms)
{
    cpu_hold *h = (cpu_hold *)base;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *out = digest_ref(h->mem, h->base.info.weights_bytes);
    *ms = hold_ms_since(&t0);
}

static int cpu_load(hold *base, char *err, size_t n_err)
{
    cpu_hold *h = (cpu_hold *)base;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (h->dummy)
        cpu_weights_fill_random(&h->w, &h->cfg, DUMMY_SEED, NULL);
    else if (cpu_weights_read(&h->w, &h->cfg, h->model_dir, err, n_err) < 0)
        return -1;
    h->base.load_ms = hold_ms_since(&t0);
    double digest_ms;
    cpu_digest_now(base, &h->base.digest, &digest_ms);
    LOG_INFO("weights %s: %zu MB in %.0f ms; digest %016llx in %.1f ms",
             h->dummy ? "filled with the random model" : "loaded", h->w.n_floats * 4 >> 20,
             h->base.load_ms, (unsigned long long)h->base.digest, digest_ms);
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
    h->base.reload = cpu_load;
    h->base.free = cpu_hold_free;
    h->model_dir = o->model_dir;
    h->dummy = o->dummy_weights;
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
    if (cpu_weights_init(&h->w, &h->cfg, h->mem, err, n_err) < 0 || cpu_load(&h->base, err, n_err) < 0)
        goto fail;
    LOG_INFO("cpu holder: region %s of %zu MB (KV %d blocks of %d tokens, %zu MB)", region,
             h->bytes >> 20, kv.n_blocks, kv.block_size, (size_t)(in->kv_bytes >> 20));
    return &h->base;
fail:
    cpu_hold_free(&h->base);
    return NULL;
}
