/* prefill_attn.cu - causal flash attention (FlashAttention-2 style) reading K/V from pages
 * (see prefill_attn.cuh).
 *
 * Grid (head, query tile, sequence), heaviest query tiles first; NW warps a block, each owning
 * MT x 16 query rows. Q of the block stays in shared memory; K/V tiles of BN keys are gathered
 * from the pages with cp.async into two swizzled stages, the next tile loading while the
 * current one is used (the cache slots of each tile are looked up one tile further ahead). S = Q K^T and O += P V run on mma.sync m16n8k16 with fp32
 * accumulators; softmax is online in the log2 domain; only the key tiles that cross the
 * diagonal are masked. Templated on the cache's element type: T, or E4M3 codes
 * (prefill_attn_fp8kv_run; the K scale folded into the softmax scale, the V scale into 1/l):
 * their raw codes stream through the two stages by cp.async, and the block widens each tile
 * to T in one tile pair before using it (a barrier more a tile; the loads stay asynchronous).
 */
#include "prefill_attn.cuh"
#include "prefill_attn_sm90.cuh"
#include "attn_common.cuh"

/* NW warps of MT x 16 query rows each, BN keys per tile. Over 80 lines on purpose: one
 * pipeline (Q load, K/V stages, S = QK^T, mask, online softmax, O += PV, store) whose
 * fragments live in registers across every stage (the shared steps are in attn_common.cuh). */
