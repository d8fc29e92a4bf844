/* bench_sample_greedy.cu - sample_greedy_run over fp32 logits of the Llama-3 vocabulary (128256):
 * GB/s of logits read against the copy bandwidth. */
#include "bench_util.cuh"
#include "../../kernels/sample_greedy.cuh"

static void run(const bench_ceilings *c, int n)
{
    const int vocab = 128256;
    float *x, *lp;
    int32_t *tok;
    CUDA_CHECK(cudaMalloc(&x, sizeof(float) * n * vocab));
    CUDA_CHECK(cudaMalloc(&lp, sizeof(float) * n));
    CUDA_CHECK(cudaMalloc(&tok, sizeof(int32_t) * n));
    void *ws;
    CUDA_CHECK(cudaMalloc(&ws, sample_greedy_workspace_size(n)));
    bench_fill_logits(x, (size_t)n * vocab);
    double ms = bench_ms([&] { CUDA_CHECK(sample_greedy_run(tok, lp, x, n, vocab, ws, 0)); });
    char cas[96];
    snprintf(cas, sizeof(cas), "greedy + logprob, %d rows x 128256 fp32", n);
    bench_report_bw("sample", cas, ms, 4.0 * n * vocab, c);
    CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(lp)); CUDA_CHECK(cudaFree(tok));
    CUDA_CHECK(cudaFree(ws));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 256);
    run(&c, 16);
    run(&c, 1);
    return 0;
}
