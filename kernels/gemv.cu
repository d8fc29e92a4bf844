/* gemv.cu - decode-batch matrix products on tensor cores (see gemv.cuh).
 *
 * Tiles of 16 weight rows: mma.sync m16n8k16 with the weight tile as A and the (up to 8)
 * token rows as B, so 1 to 8 tokens cost the same. Each lane loads whole 16-byte chunks of
 * its two rows (g and g+8 of the tile) straight from global memory: the k index of a chunk is
 * permuted into the fragment layout identically for A and B, which a dot product allows, so
 * no shared-memory staging or shuffles are needed. Each lane keeps 4 steps of 64 k (256
 * bytes) in flight, the first ones loaded before pdl_wait().
 *
 * Grid: one wave of resident blocks, each taking k consecutive tiles with its warps splitting
 * the k range (partial sums reduced in shared memory), the block shape picked with the
 * occupancy API to reach CINDER_GEMV_WARPS (default 16) warps a multiprocessor. (Blocks of
 * one tile measured up to 1.6x slower on the H200: the last of them ran as a second wave.)
 *
 * Row pairing: a tile's rows g and g+8 are chosen so the epilogue finds what it combines in
 * one thread: gate row r with up row r (SILU), and RoPE partners i, i + head_dim/2 (QKV).
 * With a norm, each block normalizes the token rows into shared memory once.
 */
#include "gemv.cuh"
#include "kutil.cuh"
#include "mma.cuh"
#include "norm_rows.cuh"
#include "pdl.cuh"
#include "rope_freq.cuh"

#include <stdlib.h>

#define GV_MAX_WARPS 8
static_assert(GEMV_MAX_TOKENS == NORM_ROWS_MAX, "gv_norm_rows normalizes every token row");
#define GV_SMEM_MAX (GEMV_NORM_MAX_BYTES + GV_MAX_WARPS * 2 * 32 * 16)

struct gv_args {
    void *out;
    const void *x, *w, *norm_w;
    int n_tok, n_out, n_in, n_tiles, n_steps;   /* steps of 64 k */
    int k;                                      /* tiles a block */
    float eps;
    int n_heads, n_kv, hd, out_stride, n_rope_tiles;   /* QKV */
    const int32_t *pos, *slot;
    void *kc, *vc;
    rope_params rope;
};

/* A streamed weight chunk: read once, kept out of L1; L2 fetches the next 128 bytes too. */
__device__ __forceinline__ uint4 gv_ld_w(const uint4 *p)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

/* Weight rows of tile TILE held by lanes with row index G (the A fragment's rows g, g+8). */
template <int EPI>
__device__ __forceinline__ void gv_rows(const gv_args &a, int tile, int g, int &ra, int &rb)
{
    if (EPI == GEMV_SILU) {
        ra = tile * 8 + g;
        rb = a.n_out / 2 + ra;
    } else if (EPI == GEMV_QKV && tile < a.n_rope_tiles) {
        int tph = a.hd / 16, h = tile / tph;
        ra = h * a.hd + (tile % tph) * 8 + g;
        rb = ra + a.hd / 2;
    } else if (EPI == GEMV_QKV) {
        ra = (a.n_heads + a.n_kv) * a.hd + (tile - a.n_rope_tiles) * 16 + g;
        rb = ra + 8;
    } else {
        ra = tile * 16 + g;
        rb = ra + 8;
    }
}

/* Chunks (16 bytes) S*8 + TQ and S*8 + 4 + TQ of rows WA and WB (clamped into the row: past
 * n_in the B side is zero, so what A holds there does not count). */
__device__ __forceinline__ void gv_load_w(uint4 (&dst)[4], const uint4 *wa, const uint4 *wb,
                                          int s, int nc, int tq)
{
    int c0 = min(s * 8 + tq, nc - 1), c1 = min(s * 8 + 4 + tq, nc - 1);
    dst[0] = gv_ld_w(wa + c0);
    dst[1] = gv_ld_w(wa + c1);
    dst[2] = gv_ld_w(wb + c0);
    dst[3] = gv_ld_w(wb + c1);
}

