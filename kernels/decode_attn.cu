/* decode_attn.cu - flash-decoding over the paged KV cache (see decode_attn.cuh).
 *
 * Grid (split, kv head x head group, sequence), 4 warps a block. A block streams its chunk of
 * the context through shared memory in 64-token tiles (K and V, 3 cp.async stages); each warp
 * takes 16 tokens of a tile and computes, on tensor cores, the scores of up to 16 query heads
 * that share the KV head (rows of the mma; unused rows are zero) and their P.V, with an
 * online softmax. The 4 warps' partial results are merged in shared memory; with several
 * splits each block writes (O / l, log2-sum-exp) to the workspace and decode_attn_reduce
 * merges them. Both kernels wait for the previous kernel at their top, so they may be launched as
 * programmatic dependents (pdl.cuh; off unless CINDER_PDL has bit 1).
 * Templated on the cache's element type: T, or E4M3 codes (decode_attn_fp8kv_run; the K scale
 * folded into the softmax scale, the V scale into the output). An E4M3 cache streams its raw
 * codes through DA_STAGES8 cp.async stages (half the bytes of a 16-bit stage, so one more
 * stage in flight at the same occupancy), and each warp widens its own 16 rows of a tile to T
 * in a one-stage tile just before its mma's (a __syncwarp, no block barrier): the global loads
 * stay asynchronous, as for a 16-bit cache.
 */
#include "decode_attn.cuh"
#include "attn_common.cuh"
#include "pdl.cuh"

#include <type_traits>

#define DA_TN 64        /* tokens per tile */
#define DA_NW 4         /* warps per block, 16 tokens of a tile each */
#define DA_NT (DA_NW * 32)
#define DA_STAGES 3
#define DA_STAGES8 4    /* stages of raw E4M3 codes */
#define DA_MAX_SPLITS 32

/* Shared memory of one block: STAGES tile pairs of T (one with an E4M3 cache), the query tile,
 * and with an E4M3 cache STAGES8 pairs of raw code tiles. */
template <typename T, typename KV, int HD> struct da_smem {
    static constexpr bool F8 = sizeof(KV) == 1;
    static constexpr int ST = F8 ? DA_STAGES8 : DA_STAGES;   /* load stages */
    static constexpr int NST = F8 ? 1 : DA_STAGES;           /* T tile stages */
    static constexpr size_t bytes = (size_t)(2 * NST * DA_TN + 16) * attn_sd<HD>::v * sizeof(T) +
                                    (F8 ? (size_t)2 * ST * DA_TN * HD : 0);
};

/* One kernel body, longer than 80 lines on purpose: the load pipeline, the scores, the online
 * softmax and the split's partial output share registers and shared memory; split into device
 * functions they would pass fragments by reference and the compiler would spill them. */
