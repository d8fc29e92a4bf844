/* bench_silu_mul.cu - silu_mul_run on Llama-3-8B MLP rows (hidden 14336, bf16): GB/s
 * (gate/up read, out written) against the copy bandwidth. */
#include "bench_util.cuh"
#include "../../kernels/silu_mul.cuh"

static void run(const bench_ceilings *c, int n)
{
    const int hidden = 14336;
    size_t sz = (size_t)n * hidden;
    void *in, *out;
    CUDA_CHECK(cudaMalloc(&in, sz * 4));
    CUDA_CHECK(cudaMalloc(&out, sz * 2));
    bench_fill16(in, sz * 2, 61, 4.f);
    double ms = bench_ms([&] { CUDA_CHECK(silu_mul_run(out, in, n, hidden, KDT_BF16, 0)); });
    char cas[96];
    snprintf(cas, sizeof(cas), "%d rows x 14336, bf16", n);
    bench_report_bw("silu_mul", cas, ms, 3.0 * sz * 2, c);
    CUDA_CHECK(cudaFree(in));
    CUDA_CHECK(cudaFree(out));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 8192);
    run(&c, 64);
    return 0;
}
