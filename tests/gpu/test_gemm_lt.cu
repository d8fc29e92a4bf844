/* test_gemm_lt.cu - kernels/gemm_lt.cu against the CPU product (gemv_ref, double accumulate):
 * every cuBLASLt candidate of random decode-batch shapes (9..300 token rows, bf16 and fp16,
 * 16-bit and fp32 outputs, the Llama-3-8B projections at 64 rows), fresh random operands,
 * outputs NaN-poisoned before each run, relative error per row; then the pick: recorded,
 * read back, run with ALGO -1, and refused where nothing was picked.
 */
#include "gpu_test.h"
#include "../../kernels/gemm_lt.cuh"
#include "../../kernels/ref.h"

static const char *type_name(cudaDataType_t t)
{
    return t == CUDA_R_16BF ? "bf16" : t == CUDA_R_16F ? "fp16" : "fp32";
}

static void shape_case(gemm_lt *g, int n_tok, int n_out, int n_in, kdtype dt, int f32_out)
{
    cudaDataType_t ab = dt == KDT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cudaDataType_t ct = f32_out ? CUDA_R_32F : ab;
    size_t nx = (size_t)n_tok * n_in, nw = (size_t)n_out * n_in, nc = (size_t)n_tok * n_out;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(nw * 4);
    float *ref = (float *)malloc(nc * 4), *got = (float *)malloc(nc * 4);
    fill_uniform(x, nx, -1.f, 1.f);
    fill_uniform(w, nw, -0.05f, 0.05f);
    void *dx = dev_upload16(x, nx, dt), *dw = dev_upload16(w, nw, dt);   /* rounded to DT */
    gemv_ref(ref, x, w, n_tok, n_out, n_in, GEMV_REF_OUT, NULL, 0.f, NULL);
    void *dc = dev_alloc_poisoned(nc * (f32_out ? 4 : 2));
    int n = gemm_lt_candidates(g, n_tok, n_out, n_in, ab, ct);
    check(n >= 1 && n <= GEMM_LT_MAX_ALGOS, "gemm_lt %s->%s %d x %d x %d: %d candidates",
          type_name(ab), type_name(ct), n_tok, n_out, n_in, n);
    double tol = f32_out ? 1e-4 : dt_tol(dt), worst = 0;
    int ran = 0;
    for (int a = 0; a < n; a++) {
        CUDA_CHECK(cudaMemset(dc, 0xff, nc * (f32_out ? 4 : 2)));   /* NaN in every format */
        if (gemm_lt_run(g, a, dc, dx, dw, n_tok, n_out, n_in, ab, ct, 0) != cudaSuccess)
            continue;   /* a candidate may want more workspace than the handle has */
        CUDA_CHECK(cudaDeviceSynchronize());
        if (f32_out) CUDA_CHECK(cudaMemcpy(got, dc, nc * 4, cudaMemcpyDeviceToHost));
        else dev_download16(got, dc, nc, dt);
        double err = max_row_rel_err(got, ref, n_tok, n_out);
        worst = err > worst ? err : worst;
        ran++;
    }
    check(ran >= 1 && worst < tol, "gemm_lt %s->%s %d x %d x %d: %d of %d candidates ran, worst "
          "rel err %.2e < %.0e", type_name(ab), type_name(ct), n_tok, n_out, n_in, ran, n, worst,
          tol);
    /* no pick yet: -1, and a run with ALGO -1 is refused */
    check(gemm_lt_picked(g, n_tok, n_out, n_in, ab, ct) == -1 &&
          gemm_lt_run(g, -1, dc, dx, dw, n_tok, n_out, n_in, ab, ct, 0) == cudaErrorInvalidValue,
          "gemm_lt %d x %d x %d: nothing picked, nothing runs", n_tok, n_out, n_in);
    int pick = n - 1;
    gemm_lt_pick(g, n_tok, n_out, n_in, ab, ct, pick);
    CUDA_CHECK(cudaMemset(dc, 0xff, nc * (f32_out ? 4 : 2)));
    cudaError_t e = gemm_lt_run(g, -1, dc, dx, dw, n_tok, n_out, n_in, ab, ct, 0);
    if (e == cudaSuccess) {
        CUDA_CHECK(cudaDeviceSynchronize());
        if (f32_out) CUDA_CHECK(cudaMemcpy(got, dc, nc * 4, cudaMemcpyDeviceToHost));
        else dev_download16(got, dc, nc, dt);
    }
    check(gemm_lt_picked(g, n_tok, n_out, n_in, ab, ct) == pick &&
          (e != cudaSuccess || max_row_rel_err(got, ref, n_tok, n_out) < tol),
          "gemm_lt %d x %d x %d: pick %d recorded and run", n_tok, n_out, n_in, pick);
    gemm_lt_pick(g, n_tok, n_out, n_in, ab, ct, -1);
    check(gemm_lt_picked(g, n_tok, n_out, n_in, ab, ct) == -1, "gemm_lt: pick cleared");
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dw)); CUDA_CHECK(cudaFree(dc));
    free(x), free(w), free(ref), free(got);
}

int main(void)
{
    test_init("test_gemm_lt");
    void *ws;
    size_t ws_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    gemm_lt *g = gemm_lt_create(ws, ws_bytes);
    check(g != NULL, "gemm_lt_create");
    for (int rep = 0; rep < 3; rep++) {
        shape_case(g, rng_int(9, 300), 8 * rng_int(1, 300), 8 * rng_int(1, 300), KDT_BF16, 0);
        shape_case(g, rng_int(9, 300), 8 * rng_int(1, 300), 8 * rng_int(1, 300), KDT_F16, 0);
        shape_case(g, rng_int(9, 64), 8 * rng_int(1, 500), 8 * rng_int(1, 200), KDT_BF16, 1);
    }
    shape_case(g, 64, 6144, 4096, KDT_BF16, 0);    /* Llama-3-8B qkv at batch 64 */
    shape_case(g, 64, 4096, 4096, KDT_BF16, 0);    /* o */
    shape_case(g, 64, 4096, 14336, KDT_BF16, 0);   /* down */
    check(gemm_lt_run(g, 0, NULL, ws, ws, 16, 16, 16, CUDA_R_16BF, CUDA_R_16BF, 0) ==
              cudaErrorInvalidValue &&
          gemm_lt_run(g, 0, ws, ws, ws, 17, 16, 16, CUDA_R_16BF, CUDA_R_16BF, 0) ==
              cudaErrorInvalidValue,
          "gemm_lt_run refuses a NULL operand and a shape without a plan");
    gemm_lt_free(g);
    CUDA_CHECK(cudaFree(ws));
    return test_summary("test_gemm_lt");
}
