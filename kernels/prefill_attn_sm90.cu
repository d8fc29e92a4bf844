/* prefill_attn_sm90.cu - causal prefill attention for Hopper (sm_90a) in the manner of
 * FlashAttention-3: head dim 128, bf16, K/V read from the paged cache by TMA, S = Q K^T and
 * O += P V on wgmma; same interface and semantics as prefill_attn_run (prefill_attn_cuh).
 *
 * CTA = 3 warpgroups over 128 query rows of one head of one sequence (grid: head, query tile,
 * sequence; heaviest tiles first). Warpgroup 0 is the producer: one warp looks up the pages of
 * each key tile (128 keys) in the block table and issues the TMA boxes of K and V into two
 * shared-memory stages, each completing on its "full" mbarrier; consumers free a stage through
 * its "empty" mbarrier. Warpgroups 1 and 2 are consumers, 64 query rows each; Q (loaded once
 * by the consumers with cp.async into the 128-byte-swizzled layout wgmma reads) stays in
 * shared memory; S and O live in registers (fp32), P is packed to bf16 in registers and fed to
 * wgmma as the A operand. Online softmax in the log2 domain; key tiles past the diagonal (or
 * wholly before a sliding window) are never loaded, only tiles that cross them are masked.
 *
 * Pages meet TMA through one tensor map over the whole cache of the layer: 3-d, (head_dim,
 * kv head, cache slot) with box (64, 1, R), R = min(block_size, 128) rows; a key tile is
 * 128 / R boxes per 64-column half, box b at slot block_table[page] * block_size + offset,
 * so the page table gives the coordinate and the 128-byte swizzle lands each box in the
 * layout wgmma expects (R a multiple of 8 keeps every box on a 1024-byte swizzle atom).
 * Pages past the sequence's last one are read from its first page, and V rows past the last
 * key are zeroed by the producer before the consumers see the last tile (unwritten slots may
 * hold anything; P is 0 there, but 0 * NaN is not).
 *
 * Variants (template OVL, PP): 1 = one tile at a time per warpgroup (S, softmax, PV);
 * 2 = intra-warpgroup overlap (S of tile j+1 and PV of tile j issued together, the softmax of
 * j+1 running while PV j is in flight); 3 = 2 plus ping-pong: named barriers make the two
 * consumer warpgroups take turns issuing GEMMs so one's softmax overlaps the other's GEMMs.
 *
 * Not covered (prefill_attn_sm90_run returns cudaErrorNotSupported and prefill_attn_run uses
 * the portable kernel): fp16, head dims other than 128, block sizes that are not a multiple of
 * 8 or neither divide nor are a multiple of 128, devices other than compute capability 9.0,
 * builds without sm_90a code. GQA heads are not packed into one CTA: at prefill lengths the
 * query tiles of one head already fill the machine, and the heads sharing a KV head run in
 * adjacent CTAs (blockIdx.x) so their K/V reads hit L2.
 */
#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include "prefill_attn_sm90.cuh"
#include "attn_common.cuh"
#include "cuda_check.cuh"
#include "sm90.cuh"

#define SM90_HD 128
#define SM90_BM 128            /* query rows per CTA (64 per consumer warpgroup) */
#define SM90_BN 128            /* keys per tile */
#define SM90_TILE (SM90_BN * SM90_HD * 2)   /* bytes of a K or V tile, and of Q */
#define SM90_HALF (SM90_BN * 128)           /* bytes of one 64-column half of a tile */
/* shared memory: Q, K[2], V[2], then the mbarriers; +1024 for aligning the base */
#define SM90_SMEM (5 * SM90_TILE + 128 + 1024)

struct sm90_bars {
    uint64_t full_k[2], full_v[2], empty_k[2], empty_v[2], vtail;
};

#ifdef SM90_DEVICE

/* Consumer: S[64 x 128] = Q[rows of this warpgroup] K^T (8 wgmma, K = 16 each); issues and
 * commits, does not wait. */
__device__ __forceinline__ void sm90_qk(float (&s)[16][4], uint32_t sq, uint32_t sk)
{
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < SM90_HD / 16; kk++) {
        uint32_t off = (kk >> 2) * SM90_HALF + (kk & 3) * 32;
        wgmma_ss(s, wg_desc(sq + off, 16, 1024), wg_desc(sk + off, 16, 1024), kk > 0);
    }
    wg_commit();
}

