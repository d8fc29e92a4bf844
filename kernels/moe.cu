/* moe.cu - MoE pair sort, pair GEMV, grouped expert GEMM and combine (see moe.cuh).
 *
 * Pair GEMV (the router's logits for 9 to 64 tokens): one warp a weight row and pair, each
 * lane keeping LD_STREAM_INFLIGHT 16-byte weight loads in flight. (The router's top-k, the
 * decode router and the small-batch expert GEMVs are in moe_decode.cu.)
 * Grouped GEMM: tiles of MOE_GEMM_BM sorted rows x 128 output columns (SwiGLU: 64 gate and the
 * 64 matching up columns, so each warp holds the pairs it combines), k steps of 64 through a
 * two-stage cp.async pipeline into XOR-swizzled shared memory, mma.sync m16n8k16 from
 * ldmatrix; grid.y walks the tiles of all experts (tiles[] from the sort), blocks past the
 * last tile exit at once, so the launch needs no host-side count.
 */
#include "moe.cuh"
#include "kutil.cuh"
#include "ld_stream.cuh"
#include "mma.cuh"

#include <math.h>

/* One block: counts, offsets and tile offsets, then each expert's thread walks the pairs in
 * order. */
__global__ void moe_sort_kernel(int32_t *offsets, int32_t *tiles, int32_t *pos, int32_t *src,
                                const int32_t *__restrict__ ids, int n_pairs, int k, int n_exp)
{
    __shared__ int cnt[MOE_MAX_EXPERTS + 1];
    for (int e = threadIdx.x; e <= n_exp; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) atomicAdd(&cnt[ids[p]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int at = 0, tl = 0;
        for (int e = 0; e < n_exp; e++) {
            int c = cnt[e];
            cnt[e] = at;
            offsets[e] = at;
            tiles[e] = tl;
            at += c;
            tl += (c + MOE_GEMM_BM - 1) / MOE_GEMM_BM;
        }
        offsets[n_exp] = at;
        tiles[n_exp] = tl;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < n_exp; e += blockDim.x) {
        int at = cnt[e];
        for (int p = 0; p < n_pairs; p++)
            if (ids[p] == e) {
                pos[p] = at;
                src[at++] = p / k;
            }
    }
}

/* ---- pair GEMV */

#define MG_WARPS 8

/* One warp's dot product of weight row W and input row X (NC 16-byte chunks each), every lane
 * keeping LD_STREAM_INFLIGHT weight loads in flight; every lane gets the total. */
template <typename T>
__device__ __forceinline__ float mv_dot_row(const uint4 *w, const uint4 *x, int nc)
{
    int lane = threadIdx.x & 31;
    float acc = 0.f;
    for (int c0 = 0; c0 < nc; c0 += 32 * LD_STREAM_INFLIGHT) {
        uint4 wv[LD_STREAM_INFLIGHT], xv[LD_STREAM_INFLIGHT];
#pragma unroll
        for (int i = 0; i < LD_STREAM_INFLIGHT; i++) {
            int c = c0 + i * 32 + lane;
            if (c < nc) wv[i] = ld_stream(w + c), xv[i] = x[c];
        }
#pragma unroll
        for (int i = 0; i < LD_STREAM_INFLIGHT; i++) {
            if (c0 + i * 32 + lane >= nc) break;
            float fw[8], fx[8], d = 0.f;
            vec8_to_f<T>(wv[i], fw);
            vec8_to_f<T>(xv[i], fx);
#pragma unroll
            for (int e = 0; e < 8; e++) d += fw[e] * fx[e];
            acc += d;
        }
    }
    return warp_sum(acc);
}

template <typename T>
__global__ void __launch_bounds__(MG_WARPS * 32)
moe_gemv_kernel(void *out, int out_f32, const T *__restrict__ x, int x_div,
                const T *__restrict__ w, size_t w_stride, const int32_t *__restrict__ ids,
                int n_out, int n_in)
{
    int lane = threadIdx.x & 31, r = blockIdx.x * MG_WARPS + (threadIdx.x >> 5), p = blockIdx.y;
    if (r >= n_out) return;
    const uint4 *wr = (const uint4 *)(w + (size_t)(ids ? ids[p] : 0) * w_stride + (size_t)r * n_in);
    const uint4 *xr = (const uint4 *)(x + (size_t)(p / x_div) * n_in);
    float acc = mv_dot_row<T>(wr, xr, n_in / 8);
    if (lane == 0) {
        size_t i = (size_t)p * n_out + r;
        if (out_f32) ((float *)out)[i] = acc;
        else ((T *)out)[i] = from_f<T>(acc);
    }
}

/* ---- grouped GEMM */

#define GM_BN 128
#define GM_BK 64
#define GM_THREADS 256

/* The grouped GEMM: block (x, y) writes GM_BN output columns (SILU: 64 gate columns and their
 * 64 up columns, written as 64 SwiGLU'd ones) of tile y's MOE_GEMM_BM rows, its expert found
 * in TILES by binary search; a two-stage cp.async pipeline feeds m16n8k16 products. One kernel
 * over 80 lines: the load, the products and the epilogue share the shared-memory stages and the
 * accumulator fragments; split into device functions they would pass the fragments by
 * reference and the compiler would spill them. */
template <typename T, bool SILU>
__global__ void __launch_bounds__(GM_THREADS)
moe_gemm_kernel(T *out, const T *__restrict__ x, const int32_t *__restrict__ src,
                const T *__restrict__ w, size_t w_stride, const int32_t *__restrict__ offsets,
                const int32_t *__restrict__ tiles, int n_exp, int n_out, int n_in)
{
    __shared__ __align__(128) T as[2][MOE_GEMM_BM * GM_BK];
    __shared__ __align__(128) T bs[2][GM_BN * GM_BK];
    const int ty = blockIdx.y;
    if (ty >= tiles[n_exp]) return;
    int lo = 0, hi = n_exp - 1;            /* the expert e with tiles[e] <= ty < tiles[e + 1] */
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (tiles[mid] <= ty) lo = mid;
        else hi = mid - 1;
    }
    const int e = lo;
    const int m0 = offsets[e] + (ty - tiles[e]) * MOE_GEMM_BM, m_end = offsets[e + 1];
    const int cols = SILU ? GM_BN / 2 : GM_BN, n0 = blockIdx.x * cols;
    const T *we = w + (size_t)e * w_stride;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3, g = lane >> 2, tq = lane & 3;
    const int nk = (n_in + GM_BK - 1) / GM_BK, nc = n_in / 8;

    auto load = [&](int kt, int st) {
        for (int i = tid; i < MOE_GEMM_BM * 8; i += GM_THREADS) {   /* A: rows of x */
            int r = i >> 3, c = i & 7, gm = m0 + r, kc = kt * 8 + c;
            bool ok = gm < m_end && kc < nc;
            const T *p = x;
            if (ok) p = x + (size_t)(src ? src[gm] : gm) * n_in + kc * 8;
            cp_async16(&as[st][swz<GM_BK>(r, c)], p, ok);
        }
        for (int i = tid; i < GM_BN * 8; i += GM_THREADS) {         /* B: weight rows */
            int r = i >> 3, c = i & 7, kc = kt * 8 + c, wr;
            bool ok;
            if (SILU) {
                int col = n0 + (r & 63);
                ok = col < n_out;
                wr = (r < 64 ? 0 : n_out) + col;
            } else {
                wr = n0 + r;
                ok = wr < n_out;
            }
            ok = ok && kc < nc;
            const T *p = ok ? we + (size_t)wr * n_in + kc * 8 : w;
            cp_async16(&bs[st][swz<GM_BK>(r, c)], p, ok);
        }
    };

    float acc[2][4][4] = {};
    load(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < nk; kt++) {
        if (kt + 1 < nk) {
            load(kt + 1, (kt + 1) & 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const T *A = as[kt & 1], *B = bs[kt & 1];
#pragma unroll
        for (int kk = 0; kk < GM_BK / 16; kk++) {
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
                ldsm_x4(a[mi], A + swz<GM_BK>(wm * 32 + mi * 16 + (lane & 15), kk * 2 + (lane >> 4)));
#pragma unroll
            for (int q = 0; q < 2; q++) {
                int base = SILU ? q * 64 + wn * 16 : wn * 32 + q * 16;
                uint32_t r[4];
                ldsm_x4(r, B + swz<GM_BK>(base + (lane & 7) + ((lane >> 4) << 3),
                                          kk * 2 + ((lane >> 3) & 1)));
                b[2 * q][0] = r[0], b[2 * q][1] = r[1], b[2 * q + 1][0] = r[2], b[2 * q + 1][1] = r[3];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int nb = 0; nb < 4; nb++) mma16816<T>(acc[mi][nb], a[mi], b[nb][0], b[nb][1]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = m0 + wm * 32 + mi * 16 + g + h * 8;
            if (row >= m_end) continue;
            T *o = out + (size_t)row * n_out;
            if (SILU) {
#pragma unroll
                for (int nb = 0; nb < 2; nb++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        int col = n0 + wn * 16 + nb * 8 + 2 * tq + j;
                        float gt = acc[mi][nb][2 * h + j], up = acc[mi][nb + 2][2 * h + j];
                        if (col < n_out) o[col] = from_f<T>(gt / (1.f + __expf(-gt)) * up);
                    }
            } else {
#pragma unroll
                for (int nb = 0; nb < 4; nb++)
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        int col = n0 + wn * 32 + nb * 8 + 2 * tq + j;
                        if (col < n_out) o[col] = from_f<T>(acc[mi][nb][2 * h + j]);
                    }
            }
        }
}

template <typename T>
__global__ void moe_combine_kernel(T *y, int resid, const T *__restrict__ ys, const int32_t *pos,
                                   const float *__restrict__ weights, int k, int dim)
{
    int t = blockIdx.x;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < k; j++) {
            int p = t * k + j, row = pos ? pos[p] : p;
            acc += weights[p] * to_f(ys[(size_t)row * dim + d]);
        }
        size_t i = (size_t)t * dim + d;
        y[i] = from_f<T>((resid ? to_f(y[i]) : 0.f) + acc);
    }
}

/* ---- launchers */

extern "C" cudaError_t moe_sort_run(int32_t *offsets, int32_t *tiles, int32_t *pos, int32_t *src,
                                    const int32_t *ids, int n_pairs, int k, int n_exp,
                                    cudaStream_t stream)
{
    if (n_pairs < 0 || k < 1 || n_pairs % k || n_exp < 1 || n_exp > MOE_MAX_EXPERTS)
        return cudaErrorInvalidValue;
    moe_sort_kernel<<<1, 512, 0, stream>>>(offsets, tiles, pos, src, ids, n_pairs, k, n_exp);
    return cudaGetLastError();
}

extern "C" cudaError_t moe_gemv_run(void *out, int out_f32, const void *x, int x_div,
                                    const void *w, size_t w_stride, const int32_t *ids,
                                    int n_pairs, int n_out, int n_in, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_pairs == 0) return cudaSuccess;
    if (n_pairs < 0 || n_pairs > 65535 || x_div < 1 || n_out < 1 || n_in < 8 || n_in % 8 ||
        w_stride % 8)
        return cudaErrorInvalidValue;
    dim3 grid((n_out + MG_WARPS - 1) / MG_WARPS, n_pairs);
    KDT_DISPATCH(dt, T, moe_gemv_kernel<T><<<grid, MG_WARPS * 32, 0, stream>>>(
                            out, out_f32, (const T *)x, x_div, (const T *)w, w_stride, ids, n_out,
                            n_in));
    return cudaGetLastError();
}

