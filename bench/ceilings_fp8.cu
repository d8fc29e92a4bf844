/* ceilings_fp8.cu - the FP8 ceiling measured in the run that reports against it: the cuBLASLt
 * E4M3 GEMM rate at 8192^3 without scales (bf16 out), what the FP8 prefill is held to
 * (bench/kernels/bench_fp8.cu, bench/cmd_forward.c with --quantization fp8). */
#include "ceilings.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/gemm_fp8.cuh"

#include <algorithm>
#include <vector>

extern "C" double bench_fp8_gemm_tflops(void)
{
    const int n = 8192;
    uint8_t *a, *b;
    float *s;
    void *d, *ws;
    CUDA_CHECK(cudaMalloc(&a, (size_t)n * n));
    CUDA_CHECK(cudaMalloc(&b, (size_t)n * n));
    CUDA_CHECK(cudaMalloc(&s, n * 4));
    CUDA_CHECK(cudaMalloc(&d, (size_t)n * n * 2));
    CUDA_CHECK(cudaMalloc(&ws, 64 << 20));
    CUDA_CHECK(cudaMemset(a, 0x38, (size_t)n * n));   /* 1.0 */
    CUDA_CHECK(cudaMemset(b, 0x30, (size_t)n * n));   /* 0.5 */
    fp8_gemm *g = fp8_gemm_create(ws, 64 << 20);
    if (!g) { fprintf(stderr, "ceilings: cuBLASLt did not start\n"); exit(1); }
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms(10);
    for (int i = -3; i < 10; i++) {
        CUDA_CHECK(cudaEventRecord(e0));
        CUDA_CHECK(fp8_gemm_run(g, d, a, s, b, s, n, n, n, FP8_GEMM_UNSCALED, NULL, NULL, KDT_BF16, 0));
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i >= 0) CUDA_CHECK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    std::sort(ms.begin(), ms.end());
    double tf = 2.0 * n * n * n / (ms[5] * 1e9);
    printf("CEILING cuBLASLt FP8 GEMM (E4M3, no scales, bf16 out) 8192^3: %.1f TFLOP/s\n", tf);
    fflush(stdout);
    fp8_gemm_destroy(g);
    CUDA_CHECK(cudaEventDestroy(e0)); CUDA_CHECK(cudaEventDestroy(e1));
    CUDA_CHECK(cudaFree(a)); CUDA_CHECK(cudaFree(b)); CUDA_CHECK(cudaFree(s));
    CUDA_CHECK(cudaFree(d)); CUDA_CHECK(cudaFree(ws));
    return tf;
}