/* Consumer: O[64 x 128] += P[64 x 128 keys] V[128 keys x 128]; V rows are keys, its two
 * 64-column halves SM90_HALF apart (the leading byte offset of the MN-major layout). */
__device__ __forceinline__ void sm90_pv(float (&o)[16][4], const uint32_t (&p)[8][4],
                                        uint32_t sv)
{
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < SM90_BN / 16; kk++)
        wgmma_rs_t(o, p[kk], wg_desc(sv + kk * 16 * 128, SM90_HALF, 1024));
    wg_commit();
}

/* Masks the scores of keys after each row's position (and at or before position - WINDOW).
 * POS0: position of the thread's row g of its warp. */
__device__ __forceinline__ void sm90_mask(float (&s)[16][4], int pos0, int key0, int window)
{
    int t2 = (threadIdx.x & 3) * 2;
#pragma unroll
    for (int j = 0; j < 16; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int key = key0 + j * 8 + t2 + (e & 1), p = pos0 + (e >> 1) * 8;
            if (key > p || (window > 0 && key <= p - window)) s[j][e] = -INFINITY;
        }
}

/* Online softmax over one tile for the thread's two rows: updates the running max M and
 * partial sums L, leaves exp2((s - m) * scale_log2) in S and the factor the previous O must
 * be scaled by in CORR (O itself may still be in use by a wgmma). */
__device__ __forceinline__ void sm90_softmax(float (&s)[16][4], float m[2], float l[2],
                                             float corr[2], float scale_log2)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float mx = m[h];
#pragma unroll
        for (int j = 0; j < 16; j++) mx = fmaxf(mx, fmaxf(s[j][2 * h], s[j][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float base = mx == -INFINITY ? 0.f : mx * scale_log2;   /* all masked so far */
        corr[h] = fast_exp2(m[h] * scale_log2 - base);
        m[h] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            s[j][2 * h] = fast_exp2(fmaf(s[j][2 * h], scale_log2, -base));
            s[j][2 * h + 1] = fast_exp2(fmaf(s[j][2 * h + 1], scale_log2, -base));
            sum += s[j][2 * h] + s[j][2 * h + 1];
        }
        l[h] = l[h] * corr[h] + sum;
    }
}

__device__ __forceinline__ void sm90_rescale(float (&o)[16][4], const float corr[2])
{
#pragma unroll
    for (int j = 0; j < 16; j++) {
        o[j][0] *= corr[0];
        o[j][1] *= corr[0];
        o[j][2] *= corr[1];
        o[j][3] *= corr[1];
    }
}

