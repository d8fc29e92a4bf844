/* sample_greedy.cu - greedy sampling with log-probability. Each row is cut into parts (enough blocks
 * to fill the device when the batch is small); each thread keeps an online (max, sum of exp,
 * argmax) over its share of its part, read 16 bytes at a time; states are merged by warp
 * shuffles, then across warps; a second kernel merges the parts of each row. */
#include "sample_greedy.cuh"
#include "kutil.cuh"

#define SG_NT 256
#define SG_MAX_PARTS 32
#define SG_MIN_PART 2048   /* logits per part at least */

struct amax_state { float m, s; int i, pad; };

__device__ __forceinline__ amax_state amax_merge(amax_state a, amax_state b)
{
    if (b.m > a.m || (b.m == a.m && b.i < a.i)) { amax_state t = a; a = b; b = t; }
    /* a holds the winner; b.m <= a.m */
    if (b.s > 0.f) a.s += b.s * __expf(b.m - a.m);
    return a;
}

__device__ __forceinline__ void amax_add(amax_state &st, float v, int i)
{
    if (v == -INFINITY) return;
    if (v > st.m) {
        st.s = st.s * __expf(st.m - v) + 1.f;
        st.m = v;
        st.i = i;
    } else {
        st.s += __expf(v - st.m);
    }
}

__device__ __forceinline__ amax_state amax_warp(amax_state st)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        amax_state b = {__shfl_xor_sync(0xffffffffu, st.m, o),
                        __shfl_xor_sync(0xffffffffu, st.s, o),
                        __shfl_xor_sync(0xffffffffu, st.i, o), 0};
        st = amax_merge(st, b);
    }
    return st;
}

__device__ __forceinline__ void amax_write(int32_t *token, float *logprob, amax_state st)
{
    *token = st.i == 0x7fffffff ? 0 : st.i;
    *logprob = -logf(st.s);
}

/* Block (part p, row r) scans logits [p * part_len, (p + 1) * part_len) of row r; with one part
 * it writes the result, else its state to parts[r * n_parts + p]. */
__global__ void __launch_bounds__(SG_NT)
sample_greedy_part(int32_t *token, float *logprob, amax_state *parts,
                   const float *__restrict__ logits, int vocab, int part_len)
{
    __shared__ amax_state sh[SG_NT / 32];
    int p = blockIdx.x, n_parts = gridDim.x;
    const float *x = logits + (size_t)blockIdx.y * vocab;
    int begin = p * part_len, end = min(vocab, begin + part_len);
    amax_state st = {-INFINITY, 0.f, 0x7fffffff, 0};
    if ((vocab & 3) == 0 && ((uintptr_t)logits & 15) == 0) {   /* rows 16-byte aligned */
        for (int i = begin + threadIdx.x * 4; i < end; i += SG_NT * 4) {
            float4 v = *(const float4 *)(x + i);
            amax_add(st, v.x, i);
            amax_add(st, v.y, i + 1);
            amax_add(st, v.z, i + 2);
            amax_add(st, v.w, i + 3);
        }
    } else {
        for (int i = begin + threadIdx.x; i < end; i += SG_NT) amax_add(st, x[i], i);
    }
    st = amax_warp(st);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = st;
    __syncthreads();
    if (threadIdx.x < 32) {
        st = threadIdx.x < SG_NT / 32 ? sh[threadIdx.x] : amax_state{-INFINITY, 0.f, 0x7fffffff, 0};
        st = amax_warp(st);
        if (threadIdx.x == 0) {
            if (n_parts == 1) amax_write(&token[blockIdx.y], &logprob[blockIdx.y], st);
            else parts[(size_t)blockIdx.y * n_parts + p] = st;
        }
    }
}

/* One warp per row merges its parts. */
__global__ void sample_greedy_merge(int32_t *token, float *logprob, const amax_state *parts,
                                    int n_parts)
{
    amax_state st = {-INFINITY, 0.f, 0x7fffffff, 0};
    for (int p = threadIdx.x; p < n_parts; p += 32)
        st = amax_merge(st, parts[(size_t)blockIdx.x * n_parts + p]);
    st = amax_warp(st);
    if (threadIdx.x == 0) amax_write(&token[blockIdx.x], &logprob[blockIdx.x], st);
}

extern "C" size_t sample_greedy_workspace_size(int n_rows)
{
    return (size_t)(n_rows > 0 ? n_rows : 0) * SG_MAX_PARTS * sizeof(amax_state);
}

extern "C" cudaError_t sample_greedy_run(int32_t *token, float *logprob, const float *logits,
                                         int n_rows, int vocab, void *workspace,
                                         cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || n_rows > 65535 || vocab <= 0) return cudaErrorInvalidValue;
    static int n_sms;
    if (!n_sms) {
        int dev;
        cudaError_t e = cudaGetDevice(&dev);
        if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, dev);
        if (e != cudaSuccess) return e;
    }
    int parts = (4 * n_sms + n_rows - 1) / n_rows;           /* ~4 blocks per multiprocessor */
    int by_len = (vocab + SG_MIN_PART - 1) / SG_MIN_PART;
    if (parts > by_len) parts = by_len;
    if (parts > SG_MAX_PARTS) parts = SG_MAX_PARTS;
    if (parts > 1 && !workspace) return cudaErrorInvalidValue;
    int part_len = ((vocab + parts - 1) / parts + 3) / 4 * 4;
    parts = (vocab + part_len - 1) / part_len;
    sample_greedy_part<<<dim3(parts, n_rows), SG_NT, 0, stream>>>(
        token, logprob, (amax_state *)workspace, logits, vocab, part_len);
    if (parts > 1)
        sample_greedy_merge<<<n_rows, 32, 0, stream>>>(token, logprob,
                                                       (const amax_state *)workspace, parts);
    return cudaGetLastError();
}