template <typename T, typename KV, int HD>
__global__ void __launch_bounds__(DA_NT)
decode_attn_kernel(T *__restrict__ out, float *__restrict__ ws_o, float *__restrict__ ws_lse,
                   const T *__restrict__ q, int q_stride, const KV *__restrict__ kc,
                   const KV *__restrict__ vc, const int32_t *__restrict__ bts, int max_bps,
                   const int32_t *__restrict__ ctx_lens, int n_heads, int n_kv, attn_bs bs,
                   float scale_log2, float v_scale, int window, int n_splits)
{
    constexpr int SD = attn_sd<HD>::v, HDC = HD / 8, TN = DA_TN, OSD = HD + 4;
    typedef da_smem<T, KV, HD> L;
    constexpr int ST = L::ST;
    extern __shared__ __align__(128) unsigned char smem[];
    T *sk = (T *)smem;                      /* [NST][TN][SD] */
    T *sv = sk + L::NST * TN * SD;          /* [NST][TN][SD] */
    T *sq = sv + L::NST * TN * SD;          /* [16][SD] */
    uint8_t *rk = (uint8_t *)(sq + 16 * SD);   /* E4M3 cache: [ST][TN][HD] codes */
    uint8_t *rv = rk + ST * TN * HD;           /* E4M3 cache: [ST][TN][HD] codes */
    float *so = (float *)smem;              /* [NW][16][OSD], reuses the K stages at the end */
    __shared__ float sm_m[DA_NW][16], sm_l[DA_NW][16];
    __shared__ int ss[ST][TN];              /* cache slots of the tiles in flight */
    pdl_wait();      /* launched as a programmatic dependent: q and K/V come from before */
    pdl_trigger();

    int split = blockIdx.x, seq = blockIdx.z;
    int G = n_heads / n_kv, n_hg = (G + 15) / 16;
    int kvh = blockIdx.y / n_hg, hg = blockIdx.y % n_hg;
    int h0 = kvh * G + hg * 16, nh = min(16, G - hg * 16);
    /* issues the copies of stage ST_ (slots ss[ST_]) */
    auto load = [&](int st_) {
        if constexpr (L::F8)
            attn_load_codes<HD, TN, DA_NT>(rk + st_ * TN * HD, rv + st_ * TN * HD,
                                           (const uint8_t *)kc, (const uint8_t *)vc, ss[st_],
                                           n_kv, kvh);
        else
            attn_load_kv<T, KV, HD, TN, DA_NT>(sk + st_ * TN * SD, sv + st_ * TN * SD, kc, vc,
                                               ss[st_], n_kv, kvh);
    };
    int ctx = ctx_lens[seq];
    int w0 = window > 0 && ctx > window ? ctx - window : 0;   /* sliding window: [w0, ctx) */
    int chunk = ((ctx - w0 + n_splits - 1) / n_splits + TN - 1) / TN * TN;
    int t_begin = w0 + split * chunk, t_end = min(ctx, t_begin + chunk);
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    size_t row0 = (size_t)seq * n_heads + h0;   /* output row of head h0 */

    if (t_begin >= t_end) {   /* empty split, or an empty context */
        if (n_splits == 1) {
            for (int i = tid; i < nh * HD; i += DA_NT) out[row0 * HD + i] = from_f<T>(0.f);
        } else if (tid < nh) {
            ws_lse[(row0 + tid) * n_splits + split] = -INFINITY;
        }
        return;
    }

    const T *qs = q + (size_t)seq * q_stride + (size_t)h0 * HD;
    for (int i = tid; i < 16 * HDC; i += DA_NT) {
        int r = i / HDC, c = i % HDC;
        cp_async16(sq + swz<SD>(r, c), r < nh ? qs + r * HD + c * 8 : q, r < nh);
    }
    const int32_t *bt = bts + (size_t)seq * max_bps;
    int n_tiles = (t_end - t_begin + TN - 1) / TN;
#pragma unroll
    for (int s = 0; s < ST; s++) attn_slots<TN>(ss[s], bt, bs, t_begin + s * TN, t_end);
    __syncthreads();
#pragma unroll
    for (int s = 0; s < ST - 1; s++) {
        if (s < n_tiles)
            load(s);
        cp_async_commit();
    }

    cp_async_wait<ST - 2>();
    __syncthreads();
    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        ldsm_x4(qa[kk], sq + swz<SD>((lane & 7) + ((lane >> 3) & 1) * 8, kk * 2 + (lane >> 4)));

    float o[1][HD / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    for (int i = 0; i < n_tiles; i++) {
        cp_async_wait<ST - 2>();
        __syncthreads();
        int nx = i + ST - 1;
        if (nx < n_tiles)
            load(nx % ST);
        cp_async_commit();
        /* slots of tile i + ST go where tile i's were (read by a load issued before) */
        if (i + ST < n_tiles)
            attn_slots<TN>(ss[i % ST], bt, bs, t_begin + (i + ST) * TN, t_end);
        const T *kt = sk, *vt = sv;
        if constexpr (L::F8) {   /* this warp's 16 rows of the stage, widened to T: only this
                                    warp reads them, so __syncwarp orders it with its mma's */
            size_t r0 = (size_t)(i % ST) * TN + warp * 16;
            __syncwarp();
            attn_widen<T, HD, 16, 32>(sk + warp * 16 * SD, sv + warp * 16 * SD, rk + r0 * HD,
                                      rv + r0 * HD, lane);
            __syncwarp();
        } else
            kt = sk + (i % ST) * TN * SD, vt = sv + (i % ST) * TN * SD;

        float s[1][2][4] = {};
        int kr = warp * 16 + (lane & 7) + (lane >> 4) * 8;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t b[4];
            ldsm_x4(b, kt + swz<SD>(kr, kk * 2 + ((lane >> 3) & 1)));
            mma16816<T>(s[0][0], qa[kk], b[0], b[1]);
            mma16816<T>(s[0][1], qa[kk], b[2], b[3]);
        }
        int tb = t_begin + i * TN + warp * 16 + (lane & 3) * 2;
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (tb + j * 8 + (e & 1) >= t_end) s[0][j][e] = -INFINITY;
        attn_softmax_step<2, HD / 8>(s[0], o[0], m, l, scale_log2);
        attn_pv16<T, HD, 1, 2>(o, s, 0, vt, warp * 16);
    }
    cp_async_wait<0>();
    __syncthreads();

    /* merge the 4 warps: each wrote its rows' max (raw score units), sum and unnormalized O */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
        l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    }
    int g = lane >> 2;
    if ((lane & 3) == 0) {
        sm_m[warp][g] = m[0];
        sm_m[warp][g + 8] = m[1];
        sm_l[warp][g] = l[0];
        sm_l[warp][g + 8] = l[1];
    }
    float *sow = so + warp * 16 * OSD;
