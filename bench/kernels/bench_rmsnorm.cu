/* bench_rmsnorm.cu - rmsnorm_run with the residual add, dim 4096, bf16: GB/s (x, resid read;
 * resid, out written) against the copy bandwidth. */
#include "bench_util.cuh"
#include "../../kernels/rmsnorm.cuh"

static void run(const bench_ceilings *c, int n, int dim)
{
    size_t sz = (size_t)n * dim;
    void *out, *h, *x, *w;
    CUDA_CHECK(cudaMalloc(&out, sz * 2));
    CUDA_CHECK(cudaMalloc(&h, sz * 2));
    CUDA_CHECK(cudaMalloc(&x, sz * 2));
    CUDA_CHECK(cudaMalloc(&w, dim * 2));
    bench_fill16(h, sz, 41, 1.f);
    bench_fill16(x, sz, 42, 0.01f);   /* small, so the residual stream stays bounded */
    bench_fill16(w, dim, 43, 1.f);
    double ms = bench_ms([&] {
        CUDA_CHECK(rmsnorm_run(out, h, x, w, n, dim, 1e-5f, KDT_BF16, 0));
    });
    char cas[96];
    snprintf(cas, sizeof(cas), "%d rows x %d, +residual, bf16", n, dim);
    bench_report_bw("rmsnorm", cas, ms, 4.0 * sz * 2 + dim * 2, c);
    CUDA_CHECK(cudaFree(out)); CUDA_CHECK(cudaFree(h)); CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(w));
}

int main(void)
{
    bench_ceilings c = bench_measure_ceilings();
    run(&c, 16384, 4096);
    run(&c, 64, 4096);
    return 0;
}
