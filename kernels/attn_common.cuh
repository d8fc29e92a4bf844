/* attn_common.cuh - pieces shared by the prefill and decode attention kernels: the gather of a
 * tile of K/V rows out of the paged cache into swizzled shared memory, and the online-softmax
 * step applied to a warp's fp32 score fragments.
 *
 * Cache layout (both K and V): [n_blocks, block_size, n_kv_heads, head_dim]; token t of a
 * sequence lives in block block_table[t / block_size], row t % block_size.
 */
#ifndef CINDER_ATTN_COMMON_CUH
#define CINDER_ATTN_COMMON_CUH

#include "fp8.cuh"
#include "mma.cuh"

/* Smem row stride for a head dim: 48 -> 64, 64 -> 64, 128 -> 128. */
template <int HD> struct attn_sd { static constexpr int v = HD <= 64 ? 64 : 128; };

/* Block size as the loaders use it: a power of two is a shift and a mask, not a division. */
struct attn_bs {
    int bs, shift;   /* shift >= 0 when bs == 1 << shift, else -1 */
};
static inline attn_bs attn_bs_make(int bs)
{
    attn_bs b = {bs, -1};
    if ((bs & (bs - 1)) == 0)
        for (b.shift = 0; (1 << b.shift) != bs; b.shift++) {}
    return b;
}
__device__ __forceinline__ int attn_slot(const int32_t *bt, attn_bs b, int t)
{
    if (b.shift >= 0) return (bt[t >> b.shift] << b.shift) + (t & (b.bs - 1));
    return bt[t / b.bs] * b.bs + t % b.bs;
}

/* Threads [0, NR) write the cache slots of rows [T0, T0 + NR) into SS (-1 past T_END). The
 * kernels fill this table a pipeline stage ahead, so the copies below need neither the block
 * table nor a division. */
template <int NR>
__device__ __forceinline__ void attn_slots(int *ss, const int32_t *bt, attn_bs bs, int t0,
                                           int t_end)
{
    int r = threadIdx.x, t = t0 + r;
    if (r < NR) ss[r] = t < t_end ? attn_slot(bt, bs, t) : -1;
}

/* Issues cp.async copies of the K and V rows whose slots SS lists ([NR]) for one kv head into
 * swizzled tiles SK, SV ([NR][SD] each); rows with slot -1 are zero-filled (so masked keys
 * hold no NaN). All NT threads of the block call it; the caller commits the group.
 * KV = uint8_t: an E4M3 cache (--kv-cache-dtype fp8), its codes loaded into registers and
 * stored into the tiles as T (exact; the per-tensor scales are the caller's, folded into the
 * softmax scale and the output), visible after the caller's next barrier. */
template <typename T, typename KV, int HD, int NR, int NT>
__device__ __forceinline__ void attn_load_kv(T *sk, T *sv, const KV *kc, const KV *vc,
                                             const int *ss, int n_kv, int kvh)
{
    constexpr int SD = attn_sd<HD>::v, HDC = HD / 8;
#pragma unroll
    for (int i = 0; i < (NR * HDC + NT - 1) / NT; i++) {
        int idx = threadIdx.x + i * NT;
        if ((NR * HDC) % NT != 0 && idx >= NR * HDC) break;
        int r = idx / HDC, c = idx % HDC, slot = ss[r];
        size_t off = slot >= 0 ? ((size_t)slot * n_kv + kvh) * HD + c * 8 : 0;
        if constexpr (sizeof(KV) == 1) {
            uint2 k8 = slot >= 0 ? *(const uint2 *)(kc + off) : make_uint2(0, 0);
            uint2 v8 = slot >= 0 ? *(const uint2 *)(vc + off) : make_uint2(0, 0);
            *(uint4 *)(sk + swz<SD>(r, c)) = fp8x8_to_vec8<T>(k8);
            *(uint4 *)(sv + swz<SD>(r, c)) = fp8x8_to_vec8<T>(v8);
        } else {
            cp_async16(sk + swz<SD>(r, c), kc + off, slot >= 0);
            cp_async16(sv + swz<SD>(r, c), vc + off, slot >= 0);
        }
    }
}

/* E4M3 cache, asynchronously: cp.async of the raw codes of the NR rows SS lists for one kv head
 * into RK, RV ([NR][HD] bytes each, unswizzled); rows with slot -1 are zero-filled (code 0 is
 * +0, so masked keys hold no NaN). All NT threads call it; the caller commits the group. The
 * codes become T tiles by attn_widen once they have landed. */
