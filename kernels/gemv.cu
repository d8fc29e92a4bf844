/* gemv.cu - decode-batch GEMV (see gemv.cuh). A block of 8 warps takes 8 output rows (8 gate/up
 * row pairs with SILU); each lane streams 16-byte chunks of its row, 4 in flight, and
 * multiplies them with the same chunks of every token row (small, served from L1/L2); warp
 * shuffles reduce. */
#include "gemv.cuh"
#include "kutil.cuh"

#define GV_WARPS 8
#define GV_UNROLL 4

template <typename T, int NT>
__device__ __forceinline__ void gemv_row(float (&acc)[NT], const T *__restrict__ wr,
                                         const T *__restrict__ x, int n_in)
{
    int lane = threadIdx.x & 31, nc = n_in / 8;
    const uint4 *w4 = (const uint4 *)wr;
    for (int c0 = lane; c0 < nc; c0 += 32 * GV_UNROLL) {
        uint4 wv[GV_UNROLL];
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            int c = c0 + u * 32;
            wv[u] = c < nc ? __ldg(w4 + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            int c = c0 + u * 32;
            if (c >= nc) break;
            float wf[8];
            vec8_to_f<T>(wv[u], wf);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float xf[8];
                vec8_to_f<T>(__ldg((const uint4 *)(x + (size_t)t * n_in) + c), xf);
#pragma unroll
                for (int e = 0; e < 8; e++) acc[t] = fmaf(wf[e], xf[e], acc[t]);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
}

template <typename T, int NT, bool F32, bool SILU>
__global__ void __launch_bounds__(GV_WARPS * 32)
gemv_kernel(void *out, const T *__restrict__ x, const T *__restrict__ w, int n_rows, int n_in)
{
    int r = blockIdx.x * GV_WARPS + (threadIdx.x >> 5);
    if (r >= n_rows) return;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.f;
    gemv_row<T, NT>(acc, w + (size_t)r * n_in, x, n_in);
    float res[NT];
    if (SILU) {
        float up[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) up[t] = 0.f;
        gemv_row<T, NT>(up, w + (size_t)(r + n_rows) * n_in, x, n_in);
#pragma unroll
        for (int t = 0; t < NT; t++) res[t] = acc[t] / (1.f + __expf(-acc[t])) * up[t];
    } else {
#pragma unroll
        for (int t = 0; t < NT; t++) res[t] = acc[t];
    }
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int t = 0; t < NT; t++)
        if (lane == t) {
            if (F32) ((float *)out)[(size_t)t * n_rows + r] = res[t];
            else ((T *)out)[(size_t)t * n_rows + r] = from_f<T>(res[t]);
        }
}

template <typename T, int NT>
static cudaError_t gemv_launch(void *out, const void *x, const void *w, int n_out, int n_in,
                               int out_f32, int silu, cudaStream_t s)
{
    int rows = silu ? n_out / 2 : n_out;
    dim3 grid((rows + GV_WARPS - 1) / GV_WARPS);
    const T *xt = (const T *)x, *wt = (const T *)w;
    if (silu)
        gemv_kernel<T, NT, false, true><<<grid, GV_WARPS * 32, 0, s>>>(out, xt, wt, rows, n_in);
    else if (out_f32)
        gemv_kernel<T, NT, true, false><<<grid, GV_WARPS * 32, 0, s>>>(out, xt, wt, rows, n_in);
    else
        gemv_kernel<T, NT, false, false><<<grid, GV_WARPS * 32, 0, s>>>(out, xt, wt, rows, n_in);
    return cudaGetLastError();
}

extern "C" cudaError_t gemv_run(void *out, const void *x, const void *w, int n_tok, int n_out,
                                int n_in, int out_f32, int silu, kdtype dt, cudaStream_t stream)
{
    if (n_tok == 0 || n_out == 0) return cudaSuccess;
    if (n_tok < 0 || n_tok > GEMV_MAX_TOKENS || n_out < 0 || n_in <= 0 || n_in % 8 ||
        (silu && (n_out % 2 || out_f32)))
        return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, {
        switch (n_tok) {
        case 1: return gemv_launch<T, 1>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 2: return gemv_launch<T, 2>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 3: return gemv_launch<T, 3>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 4: return gemv_launch<T, 4>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 5: return gemv_launch<T, 5>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 6: return gemv_launch<T, 6>(out, x, w, n_out, n_in, out_f32, silu, stream);
        case 7: return gemv_launch<T, 7>(out, x, w, n_out, n_in, out_f32, silu, stream);
        default: return gemv_launch<T, 8>(out, x, w, n_out, n_in, out_f32, silu, stream);
        }
    });
    return cudaSuccess;
}