/* The B chunks of step S for token row XROW (NULL: a token past n_tok, zeros). */
__device__ __forceinline__ void gv_load_x(uint4 (&dst)[2], const uint4 *xrow, int s, int nc,
                                          int tq)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int c = s * 8 + h * 4 + tq;
        dst[h] = xrow && c < nc ? xrow[c] : make_uint4(0, 0, 0, 0);
    }
}

/* Four m16n8k16 products: 64 k of the tile's two rows against the same 64 k of the tokens. */
template <typename T>
__device__ __forceinline__ void gv_mma(float (&acc)[4], const uint4 (&w)[4], const uint4 (&b)[2])
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint4 &ra = w[h], &rb = w[2 + h];
        uint32_t a0[4] = {ra.x, rb.x, ra.y, rb.y}, a1[4] = {ra.z, rb.z, ra.w, rb.w};
        mma16816<T>(acc, a0, b[h].x, b[h].y);
        mma16816<T>(acc, a1, b[h].z, b[h].w);
    }
}

template <typename T, int EPI>
__device__ __forceinline__ void gv_store(const gv_args &a, int t, int r, float y)
{
    if (r >= a.n_out) return;
    size_t i = (size_t)t * a.n_out + r;
    if (EPI == GEMV_OUT_F32) ((float *)a.out)[i] = y;
    else if (EPI == GEMV_RESID) ((T *)a.out)[i] = from_f<T>(to_f(((T *)a.out)[i]) + y);
    else ((T *)a.out)[i] = from_f<T>(y);
}

/* QKV epilogue of token T: YA, YB are rows RA, RB of tile TILE. */
template <typename T>
__device__ __forceinline__ void gv_store_qkv(const gv_args &a, int tile, int ra, int t, float ya,
                                             float yb)
{
    int kv_dim = a.n_kv * a.hd, slot = a.slot[t];
    if (tile >= a.n_rope_tiles) {   /* v: rows ra, ra + 8 */
        if (slot < 0) return;
        T *v = (T *)a.vc + (size_t)slot * kv_dim + (ra - (a.n_heads + a.n_kv) * a.hd);
        v[0] = from_f<T>(ya);
        v[8] = from_f<T>(yb);
        return;
    }
    int h = ra / a.hd, i = ra % a.hd, half = a.hd / 2;
    float sn, cs;
    sincosf((float)a.pos[t] * rope_inv_freq(i, a.hd, a.rope), &sn, &cs);
    float y1 = ya * cs - yb * sn, y2 = yb * cs + ya * sn;
    T *dst;
    if (h < a.n_heads) {
        dst = (T *)a.out + (size_t)t * a.out_stride + ra;
    } else {
        if (slot < 0) return;
        dst = (T *)a.kc + (size_t)slot * kv_dim + (h - a.n_heads) * a.hd + i;
    }
    dst[0] = from_f<T>(y1);
    dst[half] = from_f<T>(y2);
}

/* C fragment C[4] of tile TILE (rows ra: c0 c1, rb: c2 c3; tokens 2tq, 2tq+1) to its place. */
template <typename T, int EPI>
__device__ __forceinline__ void gv_epilogue(const gv_args &a, int tile, int g, int tq,
                                            const float (&c)[4])
{
    if (tile >= a.n_tiles) return;
    int ra, rb;
    gv_rows<EPI>(a, tile, g, ra, rb);
#pragma unroll
    for (int j = 0; j < 2; j++) {
        int t = 2 * tq + j;
        if (t >= a.n_tok) break;
        float ya = c[j], yb = c[2 + j];
        if (EPI == GEMV_SILU) {
            int hid = a.n_out / 2;
            if (ra < hid) ((T *)a.out)[(size_t)t * hid + ra] = from_f<T>(ya / (1.f + __expf(-ya)) * yb);
        } else if (EPI == GEMV_QKV) {
            gv_store_qkv<T>(a, tile, ra, t, ya, yb);
        } else {
            gv_store<T, EPI>(a, t, ra, ya);
            gv_store<T, EPI>(a, t, rb, yb);
        }
    }
}

