/* bench_util.cuh - shared pieces of the kernel benchmarks: the device ceilings measured in the
 * same run (bench/ceilings.h), event timing with warm-up and median, random device fill,
 * and one result-line format:
 *   RESULT <bench> | <case> | <ms> ms | <figure> <unit> | <pct>% of <ceiling>
 */
#ifndef CINDER_BENCH_UTIL_CUH
#define CINDER_BENCH_UTIL_CUH

#include <algorithm>
#include <stdint.h>
#include <stdio.h>
#include <vector>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>
#include "../../kernels/cuda_check.cuh"
#include "../ceilings.h"


/* Median milliseconds per call of F over ITERS timed runs of REPS calls each, after warm-up. */
template <typename F> static double bench_ms(F f, int iters = 20, int reps = 1)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) f();
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> ms(iters);
    for (int i = 0; i < iters; i++) {
        CUDA_CHECK(cudaEventRecord(a));
        for (int r = 0; r < reps; r++) f();
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[iters / 2] / reps;
}

__global__ static void bench_fill_kernel(uint16_t *p, size_t n, uint64_t seed, float scale,
                                         int is_bf16)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + seed) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
        z ^= z >> 29;
        float v = ((float)(z >> 40) * (1.f / 16777216.f) * 2.f - 1.f) * scale;
        p[i] = is_bf16 ? __bfloat16_as_ushort(__float2bfloat16(v))
                       : __half_as_ushort(__float2half(v));
    }
}

/* N random 16-bit floats uniform in [-scale, scale]. */
static void bench_fill16(void *p, size_t n, uint64_t seed, float scale, bool bf16 = true)
{
    bench_fill_kernel<<<1024, 256>>>((uint16_t *)p, n, seed, scale, bf16);
    CUDA_CHECK(cudaGetLastError());
}

__global__ static void bench_logits_kernel(float *x, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = (float)((i * 2654435761u) % 100003) * 1e-4f;
}

/* N fp32 logits spread over [0, 10) without a pattern a sampler could exploit. */
static void bench_fill_logits(float *x, size_t n)
{
    bench_logits_kernel<<<1024, 256>>>(x, n);
    CUDA_CHECK(cudaGetLastError());
}

/* A memory-bound result: BYTES moved (each input read once, each output written once). */
static void bench_report_bw(const char *bench, const char *cas, double ms, double bytes,
                            const bench_ceilings *c)
{
    double gbs = bytes / (ms * 1e6);
    printf("RESULT %s | %s | %.4f ms | %.0f GB/s | %.1f%% of copy %.0f GB/s\n", bench, cas, ms,
           gbs, 100.0 * gbs / c->copy_gbs, c->copy_gbs);
    fflush(stdout);
}

/* A compute-bound result: FLOPS of useful arithmetic. */
static void bench_report_flops(const char *bench, const char *cas, double ms, double flops,
                               const bench_ceilings *c)
{
    double tf = flops / (ms * 1e9);
    printf("RESULT %s | %s | %.4f ms | %.1f TFLOP/s | %.1f%% of cuBLAS %.0f TFLOP/s\n", bench,
           cas, ms, tf, 100.0 * tf / c->gemm_tflops, c->gemm_tflops);
    fflush(stdout);
}

#endif
