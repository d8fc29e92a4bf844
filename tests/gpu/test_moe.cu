/* test_moe.cu - the MoE kernels against their CPU references on random inputs: the router
 * (the CPU backend's cpu_moe_route: ids exact, weights 1e-5) with and without
 * renormalisation for Mixtral and Qwen3-MoE shapes (8 of 2, 128 of 8, 512 of 16); the stable
 * sort by expert (exact); the expert GEMV over pairs (bf16 / fp16 bound) reading pair
 * tokens through x_div; the weighted combine with and without a sorted position map. */
#include "gpu_test.h"
#include "../../kernels/moe.cuh"
#include "../../kernels/ref.h"
extern "C" {
#include "../../worker/cpu_ops.h"
}

static void route_and_sort(int n_tok, int n_exp, int k, int renorm)
{
    size_t nl = (size_t)n_tok * n_exp, np = (size_t)n_tok * k;
    float *hl = (float *)malloc(sizeof(float) * nl);
    fill_uniform(hl, nl, -4.f, 4.f);
    float *dl = (float *)dev_upload(hl, sizeof(float) * nl);
    int32_t *dids = (int32_t *)dev_alloc_poisoned(np * 4), *doff = (int32_t *)dev_alloc_poisoned((n_exp + 1) * 4);
    int32_t *dpos = (int32_t *)dev_alloc_poisoned(np * 4), *dsrc = (int32_t *)dev_alloc_poisoned(np * 4);
    float *dw = (float *)dev_alloc_poisoned(np * 4);
    CUDA_CHECK(moe_route_run(dids, dw, dl, n_tok, n_exp, k, renorm, 0));
    CUDA_CHECK(moe_sort_run(doff, dpos, dsrc, dids, (int)np, k, n_exp, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t *ids = (int32_t *)malloc(np * 4), *rids = (int32_t *)malloc(np * 4);
    float *w = (float *)malloc(np * 4), *rw = (float *)malloc(np * 4);
    CUDA_CHECK(cudaMemcpy(ids, dids, np * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(w, dw, np * 4, cudaMemcpyDeviceToHost));
    int ids_ok = 1;
    double werr = 0;
    for (int t = 0; t < n_tok; t++) {
        cpu_moe_route(hl + (size_t)t * n_exp, n_exp, k, renorm, rids + (size_t)t * k,
                      rw + (size_t)t * k);
        for (int j = 0; j < k; j++) {
            size_t p = (size_t)t * k + j;
            ids_ok &= ids[p] == rids[p];
            double e = fabs((double)w[p] - rw[p]) / fmax(1e-6, fabs((double)rw[p]));
            werr = e > werr ? e : werr;
        }
    }
    check(ids_ok && werr <= 1e-5, "moe_route tok=%d experts=%d k=%d renorm=%d: ids %s, weights "
          "max rel err %.1e", n_tok, n_exp, k, renorm, ids_ok ? "equal" : "DIFFER", werr);
    int32_t *off = (int32_t *)malloc((n_exp + 1) * 4), *pos = (int32_t *)malloc(np * 4);
    int32_t *src = (int32_t *)malloc(np * 4), *roff = (int32_t *)malloc((n_exp + 1) * 4);
    int32_t *rpos = (int32_t *)malloc(np * 4), *rsrc = (int32_t *)malloc(np * 4);
    CUDA_CHECK(cudaMemcpy(off, doff, (n_exp + 1) * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(pos, dpos, np * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(src, dsrc, np * 4, cudaMemcpyDeviceToHost));
    moe_sort_ref(roff, rpos, rsrc, ids, (int)np, k, n_exp);
    check(!memcmp(off, roff, (n_exp + 1) * 4) && !memcmp(pos, rpos, np * 4) &&
              !memcmp(src, rsrc, np * 4),
          "moe_sort pairs=%zu experts=%d: offsets, positions and sources equal", np, n_exp);
    free(hl); free(ids); free(rids); free(w); free(rw); free(off); free(pos); free(src);
    free(roff); free(rpos); free(rsrc);
    CUDA_CHECK(cudaFree(dl)); CUDA_CHECK(cudaFree(dids)); CUDA_CHECK(cudaFree(doff));
    CUDA_CHECK(cudaFree(dpos)); CUDA_CHECK(cudaFree(dsrc)); CUDA_CHECK(cudaFree(dw));
}

static void gemv_and_combine(int n_tok, int k, int n_exp, int n_out, int n_in, kdtype dt)
{
    int np = n_tok * k;
    size_t stride = (size_t)n_out * n_in + 8, nw = stride * n_exp;
    float *x = (float *)malloc(sizeof(float) * n_tok * n_in), *w = (float *)malloc(sizeof(float) * nw);
    fill_uniform(x, (size_t)n_tok * n_in, -2.f, 2.f);
    fill_uniform(w, nw, -0.2f, 0.2f);
    int32_t *ids = (int32_t *)malloc(np * 4);
    for (int p = 0; p < np; p++) ids[p] = rng_int(0, n_exp - 1);
    void *dx = dev_upload16(x, (size_t)n_tok * n_in, dt), *dwt = dev_upload16(w, nw, dt);
    dev_download16(x, dx, (size_t)n_tok * n_in, dt);   /* the rounded values */
    dev_download16(w, dwt, nw, dt);
    int32_t *dids = (int32_t *)dev_upload(ids, np * 4);
    void *dout = dev_alloc_poisoned((size_t)np * n_out * 2);
    CUDA_CHECK(moe_gemv_run(dout, dx, k, dwt, stride, dids, np, n_out, n_in, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *out = (float *)malloc(sizeof(float) * np * n_out), *ref = (float *)malloc(sizeof(float) * np * n_out);
    dev_download16(out, dout, (size_t)np * n_out, dt);
    moe_gemv_ref(ref, x, k, w, stride, ids, np, n_out, n_in);
    double err = max_row_rel_err(out, ref, np, n_out);
    check(err <= dt_tol(dt), "moe_gemv %s pairs=%d (k=%d) experts=%d out=%d in=%d: max row rel "
          "err %.2e (bound %.0e)", dt_name(dt), np, k, n_exp, n_out, n_in, err, dt_tol(dt));
    /* combine the GEMV's rows (as rounded), in pair order and through a shuffled map */
    float *wt = (float *)malloc(sizeof(float) * np);
    fill_uniform(wt, np, 0.f, 1.f);
    int32_t *pos = (int32_t *)malloc(np * 4);
    for (int p = 0; p < np; p++) pos[p] = p;
    for (int p = np - 1; p > 0; p--) {
        int q = rng_int(0, p), tmp = pos[p];
        pos[p] = pos[q], pos[q] = tmp;
    }
    float *dwt32 = (float *)dev_upload(wt, sizeof(float) * np);
    int32_t *dpos = (int32_t *)dev_upload(pos, np * 4);
    for (int mapped = 0; mapped < 2; mapped++) {
        void *dy = dev_alloc_poisoned((size_t)n_tok * n_out * 2);
        CUDA_CHECK(moe_combine_run(dy, dout, mapped ? dpos : NULL, dwt32, n_tok, k, n_out, dt, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        float *y = (float *)malloc(sizeof(float) * n_tok * n_out);
        float *ry = (float *)malloc(sizeof(float) * n_tok * n_out);
        dev_download16(y, dy, (size_t)n_tok * n_out, dt);
        moe_combine_ref(ry, out, mapped ? pos : NULL, wt, n_tok, k, n_out);
        double e = max_row_rel_err(y, ry, n_tok, n_out);
        check(e <= dt_tol(dt), "moe_combine %s tok=%d k=%d dim=%d%s: max row rel err %.2e",
              dt_name(dt), n_tok, k, n_out, mapped ? " mapped" : "", e);
        free(y); free(ry);
        CUDA_CHECK(cudaFree(dy));
    }
    free(x); free(w); free(ids); free(out); free(ref); free(wt); free(pos);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dwt)); CUDA_CHECK(cudaFree(dids));
    CUDA_CHECK(cudaFree(dout)); CUDA_CHECK(cudaFree(dwt32)); CUDA_CHECK(cudaFree(dpos));
}

int main(void)
{
    test_init("test_moe");
    for (int rep = 0; rep < 2; rep++) {
        route_and_sort(rng_int(1, 64), 8, 2, 1);        /* Mixtral */
        route_and_sort(rng_int(1, 300), 128, 8, 0);     /* Qwen3-30B-A3B */
        route_and_sort(rng_int(1, 300), 128, 8, 1);
        route_and_sort(2048, 64, 6, 1);
        route_and_sort(rng_int(1, 9), 512, 16, 0);
        route_and_sort(5, 3, 3, 1);                     /* every expert chosen */
        gemv_and_combine(rng_int(1, 8), 2, 8, 2 * 256, 512, KDT_BF16);
        gemv_and_combine(rng_int(1, 8), 8, 128, 2 * 96, 256, KDT_BF16);
        gemv_and_combine(rng_int(1, 8), 8, 128, 512, 96, KDT_F16);
        gemv_and_combine(3, 1, 4, 40, 1000, KDT_BF16);
    }
    check(moe_route_run(NULL, NULL, NULL, 1, 8, 17, 1, 0) == cudaErrorInvalidValue,
          "moe_route rejects k 17");
    check(moe_gemv_run(NULL, NULL, 1, NULL, 0, NULL, 1, 8, 12, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "moe_gemv rejects n_in 12");
    return test_summary("test_moe");
}