/* The token rows RMS-normalized into XS [n_tok][n_in + 8] (rmsnorm_run's arithmetic). All
 * rows and the norm weights arrive by cp.async in one round trip, the rest is shared memory. */
template <typename T>
__device__ __forceinline__ void gv_norm_rows(const gv_args &a, T *xs, float (*s_ss)[GEMV_MAX_TOKENS])
{
    int nc = a.n_in / 8, xstride = a.n_in + 8;
    T *gs = xs + (size_t)a.n_tok * xstride;   /* [n_in] norm weights */
    for (int i = threadIdx.x; i < (a.n_tok + 1) * nc; i += blockDim.x) {
        int t = i / nc, c = i - t * nc;
        const T *src = t < a.n_tok ? (const T *)a.x + (size_t)t * a.n_in + c * 8
                                   : (const T *)a.norm_w + c * 8;
        cp_async16(xs + (size_t)t * xstride + c * 8, src, true);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    norm_rows<T>(xs, xstride, gs, a.n_tok, a.n_in, a.eps, s_ss, (T *)NULL);
}

/* Where a warp's next weight load goes: tile TILE, step S of the warp's k range [s0, s1). */
struct gv_cursor {
    int tile, s;
    const uint4 *wa, *wb;   /* the lane's rows g, g+8 of TILE */
};

template <int EPI>
__device__ __forceinline__ void gv_cursor_rows(const gv_args &a, gv_cursor &c, int g, int nc)
{
    int ra, rb;
    gv_rows<EPI>(a, c.tile, g, ra, rb);   /* rows past the matrix read row 0, unused */
    bool ok_a = EPI == GEMV_SILU ? ra < a.n_out / 2 : ra < a.n_out;
    c.wa = (const uint4 *)a.w + (size_t)(ok_a ? ra : 0) * nc;
    c.wb = (const uint4 *)a.w + (size_t)(rb < a.n_out ? rb : 0) * nc;
}

/* The block takes tiles [blockIdx.x * k, + k) one after the other; its warps split each tile's
 * k range. Loads run U steps ahead across tile boundaries; at the end of a tile the warps'
 * partial sums meet in shared memory (two buffers, one barrier a tile) and one warp, in turn,
 * does the epilogue while the others stream on. */
template <typename T, int EPI, bool NORM>
__global__ void __launch_bounds__(GV_MAX_WARPS * 32, 2) gemv_kernel(gv_args a)
{
    constexpr int U = 4;   /* steps in flight: 256 bytes a lane */
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float s_ss[GV_MAX_WARPS][GEMV_MAX_TOKENS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int g = lane >> 2, tq = lane & 3, nc = a.n_in / 8;
    const int s0 = warp * a.n_steps / nw, s1 = (warp + 1) * a.n_steps / nw;   /* s1 > s0 */
    const int tile0 = blockIdx.x * a.k, n_my = min(a.k, a.n_tiles - tile0);
    const int n_f = n_my * (s1 - s0);   /* this warp's steps over all its tiles */

    gv_cursor lc = {tile0, s0, NULL, NULL};
    gv_cursor_rows<EPI>(a, lc, g, nc);
    uint4 A[U][4];
#pragma unroll
    for (int u = 0; u < U; u++)
        if (u < n_f) {
            gv_load_w(A[u], lc.wa, lc.wb, lc.s, nc, tq);
            if (++lc.s == s1) lc.s = s0, lc.tile++, gv_cursor_rows<EPI>(a, lc, g, nc);
        }
    pdl_trigger();
    pdl_wait();   /* everything below may read what earlier kernels wrote */

    const int xstride = a.n_in + 8;
    T *xs = (T *)smem;
    const uint4 *xrow = NULL;   /* this lane's token row (B column g), NULL past n_tok */
    if (NORM) {
        gv_norm_rows<T>(a, xs, s_ss);
        if (g < a.n_tok) xrow = (const uint4 *)(xs + (size_t)g * xstride);
    } else if (g < a.n_tok) {
        xrow = (const uint4 *)a.x + (size_t)g * nc;
    }
    uint4 B[U][2];
    if (!NORM) {
        int bs = s0;
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (u < n_f) gv_load_x(B[u], xrow, bs, nc, tq);
            bs = bs + 1 == s1 ? s0 : bs + 1;
        }
    }
    size_t red_off = NORM ? (size_t)(a.n_tok + 1) * xstride * sizeof(T) : 0;
    float4 *red = (float4 *)(smem + red_off);   /* [2][nw][32] partial sums of a tile */

    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    int cs = s0, ct = 0;   /* the step and tile (of this block's) being consumed */
    for (int f0 = 0; f0 < n_f; f0 += U) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (f0 + u >= n_f) break;
            uint4 b[2];
            if (NORM) gv_load_x(b, xrow, cs, nc, tq);
            else b[0] = B[u][0], b[1] = B[u][1];
            gv_mma<T>(acc, A[u], b);
            if (f0 + u + U < n_f) {
                gv_load_w(A[u], lc.wa, lc.wb, lc.s, nc, tq);
                if (!NORM) gv_load_x(B[u], xrow, lc.s, nc, tq);
                if (++lc.s == s1) lc.s = s0, lc.tile++, gv_cursor_rows<EPI>(a, lc, g, nc);
            }
            if (++cs == s1) {   /* tile ct done: sum the warps, one warp stores */
                cs = s0;
                float4 *rb = red + (size_t)(ct & 1) * nw * 32;
                rb[warp * 32 + lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
                acc[0] = acc[1] = acc[2] = acc[3] = 0.f;
                __syncthreads();
                if (warp == ct % nw) {
                    float c[4] = {0.f, 0.f, 0.f, 0.f};
                    for (int w = 0; w < nw; w++) {
                        float4 v = rb[w * 32 + lane];
                        c[0] += v.x, c[1] += v.y, c[2] += v.z, c[3] += v.w;
                    }
                    gv_epilogue<T, EPI>(a, tile0 + ct, g, tq, c);
                }
                ct++;
            }
        }
    }
}

