/* bench_topk_logprobs.cu - topk_logprobs_run (top 20 logprobs) over fp32 logits of the Llama-3
 * vocabulary (128256): GB/s of logits read (each row is read twice) against the copy
 * bandwidth. It runs only for the rows of requests that ask for logprobs. */
#include "bench_util.cuh"
#include "../../kernels/topk_logprobs.cuh"

static void run(const bench_ceilings *c, int n, int k)
{
    const int vocab = 128256;
    float *x, *lps, *tlp;
    int32_t *ids, *rows, *kk;
    CUDA_CHECK(cudaMalloc(&x, sizeof(float) * n * vocab));
    CUDA_CHECK(cudaMalloc(&lps, sizeof(float) * n * TOPK_LOGPROBS_MAX));
    CUDA_CHECK(cudaMalloc(&tlp, sizeof(float) * n));
    CUDA_CHECK(cudaMalloc(&ids, sizeof(int32_t) * n * TOPK_LOGPROBS_MAX));
    std::vector<int32_t> h_rows(n), h_k(n, k);
    for (int i = 0; i < n; i++) h_rows[i] = i;
    CUDA_CHECK(cudaMalloc(&rows, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMalloc(&kk, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMemcpy(rows, h_rows.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(kk, h_k.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice));
    bench_fill_logits(x, (size_t)n * vocab);
    double ms = bench_ms([&] { CUDA_CHECK(topk_logprobs_run(ids, lps, tlp, x, rows, kk, rows, n, vocab, 0)); });
    char cas[96];
    snprintf(cas, sizeof(cas), "top %d logprobs, %d rows x 128256 fp32", k, n);
    bench_report_bw("topk_logprobs", cas, ms, 2 * 4.0 * n * vocab, c);
    CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(lps)); CUDA_CHECK(cudaFree(tlp)); CUDA_CHECK(cudaFree(ids));
    CUDA_CHECK(cudaFree(rows)); CUDA_CHECK(cudaFree(kk));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 256, 20);
    run(&c, 16, 20);
    run(&c, 1, 20);
    run(&c, 256, 1);
    return 0;
}
