/* kutil.cuh - device helpers shared by the kernels (C++/CUDA only): 16-bit float <-> fp32
 * conversion for bf16 and fp16 alike, 8-element (16-byte) vector access, warp and block
 * reductions, and the dtype dispatch used by every host launcher.
 */
#ifndef CINDER_KUTIL_CUH
#define CINDER_KUTIL_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "kdtype.h"

/* KDT_DISPATCH(dt, T, body): runs BODY with T bound to the element type of DT; an unknown tag
 * makes the enclosing launcher return cudaErrorInvalidValue. */
#define KDT_DISPATCH(dt, T, ...) do { \
    switch (dt) { \
    case KDT_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break; \
    case KDT_F16:  { typedef __half T; __VA_ARGS__; } break; \
    default: return cudaErrorInvalidValue; \
    } \
} while (0)

__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x)
{
    return __float2bfloat16(x);
}
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

/* Two fp32 values packed as one 32-bit pair of T (LO in the low half). */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* 16 bytes = 8 elements of T, unpacked to / packed from fp32. */
template <typename T> __device__ __forceinline__ void vec8_to_f(uint4 v, float f[8])
{
    const T *e = (const T *)&v;
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = to_f(e[i]);
}
template <typename T> __device__ __forceinline__ uint4 vec8_from_f(const float f[8])
{
    uint4 v;
    v.x = pack2<T>(f[0], f[1]);
    v.y = pack2<T>(f[2], f[3]);
    v.z = pack2<T>(f[4], f[5]);
    v.w = pack2<T>(f[6], f[7]);
    return v;
}

__device__ __forceinline__ float warp_sum(float x)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
 * SCRATCH holds 32 floats; the call contains __syncthreads, so all threads must reach it. */
__device__ __forceinline__ float block_sum(float x, float *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads();  /* scratch may still be read by a previous call */
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = lane < n_warps ? scratch[lane] : 0.f;
    return warp_sum(x);
}

/* 2^x by the hardware approximation (relative error ~2^-22), -inf -> 0. */
__device__ __forceinline__ float fast_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#endif
