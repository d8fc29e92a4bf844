/* sample.cu - greedy sampling with log-probability: one block per row; each thread keeps an
 * online (max, sum of exp, argmax) over its strided share of the row; the states are merged
 * by warp shuffles, then across warps in shared memory. */
#include "sample.cuh"
#include "kutil.cuh"

#define SG_NT 512

struct amax_state { float m, s; int i; };

__device__ __forceinline__ amax_state amax_merge(amax_state a, amax_state b)
{
    if (b.m > a.m || (b.m == a.m && b.i < a.i)) { amax_state t = a; a = b; b = t; }
    /* a holds the winner; b.m <= a.m */
    if (b.s > 0.f) a.s += b.s * __expf(b.m - a.m);
    return a;
}

__global__ void __launch_bounds__(SG_NT)
sample_greedy_kernel(int32_t *token, float *logprob, const float *__restrict__ logits, int vocab)
{
    __shared__ amax_state part[SG_NT / 32];
    const float *x = logits + (size_t)blockIdx.x * vocab;
    amax_state st = {-INFINITY, 0.f, 0x7fffffff};
    for (int i = threadIdx.x; i < vocab; i += SG_NT) {
        float v = x[i];
        if (v == -INFINITY) continue;
        if (v > st.m) {
            st.s = st.s * __expf(st.m - v) + 1.f;
            st.m = v;
            st.i = i;
        } else {
            st.s += __expf(v - st.m);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        amax_state b = {__shfl_xor_sync(0xffffffffu, st.m, o),
                        __shfl_xor_sync(0xffffffffu, st.s, o),
                        __shfl_xor_sync(0xffffffffu, st.i, o)};
        st = amax_merge(st, b);
    }
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = st;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < SG_NT / 32; w++) st = amax_merge(st, part[w]);
        token[blockIdx.x] = st.i == 0x7fffffff ? 0 : st.i;
        logprob[blockIdx.x] = -logf(st.s);
    }
}

extern "C" cudaError_t sample_greedy_run(int32_t *token, float *logprob, const float *logits,
                                         int n_rows, int vocab, cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || vocab <= 0) return cudaErrorInvalidValue;
    sample_greedy_kernel<<<n_rows, SG_NT, 0, stream>>>(token, logprob, logits, vocab);
    return cudaGetLastError();
}