template <typename T, typename KV, int HD, int NW, int MT, int BN>
__global__ void __launch_bounds__(NW * 32)
prefill_attn_kernel(T *__restrict__ out, const T *__restrict__ q, int q_stride,
                    const KV *__restrict__ kc, const KV *__restrict__ vc,
                    const int32_t *__restrict__ bts, int max_bps,
                    const int32_t *__restrict__ cu_q, const int32_t *__restrict__ seq_lens,
                    int n_heads, int n_kv, attn_bs bs, float scale_log2, float v_scale, int window)
{
    constexpr int SD = attn_sd<HD>::v, HDC = HD / 8, BM = NW * MT * 16, NT = NW * 32;
    constexpr bool F8 = sizeof(KV) == 1;
    constexpr int NST = F8 ? 1 : 2;   /* T tile stages (E4M3: one, widened from the codes) */
    extern __shared__ __align__(128) unsigned char smem[];
    T *sq = (T *)smem;          /* [BM][SD] */
    T *sk = sq + BM * SD;       /* [NST][BN][SD] */
    T *sv = sk + NST * BN * SD; /* [NST][BN][SD] */
    uint8_t *rk = (uint8_t *)(sv + NST * BN * SD);   /* E4M3: [2][BN][HD] codes */
    uint8_t *rv = rk + 2 * BN * HD;                  /* E4M3: [2][BN][HD] codes */
    __shared__ int ss[2][BN];   /* cache slots of the next two key tiles */

    int h = blockIdx.x, seq = blockIdx.z;
    int q0 = cu_q[seq], q_len = cu_q[seq + 1] - q0;
    int i0 = (gridDim.y - 1 - blockIdx.y) * BM;   /* heaviest tiles are scheduled first */
    if (i0 >= q_len) return;
    int off = seq_lens[seq] - q_len;              /* position of query 0 */
    int kvh = h / (n_heads / n_kv);
    int rows = min(BM, q_len - i0);
    int n_keys = off + i0 + rows;                 /* keys [0, n_keys) are visible to the tile */
    int n_kt = (n_keys + BN - 1) / BN;
    /* sliding window: the tile's first row needs keys from off + i0 - window + 1 on; every
       tile read is then masked at both ends */
    int kt0 = window > 0 ? max(0, off + i0 - window + 1) / BN : 0;
    int n_full = window > 0 ? kt0 : (off + i0 + 1) / BN;   /* tiles needing no mask */
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int32_t *bt = bts + (size_t)seq * max_bps;
    auto load = [&](int st) {   /* the copies of stage ST (slots ss[st]) */
        if constexpr (F8)
            attn_load_codes<HD, BN, NT>(rk + st * BN * HD, rv + st * BN * HD,
                                        (const uint8_t *)kc, (const uint8_t *)vc, ss[st], n_kv,
                                        kvh);
        else
            attn_load_kv<T, KV, HD, BN, NT>(sk + st * BN * SD, sv + st * BN * SD, kc, vc, ss[st],
                                            n_kv, kvh);
    };

    const T *qs = q + (size_t)(q0 + i0) * q_stride + (size_t)h * HD;
    for (int i = tid; i < BM * HDC; i += NT) {
        int r = i / HDC, c = i % HDC;
        cp_async16(sq + swz<SD>(r, c), r < rows ? qs + (size_t)r * q_stride + c * 8 : q,
                   r < rows);
    }
    attn_slots<BN>(ss[0], bt, bs, kt0 * BN, n_keys);
    attn_slots<BN>(ss[1], bt, bs, (kt0 + 1) * BN, n_keys);
    __syncthreads();
    load(0);
    cp_async_commit();

    float o[MT][HD / 8][4] = {};
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;
    int wrow = warp * MT * 16;   /* first query row of this warp within the tile */

    for (int kt = kt0; kt < n_kt; kt++) {
        int it = kt - kt0;   /* stage of tile kt: it & 1 */
        cp_async_wait<0>();
        __syncthreads();
        if (kt + 1 < n_kt)
            load((it + 1) & 1);
        cp_async_commit();
        /* slots of tile kt + 2 replace tile kt's (its load was issued last iteration) */
        if (kt + 2 < n_kt) attn_slots<BN>(ss[it & 1], bt, bs, (kt + 2) * BN, n_keys);
        const T *kt_s = sk, *vt_s = sv;
        if constexpr (F8) {   /* every warp reads every row: the block widens, then a barrier */
            attn_widen<T, HD, BN, NT>(sk, sv, rk + (it & 1) * BN * HD, rv + (it & 1) * BN * HD,
                                      tid);
            __syncthreads();
        } else {
            kt_s = sk + (it & 1) * BN * SD, vt_s = sv + (it & 1) * BN * SD;
        }

        float s[MT][BN / 8][4] = {};
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldsm_x4(qa[mt], sq + swz<SD>(wrow + mt * 16 + (lane & 7) + ((lane >> 3) & 1) * 8,
                                             kk * 2 + (lane >> 4)));
#pragma unroll
            for (int np = 0; np < BN / 16; np++) {
                uint32_t b[4];
                ldsm_x4(b, kt_s + swz<SD>(np * 16 + (lane & 7) + (lane >> 4) * 8,
                                          kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(s[mt][2 * np], qa[mt], b[0], b[1]);
                    mma16816<T>(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
                }
            }
        }
        if (kt >= n_full || window > 0) {   /* mask keys after each row (and before its window) */
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                int pos = off + i0 + wrow + mt * 16 + (lane >> 2);   /* row g; g+8 is pos+8 */
#pragma unroll
                for (int j = 0; j < BN / 8; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int key = kt * BN + j * 8 + (lane & 3) * 2 + (e & 1);
                        int p = pos + (e >> 1) * 8;
                        if (key > p || (window > 0 && key <= p - window))
                            s[mt][j][e] = -INFINITY;
                    }
            }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            attn_softmax_step<BN / 8, HD / 8>(s[mt], o[mt], m[mt], l[mt], scale_log2);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) attn_pv16<T, HD, MT, BN / 8>(o, s, kk, vt_s, kk * 16);
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            float sum = l[mt][hh];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            float inv = v_scale / sum;
            int r = wrow + mt * 16 + (lane >> 2) + hh * 8;
            if (i0 + r >= q_len) continue;
            T *orow = out + ((size_t)(q0 + i0 + r) * n_heads + h) * HD + (lane & 3) * 2;
#pragma unroll
            for (int nt = 0; nt < HD / 8; nt++)
                *(uint32_t *)(orow + nt * 8) =
                    pack2<T>(o[mt][nt][2 * hh] * inv, o[mt][nt][2 * hh + 1] * inv);
        }
}

