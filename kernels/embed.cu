/* embed.cu - embedding gather: one block per token, 16-byte copies. */
#include "embed.cuh"
#include "kutil.cuh"

__global__ void embed_kernel(uint4 *__restrict__ out, const uint4 *__restrict__ table,
                             const int32_t *__restrict__ ids, int vocab, int row_chunks)
{
    int t = blockIdx.x, id = ids[t];
    bool ok = id >= 0 && id < vocab;
    for (int c = threadIdx.x; c < row_chunks; c += blockDim.x)
        out[(size_t)t * row_chunks + c] =
            ok ? table[(size_t)id * row_chunks + c] : make_uint4(0, 0, 0, 0);
}

extern "C" cudaError_t embed_run(void *out, const void *table, const int32_t *ids,
                                 int n_tokens, int vocab, int dim, kdtype dt,
                                 cudaStream_t stream)
{
    if (n_tokens == 0) return cudaSuccess;
    if (n_tokens < 0 || dim <= 0 || dim % 8 || (dt != KDT_BF16 && dt != KDT_F16))
        return cudaErrorInvalidValue;
    int chunks = dim / 8, threads = chunks < 256 ? (chunks + 31) / 32 * 32 : 256;
    embed_kernel<<<n_tokens, threads, 0, stream>>>((uint4 *)out, (const uint4 *)table, ids,
                                                   vocab, chunks);
    return cudaGetLastError();
}
