/* test_rope.cu - rope_run against rope_ref on q and k inside one fused QKV buffer (v must be
 * left untouched): plain RoPE and Llama-3.1 scaling, head dims 48/64/128, positions up to
 * 128k, bf16 and fp16. */
#include "gpu_test.h"
#include "../../kernels/rope.cuh"
#include "../../kernels/ref.h"

static void run_case(int n_tok, int nh, int nkv, int hd, rope_params p, int max_pos, kdtype dt)
{
    int stride = (nh + 2 * nkv) * hd;
    size_t sz = (size_t)n_tok * stride;
    float *x = (float *)malloc(sizeof(float) * sz), *out = (float *)malloc(sizeof(float) * sz);
    int32_t *pos = (int32_t *)malloc(sizeof(int32_t) * n_tok);
    fill_uniform(x, sz, -2.f, 2.f);
    for (int t = 0; t < n_tok; t++) pos[t] = rng_int(0, max_pos);
    pos[0] = max_pos;
    void *dx = dev_upload16(x, sz, dt);
    int32_t *dpos = (int32_t *)dev_upload(pos, sizeof(int32_t) * n_tok);
    size_t es = 2;
    CUDA_CHECK(rope_run(dx, stride, (char *)dx + (size_t)nh * hd * es, stride, dpos, n_tok, nh,
                        nkv, hd, p, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    rope_ref(x, stride, x + nh * hd, stride, pos, n_tok, nh, nkv, hd, &p);
    dev_download16(out, dx, sz, dt);
    /* rows of head_dim: q and k rows must match the reference, v rows exactly */
    double err = max_row_rel_err(out, x, sz / hd, hd);
    size_t v_bad = 0;
    for (int t = 0; t < n_tok; t++)
        for (int i = (nh + nkv) * hd; i < stride; i++)
            v_bad += out[(size_t)t * stride + i] != x[(size_t)t * stride + i];
    check(err <= dt_tol(dt) && v_bad == 0,
          "rope %s tokens=%d heads=%d/%d hd=%d theta=%g factor=%g max_pos=%d: max row rel err "
          "%.2e (bound %.0e), %zu v elements changed",
          dt_name(dt), n_tok, nh, nkv, hd, p.theta, p.factor, max_pos, err, dt_tol(dt), v_bad);
    free(x); free(out); free(pos);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dpos));
}

int main(void)
{
    test_init("test_rope");
    rope_params plain = {10000.f, 0.f, 0.f, 0.f, 0};
    rope_params llama31 = {500000.f, 8.f, 1.f, 4.f, 8192};
    rope_params llama3 = {500000.f, 0.f, 0.f, 0.f, 0};
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 20), 6, 6, 48, plain, 255, KDT_BF16);
        run_case(37, 32, 8, 128, llama31, 131071, KDT_BF16);
        run_case(rng_int(1, 64), 32, 8, 128, llama3, 8191, KDT_BF16);
        run_case(9, 4, 2, 64, plain, 2047, KDT_F16);
        run_case(5, 8, 8, 128, llama31, 500, KDT_F16);
    }
    return test_summary("test_rope");
}
