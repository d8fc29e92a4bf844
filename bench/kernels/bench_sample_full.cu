/* bench_sample_full.cu - sample_full_run over fp32 logits of the Llama-3 vocabulary (128256):
 * temperature alone (no sort) and top-k + top-p (segmented sort), GB/s of logits read against
 * the copy bandwidth (the sort reads and writes each row several times more; the figure shows
 * what sampling with top-p costs a step). */
#include "bench_util.cuh"
#include "../../kernels/sample_full.cuh"

static void run(const bench_ceilings *c, int n, int sort)
{
    const int vocab = 128256;
    float *x, *lp;
    int32_t *tok, *rows;
    sample_row_params *prm;
    CUDA_CHECK(cudaMalloc(&x, sizeof(float) * n * vocab));
    CUDA_CHECK(cudaMalloc(&lp, sizeof(float) * n));
    CUDA_CHECK(cudaMalloc(&tok, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMalloc(&rows, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMalloc(&prm, sizeof(sample_row_params) * n));
    std::vector<int32_t> h_rows(n);
    std::vector<sample_row_params> h_prm(n);
    for (int r = 0; r < n; r++) {
        h_rows[r] = r;
        h_prm[r] = sample_row_params{0.8f, sort ? 50 : 0, sort ? 0.9f : 1.f, 1.f, 0.f, 0.f, 0, 0,
                                     (uint64_t)r, 100};
    }
    CUDA_CHECK(cudaMemcpy(rows, h_rows.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(prm, h_prm.data(), sizeof(sample_row_params) * n,
                          cudaMemcpyHostToDevice));
    size_t ws_bytes = sample_full_workspace_size(n, vocab);
    void *ws;
    CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    bench_fill_logits(x, (size_t)n * vocab);
    double ms = bench_ms([&] {
        CUDA_CHECK(sample_full_run(tok, lp, x, rows, prm, NULL, n, vocab, sort, ws, ws_bytes, 0));
    });
    char cas[96];
    snprintf(cas, sizeof(cas), "%s, %d rows x 128256 fp32", sort ? "T 0.8 top-k 50 top-p 0.9"
                                                                 : "T 0.8", n);
    bench_report_bw("sample_full", cas, ms, 4.0 * n * vocab, c);
    CUDA_CHECK(cudaFree(x)); CUDA_CHECK(cudaFree(lp)); CUDA_CHECK(cudaFree(tok));
    CUDA_CHECK(cudaFree(rows)); CUDA_CHECK(cudaFree(prm)); CUDA_CHECK(cudaFree(ws));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    for (int sort = 0; sort <= 1; sort++) {
        run(&c, 256, sort);
        run(&c, 16, sort);
        run(&c, 1, sort);
    }
    return 0;
}
