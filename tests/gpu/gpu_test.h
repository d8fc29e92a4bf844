/* gpu_test.h - helpers shared by the GPU kernel tests (tests/gpu/test_*.cu): a seeded RNG
 * (fresh seed per run, printed; TEST_SEED=N replays one), rounding host data to the device
 * element type and uploading it, NaN-poisoned output buffers, per-row relative error, and
 * the pass/fail tally that ends in "N passed, M failed" and the exit status.
 */
#ifndef CINDER_GPU_TEST_H
#define CINDER_GPU_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "../../kernels/cuda_check.cuh"
#include "../../kernels/kdtype.h"

static uint64_t g_rng;
static int g_pass, g_fail;

static void test_init(const char *name)
{
    const char *env = getenv("TEST_SEED");
    g_rng = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    printf("%s: seed %llu (TEST_SEED=%llu replays it)\n", name, (unsigned long long)g_rng,
           (unsigned long long)g_rng);
    int dev;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    printf("%s: device %s, %d SMs\n", name, p.name, p.multiProcessorCount);
}

static uint64_t rng_next(void)   /* splitmix64 */
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}
static int rng_int(int lo, int hi)   /* inclusive */
{
    return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1));
}
static void fill_uniform(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform(lo, hi);
}
static void shuffle_i32(int32_t *x, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = rng_int(0, i);
        int32_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

static const char *dt_name(kdtype dt) { return dt == KDT_BF16 ? "bf16" : "f16"; }
/* Per-row relative error bound of a kernel whose inputs and output are DT, fp32 inside. */
static double dt_tol(kdtype dt) { return dt == KDT_BF16 ? 1e-2 : 2e-3; }

/* Rounds H in place to DT (so the reference sees what the kernel sees) and uploads it. */
static void *dev_upload16(float *h, size_t n, kdtype dt)
{
    uint16_t *tmp = (uint16_t *)malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++) {
        if (dt == KDT_BF16) {
            __nv_bfloat16 b = __float2bfloat16(h[i]);
            h[i] = __bfloat162float(b);
            memcpy(&tmp[i], &b, 2);
        } else {
            __half b = __float2half(h[i]);
            h[i] = __half2float(b);
            memcpy(&tmp[i], &b, 2);
        }
    }
    void *d;
    CUDA_CHECK(cudaMalloc(&d, n * 2 + 16));
    CUDA_CHECK(cudaMemcpy(d, tmp, n * 2, cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}
static void dev_download16(float *h, const void *d, size_t n, kdtype dt)
{
    uint16_t *tmp = (uint16_t *)malloc(n * 2 + 2);
    CUDA_CHECK(cudaMemcpy(tmp, d, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        if (dt == KDT_BF16) {
            __nv_bfloat16_raw r;
            r.x = tmp[i];
            h[i] = __bfloat162float(__nv_bfloat16(r));
        } else {
            __half_raw r;
            r.x = tmp[i];
            h[i] = __half2float(__half(r));
        }
    }
    free(tmp);
}
/* All bytes 0xff: NaN as bf16, fp16 and fp32, so unwritten outputs fail the comparison. */
static void *dev_alloc_poisoned(size_t bytes)
{
    void *d;
    CUDA_CHECK(cudaMalloc(&d, bytes + 16));
    CUDA_CHECK(cudaMemset(d, 0xff, bytes + 16));
    return d;
}
static void *dev_upload(const void *h, size_t bytes)
{
    void *d;
    CUDA_CHECK(cudaMalloc(&d, bytes + 16));
    CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* Largest over rows of ||out - ref|| / ||ref||; any non-finite output counts as failure
 * (returns +inf). Rows whose reference is all zeros compare by absolute norm. */
static double max_row_rel_err(const float *out, const float *ref, size_t n_rows, size_t row_len)
{
    double worst = 0.0;
    for (size_t r = 0; r < n_rows; r++) {
        double d2 = 0.0, r2 = 0.0;
        for (size_t i = 0; i < row_len; i++) {
            float o = out[r * row_len + i], e = ref[r * row_len + i];
            if (!isfinite(o)) return INFINITY;
            d2 += (double)(o - e) * (o - e);
            r2 += (double)e * e;
        }
        double rel = r2 > 0.0 ? sqrt(d2 / r2) : sqrt(d2);
        if (rel > worst) worst = rel;
    }
    return worst;
}

static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_pass++;
    else g_fail++;
    fflush(stdout);
}

static int test_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, g_pass, g_fail);
    return g_fail ? 1 : 0;
}

/* A paged KV cache for attention tests: each sequence's blocks are scattered (shuffled ids),
 * every slot no sequence owns holds NaN (a kernel that reads one fails), block-table entries
 * past a sequence's last block are -1. */
typedef struct {
    int n_blocks, max_bps;
    size_t n_elems;          /* n_blocks * bs * n_kv * hd */
    float *hk, *hv;          /* [n_blocks, bs, n_kv, hd] host copies, rounded to the dtype */
    int32_t *hbt;            /* [n_seqs, max_bps] */
    void *dk, *dv;           /* device caches */
    int32_t *dbt;            /* device block tables */
} paged_kv;

static void paged_kv_init(paged_kv *p, const int32_t *seq_lens, int n_seqs, int n_kv, int hd,
                          int bs, kdtype dt)
{
    p->n_blocks = 3;   /* spare blocks nobody owns */
    p->max_bps = 1;
    for (int s = 0; s < n_seqs; s++) {
        int nb = (seq_lens[s] + bs - 1) / bs;
        p->n_blocks += nb;
        if (nb + 1 > p->max_bps) p->max_bps = nb + 1;
    }
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * p->n_blocks);
    for (int i = 0; i < p->n_blocks; i++) ids[i] = i;
    shuffle_i32(ids, p->n_blocks);
    size_t row = (size_t)n_kv * hd;
    p->n_elems = (size_t)p->n_blocks * bs * row;
    p->hk = (float *)malloc(sizeof(float) * p->n_elems);
    p->hv = (float *)malloc(sizeof(float) * p->n_elems);
    for (size_t i = 0; i < p->n_elems; i++) p->hk[i] = p->hv[i] = NAN;
    p->hbt = (int32_t *)malloc(sizeof(int32_t) * n_seqs * p->max_bps);
    int next = 0;
    for (int s = 0; s < n_seqs; s++) {
        int nb = (seq_lens[s] + bs - 1) / bs;
        for (int b = 0; b < p->max_bps; b++)
            p->hbt[s * p->max_bps + b] = b < nb ? ids[next++] : -1;
        for (int t = 0; t < seq_lens[s]; t++) {
            size_t slot = (size_t)p->hbt[s * p->max_bps + t / bs] * bs + t % bs;
            fill_uniform(p->hk + slot * row, row, -1.f, 1.f);
            fill_uniform(p->hv + slot * row, row, -1.f, 1.f);
        }
    }
    free(ids);
    p->dk = dev_upload16(p->hk, p->n_elems, dt);
    p->dv = dev_upload16(p->hv, p->n_elems, dt);
    p->dbt = (int32_t *)dev_upload(p->hbt, sizeof(int32_t) * n_seqs * p->max_bps);
}

static void paged_kv_free(paged_kv *p)
{
    free(p->hk);
    free(p->hv);
    free(p->hbt);
    CUDA_CHECK(cudaFree(p->dk));
    CUDA_CHECK(cudaFree(p->dv));
    CUDA_CHECK(cudaFree(p->dbt));
}

#endif
