/* ceilings.cu - the device ceilings of the benchmarks (see ceilings.h). */
#include "ceilings.h"
#include "../kernels/cuda_check.cuh"

#include <algorithm>
#include <stdint.h>
#include <stdio.h>
#include <vector>
#include <cublas_v2.h>
#include <cuda_bf16.h>

__global__ static void ceil_fill_kernel(uint16_t *p, size_t n, uint64_t seed)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + seed) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
        float v = (float)((z >> 40) & 0xffffff) * (2.f / 16777216.f) - 1.f;
        p[i] = __bfloat16_as_ushort(__float2bfloat16(v));
    }
}

/* Median ms of F over 10 timed runs after 3 warm-ups. */
template <typename F> static double median_ms(F f)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(10);
    for (int i = -3; i < (int)ms.size(); i++) {
        CUDA_CHECK(cudaEventRecord(a));
        f();
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

extern "C" bench_ceilings bench_measure_ceilings(void)
{
    bench_ceilings c;
    int dev;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    printf("device: %s, %d SMs, %.0f MB L2\n", p.name, p.multiProcessorCount, p.l2CacheSize / 1e6);

    size_t bytes = (size_t)1 << 30;
    void *src, *dst;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)src, bytes / 2, 1);
    CUDA_CHECK(cudaGetLastError());
    double ms = median_ms([&] {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice));
    });
    c.copy_gbs = 2.0 * bytes / (ms * 1e6);
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));

    const int n = 8192;
    void *a, *b, *d;
    CUDA_CHECK(cudaMalloc(&a, (size_t)n * n * 2));
    CUDA_CHECK(cudaMalloc(&b, (size_t)n * n * 2));
    CUDA_CHECK(cudaMalloc(&d, (size_t)n * n * 2));
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)a, (size_t)n * n, 2);
    ceil_fill_kernel<<<1024, 256>>>((uint16_t *)b, (size_t)n * n, 3);
    CUDA_CHECK(cudaGetLastError());
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    const float alpha = 1.f, beta = 0.f;
    ms = median_ms([&] {
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n,
                                  b, CUDA_R_16BF, n, &beta, d, CUDA_R_16BF, n,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    c.gemm_tflops = 2.0 * n * n * (double)n / (ms * 1e9);
    CUBLAS_CHECK(cublasDestroy(h));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(d));
    printf("CEILING copy %.0f GB/s (1 GiB D2D memcpy, read+write) | cuBLAS bf16 GEMM 8192^3 "
           "%.0f TFLOP/s\n", c.copy_gbs, c.gemm_tflops);
    fflush(stdout);
    return c;
}
