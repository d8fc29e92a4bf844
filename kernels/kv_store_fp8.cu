/* kv_store_fp8.cu - this step's K and V rows into an E4M3 paged cache (kv_store.cuh's
 * kv_store_fp8_run): code = e4m3(x / scale), the division rounded as fp8_ref.c's; one block a
 * token, 8 elements (16 bytes in, 8 out) a thread. */
#include "kv_store.cuh"
#include "fp8.cuh"

template <typename T>
__global__ void kv_store_fp8_kernel(uint2 *__restrict__ kc, uint2 *__restrict__ vc,
                                    const uint4 *__restrict__ k, int k_stride,
                                    const uint4 *__restrict__ v, int v_stride,
                                    const int32_t *__restrict__ slots, int row_chunks,
                                    float ks, float vs)
{
    int t = blockIdx.x, slot = slots[t];
    if (slot < 0) return;
    for (int c = threadIdx.x; c < row_chunks; c += blockDim.x) {
        float f[8];
        vec8_to_f<T>(k[(size_t)t * k_stride + c], f);
        kc[(size_t)slot * row_chunks + c] =
            make_uint2(fp8_pack4(__fdiv_rn(f[0], ks), __fdiv_rn(f[1], ks), __fdiv_rn(f[2], ks), __fdiv_rn(f[3], ks)),
                       fp8_pack4(__fdiv_rn(f[4], ks), __fdiv_rn(f[5], ks), __fdiv_rn(f[6], ks), __fdiv_rn(f[7], ks)));
        vec8_to_f<T>(v[(size_t)t * v_stride + c], f);
        vc[(size_t)slot * row_chunks + c] =
            make_uint2(fp8_pack4(__fdiv_rn(f[0], vs), __fdiv_rn(f[1], vs), __fdiv_rn(f[2], vs), __fdiv_rn(f[3], vs)),
                       fp8_pack4(__fdiv_rn(f[4], vs), __fdiv_rn(f[5], vs), __fdiv_rn(f[6], vs), __fdiv_rn(f[7], vs)));
    }
}

extern "C" cudaError_t kv_store_fp8_run(void *k_cache, void *v_cache, const void *k, int k_stride,
                                        const void *v, int v_stride, const int32_t *slot_mapping,
                                        int n_tokens, int n_kv_heads, int head_dim, float k_scale,
                                        float v_scale, kdtype dt, cudaStream_t stream)
{
    if (n_tokens == 0) return cudaSuccess;
    int row = n_kv_heads * head_dim;
    if (n_tokens < 0 || head_dim % 8 || k_stride % 8 || v_stride % 8 || k_stride < row ||
        v_stride < row || !(k_scale > 0) || !(v_scale > 0))
        return cudaErrorInvalidValue;
    int chunks = row / 8, threads = chunks < 256 ? (chunks + 31) / 32 * 32 : 256;
    KDT_DISPATCH(dt, T, kv_store_fp8_kernel<T><<<n_tokens, threads, 0, stream>>>(
                            (uint2 *)k_cache, (uint2 *)v_cache, (const uint4 *)k, k_stride / 8,
                            (const uint4 *)v, v_stride / 8, slot_mapping, chunks, k_scale, v_scale));
    return cudaGetLastError();
}
