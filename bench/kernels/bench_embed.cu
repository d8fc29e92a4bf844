/* bench_embed.cu - embed_run from a Llama-3 table (128256 x 4096, bf16): GB/s (rows read and
 * written) against the copy bandwidth. */
#include "bench_util.cuh"
#include "../../kernels/embed.cuh"
#include <stdlib.h>

static void run(const bench_ceilings *c, void *table, int vocab, int dim, int n)
{
    void *out;
    int32_t *ids;
    CUDA_CHECK(cudaMalloc(&out, (size_t)n * dim * 2));
    std::vector<int32_t> h(n);
    srand(9);
    for (int i = 0; i < n; i++) h[i] = rand() % vocab;
    CUDA_CHECK(cudaMalloc(&ids, sizeof(int32_t) * n));
    CUDA_CHECK(cudaMemcpy(ids, h.data(), sizeof(int32_t) * n, cudaMemcpyHostToDevice));
    double ms = bench_ms([&] { CUDA_CHECK(embed_run(out, table, ids, n, vocab, dim, KDT_BF16, 0)); });
    char cas[96];
    snprintf(cas, sizeof(cas), "%d random ids, vocab %d x %d, bf16", n, vocab, dim);
    bench_report_bw("embed", cas, ms, 2.0 * n * dim * 2, c);
    CUDA_CHECK(cudaFree(out));
    CUDA_CHECK(cudaFree(ids));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    const int vocab = 128256, dim = 4096;
    void *table;
    CUDA_CHECK(cudaMalloc(&table, (size_t)vocab * dim * 2));
    bench_fill16(table, (size_t)vocab * dim, 71, 1.f);
    run(&c, table, vocab, dim, 16384);
    run(&c, table, vocab, dim, 64);
    CUDA_CHECK(cudaFree(table));
    return 0;
}
