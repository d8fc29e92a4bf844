/* moe_decode.cu - the MoE steps of decode-sized batches (see moe.cuh): the softmax top-k
 * router (a warp a token, the logits in registers), the decode router in one launch (RMSNorm,
 * logits, top-k), and the small-batch expert GEMVs streamed on tensor cores.
 *
 * Decode router: one warp a router row over all (at most 8) token rows, which every block
 * normalizes in shared memory (block 0 stores them for the experts); the weights of the first
 * round are loaded before pdl_wait; the last block to finish (a counter, reset by that block)
 * routes every token.
 */
#include "moe.cuh"
#include "kutil.cuh"
#include "ld_stream.cuh"
#include "mma.cuh"
#include "norm_rows.cuh"
#include "pdl.cuh"

#include <math.h>

#define MR_PER_LANE (MOE_MAX_EXPERTS / 32)

/* One warp routes token T: its logits into registers (one round trip to L2, __ldcg: the
 * router kernel's last block reads what the other blocks wrote), softmax statistics, then k
 * rounds of a warp argmax over the experts not yet taken (or the forced ids). */
__device__ void moe_route_token(int32_t *ids, float *weights, const float *logits,
                                const int32_t *force, int t, int n_exp, int k, int renorm)
{
    int lane = threadIdx.x & 31;
    const float *l = logits + (size_t)t * n_exp;
    float lv[MR_PER_LANE];   /* lv[q]: expert lane + 32 q */
    float mx = -INFINITY;
#pragma unroll
    for (int q = 0; q < MR_PER_LANE; q++) {
        int i = lane + 32 * q;
        lv[q] = i < n_exp ? __ldcg(l + i) : -INFINITY;
        mx = fmaxf(mx, lv[q]);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
#pragma unroll
    for (int q = 0; q < MR_PER_LANE; q++)
        if (lane + 32 * q < n_exp) sum += expf(lv[q] - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    unsigned taken = 0;   /* bit q: expert lane + 32 q chosen */
    float wsum = 0.f, wj = 0.f;
    int ij = 0;
    for (int j = 0; j < k; j++) {
        int bi = n_exp;
        float bv = -INFINITY;
        if (force) {
            bi = __ldcg(force + (size_t)t * k + j);
            bv = __ldcg(l + bi);
        } else {
#pragma unroll
            for (int q = 0; q < MR_PER_LANE; q++) {   /* ascending index within the lane */
                int i = lane + 32 * q;
                if (i < n_exp && !(taken >> q & 1) && (lv[q] > bv || bi == n_exp)) bv = lv[q], bi = i;
            }
            for (int o = 16; o > 0; o >>= 1) {   /* larger value, then lower index */
                float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                int oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (oi != n_exp && (bi == n_exp || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
            }
            if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
        }
        float w = expf(bv - mx) / sum;
        wsum += w;
        if (j == lane) wj = w, ij = bi;
    }
    if (lane < k) {
        ids[(size_t)t * k + lane] = ij;
        weights[(size_t)t * k + lane] = renorm ? wj / wsum : wj;
    }
}

/* One warp a token. */
__global__ void moe_route_kernel(int32_t *ids, float *weights, const float *logits,
                                 const int32_t *force, int n_tok, int n_exp, int k, int renorm)
{
    int t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (t < n_tok) moe_route_token(ids, weights, logits, force, t, n_exp, k, renorm);
}

/* ---- decode router: RMSNorm, logits, top-k */

#define MR_WARPS 4          /* a block: one router row a warp */

struct mr_args {
    int32_t *ids;
    float *weights, *logits;
    void *xn;
    const void *x, *norm_w, *w;
    const int32_t *force;
    unsigned *counter;
    float eps;
    int n_tok, n_exp, dim, k, renorm;
};

template <typename T>
__global__ void __launch_bounds__(MR_WARPS * 32) moe_router_kernel(mr_args a)
{
    extern __shared__ uint4 mr_xs[];   /* [n_tok][dim / 8] the (normalized) token rows */
    __shared__ float s_ss[MR_WARPS][NORM_ROWS_MAX];
    __shared__ int s_last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nc = a.dim / 8;
    const int row = blockIdx.x * MR_WARPS + warp;
    const uint4 *wr = (const uint4 *)a.w + (size_t)(row < a.n_exp ? row : 0) * nc;
    uint4 wv[LD_STREAM_INFLIGHT];
#pragma unroll
    for (int i = 0; i < LD_STREAM_INFLIGHT; i++)   /* weights: before the previous kernel ends */
        if (lane + 32 * i < nc) wv[i] = ld_stream(wr + lane + 32 * i);
    pdl_wait();
    pdl_trigger();
    for (int i = threadIdx.x; i < a.n_tok * nc; i += blockDim.x)
        mr_xs[i] = __ldcg((const uint4 *)a.x + i);
    __syncthreads();
    if (a.norm_w)   /* block 0 stores the rows for the experts */
        norm_rows<T>((T *)mr_xs, a.dim, (const T *)a.norm_w, a.n_tok, a.dim, a.eps, s_ss,
                     blockIdx.x == 0 ? (T *)a.xn : (T *)NULL);
    float acc[MOE_ROUTER_MAX_TOK] = {};
    for (int c0 = 0; c0 < nc; c0 += 32 * LD_STREAM_INFLIGHT) {
        uint4 cur[LD_STREAM_INFLIGHT];
#pragma unroll
        for (int i = 0; i < LD_STREAM_INFLIGHT; i++) {   /* consume this round, load the next */
            int c = c0 + 32 * LD_STREAM_INFLIGHT + lane + 32 * i;
            cur[i] = wv[i];
            if (c < nc) wv[i] = ld_stream(wr + c);
        }
#pragma unroll
        for (int i = 0; i < LD_STREAM_INFLIGHT; i++) {
            int c = c0 + lane + 32 * i;
            if (c >= nc) break;
            float wf[8];
            vec8_to_f<T>(cur[i], wf);
#pragma unroll
            for (int t = 0; t < MOE_ROUTER_MAX_TOK; t++) {
                if (t >= a.n_tok) break;
                float xf[8];
                vec8_to_f<T>(mr_xs[t * nc + c], xf);
#pragma unroll
                for (int e = 0; e < 8; e++) acc[t] += wf[e] * xf[e];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < MOE_ROUTER_MAX_TOK; t++) {
        if (t >= a.n_tok) break;
        float v = warp_sum(acc[t]);
        if (lane == 0 && row < a.n_exp) a.logits[(size_t)t * a.n_exp + row] = v;
    }
    /* the last block to finish sees every block's logits and routes */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) s_last = atomicAdd(a.counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    for (int t = warp; t < a.n_tok; t += MR_WARPS)
        moe_route_token(a.ids, a.weights, a.logits, a.force, t, a.n_exp, a.k, a.renorm);
    if (threadIdx.x == 0) *a.counter = 0u;
}

/* ---- small-batch expert GEMVs on tensor cores
 *
 * Block (tile, q): gate/up: 8 gate rows and their 8 up rows of pair q's expert (the SwiGLU
 * partners in one lane); down: 16 output rows of token q summed over its k experts. A
 * m16n8k16 product takes 16 weight rows as A and the input row as B column 0 (lanes g = 0;
 * the other columns zero): each lane loads whole 16-byte chunks of its rows g and g+8 from
 * global memory, chunks S*8 + tq and S*8 + 4 + tq of step S (64 k), the same permutation of
 * k as its B chunks, which a dot product allows. The warps split the (expert, step) range
 * of the block, MS_U steps in flight a lane; the input rows sit in shared memory; partial sums
 * meet in shared memory and warp 0 stores. */

#define MS_U 4              /* steps in flight: 256 bytes a lane */
#define MS_MAX_WARPS 16
#define MS_WIDE_BLOCKS 256  /* from this many blocks, 8 warps a block, else 16 */

struct ms_args {
    void *out;              /* gate/up: act [n_pairs, n_out]; down: y [n_tok, n_out] */
    const void *x;          /* gate/up: x [n_pairs / k, n_in]; down: act [n_tok * k, n_in] */
    const void *w;
    size_t w_stride;
    const int32_t *ids;
    const float *weights;
    int k, n_out, n_in, n_steps, resid;
};

/* Where a warp's next weight load goes: expert J of the block, step S. */
struct ms_cursor {
    int j, s;
    const uint4 *wa, *wb;   /* the lane's rows g, g+8 */
};

__device__ __forceinline__ void ms_rows(const ms_args &a, ms_cursor &c, const int32_t *pid,
                                        int ra, int rb, int nc)
{
    const uint4 *we = (const uint4 *)((const uint16_t *)a.w + (size_t)__ldcg(pid + c.j) * a.w_stride);
    c.wa = we + (size_t)ra * nc;
    c.wb = we + (size_t)rb * nc;
}

__device__ __forceinline__ void ms_load(uint4 (&dst)[4], const ms_cursor &c, int nc, int tq)
{
    int c0 = min(c.s * 8 + tq, nc - 1), c1 = min(c.s * 8 + 4 + tq, nc - 1);
    dst[0] = ld_stream(c.wa + c0);
    dst[1] = ld_stream(c.wa + c1);
    dst[2] = ld_stream(c.wb + c0);
    dst[3] = ld_stream(c.wb + c1);
}

/* Block (tile, q) of the scheme above. One kernel over 80 lines: the weight chunks in flight
 * (A[MS_U][4]), the load cursor and the accumulators stay in registers across the prologue,
 * the main loop and the reduction; ms_rows and ms_load already hold the parts free of that state. */
template <typename T, bool DOWN>
__global__ void __launch_bounds__(MS_MAX_WARPS * 32) moe_stream_kernel(ms_args a)
{
    extern __shared__ uint4 ms_smem[];   /* input rows [n_seg][nc], then [nw][32] float4 */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int g = lane >> 2, tq = lane & 3, nc = a.n_in / 8, tile = blockIdx.x, q = blockIdx.y;
    const int n_seg = DOWN ? a.k : 1, total = n_seg * a.n_steps;
    const int f0 = warp * total / nw, n_f = (warp + 1) * total / nw - f0;
    int ra, rb;   /* the lane's weight rows (past the matrix: row 0, not stored) */
    if (DOWN) {
        ra = tile * 16 + g, rb = ra + 8;
        if (rb >= a.n_out) rb = 0;
        if (ra >= a.n_out) ra = 0;
    } else {
        ra = tile * 8 + g, rb = a.n_out + ra;
        if (ra >= a.n_out) ra = rb = 0;
    }
    const int32_t *pid = a.ids + (DOWN ? (size_t)q * a.k : (size_t)q);
    ms_cursor lc = {f0 / a.n_steps, f0 % a.n_steps, NULL, NULL};
    uint4 A[MS_U][4];
    if (!DOWN) pdl_wait();   /* down: ids are older than the previous kernel (moe.cuh) */
    if (n_f > 0) ms_rows(a, lc, pid, ra, rb, nc);
#pragma unroll
    for (int u = 0; u < MS_U; u++)
        if (u < n_f) {
            ms_load(A[u], lc, nc, tq);
            if (++lc.s == a.n_steps && u + 1 < n_f) lc.s = 0, lc.j++, ms_rows(a, lc, pid, ra, rb, nc);
        }
    if (DOWN) pdl_wait();
    pdl_trigger();
    const uint4 *src = (const uint4 *)a.x + (DOWN ? (size_t)q * a.k : (size_t)(q / a.k)) * nc;
    for (int i = threadIdx.x; i < n_seg * nc; i += blockDim.x) cp_async16(ms_smem + i, src + i, true);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    int cj = f0 / a.n_steps, cs = f0 % a.n_steps;   /* the expert and step being consumed */
    float sc = DOWN && n_f > 0 ? __ldcg(a.weights + (size_t)q * a.k + cj) : 1.f;
    float acc[4] = {0.f, 0.f, 0.f, 0.f}, tot[4] = {0.f, 0.f, 0.f, 0.f};
    for (int f = 0; f < n_f; f += MS_U) {
#pragma unroll
        for (int u = 0; u < MS_U; u++) {
            if (f + u >= n_f) break;
            uint4 b[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
            if (g == 0) {
                int c0 = cs * 8 + tq, c1 = c0 + 4;
                if (c0 < nc) b[0] = ms_smem[cj * nc + c0];
                if (c1 < nc) b[1] = ms_smem[cj * nc + c1];
            }
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint4 &wa = A[u][h], &wb = A[u][2 + h];
                uint32_t a0[4] = {wa.x, wb.x, wa.y, wb.y}, a1[4] = {wa.z, wb.z, wa.w, wb.w};
                mma16816<T>(acc, a0, b[h].x, b[h].y);
                mma16816<T>(acc, a1, b[h].z, b[h].w);
            }
            if (f + u + MS_U < n_f) {
                ms_load(A[u], lc, nc, tq);
                if (++lc.s == a.n_steps && f + u + MS_U + 1 < n_f)
                    lc.s = 0, lc.j++, ms_rows(a, lc, pid, ra, rb, nc);
            }
            if (++cs == a.n_steps) {   /* this expert's rows done: weight them */
                cs = 0;
                cj++;
#pragma unroll
                for (int i = 0; i < 4; i++) tot[i] += sc * acc[i], acc[i] = 0.f;
                if (DOWN && cj < n_seg && f + u + 1 < n_f) sc = __ldcg(a.weights + (size_t)q * a.k + cj);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) tot[i] += sc * acc[i];   /* a part of an expert (zero otherwise) */
    float4 *red = (float4 *)(ms_smem + n_seg * nc);
    red[warp * 32 + lane] = make_float4(tot[0], tot[1], tot[2], tot[3]);
    __syncthreads();
    if (warp != 0 || tq != 0) return;   /* lanes tq = 0 hold column 0: rows g (c0), g+8 (c2) */
    float c0 = 0.f, c2 = 0.f;
    for (int w = 0; w < nw; w++) {
        float4 v = red[w * 32 + lane];
        c0 += v.x, c2 += v.z;
    }
    if (DOWN) {
        T *y = (T *)a.out + (size_t)q * a.n_out;
        int r0 = tile * 16 + g, r1 = r0 + 8;
        if (r0 < a.n_out) y[r0] = from_f<T>((a.resid ? to_f(y[r0]) : 0.f) + c0);
        if (r1 < a.n_out) y[r1] = from_f<T>((a.resid ? to_f(y[r1]) : 0.f) + c2);
    } else {
        int r = tile * 8 + g;
        if (r < a.n_out)
            ((T *)a.out)[(size_t)q * a.n_out + r] = from_f<T>(c0 / (1.f + __expf(-c0)) * c2);
    }
}

/* Blocks (tiles, n_q), each taking its share of the (expert, step) range. */
template <bool DOWN>
static cudaError_t ms_launch(ms_args a, int n_tiles, int n_q, int pdl, kdtype dt,
                             cudaStream_t stream)
{
    int n_seg = DOWN ? a.k : 1, nw = n_tiles * n_q >= MS_WIDE_BLOCKS ? 8 : MS_MAX_WARPS;
    size_t smem = (size_t)n_seg * a.n_in * 2 + (size_t)nw * 32 * 16;
    a.n_steps = (a.n_in / 8 + 7) / 8;
    KDT_DISPATCH(dt, T, {
        auto kern = moe_stream_kernel<T, DOWN>;
        static bool attr_set;   /* per instantiation; setting it twice is harmless */
        if (!attr_set) {
            cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 MOE_SMEM_MAX + MS_MAX_WARPS * 32 * 16);
            if (e != cudaSuccess) return e;
            attr_set = true;
        }
        return pdl_launch(kern, dim3(n_tiles, n_q), dim3(nw * 32), smem, stream, pdl, a);
    });
    return cudaSuccess;
}

/* ---- launchers */

extern "C" cudaError_t moe_route_run(int32_t *ids, float *weights, const float *logits,
                                     const int32_t *force, int n_tok, int n_exp, int k,
                                     int renorm, cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    if (n_tok < 0 || n_exp < 1 || n_exp > MOE_MAX_EXPERTS || k < 1 || k > n_exp ||
        k > MOE_MAX_K)
        return cudaErrorInvalidValue;
    moe_route_kernel<<<(n_tok + 3) / 4, 128, 0, stream>>>(ids, weights, logits, force, n_tok,
                                                          n_exp, k, renorm);
    return cudaGetLastError();
}

extern "C" cudaError_t moe_router_run(int32_t *ids, float *weights, float *logits, void *xn,
                                      const void *x, const void *norm_w, float eps,
                                      const void *w_router, const int32_t *force,
                                      unsigned *counter, int n_tok, int n_exp, int dim, int k,
                                      int renorm, int pdl, kdtype dt, cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    size_t smem = (size_t)n_tok * dim * 2;
    if (n_tok < 0 || n_tok > MOE_ROUTER_MAX_TOK || n_exp < 1 || n_exp > MOE_MAX_EXPERTS ||
        k < 1 || k > n_exp || k > MOE_MAX_K || dim < 8 || dim % 8 || smem > MOE_SMEM_MAX ||
        !counter || (norm_w && !xn))
        return cudaErrorInvalidValue;
    mr_args a = {ids, weights, logits, xn, x, norm_w, w_router, force, counter, eps,
                 n_tok, n_exp, dim, k, renorm};
    KDT_DISPATCH(dt, T, {
        auto kern = moe_router_kernel<T>;
        static bool attr_set;
        if (!attr_set) {
            cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 MOE_SMEM_MAX);
            if (e != cudaSuccess) return e;
            attr_set = true;
        }
        return pdl_launch(kern, dim3((n_exp + MR_WARPS - 1) / MR_WARPS), dim3(MR_WARPS * 32),
                          smem, stream, pdl, a);
    });
    return cudaSuccess;
}

extern "C" cudaError_t moe_gate_up_run(void *act, const void *x, const void *w, size_t w_stride,
                                       const int32_t *ids, int n_pairs, int k, int hid, int n_in,
                                       int pdl, kdtype dt, cudaStream_t stream)
{
    if (n_pairs == 0) return cudaSuccess;
    if (n_pairs < 0 || n_pairs > 65535 || k < 1 || hid < 1 || n_in < 8 || n_in % 8 ||
        w_stride % 8 || (size_t)n_in * 2 > MOE_SMEM_MAX)
        return cudaErrorInvalidValue;
    ms_args a = {act, x, w, w_stride, ids, NULL, k, hid, n_in, 0, 0};
    return ms_launch<false>(a, (hid + 7) / 8, n_pairs, pdl, dt, stream);
}

extern "C" cudaError_t moe_down_run(void *y, int resid, const void *act, const void *w,
                                    size_t w_stride, const int32_t *ids, const float *weights,
                                    int n_tok, int k, int n_out, int n_in, int pdl, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    if (n_tok < 0 || n_tok > 65535 || k < 1 || n_out < 1 || n_in < 8 || n_in % 8 ||
        w_stride % 8 || (size_t)k * n_in * 2 > MOE_SMEM_MAX)
        return cudaErrorInvalidValue;
    ms_args a = {y, act, w, w_stride, ids, weights, k, n_out, n_in, 0, resid};
    return ms_launch<true>(a, (n_out + 15) / 16, n_tok, pdl, dt, stream);
}