#pragma unroll
    for (int nt = 0; nt < HD / 8; nt++) {
        int d = nt * 8 + (lane & 3) * 2;
        *(float2 *)&sow[g * OSD + d] = make_float2(o[0][nt][0], o[0][nt][1]);
        *(float2 *)&sow[(g + 8) * OSD + d] = make_float2(o[0][nt][2], o[0][nt][3]);
    }
    __syncthreads();
    for (int i = tid; i < nh * HD; i += DA_NT) {
        int r = i / HD, d = i % HD;
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < DA_NW; w++) mx = fmaxf(mx, sm_m[w][r]);
        float sum = 0.f, acc = 0.f;
#pragma unroll
        for (int w = 0; w < DA_NW; w++) {
            float c = fast_exp2((sm_m[w][r] - mx) * scale_log2);
            sum += sm_l[w][r] * c;
            acc += so[(w * 16 + r) * OSD + d] * c;
        }
        if (n_splits == 1) {
            out[row0 * HD + i] = from_f<T>(acc / sum * v_scale);
        } else {
            size_t wr = (row0 + r) * n_splits + split;
            ws_o[wr * HD + d] = acc / sum * v_scale;
            if (d == 0) ws_lse[wr] = mx * scale_log2 + __log2f(sum);
        }
    }
}

/* Merges the splits of one (sequence, head): weights 2^(lse_s - max). */
template <typename T, int HD>
__global__ void decode_attn_reduce(T *__restrict__ out, const float *__restrict__ ws_o,
                                   const float *__restrict__ ws_lse, int n_splits)
{
    pdl_wait();
    pdl_trigger();
    size_t row = (size_t)blockIdx.y * gridDim.x + blockIdx.x;
    const float *lse = ws_lse + row * n_splits;
    float mx = -INFINITY;
    for (int s = 0; s < n_splits; s++) mx = fmaxf(mx, lse[s]);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float acc = 0.f, sum = 0.f;
        for (int s = 0; s < n_splits; s++) {
            if (lse[s] == -INFINITY) continue;   /* empty split: its O was never written */
            float w = fast_exp2(lse[s] - mx);
            acc += w * ws_o[(row * n_splits + s) * HD + d];
            sum += w;
        }
        out[row * HD + d] = from_f<T>(sum > 0.f ? acc / sum : 0.f);
    }
}

template <typename T, typename KV, int HD>
static cudaError_t decode_attn_launch(void *out, const void *q, int q_stride, const void *kc,
                                      const void *vc, const int32_t *bts, int max_bps,
                                      const int32_t *ctx_lens, int n_seqs, int n_heads,
                                      int n_kv, int bs, float scale, float k_scale,
                                      float v_scale, int window, int n_splits, void *ws,
                                      int pdl, cudaStream_t stream)
{
    const size_t smem = da_smem<T, KV, HD>::bytes;
    static bool attr_set;   /* per instantiation; setting it twice is harmless */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(decode_attn_kernel<T, KV, HD>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
        attr_set = true;
    }
    int G = n_heads / n_kv, n_hg = (G + 15) / 16;
    float *ws_o = (float *)ws;
    float *ws_lse = ws_o ? ws_o + (size_t)n_seqs * n_heads * n_splits * HD : NULL;
    dim3 grid(n_splits, n_kv * n_hg, n_seqs);
    cudaError_t e = pdl_launch(decode_attn_kernel<T, KV, HD>, grid, dim3(DA_NT), smem, stream, pdl,
                               (T *)out, ws_o, ws_lse, (const T *)q, q_stride, (const KV *)kc,
                               (const KV *)vc, bts, max_bps, ctx_lens, n_heads, n_kv,
                               attn_bs_make(bs), scale * k_scale * 1.4426950408889634f, v_scale,
                               window, n_splits);
    if (e == cudaSuccess && n_splits > 1)
        e = pdl_launch(decode_attn_reduce<T, HD>, dim3(n_heads, n_seqs), dim3(HD), 0, stream, pdl,
                       (T *)out, (const float *)ws_o, (const float *)ws_lse, n_splits);
    return e;
}