/* P as the A operand of the PV wgmma: k-step kk takes score columns 16kk .. 16kk + 15. */
__device__ __forceinline__ void sm90_pack(uint32_t (&p)[8][4], const float (&s)[16][4])
{
#pragma unroll
    for (int kk = 0; kk < 8; kk++) {
        p[kk][0] = pack2<__nv_bfloat16>(s[2 * kk][0], s[2 * kk][1]);
        p[kk][1] = pack2<__nv_bfloat16>(s[2 * kk][2], s[2 * kk][3]);
        p[kk][2] = pack2<__nv_bfloat16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        p[kk][3] = pack2<__nv_bfloat16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}
#endif /* SM90_DEVICE */

/* One warp of the producer warpgroup: for each key tile of [KT0, N_KT), waits for its stage
 * to be free, then issues the K and V boxes. Lane b < 128 / R handles box b. */
__device__ __forceinline__ void sm90_produce(const CUtensorMap *km, const CUtensorMap *vm,
                                             unsigned char *smem, sm90_bars *bars,
                                             const int32_t *bt, int bs, int rows_box, int kvh,
                                             int kt0, int n_kt, int n_keys)
{
#ifdef SM90_DEVICE
    int lane = threadIdx.x & 31, n_box = SM90_BN / rows_box;
    uint32_t sk = sm90_smem(smem + SM90_TILE), sv = sm90_smem(smem + 3 * SM90_TILE);
    for (int kt = kt0; kt < n_kt; kt++) {
        int it = kt - kt0, st = it & 1, ph = (it >> 1) & 1;
        int key = kt * SM90_BN + lane * rows_box, slot = 0;
        if (lane < n_box)   /* boxes past the last key read the first page (finite data) */
            slot = key < n_keys ? bt[key / bs] * bs + key % bs : bt[0] * bs;
        bool last = kt == n_kt - 1 && n_keys < (kt + 1) * SM90_BN;
        uint32_t fk = sm90_smem(&bars->full_k[st]), fv = sm90_smem(&bars->full_v[st]);
        uint32_t vb = last ? sm90_smem(&bars->vtail) : fv;
        if (lane == 0) {
            mbar_wait(sm90_smem(&bars->empty_k[st]), ph ^ 1);
            mbar_expect_tx(fk, SM90_TILE);
        }
        __syncwarp();
        if (lane < n_box) {
            uint32_t d = sk + st * SM90_TILE + lane * rows_box * 128;
            tma_load3(d, km, fk, 0, kvh, slot);
            tma_load3(d + SM90_HALF, km, fk, 64, kvh, slot);
        }
        if (lane == 0) {
            mbar_wait(sm90_smem(&bars->empty_v[st]), ph ^ 1);
            mbar_expect_tx(vb, SM90_TILE);
        }
        __syncwarp();
        if (lane < n_box) {
            uint32_t d = sv + st * SM90_TILE + lane * rows_box * 128;
            tma_load3(d, vm, vb, 0, kvh, slot);
            tma_load3(d + SM90_HALF, vm, vb, 64, kvh, slot);
        }
        if (last) {   /* zero V rows [n_keys - kt * BN, BN) of both halves, then publish */
            mbar_wait(vb, 0);
            int r0 = n_keys - kt * SM90_BN;
            uint4 *v = (uint4 *)(smem + 3 * SM90_TILE + st * SM90_TILE);
            for (int i = lane; i < (SM90_BN - r0) * 16; i += 32) {
                int r = r0 + (i >> 4), c = i & 15;
                v[(c >> 3) * (SM90_HALF / 16) + r * 8 + (c & 7)] = make_uint4(0, 0, 0, 0);
            }
            fence_proxy_async();
            __syncwarp();
            if (lane == 0) mbar_arrive(fv);
        }
    }
#endif
}

/* One consumer warpgroup (WG 0 or 1 of the two): rows [WG * 64, WG * 64 + 64) of the tile. */
template <bool OVL, bool PP>
__device__ __forceinline__ void sm90_consume(__nv_bfloat16 *out, const __nv_bfloat16 *qs,
                                             int q_stride, unsigned char *smem, sm90_bars *bars,
                                             int wg, int rows, int n_heads, int h, int i0,
                                             int off, int kt0, int n_kt, float scale_log2,
                                             int window, size_t out_row0)
{
#ifdef SM90_DEVICE
    int tid = threadIdx.x & 127, lane = tid & 31, warp = tid >> 5;
    uint32_t sq = sm90_smem(smem) + wg * 64 * 128, sk = sm90_smem(smem + SM90_TILE),
             sv = sm90_smem(smem + 3 * SM90_TILE);
    /* Q rows of this warpgroup: 64 x 16 chunks of 16 bytes, zero past the sequence */
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int idx = tid + i * 128, r = idx >> 4, c = idx & 15, rr = wg * 64 + r;
        unsigned char *d = smem + (c >> 3) * SM90_HALF + rr * 128 + (((c & 7) ^ (rr & 7)) << 4);
        cp_async16(d, rr < rows ? qs + (size_t)rr * q_stride + c * 8 : qs, rr < rows);
    }
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();
    bar_sync(1 + wg, 128);

    float o[16][4], s[16][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, corr[2];
    uint32_t p[8][4];
#pragma unroll
    for (int j = 0; j < 16; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    int pos0 = off + i0 + wg * 64 + warp * 16 + (lane >> 2);   /* position of row g */
    int wg_pos = off + i0 + wg * 64;                          /* first row of the warpgroup */
    int n_it = n_kt - kt0;
    /* ping-pong: consumer WG waits on barrier 3 + WG before issuing GEMMs, then lets the
       other go; WG 1 opens the first turn for WG 0 */
    if (PP && wg == 1) bar_arrive(3, 256);
#define SM90_TURN_BEGIN() if (PP) bar_sync(3 + wg, 256)
#define SM90_TURN_END() if (PP) bar_arrive(3 + (wg ^ 1), 256)
#define SM90_RELEASE(b) if (lane == 0) mbar_arrive(sm90_smem(&bars->b))
#define SM90_MASK(kt)                                                              \
    if ((kt) * SM90_BN + SM90_BN - 1 > wg_pos || window > 0)                      \
        sm90_mask(s, pos0, (kt) * SM90_BN, window)

    if (!OVL) {
        for (int it = 0; it < n_it; it++) {
            int kt = kt0 + it, st = it & 1, ph = (it >> 1) & 1;
            mbar_wait(sm90_smem(&bars->full_k[st]), ph);
            sm90_qk(s, sq, sk + st * SM90_TILE);
            wg_wait<0>();
            wg_fence_regs(s);
            SM90_RELEASE(empty_k[st]);
            SM90_MASK(kt);
            sm90_softmax(s, m, l, corr, scale_log2);
            sm90_rescale(o, corr);
            sm90_pack(p, s);
            mbar_wait(sm90_smem(&bars->full_v[st]), ph);
            sm90_pv(o, p, sv + st * SM90_TILE);
            wg_wait<0>();
            wg_fence_regs(o);
            SM90_RELEASE(empty_v[st]);
        }
    } else {
        SM90_TURN_BEGIN();
        mbar_wait(sm90_smem(&bars->full_k[0]), 0);
        sm90_qk(s, sq, sk);
        SM90_TURN_END();
        wg_wait<0>();
        wg_fence_regs(s);
        SM90_RELEASE(empty_k[0]);
        SM90_MASK(kt0);
        sm90_softmax(s, m, l, corr, scale_log2);
        sm90_pack(p, s);
        for (int it = 1; it < n_it; it++) {
            int kt = kt0 + it, st = it & 1, ph = (it >> 1) & 1;
            int pst = (it - 1) & 1, pph = ((it - 1) >> 1) & 1;
            SM90_TURN_BEGIN();
            mbar_wait(sm90_smem(&bars->full_k[st]), ph);
            sm90_qk(s, sq, sk + st * SM90_TILE);
            mbar_wait(sm90_smem(&bars->full_v[pst]), pph);
            sm90_pv(o, p, sv + pst * SM90_TILE);
            SM90_TURN_END();
            wg_wait<1>();
            wg_fence_regs(s);
            SM90_RELEASE(empty_k[st]);
            SM90_MASK(kt);
            sm90_softmax(s, m, l, corr, scale_log2);
            wg_wait<0>();
            wg_fence_regs(o);
            SM90_RELEASE(empty_v[pst]);
            sm90_rescale(o, corr);
            sm90_pack(p, s);
        }
        int pst = (n_it - 1) & 1, pph = ((n_it - 1) >> 1) & 1;
        SM90_TURN_BEGIN();
        mbar_wait(sm90_smem(&bars->full_v[pst]), pph);
        sm90_pv(o, p, sv + pst * SM90_TILE);
        SM90_TURN_END();
        wg_wait<0>();
        wg_fence_regs(o);
        SM90_RELEASE(empty_v[pst]);
        if (PP && wg == 0) bar_sync(3, 256);   /* takes WG 1's last turn hand-over */
    }
#undef SM90_TURN_BEGIN
#undef SM90_TURN_END
#undef SM90_RELEASE
#undef SM90_MASK

#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        float sum = l[hh];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        float inv = 1.f / sum;
        int r = wg * 64 + warp * 16 + (lane >> 2) + hh * 8;
        if (r >= rows) continue;
        __nv_bfloat16 *orow = out + ((out_row0 + r) * n_heads + h) * SM90_HD + (lane & 3) * 2;
#pragma unroll
        for (int j = 0; j < 16; j++)
            *(uint32_t *)(orow + j * 8) =
                pack2<__nv_bfloat16>(o[j][2 * hh] * inv, o[j][2 * hh + 1] * inv);
    }
#endif
}

template <bool OVL, bool PP>
__global__ void __launch_bounds__(384, 1)
prefill_attn_sm90_kernel(const __grid_constant__ CUtensorMap km,
                         const __grid_constant__ CUtensorMap vm, __nv_bfloat16 *__restrict__ out,
                         const __nv_bfloat16 *__restrict__ q, int q_stride,
                         const int32_t *__restrict__ bts, int max_bps,
                         const int32_t *__restrict__ cu_q, const int32_t *__restrict__ seq_lens,
                         int n_heads, int n_kv, int bs, int rows_box, float scale_log2,
                         int window)
{
#ifdef SM90_DEVICE
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = (unsigned char *)(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);
    sm90_bars *bars = (sm90_bars *)(smem + 5 * SM90_TILE);
    int h = blockIdx.x, seq = blockIdx.z;
    int q0 = cu_q[seq], q_len = cu_q[seq + 1] - q0;
    int i0 = (gridDim.y - 1 - blockIdx.y) * SM90_BM;   /* heaviest tiles first */
    if (i0 >= q_len) return;
    int off = seq_lens[seq] - q_len, rows = min(SM90_BM, q_len - i0);
    int n_keys = off + i0 + rows, n_kt = (n_keys + SM90_BN - 1) / SM90_BN;
    int kt0 = window > 0 ? max(0, off + i0 - window + 1) / SM90_BN : 0;
    int wg = threadIdx.x >> 7;
    if (threadIdx.x == 0) {
        for (int i = 0; i < 2; i++) {
            mbar_init(sm90_smem(&bars->full_k[i]), 1);
            mbar_init(sm90_smem(&bars->full_v[i]), 1);
            mbar_init(sm90_smem(&bars->empty_k[i]), 8);   /* lane 0 of each consumer warp */
            mbar_init(sm90_smem(&bars->empty_v[i]), 8);
        }
        mbar_init(sm90_smem(&bars->vtail), 1);
        mbar_init_fence();
    }
    __syncthreads();
    if (wg == 0) {
        setmaxnreg_dec<40>();
        if (threadIdx.x < 32)
            sm90_produce(&km, &vm, smem, bars, bts + (size_t)seq * max_bps, bs, rows_box,
                         h / (n_heads / n_kv), kt0, n_kt, n_keys);
    } else {
        setmaxnreg_inc<232>();
        sm90_consume<OVL, PP>(out, q + (size_t)(q0 + i0) * q_stride + (size_t)h * SM90_HD,
                              q_stride, smem, bars, wg - 1, rows, n_heads, h, i0, off, kt0,
                              n_kt, scale_log2, window, (size_t)(q0 + i0));
    }
#endif
}

/* ---- host side ---- */

__global__ void prefill_attn_sm90_probe(int *flag)
{
#ifdef SM90_DEVICE
    *flag = 1;
#else
    *flag = 0;
#endif
}

typedef CUresult (*sm90_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                   const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                   const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
typedef CUresult (*sm90_range_fn)(CUdeviceptr *, size_t *, CUdeviceptr);
static sm90_encode_fn g_encode;
static sm90_range_fn g_range;

extern "C" int prefill_attn_sm90_available(void)
{
    static int state = -1;
    if (state >= 0) return state;
    int dev, major = 0, minor = 0, *d = NULL, flag = 0;
    cudaDriverEntryPointQueryResult q1, q2;
    state = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        major != 9 || minor != 0)
        return state;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void **)&g_encode, 12000,
                                         cudaEnableDefault, &q1) != cudaSuccess ||
        cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", (void **)&g_range, 12000,
                                         cudaEnableDefault, &q2) != cudaSuccess ||
        q1 != cudaDriverEntryPointSuccess || q2 != cudaDriverEntryPointSuccess)
        return state;
    if (cudaMalloc(&d, sizeof(int)) != cudaSuccess) return state;
    prefill_attn_sm90_probe<<<1, 1>>>(d);
    if (cudaGetLastError() == cudaSuccess &&
        cudaMemcpy(&flag, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess)
        state = flag == 1;
    CUDA_CHECK(cudaFree(d));
    return state;
}