template <int HD, int NR, int NT>
__device__ __forceinline__ void attn_load_codes(uint8_t *rk, uint8_t *rv, const uint8_t *kc,
                                                const uint8_t *vc, const int *ss, int n_kv,
                                                int kvh)
{
    constexpr int C = HD / 16;   /* 16-byte chunks a row */
    for (int idx = threadIdx.x; idx < NR * C; idx += NT) {
        int r = idx / C, c = idx % C, slot = ss[r];
        size_t off = slot >= 0 ? ((size_t)slot * n_kv + kvh) * HD + c * 16 : 0;
        cp_async16(rk + r * HD + c * 16, kc + off, slot >= 0);
        cp_async16(rv + r * HD + c * 16, vc + off, slot >= 0);
    }
}

/* NTH threads (this one is I) widen the NR rows of raw code tiles RK, RV ([NR][HD]) into the
 * swizzled T tiles SK, SV ([NR][SD]); exact (E4M3 fits bf16 and fp16). NR rows from a multiple
 * of 8, so a tile may start at any such row. The caller orders it with barriers. */
template <typename T, int HD, int NR, int NTH>
__device__ __forceinline__ void attn_widen(T *sk, T *sv, const uint8_t *rk, const uint8_t *rv,
                                           int i)
{
    constexpr int SD = attn_sd<HD>::v, HDC = HD / 8;
#pragma unroll
    for (int idx = i; idx < NR * HDC; idx += NTH) {
        int r = idx / HDC, c = idx % HDC;
        *(uint4 *)(sk + swz<SD>(r, c)) = fp8x8_to_vec8<T>(*(const uint2 *)(rk + r * HD + c * 8));
        *(uint4 *)(sv + swz<SD>(r, c)) = fp8x8_to_vec8<T>(*(const uint2 *)(rv + r * HD + c * 8));
    }
}

/* Online softmax over one key tile for the two rows (g, g+8) a thread holds in S[NT8][4]
 * (NT8 n8-tiles of raw scores, masked entries -inf). SCALE_LOG2 > 0 is the softmax scale
 * times log2(e), applied inside the exponent (one FFMA per score). Updates the running max
 * M[2] (raw units) and the thread's partial row sums L[2], rescales O[NO][4], and leaves
 * exp2((s - m) * scale_log2) in S. (Tried on the H200: tree reductions plus skipping the O
 * rescale when no row max moved measured 2-5% slower at 8k tokens; see bench/RESULTS.md.) */
template <int NT8, int NO>
__device__ __forceinline__ void attn_softmax_step(float (&s)[NT8][4], float (&o)[NO][4],
                                                  float m[2], float l[2], float scale_log2)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float mx = m[h];
#pragma unroll
        for (int j = 0; j < NT8; j++) mx = fmaxf(mx, fmaxf(s[j][2 * h], s[j][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        /* all keys so far masked: base 0 keeps every term exactly 0 */
        float base = mx == -INFINITY ? 0.f : mx * scale_log2;
        float corr = fast_exp2(m[h] * scale_log2 - base);
        m[h] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < NT8; j++) {
            s[j][2 * h] = fast_exp2(fmaf(s[j][2 * h], scale_log2, -base));
            s[j][2 * h + 1] = fast_exp2(fmaf(s[j][2 * h + 1], scale_log2, -base));
            sum += s[j][2 * h] + s[j][2 * h + 1];
        }
        l[h] = l[h] * corr + sum;
#pragma unroll
        for (int j = 0; j < NO; j++) {
            o[j][2 * h] *= corr;
            o[j][2 * h + 1] *= corr;
        }
    }
}

/* O[MT][16 x HD] += P[MT][16 x 16 keys] V[16 keys x HD] for the MT row tiles of a warp: P is
 * score tiles S[mt][2*KK], S[mt][2*KK+1] packed as A fragments, V rows [ROW0, ROW0+16) of the
 * swizzled tile SV (each V fragment is loaded once and used for all MT row tiles). */
template <typename T, int HD, int MT, int NT8>
__device__ __forceinline__ void attn_pv16(float (&o)[MT][HD / 8][4],
                                          const float (&s)[MT][NT8][4], int kk, const T *sv,
                                          int row0)
{
    constexpr int SD = attn_sd<HD>::v;
    int lane = threadIdx.x & 31;
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const float *s0 = s[mt][2 * kk], *s1 = s[mt][2 * kk + 1];
        a[mt][0] = pack2<T>(s0[0], s0[1]);
        a[mt][1] = pack2<T>(s0[2], s0[3]);
        a[mt][2] = pack2<T>(s1[0], s1[1]);
        a[mt][3] = pack2<T>(s1[2], s1[3]);
    }
    int r = row0 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int np = 0; np < HD / 16; np++) {
        uint32_t b[4];
        ldsm_x4_t(b, sv + swz<SD>(r, np * 2 + (lane >> 4)));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            mma16816<T>(o[mt][2 * np], a[mt], b[0], b[1]);
            mma16816<T>(o[mt][2 * np + 1], a[mt], b[2], b[3]);
        }
    }
}

#endif
