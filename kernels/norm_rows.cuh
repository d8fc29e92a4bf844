/* norm_rows.cuh - RMS normalization of a few token rows held in shared memory, in place, by
 * every thread of a block, with rmsnorm_run's arithmetic (fp32 sum of squares, weight times
 * value times rstd, rounded once to the dtype): the prologue of the fused GEMV (gemv.cu) and
 * of the MoE decode router (moe.cu). */
#ifndef CINDER_NORM_ROWS_CUH
#define CINDER_NORM_ROWS_CUH

#include "kutil.cuh"

#define NORM_ROWS_MAX 8

/* Rows t < N_ROWS (<= NORM_ROWS_MAX) of N_IN elements (a multiple of 8) at XS + t * STRIDE,
 * normalized with the weights G (shared or global memory); each row is also stored to
 * OUT + t * N_IN when OUT is not NULL. S_SS: shared scratch [warps of the block][NORM_ROWS_MAX].
 * Ends with a barrier. */
template <typename T>
__device__ __forceinline__ void norm_rows(T *xs, int stride, const T *g, int n_rows, int n_in,
                                          float eps, float (*s_ss)[NORM_ROWS_MAX], T *out)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5, nc = n_in / 8;
    for (int t = 0; t < n_rows; t++) {
        float ss = 0.f;
        const uint4 *sr = (const uint4 *)(xs + (size_t)t * stride);
        for (int c = threadIdx.x; c < nc; c += blockDim.x) {
            float f[8];
            vec8_to_f<T>(sr[c], f);
#pragma unroll
            for (int e = 0; e < 8; e++) ss += f[e] * f[e];
        }
        ss = warp_sum(ss);
        if (lane == 0) s_ss[warp][t] = ss;
    }
    __syncthreads();
    for (int t = 0; t < n_rows; t++) {
        float tot = 0.f;
        for (int w = 0; w < nw; w++) tot += s_ss[w][t];
        float rstd = rsqrtf(tot / n_in + eps);
        uint4 *sr = (uint4 *)(xs + (size_t)t * stride);
        for (int c = threadIdx.x; c < nc; c += blockDim.x) {
            float v[8], gw[8];
            vec8_to_f<T>(sr[c], v);
            vec8_to_f<T>(((const uint4 *)g)[c], gw);
#pragma unroll
            for (int e = 0; e < 8; e++) gw[e] *= v[e] * rstd;
            uint4 h = vec8_from_f<T>(gw);
            sr[c] = h;
            if (out) ((uint4 *)(out + (size_t)t * n_in))[c] = h;
        }
    }
    __syncthreads();
}

#endif
