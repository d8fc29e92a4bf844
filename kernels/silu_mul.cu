/* silu_mul.cu - SwiGLU, grid-stride over 8-element chunks of the output. */
#include "silu_mul.cuh"
#include "kutil.cuh"

template <typename T>
__global__ void silu_mul_kernel(T *__restrict__ out, const T *__restrict__ in, long n_chunks,
                                int hc)
{
    for (long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; idx < n_chunks;
         idx += (long)gridDim.x * blockDim.x) {
        long r = idx / hc;
        int c = (int)(idx % hc);
        const uint4 *row = (const uint4 *)in + r * 2 * hc;
        float g[8], u[8];
        vec8_to_f<T>(row[c], g);
        vec8_to_f<T>(row[hc + c], u);
#pragma unroll
        for (int e = 0; e < 8; e++) g[e] = g[e] / (1.f + __expf(-g[e])) * u[e];
        ((uint4 *)out)[idx] = vec8_from_f<T>(g);
    }
}

extern "C" cudaError_t silu_mul_run(void *out, const void *in, int n_rows, int hidden,
                                    kdtype dt, cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || hidden <= 0 || hidden % 8) return cudaErrorInvalidValue;
    long n_chunks = (long)n_rows * (hidden / 8);
    long blocks = (n_chunks + 255) / 256;
    if (blocks > 132 * 16) blocks = 132 * 16;
    KDT_DISPATCH(dt, T, silu_mul_kernel<T><<<(int)blocks, 256, 0, stream>>>(
                            (T *)out, (const T *)in, n_chunks, hidden / 8));
    return cudaGetLastError();
}
