/* sm90.cuh - Hopper (sm_90a) primitives for the wgmma/TMA kernels, as inline PTX: mbarriers,
 * the bulk tensor copy (TMA) into shared memory, named barriers, setmaxnreg, and warpgroup
 * matrix multiply-accumulate (wgmma m64n128k16, bf16 in, fp32 accumulators) with its shared
 * memory matrix descriptors. Only compiled into device code for sm_90a: every use must sit
 * under SM90_DEVICE (the default build also emits compute_90 PTX, where these do not exist).
 *
 * Accumulator layout of wgmma m64nN (fp32), thread T of the warpgroup (warp w = T / 32,
 * g = lane / 4, t = lane % 4): d[j][0..1] = row 16w + g, cols 8j + 2t, 8j + 2t + 1;
 * d[j][2..3] = row 16w + g + 8, same cols. A from registers (m64k16, bf16) has the mma.sync
 * m16n8k16 A layout for the warp's 16 rows (mma.cuh).
 */
#ifndef CINDER_SM90_CUH
#define CINDER_SM90_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SM90_DEVICE 1
#endif

#ifdef SM90_DEVICE

__device__ __forceinline__ uint32_t sm90_smem(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* ---- mbarriers (CTA scope) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence()
{
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
/* Blocks until the phase of parity PARITY has completed. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, int parity)
{
    uint32_t done;
    do {
        asm volatile("{\n\t.reg .pred p;\n\t"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
    } while (!done);
}

/* ---- TMA: box at coordinates (C0, C1, C2) of the 3-d tensor map MAP into DST, completing
 * its bytes on mbarrier BAR ---- */
__device__ __forceinline__ void tma_load3(uint32_t dst, const void *map, uint32_t bar, int c0,
                                          int c1, int c2)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%3, %4, %5}], [%2];"
                 ::"r"(dst), "l"((uint64_t)map), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}
/* Orders this thread's ordinary shared-memory writes before later async-proxy reads. */
__device__ __forceinline__ void fence_proxy_async()
{
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

/* ---- named barriers (id 0 is __syncthreads) ---- */
__device__ __forceinline__ void bar_sync(int id, int n)
{
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int n)
{
    asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(n) : "memory");
}

template <int N> __device__ __forceinline__ void setmaxnreg_inc()
{
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N> __device__ __forceinline__ void setmaxnreg_dec()
{
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}

/* ---- wgmma ---- */
/* Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
 * offsets (16-byte units). The tile's swizzle atoms (8 rows x 128 bytes) must be 1024-byte
 * aligned; advancing the start by 32-byte steps inside an atom walks along K. */
__device__ __forceinline__ uint64_t wg_desc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr & 0x3ffff) >> 4) | (uint64_t)((lbo & 0x3ffff) >> 4) << 16 |
           (uint64_t)((sbo & 0x3ffff) >> 4) << 32 | (uint64_t)1 << 62;
}
__device__ __forceinline__ void wg_fence()
{
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wg_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N> __device__ __forceinline__ void wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accesses of D across a wgmma issue or wait. */
__device__ __forceinline__ void wg_fence_regs(float (&d)[16][4])
{
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[j][e])::"memory");
}

#define SM90_D4(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define SM90_D64 SM90_D4(0), SM90_D4(1), SM90_D4(2), SM90_D4(3), SM90_D4(4), SM90_D4(5), \
    SM90_D4(6), SM90_D4(7), SM90_D4(8), SM90_D4(9), SM90_D4(10), SM90_D4(11), SM90_D4(12), \
    SM90_D4(13), SM90_D4(14), SM90_D4(15)
#define SM90_R64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, " \
    "%33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
    "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

/* D[64 x 128] (+)= A[64 x 16] B[16 x 128], A and B K-major in shared memory (descriptors);
 * ACC 0 overwrites D. */
__device__ __forceinline__ void wgmma_ss(float (&d)[16][4], uint64_t da, uint64_t db, int acc)
{
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %66, 0;\n\t"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SM90_R64
                 ", %64, %65, p, 1, 1, 0, 0;\n\t}"
                 : SM90_D64 : "l"(da), "l"(db), "r"(acc));
}
/* D[64 x 128] += A[64 x 16] B[16 x 128], A in registers (4 per thread), B MN-major (N
 * contiguous) in shared memory. */
__device__ __forceinline__ void wgmma_rs_t(float (&d)[16][4], const uint32_t (&a)[4],
                                           uint64_t db)
{
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %69, 0;\n\t"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SM90_R64
                 ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n\t}"
                 : SM90_D64 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(1));
}

#endif /* SM90_DEVICE */
#endif