template <typename T, typename KV, int HD, int NW, int MT, int BN>
static cudaError_t prefill_attn_launch(void *out, const void *q, int q_stride, const void *kc,
                                       const void *vc, const int32_t *bts, int max_bps,
                                       const int32_t *cu_q, const int32_t *seq_lens, int n_seqs,
                                       int max_q_len, int n_heads, int n_kv, int bs, float scale,
                                       float k_scale, float v_scale, int window,
                                       cudaStream_t stream)
{
    constexpr int SD = attn_sd<HD>::v, BM = NW * MT * 16;
    const size_t smem = sizeof(KV) == 1   /* E4M3: one T tile pair and two stages of codes */
        ? (size_t)(BM + 2 * BN) * SD * sizeof(T) + (size_t)4 * BN * HD
        : (size_t)(BM + 4 * BN) * SD * sizeof(T);
    static bool attr_set;   /* per instantiation; setting it twice is harmless */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(prefill_attn_kernel<T, KV, HD, NW, MT, BN>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
        attr_set = true;
    }
    dim3 grid(n_heads, (max_q_len + BM - 1) / BM, n_seqs);
    prefill_attn_kernel<T, KV, HD, NW, MT, BN><<<grid, NW * 32, smem, stream>>>(
        (T *)out, (const T *)q, q_stride, (const KV *)kc, (const KV *)vc, bts, max_bps, cu_q,
        seq_lens, n_heads, n_kv, attn_bs_make(bs), scale * k_scale * 1.4426950408889634f,
        v_scale, window);
    return cudaGetLastError();
}

typedef cudaError_t (*prefill_attn_fn)(void *, const void *, int, const void *, const void *,
                                       const int32_t *, int, const int32_t *, const int32_t *,
                                       int, int, int, int, int, float, float, float, int,
                                       cudaStream_t);

template <typename T, typename KV, int NW, int MT, int BN>
static prefill_attn_fn prefill_attn_pick(int head_dim)
{
    return head_dim == 48 ? prefill_attn_launch<T, KV, 48, NW, MT, BN>
         : head_dim == 64 ? prefill_attn_launch<T, KV, 64, NW, MT, BN>
         : head_dim == 128 ? prefill_attn_launch<T, KV, 128, NW, MT, BN> : nullptr;
}

/* KV8: an E4M3 cache with per-tensor K_SCALE, V_SCALE (else T, scales 1). */
static cudaError_t prefill_attn_dispatch(int variant, void *out, const void *q, int q_stride,
                                         const void *k_cache, const void *v_cache,
                                         const int32_t *block_tables, int max_blocks_per_seq,
                                         const int32_t *cu_seqlens_q, const int32_t *seq_lens,
                                         int n_seqs, int max_q_len, int n_heads, int n_kv_heads,
                                         int head_dim, int block_size, float scale, int kv8,
                                         float k_scale, float v_scale, int window, kdtype dt,
                                         cudaStream_t stream)
{
    if (n_seqs == 0 || max_q_len == 0) return cudaSuccess;
    if (n_seqs < 0 || n_seqs > 65535 || max_q_len < 0 || n_kv_heads < 1 || window < 0 ||
        n_heads % n_kv_heads || block_size < 1 || q_stride < n_heads * head_dim ||
        q_stride % 8 || variant < 0 || variant > 4)
        return cudaErrorInvalidValue;
    if (variant == 0) variant = max_q_len >= 2048 ? 3 : 2;   /* the faster measured (RESULTS.md) */
    KDT_DISPATCH(dt, T, {
        prefill_attn_fn f = kv8 ? (variant == 1 ? prefill_attn_pick<T, uint8_t, 4, 1, 64>(head_dim)
                                 : variant == 2 ? prefill_attn_pick<T, uint8_t, 4, 2, 64>(head_dim)
                                 : variant == 3 ? prefill_attn_pick<T, uint8_t, 8, 2, 64>(head_dim)
                                                : prefill_attn_pick<T, uint8_t, 4, 2, 32>(head_dim))
                          : variant == 1 ? prefill_attn_pick<T, T, 4, 1, 64>(head_dim)
                          : variant == 2 ? prefill_attn_pick<T, T, 4, 2, 64>(head_dim)
                          : variant == 3 ? prefill_attn_pick<T, T, 8, 2, 64>(head_dim)
                                         : prefill_attn_pick<T, T, 4, 2, 32>(head_dim);
        if (!f) return cudaErrorInvalidValue;
        return f(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq,
                 cu_seqlens_q, seq_lens, n_seqs, max_q_len, n_heads, n_kv_heads, block_size,
                 scale, k_scale, v_scale, window, stream);
    });
    return cudaSuccess;
}

