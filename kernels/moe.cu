/* moe.cu - MoE router, pair sort, expert GEMV and combine (see moe.cuh). */
#include "moe.cuh"
#include "kutil.cuh"

#include <math.h>

/* One warp a token: softmax statistics, then k rounds of a warp argmax. */
__global__ void moe_route_kernel(int32_t *ids, float *weights, const float *__restrict__ logits,
                                 int n_tok, int n_exp, int k, int renorm)
{
    int lane = threadIdx.x & 31, t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (t >= n_tok) return;
    const float *l = logits + (size_t)t * n_exp;
    float mx = -INFINITY;
    for (int i = lane; i < n_exp; i += 32) mx = fmaxf(mx, l[i]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int i = lane; i < n_exp; i += 32) sum += expf(l[i] - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    int sel[MOE_MAX_K];
    float w[MOE_MAX_K], wsum = 0.f;
    for (int j = 0; j < k; j++) {
        float bv = -INFINITY;
        int bi = n_exp;
        for (int i = lane; i < n_exp; i += 32) {
            bool taken = false;
            for (int m = 0; m < j; m++) taken |= sel[m] == i;
            if (!taken && (l[i] > bv || bi == n_exp)) bv = l[i], bi = i;
        }
        for (int o = 16; o > 0; o >>= 1) {   /* larger value, then lower index */
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (oi != n_exp && (bi == n_exp || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
        }
        sel[j] = bi;
        w[j] = expf(l[bi] - mx) / sum;
        wsum += w[j];
    }
    if (lane < k) {
        float wj = 0.f;
        int ij = 0;
        for (int j = 0; j < k; j++)   /* register arrays: select, do not index by lane */
            if (j == lane) wj = w[j], ij = sel[j];
        ids[(size_t)t * k + lane] = ij;
        weights[(size_t)t * k + lane] = renorm ? wj / wsum : wj;
    }
}

/* One block: counts, offsets, then each expert's thread walks the pairs in order. */
__global__ void moe_sort_kernel(int32_t *offsets, int32_t *pos, int32_t *src,
                                const int32_t *__restrict__ ids, int n_pairs, int k, int n_exp)
{
    __shared__ int cnt[MOE_MAX_EXPERTS + 1];
    for (int e = threadIdx.x; e <= n_exp; e += blockDim.x) cnt[e] = 0;
    __syncthreads();
    for (int p = threadIdx.x; p < n_pairs; p += blockDim.x) atomicAdd(&cnt[ids[p]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int at = 0;
        for (int e = 0; e < n_exp; e++) {
            int c = cnt[e];
            cnt[e] = at;
            offsets[e] = at;
            at += c;
        }
        offsets[n_exp] = at;
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

#define MG_WARPS 8

template <typename T>
__global__ void __launch_bounds__(MG_WARPS * 32)
moe_gemv_kernel(T *out, const T *__restrict__ x, int x_div, const T *__restrict__ w,
                size_t w_stride, const int32_t *__restrict__ ids, int n_out, int n_in)
{
    int lane = threadIdx.x & 31, r = blockIdx.x * MG_WARPS + (threadIdx.x >> 5), p = blockIdx.y;
    if (r >= n_out) return;
    const uint4 *wr = (const uint4 *)(w + (size_t)ids[p] * w_stride + (size_t)r * n_in);
    const uint4 *xr = (const uint4 *)(x + (size_t)(p / x_div) * n_in);
    float acc = 0.f;
    for (int c = lane; c < n_in / 8; c += 32) {
        float a[8], b[8];
        vec8_to_f<T>(wr[c], a);
        vec8_to_f<T>(xr[c], b);
#pragma unroll
        for (int e = 0; e < 8; e++) acc += a[e] * b[e];
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) out[(size_t)p * n_out + r] = from_f<T>(acc);
}

template <typename T>
__global__ void moe_combine_kernel(T *y, const T *__restrict__ ys, const int32_t *pos,
                                   const float *__restrict__ weights, int k, int dim)
{
    int t = blockIdx.x;
    for (int d = threadIdx.x; d < dim; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < k; j++) {
            int p = t * k + j, row = pos ? pos[p] : p;
            acc += weights[p] * to_f(ys[(size_t)row * dim + d]);
        }
        y[(size_t)t * dim + d] = from_f<T>(acc);
    }
}

extern "C" cudaError_t moe_route_run(int32_t *ids, float *weights, const float *logits,
                                     int n_tok, int n_exp, int k, int renorm,
                                     cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    if (n_tok < 0 || n_exp < 1 || n_exp > MOE_MAX_EXPERTS || k < 1 || k > n_exp ||
        k > MOE_MAX_K)
        return cudaErrorInvalidValue;
    moe_route_kernel<<<(n_tok + 3) / 4, 128, 0, stream>>>(ids, weights, logits, n_tok, n_exp, k,
                                                          renorm);
    return cudaGetLastError();
}

extern "C" cudaError_t moe_sort_run(int32_t *offsets, int32_t *pos, int32_t *src,
                                    const int32_t *ids, int n_pairs, int k, int n_exp,
                                    cudaStream_t stream)
{
    if (n_pairs < 0 || k < 1 || n_pairs % k || n_exp < 1 || n_exp > MOE_MAX_EXPERTS)
        return cudaErrorInvalidValue;
    moe_sort_kernel<<<1, 512, 0, stream>>>(offsets, pos, src, ids, n_pairs, k, n_exp);
    return cudaGetLastError();
}

extern "C" cudaError_t moe_gemv_run(void *out, const void *x, int x_div, const void *w,
                                    size_t w_stride, const int32_t *ids, int n_pairs, int n_out,
                                    int n_in, kdtype dt, cudaStream_t stream)
{
    if (n_pairs == 0) return cudaSuccess;
    if (n_pairs < 0 || n_pairs > 65535 || x_div < 1 || n_out < 1 || n_in < 8 || n_in % 8 ||
        w_stride % 8)
        return cudaErrorInvalidValue;
    dim3 grid((n_out + MG_WARPS - 1) / MG_WARPS, n_pairs);
    KDT_DISPATCH(dt, T, moe_gemv_kernel<T><<<grid, MG_WARPS * 32, 0, stream>>>(
                            (T *)out, (const T *)x, x_div, (const T *)w, w_stride, ids, n_out,
                            n_in));
    return cudaGetLastError();
}

extern "C" cudaError_t moe_combine_run(void *y, const void *ys, const int32_t *pos,
                                       const float *weights, int n_tok, int k, int dim,
                                       kdtype dt, cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    if (n_tok < 0 || k < 1 || dim < 1) return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, moe_combine_kernel<T><<<n_tok, 256, 0, stream>>>(
                            (T *)y, (const T *)ys, pos, weights, k, dim));
    return cudaGetLastError();
}
