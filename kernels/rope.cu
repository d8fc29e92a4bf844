/* rope.cu - RoPE, one block per token: the block computes the token's cos/sin table once in
 * shared memory, then rotates every q and k head with 2-element accesses. */
#include "rope.cuh"
#include "kutil.cuh"
#include "rope_freq.cuh"

template <typename T>
__global__ void rope_kernel(T *q, int q_stride, T *k, int k_stride,
                            const int32_t *__restrict__ pos, int n_heads, int n_kv,
                            int head_dim, rope_params p)
{
    __shared__ float cs[512];   /* [half] cos, then [half] sin */
    int t = blockIdx.x, half = head_dim / 2;
    float ps = (float)pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float s, c;
        sincosf(ps * rope_inv_freq(i, head_dim, p), &s, &c);
        cs[i] = c;
        cs[half + i] = s;
    }
    __syncthreads();
    int quarter = half / 2;   /* element pairs per half row */
    for (int idx = threadIdx.x; idx < (n_heads + n_kv) * quarter; idx += blockDim.x) {
        int h = idx / quarter, i = (idx % quarter) * 2;
        T *x = h < n_heads ? q + (size_t)t * q_stride + h * head_dim
                           : k + (size_t)t * k_stride + (h - n_heads) * head_dim;
        uint32_t *lo = (uint32_t *)(x + i), *hi = (uint32_t *)(x + half + i);
        uint32_t a = *lo, b = *hi;
        const T *av = (const T *)&a, *bv = (const T *)&b;
        float x1a = to_f(av[0]), x1b = to_f(av[1]), x2a = to_f(bv[0]), x2b = to_f(bv[1]);
        float ca = cs[i], cb = cs[i + 1], sa = cs[half + i], sb = cs[half + i + 1];
        *lo = pack2<T>(x1a * ca - x2a * sa, x1b * cb - x2b * sb);
        *hi = pack2<T>(x2a * ca + x1a * sa, x2b * cb + x1b * sb);
    }
}

extern "C" cudaError_t rope_run(void *q, int q_stride, void *k, int k_stride,
                                const int32_t *pos, int n_tokens, int n_heads, int n_kv_heads,
                                int head_dim, rope_params p, kdtype dt, cudaStream_t stream)
{
    if (n_tokens == 0) return cudaSuccess;
    if (n_tokens < 0 || head_dim % 4 || head_dim > 512 || q_stride % 2 || k_stride % 2 ||
        (p.factor > 0.f && (p.low_freq_factor <= 0.f || p.high_freq_factor <= p.low_freq_factor ||
                            p.orig_max_pos <= 0)))
        return cudaErrorInvalidValue;
    int work = (n_heads + n_kv_heads) * head_dim / 4;
    int threads = work < 256 ? (work + 31) / 32 * 32 : 256;
    KDT_DISPATCH(dt, T, rope_kernel<T><<<n_tokens, threads, 0, stream>>>(
                            (T *)q, q_stride, (T *)k, k_stride, pos, n_heads, n_kv_heads,
                            head_dim, p));
    return cudaGetLastError();
}