/* Whether prefill_attn_run takes this kernel when CINDER_PREFILL_SM90 is unset. */
#define SM90_DEFAULT_ON 0

extern "C" int prefill_attn_sm90_enabled(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("CINDER_PREFILL_SM90");
        on = (e ? strcmp(e, "0") != 0 : SM90_DEFAULT_ON) && prefill_attn_sm90_available();
    }
    return on;
}

/* Tensor map over the cache slots of CACHE (3-d: head_dim 128, kv head, slot), box (64, 1,
 * ROWS_BOX), 128-byte swizzle. Its slot extent reaches the end of the allocation holding
 * CACHE (only slots the block tables name are read). */
static cudaError_t sm90_kv_map(CUtensorMap *map, const void *cache, int n_kv, int rows_box)
{
    CUdeviceptr base;
    size_t size, row = (size_t)n_kv * SM90_HD * 2;
    if (g_range(&base, &size, (CUdeviceptr)cache) != CUDA_SUCCESS) return cudaErrorNotSupported;
    uint64_t n_slots = (base + size - (CUdeviceptr)cache) / row;
    if (n_slots > 0xffffffffull) n_slots = 0xffffffffull;
    cuuint64_t dims[3] = {SM90_HD, (cuuint64_t)n_kv, n_slots};
    cuuint64_t strides[2] = {SM90_HD * 2, row};
    cuuint32_t box[3] = {64, 1, (cuuint32_t)rows_box}, estr[3] = {1, 1, 1};
    CUresult r = g_encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)cache, dims, strides,
                          box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                          CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorNotSupported;
}

