/* rmsnorm.cu - residual add + RMSNorm, one block per row; the row stays in registers between
 * the sum of squares and the scaling (one read of each input, one write of each output). */
#include "rmsnorm.cuh"
#include "kutil.cuh"

#define RN_CPT 4   /* 16-byte chunks per thread */

template <typename T>
__global__ void rmsnorm_kernel(T *out, T *__restrict__ resid, const T *x,
                               const T *__restrict__ w, int dim, float eps)
{
    __shared__ float scratch[32];
    int nc = dim / 8;
    size_t base = (size_t)blockIdx.x * dim;
    float v[RN_CPT][8];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < RN_CPT; j++) {
        int c = threadIdx.x + j * blockDim.x;
        if (c >= nc) break;
        uint4 *hp = (uint4 *)(resid + base) + c;
        uint4 h = *hp;
        if (x) {
            float a[8], b[8];
            vec8_to_f<T>(h, a);
            vec8_to_f<T>(((const uint4 *)(x + base))[c], b);
#pragma unroll
            for (int e = 0; e < 8; e++) a[e] += b[e];
            h = vec8_from_f<T>(a);
            *hp = h;
        }
        vec8_to_f<T>(h, v[j]);   /* the rounded sum, as stored */
#pragma unroll
        for (int e = 0; e < 8; e++) ss += v[j][e] * v[j][e];
    }
    float rstd = rsqrtf(block_sum(ss, scratch) / dim + eps);
#pragma unroll
    for (int j = 0; j < RN_CPT; j++) {
        int c = threadIdx.x + j * blockDim.x;
        if (c >= nc) break;
        float g[8];
        vec8_to_f<T>(((const uint4 *)w)[c], g);
#pragma unroll
        for (int e = 0; e < 8; e++) g[e] *= v[j][e] * rstd;
        ((uint4 *)(out + base))[c] = vec8_from_f<T>(g);
    }
}

extern "C" cudaError_t rmsnorm_run(void *out, void *resid, const void *x, const void *w,
                                   int n_rows, int dim, float eps, kdtype dt,
                                   cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    int nc = dim / 8;
    if (n_rows < 0 || dim <= 0 || dim % 8 || nc > RN_CPT * 1024) return cudaErrorInvalidValue;
    int threads = ((nc + RN_CPT - 1) / RN_CPT + 31) / 32 * 32;
    KDT_DISPATCH(dt, T, rmsnorm_kernel<T><<<n_rows, threads, 0, stream>>>(
                            (T *)out, (T *)resid, (const T *)x, (const T *)w, dim, eps));
    return cudaGetLastError();
}
