/* test_rmsnorm.cu - rmsnorm_run against rmsnorm_ref: with and without the residual add,
 * in place (out == x), dims from 8 to 16392, bf16 and fp16; checks out and the updated
 * residual stream. */
#include "gpu_test.h"
#include "../../kernels/rmsnorm.cuh"
#include "../../kernels/ref.h"

static void run_case(int n, int dim, int with_x, int in_place, kdtype dt)
{
    size_t sz = (size_t)n * dim;
    float *h = (float *)malloc(sizeof(float) * sz), *x = (float *)malloc(sizeof(float) * sz);
    float *w = (float *)malloc(sizeof(float) * dim), *ref = (float *)malloc(sizeof(float) * sz);
    float *out = (float *)malloc(sizeof(float) * sz), *hout = (float *)malloc(sizeof(float) * sz);
    fill_uniform(h, sz, -4.f, 4.f);
    fill_uniform(x, sz, -4.f, 4.f);
    fill_uniform(w, dim, 0.2f, 2.f);
    float eps = 1e-5f;
    void *dh = dev_upload16(h, sz, dt), *dx = dev_upload16(x, sz, dt), *dw = dev_upload16(w, dim, dt);
    void *dout = in_place ? dx : dev_alloc_poisoned(sz * 2);
    CUDA_CHECK(rmsnorm_run(dout, dh, with_x ? dx : NULL, dw, n, dim, eps, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    rmsnorm_ref(ref, h, with_x ? x : NULL, w, n, dim, eps);
    dev_download16(out, dout, sz, dt);
    dev_download16(hout, dh, sz, dt);
    double e_out = max_row_rel_err(out, ref, n, dim), e_h = max_row_rel_err(hout, h, n, dim);
    check(e_out <= dt_tol(dt) && e_h <= dt_tol(dt),
          "rmsnorm %s rows=%d dim=%d%s%s: out err %.2e, residual err %.2e (bound %.0e)",
          dt_name(dt), n, dim, with_x ? " +residual" : "", in_place ? " in-place" : "", e_out,
          e_h, dt_tol(dt));
    free(h); free(x); free(w); free(ref); free(out); free(hout);
    CUDA_CHECK(cudaFree(dh)); CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dw));
    if (!in_place) CUDA_CHECK(cudaFree(dout));
}

int main(void)
{
    test_init("test_rmsnorm");
    for (int rep = 0; rep < 2; rep++) {
        run_case(1, 288, 1, 0, KDT_BF16);
        run_case(7, 288, 0, 0, KDT_BF16);
        run_case(rng_int(2, 40), 4096, 1, 0, KDT_BF16);
        run_case(rng_int(2, 40), 4096, 1, 1, KDT_BF16);
        run_case(33, 5120, 1, 0, KDT_F16);
        run_case(5, 8, 1, 0, KDT_BF16);
        run_case(3, 16392, 1, 0, KDT_BF16);
        run_case(9, 2056, 0, 0, KDT_F16);
    }
    check(rmsnorm_run(NULL, NULL, NULL, NULL, 1, 12, 1e-5f, KDT_BF16, 0) == cudaErrorInvalidValue,
          "rmsnorm rejects dim 12");
    return test_summary("test_rmsnorm");
}