template <bool OVL, bool PP>
static cudaError_t sm90_launch(const CUtensorMap &km, const CUtensorMap &vm, void *out,
                               const void *q, int q_stride, const int32_t *bts, int max_bps,
                               const int32_t *cu_q, const int32_t *seq_lens, int n_seqs,
                               int max_q_len, int n_heads, int n_kv, int bs, int rows_box,
                               float scale, int window, cudaStream_t stream)
{
    static bool attr_set;   /* per instantiation; setting it twice is harmless */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(prefill_attn_sm90_kernel<OVL, PP>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             SM90_SMEM);
        if (e != cudaSuccess) return e;
        attr_set = true;
    }
    dim3 grid(n_heads, (max_q_len + SM90_BM - 1) / SM90_BM, n_seqs);
    prefill_attn_sm90_kernel<OVL, PP><<<grid, 384, SM90_SMEM, stream>>>(
        km, vm, (__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, q_stride, bts, max_bps, cu_q,
        seq_lens, n_heads, n_kv, bs, rows_box, scale * 1.4426950408889634f, window);
    return cudaGetLastError();
}

extern "C" cudaError_t prefill_attn_sm90_run(int variant, void *out, const void *q,
                                             int q_stride, const void *k_cache,
                                             const void *v_cache, const int32_t *block_tables,
                                             int max_blocks_per_seq,
                                             const int32_t *cu_seqlens_q,
                                             const int32_t *seq_lens, int n_seqs, int max_q_len,
                                             int n_heads, int n_kv_heads, int head_dim,
                                             int block_size, float scale, int window, kdtype dt,
                                             cudaStream_t stream)
{
    if (n_seqs < 0 || n_seqs > 65535 || max_q_len < 0 || n_kv_heads < 1 || window < 0 ||
        n_heads % n_kv_heads || block_size < 1 || q_stride < n_heads * head_dim ||
        q_stride % 8 || variant < 0 || variant > 3)
        return cudaErrorInvalidValue;
    int rows_box = block_size < SM90_BN ? block_size : SM90_BN;
    if (dt != KDT_BF16 || head_dim != SM90_HD || block_size % 8 ||
        (SM90_BN % block_size && block_size % SM90_BN) || !prefill_attn_sm90_available())
        return cudaErrorNotSupported;
    if (n_seqs == 0 || max_q_len == 0) return cudaSuccess;
    CUtensorMap km, vm;
    cudaError_t e = sm90_kv_map(&km, k_cache, n_kv_heads, rows_box);
    if (e == cudaSuccess) e = sm90_kv_map(&vm, v_cache, n_kv_heads, rows_box);
    if (e != cudaSuccess) return e;
    if (variant == 0) variant = 3;
    auto f = variant == 1 ? sm90_launch<false, false>
           : variant == 2 ? sm90_launch<true, false> : sm90_launch<true, true>;
    return f(km, vm, out, q, q_stride, block_tables, max_blocks_per_seq, cu_seqlens_q, seq_lens,
             n_seqs, max_q_len, n_heads, n_kv_heads, block_size, rows_box, scale, window, stream);
}
