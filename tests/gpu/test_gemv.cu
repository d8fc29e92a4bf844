/* test_gemv.cu - the decode GEMV kernel (kernels/gemv.cu) against an fp64 CPU product on the
 * same bf16/fp16-rounded inputs: 1..8 token rows, odd row counts, inner sizes that are not
 * multiples of the 256-element warp stride, fp32 and 16-bit outputs, the fused SiLU-mul.
 * Fresh random inputs per case; outputs poisoned with NaN before each run. */
#include "gpu_test.h"
#include "../../kernels/gemv.cuh"

static void one_case(int n_tok, int n_out, int n_in, int out_f32, int silu, kdtype dt)
{
    size_t nx = (size_t)n_tok * n_in, nw = (size_t)n_out * n_in;
    int rows = silu ? n_out / 2 : n_out;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(nw * 4);
    float *ref = (float *)malloc((size_t)n_tok * rows * 4), *got = (float *)malloc((size_t)n_tok * rows * 4);
    fill_uniform(x, nx, -1.f, 1.f);
    fill_uniform(w, nw, -0.1f, 0.1f);
    void *dx = dev_upload16(x, nx, dt), *dw = dev_upload16(w, nw, dt);
    size_t ob = (size_t)n_tok * rows * (out_f32 ? 4 : 2);
    void *dout = dev_alloc_poisoned(ob);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            double g = 0, u = 0;
            for (int k = 0; k < n_in; k++) {
                g += (double)w[(size_t)r * n_in + k] * x[(size_t)t * n_in + k];
                if (silu) u += (double)w[(size_t)(r + rows) * n_in + k] * x[(size_t)t * n_in + k];
            }
            ref[(size_t)t * rows + r] = (float)(silu ? g / (1 + exp(-g)) * u : g);
        }
    CUDA_CHECK(gemv_run(dout, dx, dw, n_tok, n_out, n_in, out_f32, silu, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    if (out_f32) CUDA_CHECK(cudaMemcpy(got, dout, ob, cudaMemcpyDeviceToHost));
    else dev_download16(got, dout, (size_t)n_tok * rows, dt);
    double err = max_row_rel_err(got, ref, (size_t)n_tok, (size_t)rows);
    double tol = out_f32 ? 1e-4 : dt_tol(dt);
    check(err < tol, "gemv %s n_tok %d n_out %d n_in %d%s%s: rel err %.2e < %.0e", dt_name(dt),
          n_tok, n_out, n_in, out_f32 ? " f32-out" : "", silu ? " silu" : "", err, tol);
    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dout));
    free(x), free(w), free(ref), free(got);
}

int main(void)
{
    test_init("test_gemv");
    for (int i = 0; i < 12; i++) {
        kdtype dt = i % 3 == 2 ? KDT_F16 : KDT_BF16;
        int n_tok = rng_int(1, GEMV_MAX_TOKENS), n_in = 8 * rng_int(1, 700);
        int silu = i % 4 == 1, f32 = !silu && i % 4 == 2;
        int n_out = silu ? 2 * rng_int(1, 300) : rng_int(1, 600);
        one_case(n_tok, n_out, n_in, f32, silu, dt);
    }
    one_case(1, 6144, 4096, 0, 0, KDT_BF16);
    one_case(8, 28672 / 8, 4096, 0, 1, KDT_BF16);
    one_case(3, 4096, 14336, 0, 0, KDT_BF16);
    CUDA_CHECK(gemv_run(NULL, NULL, NULL, 9, 8, 8, 0, 0, KDT_BF16, 0) == cudaErrorInvalidValue
                   ? cudaSuccess : cudaErrorUnknown);
    return test_summary("test_gemv");
}