/* Warps a block and tiles a block: every block resident at once (no second wave), and the
 * fewest warps a block that reach the target count (fewer barriers, longer k runs). */
template <typename T, int EPI, bool NORM>
static cudaError_t gv_launch(gv_args a, size_t xs_bytes, int target, int n_sms, int pdl,
                             cudaStream_t s)
{
    auto kern = gemv_kernel<T, EPI, NORM>;
    static bool attr_set;   /* per instantiation; setting it twice is harmless */
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             GV_SMEM_MAX);
        if (e != cudaSuccess) return e;
        attr_set = true;
    }
    int best_nw = 0, best_k = 0, best_warps = -1;
    for (int nw = 1; nw <= GV_MAX_WARPS && nw <= a.n_steps; nw++) {
        size_t smem = xs_bytes + (size_t)2 * nw * 32 * 16;
        int occ = 0;
        cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, nw * 32, smem);
        if (e != cudaSuccess) return e;
        if (occ < 1) break;
        int grid = a.n_tiles < occ * n_sms ? a.n_tiles : occ * n_sms;
        int k = (a.n_tiles + grid - 1) / grid;
        int warps = (a.n_tiles + k - 1) / k * nw;
        if (warps > best_warps) best_nw = nw, best_k = k, best_warps = warps;
        if (warps >= target) break;
    }
    if (best_nw == 0) return cudaErrorInvalidValue;   /* does not fit a multiprocessor */
    a.k = best_k;
    return pdl_launch(kern, dim3((a.n_tiles + best_k - 1) / best_k), dim3(best_nw * 32),
                      xs_bytes + (size_t)2 * best_nw * 32 * 16, s, pdl, a);
}

template <typename T, int EPI>
static cudaError_t gv_pick(const gv_args &a, bool norm, size_t xs_bytes, int target, int n_sms,
                           int pdl, cudaStream_t s)
{
    return norm ? gv_launch<T, EPI, true>(a, xs_bytes, target, n_sms, pdl, s)
                : gv_launch<T, EPI, false>(a, xs_bytes, target, n_sms, pdl, s);
}

/* Multiprocessors of the current device. */
static int gv_n_sms(void)
{
    static int sms;
    if (!sms) {
        int dev;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sms = 132;
    }
    return sms;
}

