/* test_weights_digest.cu - weights_digest_run against digest_ref (kernels/digest.h) on random
 * buffers of random sizes (vectors and a tail), exactly (an integer sum); a poisoned output
 * word is overwritten; one flipped bit anywhere changes the digest. */
#include "gpu_test.h"
#include "../../kernels/digest.h"
#include "../../kernels/weights_digest.cuh"

static uint64_t gpu_digest(const void *d, size_t n, uint64_t *d_out)
{
    uint64_t poison = rng_next(), got;
    CUDA_CHECK(cudaMemcpy(d_out, &poison, 8, cudaMemcpyHostToDevice));
    CUDA_CHECK(weights_digest_run(d, n, d_out, 0));
    CUDA_CHECK(cudaMemcpy(&got, d_out, 8, cudaMemcpyDeviceToHost));
    return got;
}

static void run_case(size_t n)
{
    uint8_t *h = (uint8_t *)malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        h[i] = (uint8_t)rng_next();
    void *d = dev_upload(h, n ? n : 1);
    uint64_t *d_out;
    CUDA_CHECK(cudaMalloc((void **)&d_out, 8));
    uint64_t want = digest_ref(h, n), got = gpu_digest(d, n, d_out);
    check(got == want, "digest of %zu bytes: gpu %016llx, reference %016llx", n,
          (unsigned long long)got, (unsigned long long)want);
    if (n) {   /* one bit flipped: another digest, on both */
        size_t at = (size_t)rng_next() % n;
        h[at] ^= (uint8_t)(1u << rng_int(0, 7));
        CUDA_CHECK(cudaMemcpy((uint8_t *)d + at, h + at, 1, cudaMemcpyHostToDevice));
        uint64_t flipped = gpu_digest(d, n, d_out);
        check(flipped != want && flipped == digest_ref(h, n),
              "digest of %zu bytes with byte %zu changed: %016llx (before %016llx)", n, at,
              (unsigned long long)flipped, (unsigned long long)want);
    }
    free(h);
    CUDA_CHECK(cudaFree(d));
    CUDA_CHECK(cudaFree(d_out));
}

int main(void)
{
    test_init("test_weights_digest");
    run_case(0);
    run_case(3);
    run_case(16);
    for (int rep = 0; rep < 3; rep++) {
        run_case((size_t)rng_int(1, 64));
        run_case((size_t)rng_int(1 << 10, 1 << 16));
        run_case((size_t)rng_int(1 << 22, 1 << 26));
    }
    /* the speed on a buffer the size of Llama-3-8B's bf16 weights, when it fits */
    size_t big = 16ull << 30, free_b, total_b;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (free_b > big + (2ull << 30)) {
        void *d;
        uint64_t *d_out;
        CUDA_CHECK(cudaMalloc(&d, big));
        CUDA_CHECK(cudaMemset(d, 0x5a, big));
        CUDA_CHECK(cudaMalloc((void **)&d_out, 8));
        cudaEvent_t a, b;
        CUDA_CHECK(cudaEventCreate(&a));
        CUDA_CHECK(cudaEventCreate(&b));
        CUDA_CHECK(weights_digest_run(d, big, d_out, 0));   /* warm */
        CUDA_CHECK(cudaEventRecord(a));
        CUDA_CHECK(weights_digest_run(d, big, d_out, 0));
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        printf("# digest of 16 GiB: %.2f ms (%.0f GB/s)\n", ms, big / 1e6 / ms);
        CUDA_CHECK(cudaFree(d));
        CUDA_CHECK(cudaFree(d_out));
    }
    return test_summary("test_weights_digest");
}
