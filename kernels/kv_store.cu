/* kv_store.cu - scatter K/V rows into the paged cache: one block per token, 16-byte copies. */
#include "kv_store.cuh"
#include "kutil.cuh"

__global__ void kv_store_kernel(uint4 *__restrict__ kc, uint4 *__restrict__ vc,
                                const uint4 *__restrict__ k, int k_stride,
                                const uint4 *__restrict__ v, int v_stride,
                                const int32_t *__restrict__ slots, int row_chunks)
{
    int t = blockIdx.x;
    int slot = slots[t];
    if (slot < 0) return;
    for (int c = threadIdx.x; c < row_chunks; c += blockDim.x) {
        kc[(size_t)slot * row_chunks + c] = k[(size_t)t * k_stride + c];
        vc[(size_t)slot * row_chunks + c] = v[(size_t)t * v_stride + c];
    }
}

extern "C" cudaError_t kv_store_run(void *k_cache, void *v_cache, const void *k, int k_stride,
                                    const void *v, int v_stride, const int32_t *slot_mapping,
                                    int n_tokens, int n_kv_heads, int head_dim, kdtype dt,
                                    cudaStream_t stream)
{
    if (n_tokens == 0) return cudaSuccess;
    int row = n_kv_heads * head_dim;
    if (n_tokens < 0 || head_dim % 8 || k_stride % 8 || v_stride % 8 || k_stride < row ||
        v_stride < row || (dt != KDT_BF16 && dt != KDT_F16))
        return cudaErrorInvalidValue;
    int chunks = row / 8, threads = chunks < 256 ? (chunks + 31) / 32 * 32 : 256;
    kv_store_kernel<<<n_tokens, threads, 0, stream>>>((uint4 *)k_cache, (uint4 *)v_cache,
                                                      (const uint4 *)k, k_stride / 8,
                                                      (const uint4 *)v, v_stride / 8,
                                                      slot_mapping, chunks);
    return cudaGetLastError();
}
