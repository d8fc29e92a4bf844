/* weights_digest.cu - the digest of kernels/digest.h over a device buffer: grid-stride over
 * 16-byte vectors, a sum per thread, warp then block reduction, one 64-bit atomic add per
 * block (addition mod 2^64 is exact in any order, so the result equals digest_ref's); the
 * last words that do not fill a vector are added by the first thread. */
#include "weights_digest.cuh"
#include "digest.h"

#define THREADS 256

__global__ void weights_digest_kernel(const uint4 *__restrict__ p, size_t n_vec,
                                      const uint8_t *__restrict__ tail, size_t n_tail,
                                      unsigned long long *out)
{
    uint64_t sum = 0;
    for (size_t v = (size_t)blockIdx.x * blockDim.x + threadIdx.x; v < n_vec;
         v += (size_t)gridDim.x * blockDim.x) {
        uint4 q = p[v];
        size_t i = v * 4;
        sum += digest_word(i, q.x) + digest_word(i + 1, q.y) + digest_word(i + 2, q.z) +
               digest_word(i + 3, q.w);
    }
    if (blockIdx.x == 0 && threadIdx.x == 0)   /* under 16 bytes after the vectors */
        for (size_t k = 0; k < n_tail; k += 4) {
            uint32_t w = 0;
            for (size_t b = k; b < k + 4 && b < n_tail; b++)
                w |= (uint32_t)tail[b] << (8 * (b - k));
            sum += digest_word(n_vec * 4 + k / 4, w);
        }
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_down_sync(0xffffffffu, sum, o);
    __shared__ uint64_t warp_sum[THREADS / 32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0)
        warp_sum[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint64_t total = 0;
        for (int w = 0; w < THREADS / 32; w++)
            total += warp_sum[w];
        atomicAdd(out, (unsigned long long)total);
    }
}

extern "C" cudaError_t weights_digest_run(const void *p, size_t n_bytes, uint64_t *out,
                                          cudaStream_t stream)
{
    if ((uintptr_t)p % 16 || !out)
        return cudaErrorInvalidValue;
    cudaError_t e = cudaMemsetAsync(out, 0, sizeof *out, stream);
    if (e != cudaSuccess)
        return e;
    int dev, n_sms;
    if ((e = cudaGetDevice(&dev)) != cudaSuccess ||
        (e = cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess)
        return e;
    size_t n_vec = n_bytes / 16;
    size_t blocks = (n_vec + THREADS - 1) / THREADS;
    size_t max_blocks = (size_t)n_sms * 8;
    blocks = blocks < 1 ? 1 : blocks > max_blocks ? max_blocks : blocks;
    weights_digest_kernel<<<(unsigned)blocks, THREADS, 0, stream>>>(
        (const uint4 *)p, n_vec, (const uint8_t *)p + n_vec * 16, n_bytes % 16,
        (unsigned long long *)out);
    return cudaGetLastError();
}
