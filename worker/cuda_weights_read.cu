/* cuda_weights_read.cu - safetensors into the GPU weights (cuda_weights_read), as fast as the
 * disk allows, with a progress line every tenth:
 *   - tensors stored in the weights' own type (bf16 or fp16: HF checkpoints, make-model's):
 *     N_READERS threads take tensors in turn and copy them in CHUNK_BYTES pieces from the
 *     mapped file (page faults: the reads run in parallel) into one of their two pinned
 *     buffers while the other goes to the GPU on their own stream;
 *   - any other type (F32, or the other 16-bit one): one thread converts each tensor into
 *     a pinned buffer while the previous one is copied.
 */
#include "cuda_weights.h"
#include "fp8_config.h"
extern "C" {   /* plain C headers without guards */
#include "../common/log.h"
#include "../common/safetensors.h"
}
#include "../common/weights_layout.h"
#include "../kernels/cuda_check.cuh"

#include <atomic>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_READERS 8
#define CHUNK_BYTES ((size_t)32 << 20)

/* Bytes copied so far, and a log line at every tenth of TOTAL. */
typedef struct {
    double total;
    std::atomic<size_t> done;
    std::atomic<int> tenths;
    struct timespec t0;
} progress;

static void progress_add(progress *p, size_t bytes)
{
    double done = (double)(p->done += bytes);
    int tenth = (int)(10 * done / p->total), seen = p->tenths.load();
    while (tenth > seen && !p->tenths.compare_exchange_weak(seen, tenth)) {}
    if (tenth <= seen)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double s = (double)(now.tv_sec - p->t0.tv_sec) + (double)(now.tv_nsec - p->t0.tv_nsec) / 1e9;
    LOG_INFO("loading weights: %3d%% (%.1f of %.1f GB, %.2f GB/s)", 10 * tenth, done / 1e9,
             p->total / 1e9, done / 1e9 / (s > 0 ? s : 1e-9));
}

typedef struct {
    const st_tensor **src; /* [n] in the mapped files */
    void **dst;            /* [n] device */
    int n;
    std::atomic<int> next; /* the next tensor to take */
    progress *prog;
} raw_job;

