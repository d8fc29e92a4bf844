/* mma.cuh - tensor-core and async-copy primitives for the attention kernels (sm_80+ PTX that
 * Hopper runs): mma.sync m16n8k16 with fp32 accumulators, ldmatrix, cp.async, and the
 * XOR-swizzled shared-memory tile layout that keeps ldmatrix free of bank conflicts.
 *
 * Fragment layouts (lane = 4 * g + t, g = lane / 4, t = lane % 4):
 *   A 16x16 row-major: a0 (row g, cols 2t..2t+1), a1 (row g+8), a2 (row g, cols 2t+8..),
 *                      a3 (row g+8, cols 2t+8..)
 *   B 16x8:            b0 (k 2t..2t+1, col g), b1 (k 2t+8..2t+9, col g)
 *   C 16x8 fp32:       c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, same cols)
 */
#ifndef CINDER_MMA_CUH
#define CINDER_MMA_CUH

#include "kutil.cuh"

template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4],
                                                               uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4],
                                                                    const uint32_t a[4],
                                                                    uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4],
                                                             uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *smem)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *smem)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

/* 16-byte global -> shared copy; with PRED false the destination is zero-filled and nothing is
 * read (SRC must still be a valid address). */
__device__ __forceinline__ void cp_async16(void *smem, const void *src, bool pred)
{
    uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

/* Swizzled tile of rows of SD elements (SD = 64 or 128: 8 or 16 chunks of 16 bytes). Chunk C
 * of row R lives at chunk C ^ (R % 8), so the 8 rows one ldmatrix reads hit 8 distinct bank
 * groups. Returns the element offset of (ROW, CHUNK). */
template <int SD> __device__ __forceinline__ int swz(int row, int chunk)
{
    static_assert(SD == 64 || SD == 128, "row stride must be 64 or 128 elements");
    return row * SD + ((chunk ^ (row & 7)) << 3);
}

#endif
