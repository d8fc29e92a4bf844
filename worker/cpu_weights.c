/* cpu_weights.c - fp32 model weights: allocation, safetensors loading, random init
 * (see cpu_weights.h), all through the one table of common/weights_layout.h.
 */
#include "cpu_weights.h"
#include "cpu_fp8.h"
#include "../common/log.h"
#include "../kernels/rng.h"
#include "../common/safetensors.h"
#include "../common/weights_layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cpu_weights_init(cpu_weights *w, const model_config *c, float *mem, char *err, size_t n_err)
{
    memset(w, 0, sizeof *w);
    weights_layout_init(&w->layout, c, 1);
    w->n_floats = w->layout.n_elems;
    w->borrowed = mem != NULL;
    w->mem = mem ? mem : malloc(w->n_floats * sizeof(float));
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    if (!w->mem || !w->layers) {
        snprintf(err, n_err, "out of memory for %zu MB of fp32 weights",
                 w->n_floats * sizeof(float) >> 20);
        cpu_weights_free(w);
        return -1;
    }
    const weights_layout *l = &w->layout;
    w->embed = w->mem + l->embed;
    w->lm_head = w->mem + l->lm_head;
    w->norm = w->mem + l->norm;
    const wl_layer *y = &l->layer;
    for (int i = 0; i < c->n_layers; i++) {
        float *b = w->mem + l->layer0 + (size_t)i * l->layer_stride;
#define AT(off) ((off) == WL_NONE ? NULL : b + (off))
        w->layers[i] = (cpu_layer){AT(y->attn_norm), AT(y->wqkv), AT(y->bqkv), AT(y->q_norm),
                                   AT(y->k_norm), AT(y->wo), AT(y->ffn_norm), AT(y->w_router),
                                   AT(y->w_gate_up), AT(y->w_down)};
#undef AT
    }
    return 0;
}

void cpu_weights_free(cpu_weights *w)
{
    if (!w->borrowed)
        free(w->mem);
    free(w->layers);
    memset(w, 0, sizeof *w);
}

int cpu_weights_read(cpu_weights *w, const model_config *c, const char *dir,
                     const fp8_config *fp8, char *err, size_t n_err)
{
    safetensors st;
    if (st_open_dir(&st, dir, err, n_err) < 0)
        return -1;
    wl_tensor *t = malloc((size_t)weights_layout_max_tensors(c) * sizeof *t);
    int rc = -1;
    /* progress lines (launch.sh shows them while it waits): the start, then every tenth */
    double total = 0, done_bytes = 0, next = 0.1;
    for (int i = 0; i < st.n_tensors; i++)
        total += (double)st.tensors[i].n_bytes;
    LOG_INFO("loading weights: %.0f MB in %d file%s", total / 1e6, st.n_files, st.n_files == 1 ? "" : "s");
    if (!t) {
        snprintf(err, n_err, "out of memory");
        goto done;
    }
    for (int l = -1; l < c->n_layers; l++) {
        int n = weights_layout_tensors(&w->layout, c, l, t);
        for (int i = 0; i < n; i++) {
            int ckpt_fp8 = fp8 && fp8->weights == FP8_W_CHECKPOINT && fp8_is_linear(&t[i], l);
            if (ckpt_fp8 ? cpu_fp8_read(&st, &t[i], w->mem + t[i].offset, err, n_err) < 0
                         : st_load_f32(&st, t[i].name, t[i].n_dims, t[i].shape,
                                       w->mem + t[i].offset, err, n_err) < 0)
                goto done;
            done_bytes += (double)st_find(&st, t[i].name)->n_bytes;
            if (total > 0 && done_bytes >= next * total) {
                LOG_INFO("loading weights: %3.0f%% (%.0f of %.0f MB)", 100 * done_bytes / total, done_bytes / 1e6,
                         total / 1e6);
                while (next * total <= done_bytes)
                    next += 0.1;
            }
        }
    }
    rc = st_check_used(&st, model_config_unused_tensors(c), err, n_err) < 0 ? -1 : 0;
    if (rc == 0 && fp8 && fp8->weights == FP8_W_QUANTIZE && cpu_fp8_quantize_weights(w, c) < 0) {
        snprintf(err, n_err, "out of memory");
        rc = -1;
    }
done:
    free(t);
    st_free(&st);
    return rc;
}

int cpu_weights_load(cpu_weights *w, const model_config *c, const char *dir,
                     const fp8_config *fp8, char *err, size_t n_err)
{
    if (cpu_weights_init(w, c, NULL, err, n_err) < 0)
        return -1;
    if (cpu_weights_read(w, c, dir, fp8, err, n_err) < 0) {
        cpu_weights_free(w);
        return -1;
    }
    return 0;
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
                       const fp8_config *fp8, char *err, size_t n_err)
{
    if (cpu_weights_init(w, c, NULL, err, n_err) < 0)
        return -1;
    if (cpu_weights_fill_random(w, c, seed, pool, err, n_err) < 0)
        goto fail;
    if (fp8 && fp8->weights == FP8_W_QUANTIZE && cpu_fp8_quantize_weights(w, c) < 0) {
        snprintf(err, n_err, "out of memory");
        goto fail;
    }
    return 0;
fail:
    cpu_weights_free(w);
    return -1;
}

typedef struct {
    cpu_weights *w;
    cpu_pool *pool;
} fill_ctx;

/* One tensor of the random model (weights_layout_random_each), in FILL_CHUNK tasks. */
static int fill_tensor(void *arg, const wl_tensor *t, size_t n_elems, uint64_t key, float scale,
                       float offset)
{
    const fill_ctx *x = arg;
    fill_job j = {.data = x->w->mem + t->offset, .n = (int64_t)n_elems, .key = key,
                  .scale = scale, .offset = offset};
    int n_tasks = (int)((j.n + FILL_CHUNK - 1) / FILL_CHUNK);
    if (x->pool)
        cpu_pool_run(x->pool, fill_task, &j, n_tasks);
    else
        for (int k = 0; k < n_tasks; k++)
            fill_task(&j, k, 0);
    return 0;
}

int cpu_weights_fill_random(cpu_weights *w, const model_config *c, uint64_t seed, cpu_pool *pool,
                            char *err, size_t n_err)
{
    fill_ctx x = {w, pool};
    if (weights_layout_random_each(&w->layout, c, seed, fill_tensor, &x) < 0) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    return 0;
}
