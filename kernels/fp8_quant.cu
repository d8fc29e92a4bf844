/* fp8_quant.cu - per-row dynamic E4M3 quantization (see fp8_quant.cuh): one block a row, the
 * row's largest magnitude by a block reduction, then 8 (or 4) elements a thread per pass. */
#include "fp8_quant.cuh"
#include "fp8.cuh"

#define FQ_THREADS 256

template <typename T> struct fq_io {
    static constexpr int V = 8;   /* elements a 16-byte load */
    __device__ static void load(const T *p, float f[8]) { vec8_to_f<T>(*(const uint4 *)p, f); }
};
template <> struct fq_io<float> {
    static constexpr int V = 4;
    __device__ static void load(const float *p, float f[4])
    {
        float4 v = *(const float4 *)p;
        f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
    }
};

/* Elements I.. of ROW as quantized: x, or with NORM_W T(w * (x * rstd)) (rmsnorm_run's). */
template <typename T>
__device__ __forceinline__ void fq_load(const T *row, const T *norm_w, float rstd, int i,
                                        float (&f)[fq_io<T>::V])
{
    fq_io<T>::load(row + i, f);
    if (!norm_w) return;
    float g[fq_io<T>::V];
    fq_io<T>::load(norm_w + i, g);
#pragma unroll
    for (int e = 0; e < fq_io<T>::V; e++) f[e] = to_f(from_f<T>(g[e] * (f[e] * rstd)));
}
template <>
__device__ __forceinline__ void fq_load<float>(const float *row, const float *norm_w, float rstd,
                                               int i, float (&f)[4])
{
    fq_io<float>::load(row + i, f);
}

template <typename T>
__global__ void __launch_bounds__(FQ_THREADS) fp8_quant_kernel(uint8_t *q, float *scales,
                                                               const T *x, const T *norm_w,
                                                               float eps, int n, int ld)
{
    constexpr int V = fq_io<T>::V;
    __shared__ float scratch[32];
    const T *row = x + (size_t)blockIdx.x * ld;
    float amax = 0.f, f[V], rstd = 0.f;
    if (norm_w) {
        float ss = 0.f;
        for (int i = threadIdx.x * V; i < n; i += FQ_THREADS * V) {
            fq_io<T>::load(row + i, f);
#pragma unroll
            for (int e = 0; e < V; e++) ss += f[e] * f[e];
        }
        rstd = rsqrtf(block_sum(ss, scratch) / n + eps);
    }
    for (int i = threadIdx.x * V; i < n; i += FQ_THREADS * V) {
        fq_load<T>(row, norm_w, rstd, i, f);
#pragma unroll
        for (int e = 0; e < V; e++) amax = fmaxf(amax, fabsf(f[e]));
    }
    /* block max (the sum helper's pattern) */
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    __syncthreads();   /* scratch may still be read by the norm's reduction */
    if (lane == 0) scratch[warp] = amax;
    __syncthreads();
    amax = lane < FQ_THREADS / 32 ? scratch[lane] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float s = __fdiv_rn(amax, FP8_E4M3_MAX);
    s = s > 0.f ? s : 1.f;   /* fp8_scale_of */
    if (threadIdx.x == 0) scales[blockIdx.x] = s;
    uint8_t *out = q + (size_t)blockIdx.x * n;
    for (int i = threadIdx.x * V; i < n; i += FQ_THREADS * V) {
        fq_load<T>(row, norm_w, rstd, i, f);
#pragma unroll
        for (int e = 0; e < V; e += 4)
            *(uint32_t *)(out + i + e) = fp8_pack4(__fdiv_rn(f[e], s), __fdiv_rn(f[e + 1], s),
                                                   __fdiv_rn(f[e + 2], s), __fdiv_rn(f[e + 3], s));
    }
}

extern "C" cudaError_t fp8_quant_rows_run(uint8_t *q, float *scales, const void *x, int n_rows,
                                          int n, int ld, int x_f32, kdtype dt,
                                          cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    int v = x_f32 ? 4 : 8;
    if (n_rows < 0 || n <= 0 || n % v || ld % v || ld < n || !q || !scales || !x)
        return cudaErrorInvalidValue;
    if (x_f32) {
        fp8_quant_kernel<float><<<n_rows, FQ_THREADS, 0, stream>>>(q, scales, (const float *)x,
                                                                     NULL, 0.f, n, ld);
        return cudaGetLastError();
    }
    KDT_DISPATCH(dt, T, fp8_quant_kernel<T><<<n_rows, FQ_THREADS, 0, stream>>>(
                            q, scales, (const T *)x, (const T *)NULL, 0.f, n, ld));
    return cudaGetLastError();
}

extern "C" cudaError_t fp8_quant_norm_rows_run(uint8_t *q, float *scales, const void *x,
                                               const void *norm_w, float eps, int n_rows, int n,
                                               int ld, kdtype dt, cudaStream_t stream)
{
    if (n_rows == 0) return cudaSuccess;
    if (n_rows < 0 || n <= 0 || n % 8 || ld % 8 || ld < n || !q || !scales || !x || !norm_w)
        return cudaErrorInvalidValue;
    KDT_DISPATCH(dt, T, fp8_quant_kernel<T><<<n_rows, FQ_THREADS, 0, stream>>>(
                            q, scales, (const T *)x, (const T *)norm_w, eps, n, ld));
    return cudaGetLastError();
}
