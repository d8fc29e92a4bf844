/* qkv_prep.cu - q/k/v bias add and q/k head RMSNorm (see qkv_prep.cuh): one warp a head,
 * 8 heads a block, each lane holding head_dim / 32 element pairs in registers; the decode
 * variant (qkv_finish) holds RoPE partners i and i + head_dim / 2 instead and rotates, then
 * stores k and v into the cache. */
#include "qkv_prep.cuh"
#include "kutil.cuh"
#include "rope_freq.cuh"

#define QP_WARPS 8
#define QP_MAX_PAIRS 4   /* head_dim <= 256 */

template <typename T>
__global__ void __launch_bounds__(QP_WARPS * 32)
qkv_prep_kernel(T *qkv, int stride, int n_heads, int n_kv, int hd, const T *__restrict__ bias,
                const T *__restrict__ q_norm, const T *__restrict__ k_norm, float eps)
{
    int lane = threadIdx.x & 31, head = blockIdx.y * QP_WARPS + (threadIdx.x >> 5);
    if (head >= n_heads + 2 * n_kv) return;
    T *row = qkv + (size_t)blockIdx.x * stride + (size_t)head * hd;
    const T *b = bias ? bias + (size_t)head * hd : NULL;
    const T *w = !q_norm || head >= n_heads + n_kv ? NULL : head < n_heads ? q_norm : k_norm;
    float v[QP_MAX_PAIRS][2];
    float ss = 0.f;
    int n_pairs = hd / 2;
#pragma unroll
    for (int j = 0; j < QP_MAX_PAIRS; j++) {
        int p = lane + j * 32;
        if (p >= n_pairs) break;
        float a = to_f(row[2 * p]), c = to_f(row[2 * p + 1]);
        if (b) {   /* the biased value as a separate add would store it: rounded */
            a = to_f(from_f<T>(a + to_f(b[2 * p])));
            c = to_f(from_f<T>(c + to_f(b[2 * p + 1])));
        }
        v[j][0] = a, v[j][1] = c;
        ss += a * a + c * c;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    float r = w ? rsqrtf(ss / hd + eps) : 1.f;
#pragma unroll
    for (int j = 0; j < QP_MAX_PAIRS; j++) {
        int p = lane + j * 32;
        if (p >= n_pairs) break;
        float a = v[j][0], c = v[j][1];
        if (w) {
            a = to_f(w[2 * p]) * (a * r);
            c = to_f(w[2 * p + 1]) * (c * r);
        }
        row[2 * p] = from_f<T>(a);
        row[2 * p + 1] = from_f<T>(c);
    }
}

extern "C" cudaError_t qkv_prep_run(void *qkv, int stride, int n_tok, int n_heads,
                                    int n_kv_heads, int head_dim, const void *bias,
                                    const void *q_norm, const void *k_norm, float eps, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_tok == 0 || (!bias && !q_norm)) return cudaSuccess;
    int n_all = n_heads + 2 * n_kv_heads;
    if (n_tok < 0 || n_heads < 1 || n_kv_heads < 1 || head_dim < 2 || head_dim % 2 ||
        head_dim > 2 * 32 * QP_MAX_PAIRS || stride < n_all * head_dim || !q_norm != !k_norm)
        return cudaErrorInvalidValue;
    dim3 grid(n_tok, (n_all + QP_WARPS - 1) / QP_WARPS);
    KDT_DISPATCH(dt, T, qkv_prep_kernel<T><<<grid, QP_WARPS * 32, 0, stream>>>(
                            (T *)qkv, stride, n_heads, n_kv_heads, head_dim, (const T *)bias,
                            (const T *)q_norm, (const T *)k_norm, eps));
    return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(QP_WARPS * 32)
qkv_finish_kernel(T *qkv, int stride, int n_heads, int n_kv, int hd, const T *__restrict__ bias,
                  const T *__restrict__ q_norm, const T *__restrict__ k_norm, float eps,
                  const int32_t *__restrict__ pos, const int32_t *__restrict__ slot, T *kc,
                  T *vc, rope_params rp)
{
    int lane = threadIdx.x & 31, head = blockIdx.y * QP_WARPS + (threadIdx.x >> 5), t = blockIdx.x;
    if (head >= n_heads + 2 * n_kv) return;
    T *row = qkv + (size_t)t * stride + (size_t)head * hd;
    const T *b = bias ? bias + (size_t)head * hd : NULL;
    const T *w = !q_norm || head >= n_heads + n_kv ? NULL : head < n_heads ? q_norm : k_norm;
    int half = hd / 2;
    float v[QP_MAX_PAIRS][2];   /* elements i and i + half, i = lane + 32 j */
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < QP_MAX_PAIRS; j++) {
        int i = lane + j * 32;
        if (i >= half) break;
        float a = to_f(row[i]), c = to_f(row[i + half]);
        if (b) {
            a = to_f(from_f<T>(a + to_f(b[i])));
            c = to_f(from_f<T>(c + to_f(b[i + half])));
        }
        v[j][0] = a, v[j][1] = c;
        ss += a * a + c * c;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    float r = w ? rsqrtf(ss / hd + eps) : 1.f;
    int s = slot[t], kv_dim = n_kv * hd;
    T *dst = head < n_heads ? row
           : s < 0 ? NULL
           : head < n_heads + n_kv ? kc + (size_t)s * kv_dim + (size_t)(head - n_heads) * hd
                                   : vc + (size_t)s * kv_dim + (size_t)(head - n_heads - n_kv) * hd;
    if (!dst) return;
    float ps = (float)pos[t];
#pragma unroll
    for (int j = 0; j < QP_MAX_PAIRS; j++) {
        int i = lane + j * 32;
        if (i >= half) break;
        float a = v[j][0], c = v[j][1];
        if (w) {   /* rounded as qkv_prep stores it */
            a = to_f(from_f<T>(to_f(w[i]) * (a * r)));
            c = to_f(from_f<T>(to_f(w[i + half]) * (c * r)));
        }
        if (head < n_heads + n_kv) {
            float sn, cs;
            sincosf(ps * rope_inv_freq(i, hd, rp), &sn, &cs);
            float a2 = a * cs - c * sn;
            c = c * cs + a * sn;
            a = a2;
        }
        dst[i] = from_f<T>(a);
        dst[i + half] = from_f<T>(c);
    }
}

extern "C" cudaError_t qkv_finish_run(void *qkv, int stride, int n_tok, int n_heads,
                                      int n_kv_heads, int head_dim, const void *bias,
                                      const void *q_norm, const void *k_norm, float eps,
                                      const int32_t *pos, const int32_t *slot, void *k_cache,
                                      void *v_cache, rope_params rope, kdtype dt,
                                      cudaStream_t stream)
{
    if (n_tok == 0) return cudaSuccess;
    int n_all = n_heads + 2 * n_kv_heads;
    if (n_tok < 0 || n_heads < 1 || n_kv_heads < 1 || head_dim < 2 || head_dim % 2 ||
        head_dim > 2 * 32 * QP_MAX_PAIRS || stride < n_all * head_dim || !q_norm != !k_norm ||
        !pos || !slot || !k_cache || !v_cache)
        return cudaErrorInvalidValue;
    dim3 grid(n_tok, (n_all + QP_WARPS - 1) / QP_WARPS);
    KDT_DISPATCH(dt, T, qkv_finish_kernel<T><<<grid, QP_WARPS * 32, 0, stream>>>(
                            (T *)qkv, stride, n_heads, n_kv_heads, head_dim, (const T *)bias,
                            (const T *)q_norm, (const T *)k_norm, eps, pos, slot, (T *)k_cache,
                            (T *)v_cache, rope));
    return cudaGetLastError();
}