extern "C" cudaError_t prefill_attn_run_tiled(int variant, void *out, const void *q,
                                              int q_stride, const void *k_cache,
                                              const void *v_cache, const int32_t *block_tables,
                                              int max_blocks_per_seq,
                                              const int32_t *cu_seqlens_q,
                                              const int32_t *seq_lens, int n_seqs,
                                              int max_q_len, int n_heads, int n_kv_heads,
                                              int head_dim, int block_size, float scale,
                                              int window, kdtype dt, cudaStream_t stream)
{
    return prefill_attn_dispatch(variant, out, q, q_stride, k_cache, v_cache, block_tables,
                                 max_blocks_per_seq, cu_seqlens_q, seq_lens, n_seqs, max_q_len,
                                 n_heads, n_kv_heads, head_dim, block_size, scale, 0, 1.f, 1.f,
                                 window, dt, stream);
}

extern "C" cudaError_t prefill_attn_fp8kv_run(void *out, const void *q, int q_stride,
                                              const void *k_cache, const void *v_cache,
                                              const int32_t *block_tables, int max_blocks_per_seq,
                                              const int32_t *cu_seqlens_q,
                                              const int32_t *seq_lens, int n_seqs,
                                              int max_q_len, int n_heads, int n_kv_heads,
                                              int head_dim, int block_size, float scale,
                                              float k_scale, float v_scale, int window, kdtype dt,
                                              cudaStream_t stream)
{
    return prefill_attn_dispatch(0, out, q, q_stride, k_cache, v_cache, block_tables,
                                 max_blocks_per_seq, cu_seqlens_q, seq_lens, n_seqs, max_q_len,
                                 n_heads, n_kv_heads, head_dim, block_size, scale, 1, k_scale,
                                 v_scale, window, dt, stream);
}

extern "C" cudaError_t prefill_attn_run(void *out, const void *q, int q_stride,
                                        const void *k_cache, const void *v_cache,
                                        const int32_t *block_tables, int max_blocks_per_seq,
                                        const int32_t *cu_seqlens_q, const int32_t *seq_lens,
                                        int n_seqs, int max_q_len, int n_heads, int n_kv_heads,
                                        int head_dim, int block_size, float scale, int window,
                                        kdtype dt, cudaStream_t stream)
{
    if (prefill_attn_sm90_enabled()) {   /* Hopper kernel for the cases it covers */
        cudaError_t e = prefill_attn_sm90_run(0, out, q, q_stride, k_cache, v_cache, block_tables,
                                              max_blocks_per_seq, cu_seqlens_q, seq_lens, n_seqs,
                                              max_q_len, n_heads, n_kv_heads, head_dim,
                                              block_size, scale, window, dt, stream);
        if (e != cudaErrorNotSupported) return e;
    }
    return prefill_attn_run_tiled(0, out, q, q_stride, k_cache, v_cache, block_tables,
                                  max_blocks_per_seq, cu_seqlens_q, seq_lens, n_seqs, max_q_len,
                                  n_heads, n_kv_heads, head_dim, block_size, scale, window, dt,
                                  stream);
}
