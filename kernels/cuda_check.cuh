/* cuda_check.cuh - abort with file:line on a failed CUDA runtime or cuBLAS call.
 *
 * For programmer errors and setup failures only (tests, benchmarks, backend init); usable from
 * C and C++. Kernel launchers themselves return cudaError_t and leave the policy to the caller.
 */
#ifndef CINDER_CUDA_CHECK_CUH
#define CINDER_CUDA_CHECK_CUH

#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>

#define CUDA_CHECK(call) do { \
    cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) { \
        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, \
                cudaGetErrorString(e_)); \
        abort(); \
    } \
} while (0)

#define CUBLAS_CHECK(call) do { \
    cublasStatus_t s_ = (call); \
    if (s_ != CUBLAS_STATUS_SUCCESS) { \
        fprintf(stderr, "%s:%d: %s failed: cuBLAS status %d\n", __FILE__, __LINE__, #call, \
                (int)s_); \
        abort(); \
    } \
} while (0)

#endif