static void *raw_reader(void *arg)
{
    raw_job *j = (raw_job *)arg;
    uint8_t *pin[2];
    cudaEvent_t copied[2];
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (int b = 0; b < 2; b++) {
        CUDA_CHECK(cudaHostAlloc((void **)&pin[b], CHUNK_BYTES, 0));
        CUDA_CHECK(cudaEventCreateWithFlags(&copied[b], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(copied[b], stream));
    }
    int k = 0;
    for (int i; (i = j->next++) < j->n;) {
        const uint8_t *src = (const uint8_t *)j->src[i]->data;
        size_t n = j->src[i]->n_bytes;
        for (size_t off = 0; off < n; off += CHUNK_BYTES, k ^= 1) {
            size_t len = n - off < CHUNK_BYTES ? n - off : CHUNK_BYTES;
            CUDA_CHECK(cudaEventSynchronize(copied[k]));   /* its last copy is done */
            memcpy(pin[k], src + off, len);
            CUDA_CHECK(cudaMemcpyAsync((uint8_t *)j->dst[i] + off, pin[k], len,
                                       cudaMemcpyHostToDevice, stream));
            CUDA_CHECK(cudaEventRecord(copied[k], stream));
            progress_add(j->prog, len);
        }
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int b = 0; b < 2; b++) {
        CUDA_CHECK(cudaFreeHost(pin[b]));
        CUDA_CHECK(cudaEventDestroy(copied[b]));
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    return NULL;
}

/* The N tensors SRC into DST, already in the weights' type: parallel raw copies. */
static void read_raw(const st_tensor **src, void **dst, int n, progress *prog)
{
    raw_job j;
    j.src = src;
    j.dst = dst;
    j.n = n;
    j.next = 0;
    j.prog = prog;
    pthread_t th[N_READERS];
    for (int t = 0; t < N_READERS; t++)
        if (pthread_create(&th[t], NULL, raw_reader, &j) != 0)
            DIE("cannot start a weight reader thread");
    for (int t = 0; t < N_READERS; t++)
        pthread_join(th[t], NULL);
}

/* The N tensors SRC into DST, converted to DT on the host (one pinned buffer filled while
 * the other is copied); MAX_ELEMS: the largest. */
static void read_converted(const st_tensor **src, void **dst, int n, size_t max_elems, kdtype dt,
                           progress *prog)
{
    float *f32 = (float *)malloc(max_elems * sizeof *f32);
    uint16_t *h16[2];
    cudaEvent_t copied[2];
    cudaStream_t stream;
    if (!f32)
        DIE("out of host memory converting %zu weights", max_elems);
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (int b = 0; b < 2; b++) {
        CUDA_CHECK(cudaHostAlloc((void **)&h16[b], max_elems * sizeof(uint16_t), 0));
        CUDA_CHECK(cudaEventCreateWithFlags(&copied[b], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(copied[b], stream));
    }
    for (int i = 0, k = 0; i < n; i++, k ^= 1) {
        size_t ne = (size_t)src[i]->n_elems;
        CHECK(st_to_f32(src[i], f32) == 0);   /* the caller checked the type */
        CUDA_CHECK(cudaEventSynchronize(copied[k]));
        for (size_t e = 0; e < ne; e++)
            h16[k][e] = dt == KDT_F16 ? st_f32_to_f16(f32[e]) : st_f32_to_bf16(f32[e]);
        CUDA_CHECK(cudaMemcpyAsync(dst[i], h16[k], ne * 2, cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaEventRecord(copied[k], stream));
        progress_add(prog, ne * 2);
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int b = 0; b < 2; b++) {
        CUDA_CHECK(cudaFreeHost(h16[b]));
        CUDA_CHECK(cudaEventDestroy(copied[b]));
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    free(f32);
}

int cuda_weights_read(cuda_weights *w, const model_config *c, const char *dir, char *err,
                      size_t n_err)
{
    safetensors st;
    if (st_open_dir(&st, dir, err, n_err) < 0)
        return -1;
    int per_layer = weights_layout_max_tensors(c), cap = (c->n_layers + 1) * per_layer, n = 0, rc = -1, raw = 1;
    const st_tensor **src = (const st_tensor **)calloc((size_t)cap, sizeof *src);
    void **dst = (void **)calloc((size_t)cap, sizeof *dst);
    size_t max_elems = 0;
    st_dtype want = w->dt == KDT_F16 ? ST_F16 : ST_BF16;
    progress prog;
    prog.total = 0;
    prog.done = 0;
    prog.tenths = 0;
    clock_gettime(CLOCK_MONOTONIC, &prog.t0);
    wl_tensor *t = (wl_tensor *)malloc((size_t)per_layer * sizeof *t);
    if (!src || !dst || !t) {
        snprintf(err, n_err, "out of host memory");
        goto done;
    }
    for (int l = -1; l < c->n_layers; l++) {
        int k = weights_layout_tensors(&w->layout, c, l, t);
        for (int i = 0; i < k; i++, n++) {
            if (w->skip_fp8_linear && fp8_is_linear(&t[i], l)) {
                n--;
                continue;
            }
            if (!(src[n] = st_take(&st, t[i].name, t[i].n_dims, t[i].shape, err, n_err)))
                goto done;
            if (src[n]->dtype != ST_F32 && src[n]->dtype != ST_F16 && src[n]->dtype != ST_BF16) {
                snprintf(err, n_err, "tensor %s: dtype %s is not F32/F16/BF16", t[i].name,
                         st_dtype_name(src[n]->dtype));
                goto done;
            }
            raw &= src[n]->dtype == want;
            dst[n] = (uint16_t *)w->mem + t[i].offset;
            prog.total += (double)src[n]->n_elems * 2;
            if ((size_t)src[n]->n_elems > max_elems)
                max_elems = (size_t)src[n]->n_elems;
        }
    }
    {   /* an FP8 checkpoint's projections and scales are cuda_fp8.cu's to read (and check) */
        const char *ignore[8];
        int m = 0;
        for (const char *const *u = model_config_unused_tensors(c); *u && m < 5; u++)
            ignore[m++] = *u;
        if (w->skip_fp8_linear)
            ignore[m++] = "_proj.weight", ignore[m++] = "_proj.weight_scale";
        ignore[m] = NULL;
        if (st_check_used(&st, ignore, err, n_err) < 0)
            goto done;
    }
    if (raw)
        read_raw(src, dst, n, &prog);
    else
        read_converted(src, dst, n, max_elems, w->dt, &prog);
    rc = 0;
done:
    free(t);
    free(src);
    free(dst);
    st_free(&st);
    return rc;
}