extern "C" int decode_attn_splits(int n_seqs, int n_heads, int n_kv_heads, int head_dim,
                                  int max_ctx, int n_sms)
{
    int G = n_heads / n_kv_heads;
    long blocks = (long)n_seqs * n_kv_heads * ((G + 15) / 16);
    long slots = (head_dim <= 64 ? 4L : 2L) * n_sms;   /* resident blocks (shared memory) */
    if (blocks >= slots) return 1;
    long n = slots / blocks;                            /* one wave: no tail */
    long by_ctx = (max_ctx + 255) / 256;                /* chunks of at least 256 tokens */
    if (n > by_ctx) n = by_ctx;
    if (n > DA_MAX_SPLITS) n = DA_MAX_SPLITS;
    return n < 1 ? 1 : (int)n;
}

extern "C" size_t decode_attn_workspace_size(int n_seqs, int n_heads, int head_dim,
                                             int n_splits)
{
    if (n_splits <= 1) return 0;
    return (size_t)n_seqs * n_heads * n_splits * (head_dim + 1) * sizeof(float);
}

template <typename KV>
static cudaError_t decode_attn_dispatch(void *out, const void *q, int q_stride,
                                        const void *k_cache, const void *v_cache,
                                        const int32_t *block_tables, int max_blocks_per_seq,
                                        const int32_t *ctx_lens, int n_seqs, int n_heads,
                                        int n_kv_heads, int head_dim, int block_size,
                                        float scale, float k_scale, float v_scale, int window,
                                        int n_splits, void *workspace, int pdl, kdtype dt,
                                        cudaStream_t stream)
{
    if (n_seqs == 0) return cudaSuccess;
    if (n_seqs < 0 || n_kv_heads < 1 || n_heads % n_kv_heads || block_size < 1 ||
        n_splits < 1 || (n_splits > 1 && !workspace) || q_stride < n_heads * head_dim ||
        window < 0 ||
        q_stride % 8 || n_seqs > 65535)
        return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, {
        typedef typename std::conditional<sizeof(KV) == 1, KV, T>::type K;
        auto f = head_dim == 48 ? decode_attn_launch<T, K, 48>
               : head_dim == 64 ? decode_attn_launch<T, K, 64>
               : head_dim == 128 ? decode_attn_launch<T, K, 128> : nullptr;
        if (!f) return cudaErrorInvalidValue;
        return f(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq, ctx_lens,
                 n_seqs, n_heads, n_kv_heads, block_size, scale, k_scale, v_scale, window,
                 n_splits, workspace, pdl, stream);
    });
    return cudaSuccess;
}

extern "C" cudaError_t decode_attn_run(void *out, const void *q, int q_stride,
                                       const void *k_cache, const void *v_cache,
                                       const int32_t *block_tables, int max_blocks_per_seq,
                                       const int32_t *ctx_lens, int n_seqs, int n_heads,
                                       int n_kv_heads, int head_dim, int block_size,
                                       float scale, int window, int n_splits, void *workspace,
                                       int pdl, kdtype dt, cudaStream_t stream)
{
    return decode_attn_dispatch<uint16_t>(out, q, q_stride, k_cache, v_cache, block_tables,
                                          max_blocks_per_seq, ctx_lens, n_seqs, n_heads,
                                          n_kv_heads, head_dim, block_size, scale, 1.f, 1.f,
                                          window, n_splits, workspace, pdl, dt, stream);
}

extern "C" cudaError_t decode_attn_fp8kv_run(void *out, const void *q, int q_stride,
                                             const void *k_cache, const void *v_cache,
                                             const int32_t *block_tables, int max_blocks_per_seq,
                                             const int32_t *ctx_lens, int n_seqs, int n_heads,
                                             int n_kv_heads, int head_dim, int block_size,
                                             float scale, float k_scale, float v_scale,
                                             int window, int n_splits, void *workspace, int pdl,
                                             kdtype dt, cudaStream_t stream)
{
    return decode_attn_dispatch<uint8_t>(out, q, q_stride, k_cache, v_cache, block_tables,
                                         max_blocks_per_seq, ctx_lens, n_seqs, n_heads,
                                         n_kv_heads, head_dim, block_size, scale, k_scale,
                                         v_scale, window, n_splits, workspace, pdl, dt, stream);
}
