/* ld_stream.cuh - the load of a weight chunk that is read once (16 bytes, kept out of L1):
 * the MoE GEMVs (moe.cu, moe_decode.cu) keep LD_STREAM_INFLIGHT of them in flight a lane. */
#ifndef CINDER_LD_STREAM_CUH
#define CINDER_LD_STREAM_CUH

#include <stdint.h>
#include <cuda_runtime.h>

#define LD_STREAM_INFLIGHT 8

__device__ __forceinline__ uint4 ld_stream(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

#endif