extern "C" cudaError_t moe_gemm_run(void *out, const void *x, const int32_t *src, const void *w,
                                    size_t w_stride, const int32_t *offsets, const int32_t *tiles,
                                    int n_exp, int max_pairs, int silu, int n_out, int n_in,
                                    kdtype dt, cudaStream_t stream)
{
    if (max_pairs == 0) return cudaSuccess;
    if (max_pairs < 0 || n_exp < 1 || n_exp > MOE_MAX_EXPERTS || n_out < 1 || n_in < 8 ||
        n_in % 8 || w_stride % 8)
        return cudaErrorInvalidValue;
    int cols = silu ? GM_BN / 2 : GM_BN;
    dim3 grid((n_out + cols - 1) / cols, (max_pairs + MOE_GEMM_BM - 1) / MOE_GEMM_BM + n_exp);
    if (grid.y > 65535) return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, {
        if (silu)
            moe_gemm_kernel<T, true><<<grid, GM_THREADS, 0, stream>>>(
                (T *)out, (const T *)x, src, (const T *)w, w_stride, offsets, tiles, n_exp, n_out,
                n_in);
        else
            moe_gemm_kernel<T, false><<<grid, GM_THREADS, 0, stream>>>(
                (T *)out, (const T *)x, src, (const T *)w, w_stride, offsets, tiles, n_exp, n_out,
                n_in);
    });
    return cudaGetLastError();
}

extern "C" cudaError_t moe_combine_run(void *y, int resid, const void *ys, const int32_t *pos,
                                       const float *weights, int n_tok, int k, int dim,
                                       kdtype dt, cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    if (n_tok < 0 || k < 1 || dim < 1) return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, moe_combine_kernel<T><<<n_tok, 256, 0, stream>>>(
                            (T *)y, resid, (const T *)ys, pos, weights, k, dim));
    return cudaGetLastError();
}