extern "C" cudaError_t gemv_fused_run(void *out, const void *x, const void *w, int n_tok,
                                      int n_out, int n_in, const gemv_epi *epi, kdtype dt,
                                      cudaStream_t stream)
{
    if (n_tok == 0 || n_out == 0) return cudaSuccess;
    if (!epi || n_tok < 0 || n_tok > GEMV_MAX_TOKENS || n_out < 0 || n_in <= 0 || n_in % 8 ||
        !out || !x || !w)
        return cudaErrorInvalidValue;
    gv_args a = {};
    a.out = out, a.x = x, a.w = w, a.norm_w = epi->norm_w;
    a.n_tok = n_tok, a.n_out = n_out, a.n_in = n_in, a.eps = epi->norm_eps;
    a.n_steps = (n_in / 8 + 7) / 8;
    switch (epi->kind) {
    case GEMV_SILU:
        if (n_out % 2) return cudaErrorInvalidValue;
        a.n_tiles = (n_out / 2 + 7) / 8;
        break;
    case GEMV_QKV: {
        int hd = epi->head_dim;
        if (hd < 16 || hd > 256 || hd % 16 || epi->n_heads < 1 || epi->n_kv_heads < 1 ||
            n_out != (epi->n_heads + 2 * epi->n_kv_heads) * hd ||
            epi->out_stride < epi->n_heads * hd || !epi->pos || !epi->slot || !epi->k_cache ||
            !epi->v_cache)
            return cudaErrorInvalidValue;
        a.n_heads = epi->n_heads, a.n_kv = epi->n_kv_heads, a.hd = hd;
        a.out_stride = epi->out_stride, a.pos = epi->pos, a.slot = epi->slot;
        a.kc = epi->k_cache, a.vc = epi->v_cache, a.rope = epi->rope;
        a.n_rope_tiles = (a.n_heads + a.n_kv) * (hd / 16);
        a.n_tiles = a.n_rope_tiles + a.n_kv * hd / 16;
        break;
    }
    case GEMV_OUT: case GEMV_OUT_F32: case GEMV_RESID:
        a.n_tiles = (n_out + 15) / 16;
        break;
    default:
        return cudaErrorInvalidValue;
    }
    bool norm = epi->norm_w != NULL;
    size_t xs_bytes = norm ? (size_t)(n_tok + 1) * (n_in + 8) * 2 : 0;
    if (xs_bytes > GEMV_NORM_MAX_BYTES) return cudaErrorInvalidValue;
    int n_sms = gv_n_sms(), per_sm = epi->warps_per_sm > 0 ? epi->warps_per_sm : 16;
    int target = n_sms * per_sm, pdl = epi->pdl;
    KDT_DISPATCH(dt, T, {
        switch (epi->kind) {
        case GEMV_OUT: return gv_pick<T, GEMV_OUT>(a, norm, xs_bytes, target, n_sms, pdl, stream);
        case GEMV_OUT_F32: return gv_pick<T, GEMV_OUT_F32>(a, norm, xs_bytes, target, n_sms, pdl, stream);
        case GEMV_RESID: return gv_pick<T, GEMV_RESID>(a, norm, xs_bytes, target, n_sms, pdl, stream);
        case GEMV_SILU: return gv_pick<T, GEMV_SILU>(a, norm, xs_bytes, target, n_sms, pdl, stream);
        default: return gv_pick<T, GEMV_QKV>(a, norm, xs_bytes, target, n_sms, pdl, stream);
        }
    });
    return cudaSuccess;
}

extern "C" cudaError_t gemv_run(void *out, const void *x, const void *w, int n_tok, int n_out,
                                int n_in, int out_f32, int silu, kdtype dt, cudaStream_t stream)
{
    if (silu && out_f32) return cudaErrorInvalidValue;
    gemv_epi e = {};
    e.kind = silu ? GEMV_SILU : out_f32 ? GEMV_OUT_F32 : GEMV_OUT;
    return gemv_fused_run(out, x, w, n_tok, n_out, n_in, &e, dt, stream);
}
