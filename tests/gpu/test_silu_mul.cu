/* test_silu_mul.cu - silu_mul_run against silu_mul_ref on random fused gate/up rows. */
#include "gpu_test.h"
#include "../../kernels/silu_mul.cuh"
#include "../../kernels/ref.h"

static void run_case(int n, int hidden, kdtype dt)
{
    size_t sz = (size_t)n * hidden;
    float *in = (float *)malloc(sizeof(float) * sz * 2), *ref = (float *)malloc(sizeof(float) * sz);
    float *out = (float *)malloc(sizeof(float) * sz);
    fill_uniform(in, sz * 2, -6.f, 6.f);
    void *din = dev_upload16(in, sz * 2, dt), *dout = dev_alloc_poisoned(sz * 2);
    CUDA_CHECK(silu_mul_run(dout, din, n, hidden, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    silu_mul_ref(ref, in, n, hidden);
    dev_download16(out, dout, sz, dt);
    double err = max_row_rel_err(out, ref, n, hidden);
    check(err <= dt_tol(dt), "silu_mul %s rows=%d hidden=%d: max row rel err %.2e (bound %.0e)",
          dt_name(dt), n, hidden, err, dt_tol(dt));
    free(in); free(ref); free(out);
    CUDA_CHECK(cudaFree(din)); CUDA_CHECK(cudaFree(dout));
}

int main(void)
{
    test_init("test_silu_mul");
    for (int rep = 0; rep < 2; rep++) {
        run_case(1, 768, KDT_BF16);
        run_case(rng_int(2, 40), 14336, KDT_BF16);
        run_case(5, 8, KDT_BF16);
        run_case(rng_int(1, 9), 11008, KDT_F16);
        run_case(3000, 24, KDT_BF16);
    }
    return test_summary("test_silu_mul");
}
