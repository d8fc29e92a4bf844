/* fp8.cuh - device helpers for E4M3 (kernels/fp8.h holds the format and the math): the
 * hardware conversions (cvt.rn.satfinite: round to nearest even, saturate to +-448, NaN ->
 * 0x7f, the same codes as fp8_e4m3_encode) and E4M3 -> 16-bit unpacking (exact for bf16 and
 * fp16 alike), plus the mma.sync m16n8k32 E4M3 product with fp32 accumulators.
 */
#ifndef CINDER_FP8_CUH
#define CINDER_FP8_CUH

#include <cuda_fp8.h>
#include "fp8.h"
#include "kutil.cuh"

/* Four values (a in the lowest byte) to E4M3 codes. */
__device__ __forceinline__ uint32_t fp8_pack4(float a, float b, float c, float d)
{
    uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
    uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(c, d), __NV_SATFINITE, __NV_E4M3);
    return lo | hi << 16;
}

__device__ __forceinline__ uint8_t fp8_cvt(float x)
{
    return (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
}

/* Two codes (the low one first) to fp32. */
__device__ __forceinline__ float2 fp8x2_to_f2(uint16_t v)
{
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)v, __NV_E4M3);
    return __half22float2(*(__half2 *)&h);
}

/* Eight codes to eight T (16 bytes), exact. */
template <typename T> __device__ __forceinline__ uint4 fp8x8_to_vec8(uint2 v)
{
    float2 f[4] = {fp8x2_to_f2((uint16_t)v.x), fp8x2_to_f2((uint16_t)(v.x >> 16)),
                   fp8x2_to_f2((uint16_t)v.y), fp8x2_to_f2((uint16_t)(v.y >> 16))};
    return make_uint4(pack2<T>(f[0].x, f[0].y), pack2<T>(f[1].x, f[1].y),
                      pack2<T>(f[2].x, f[2].y), pack2<T>(f[3].x, f[3].y));
}

/* C += A (16 x 32, E4M3, row) . B (32 x 8, E4M3, col); fragments as mma.cuh's with 4 codes a
 * register: a0 (row g, k 4t..4t+3), a1 (row g+8), a2 (row g, k 16+4t..), a3 (row g+8, k 16+4t..);
 * b0 (k 4t..4t+3, col g), b1 (k 16+4t.., col g). */
__device__ __forceinline__ void mma_e4m3_16832(float c[4], const uint32_t a[4], uint32_t b0,
                                               uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif
