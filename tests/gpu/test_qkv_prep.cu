/* test_qkv_prep.cu - qkv_prep_run against qkv_prep_ref: bias only (Qwen2), norm only (Qwen3),
 * both, head dims 48..256, GQA and MHA, rows inside a wider stride, bf16 and fp16; the
 * padding past each row stays untouched. qkv_finish_run (the fused decode path's bias, norm,
 * RoPE and K/V store) against qkv_prep_ref, rope_ref and kv_store_ref: q in place, k and v in
 * shuffled cache rows, a token without a slot storing nothing. */
#include "gpu_test.h"
#include "../../kernels/qkv_prep.cuh"
#include "../../kernels/ref.h"

/* The bias and q/k norm weights of a case, random, rounded to the dtype on upload (the host
 * copies then hold what the kernel reads); the pointers a call passes are NULL when off. */
typedef struct {
    float *b, *qn, *kn;   /* host: [width], [hd], [hd] */
    void *db, *dqn, *dkn;
    int with_bias, with_norm;
} prep_w;

static void prep_w_init(prep_w *p, int width, int hd, int with_bias, int with_norm, kdtype dt)
{
    p->b = (float *)malloc(sizeof(float) * width);
    p->qn = (float *)malloc(sizeof(float) * hd);
    p->kn = (float *)malloc(sizeof(float) * hd);
    fill_uniform(p->b, width, -1.f, 1.f);
    fill_uniform(p->qn, hd, 0.2f, 2.f);
    fill_uniform(p->kn, hd, 0.2f, 2.f);
    p->db = dev_upload16(p->b, width, dt);
    p->dqn = dev_upload16(p->qn, hd, dt);
    p->dkn = dev_upload16(p->kn, hd, dt);
    p->with_bias = with_bias, p->with_norm = with_norm;
}

static void prep_w_free(prep_w *p)
{
    free(p->b); free(p->qn); free(p->kn);
    CUDA_CHECK(cudaFree(p->db)); CUDA_CHECK(cudaFree(p->dqn)); CUDA_CHECK(cudaFree(p->dkn));
}

#define PW_BIAS(p, x) ((p)->with_bias ? (p)->x : NULL)
#define PW_NORM(p, x) ((p)->with_norm ? (p)->x : NULL)

static void run_case(int n_tok, int nh, int nkv, int hd, int pad, int with_bias, int with_norm,
                     kdtype dt)
{
    int width = (nh + 2 * nkv) * hd, stride = width + pad;
    size_t sz = (size_t)n_tok * stride;
    float *h = (float *)malloc(sizeof(float) * sz), *ref = (float *)malloc(sizeof(float) * sz);
    float *out = (float *)malloc(sizeof(float) * sz);
    fill_uniform(h, sz, -3.f, 3.f);
    prep_w w;
    prep_w_init(&w, width, hd, with_bias, with_norm, dt);
    void *dq = dev_upload16(h, sz, dt);
    dev_download16(ref, dq, sz, dt);   /* the inputs as rounded to the element type */
    float eps = 1e-6f;
    CUDA_CHECK(qkv_prep_run(dq, stride, n_tok, nh, nkv, hd, PW_BIAS(&w, db), PW_NORM(&w, dqn),
                            PW_NORM(&w, dkn), eps, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *pad_before = (float *)malloc(sizeof(float) * sz);
    memcpy(pad_before, ref, sizeof(float) * sz);
    qkv_prep_ref(ref, stride, n_tok, nh, nkv, hd, PW_BIAS(&w, b), PW_NORM(&w, qn), PW_NORM(&w, kn),
                 eps);
    dev_download16(out, dq, sz, dt);
    double err = max_row_rel_err(out, ref, (size_t)n_tok * (nh + 2 * nkv), hd);
    if (pad) err = 0;   /* rows with padding: compare head by head below */
    int pad_ok = 1;
    for (int t = 0; t < n_tok && pad; t++) {
        double e = max_row_rel_err(out + (size_t)t * stride, ref + (size_t)t * stride,
                                   nh + 2 * nkv, hd);
        err = e > err ? e : err;
        for (int i = width; i < stride; i++)
            pad_ok &= out[(size_t)t * stride + i] == pad_before[(size_t)t * stride + i];
    }
    check(err <= dt_tol(dt) && pad_ok,
          "qkv_prep %s tok=%d heads=%d/%d hd=%d pad=%d%s%s: max head rel err %.2e (bound %.0e)%s",
          dt_name(dt), n_tok, nh, nkv, hd, pad, with_bias ? " bias" : "", with_norm ? " norm" : "",
          err, dt_tol(dt), pad_ok ? "" : ", padding written");
    free(h); free(ref); free(out); free(pad_before);
    prep_w_free(&w);
    CUDA_CHECK(cudaFree(dq));
}

static void finish_case(int n_tok, int nh, int nkv, int hd, int with_bias, int with_norm,
                        kdtype dt)
{
    int width = (nh + 2 * nkv) * hd, kv_dim = nkv * hd, n_slots = n_tok + 3;
    size_t sz = (size_t)n_tok * width, csz = (size_t)n_slots * kv_dim;
    float *h = (float *)malloc(sizeof(float) * sz), *ref = (float *)malloc(sizeof(float) * sz);
    float *out = (float *)malloc(sizeof(float) * sz);
    float *kc = (float *)calloc(csz, sizeof(float)), *vc = (float *)calloc(csz, sizeof(float));
    float *rkc = (float *)calloc(csz, sizeof(float)), *rvc = (float *)calloc(csz, sizeof(float));
    int32_t *pos = (int32_t *)malloc(4 * n_tok), *slot = (int32_t *)malloc(4 * n_slots);
    fill_uniform(h, sz, -3.f, 3.f);
    prep_w w;
    prep_w_init(&w, width, hd, with_bias, with_norm, dt);
    for (int i = 0; i < n_slots; i++) slot[i] = i;
    shuffle_i32(slot, n_slots);
    if (n_tok > 1) slot[rng_int(0, n_tok - 1)] = -1;
    for (int t = 0; t < n_tok; t++) pos[t] = rng_int(0, 5000);
    void *dq = dev_upload16(h, sz, dt);
    void *dkc = dev_upload16(kc, csz, dt), *dvc = dev_upload16(vc, csz, dt);
    int32_t *dpos = (int32_t *)dev_upload(pos, 4 * n_tok), *dslot = (int32_t *)dev_upload(slot, 4 * n_tok);
    memcpy(ref, h, sizeof(float) * sz);
    rope_params rp = {1000000.f, 0.f, 0.f, 0.f, 0};
    float eps = 1e-6f;
    CUDA_CHECK(qkv_finish_run(dq, width, n_tok, nh, nkv, hd, PW_BIAS(&w, db), PW_NORM(&w, dqn),
                              PW_NORM(&w, dkn), eps, dpos, dslot, dkc, dvc, rp, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    qkv_prep_ref(ref, width, n_tok, nh, nkv, hd, PW_BIAS(&w, b), PW_NORM(&w, qn), PW_NORM(&w, kn),
                 eps);
    rope_ref(ref, width, ref + nh * hd, width, pos, n_tok, nh, nkv, hd, &rp);
    kv_store_ref(rkc, rvc, ref + nh * hd, width, ref + (nh + nkv) * hd, width, slot, n_tok, nkv, hd);
    dev_download16(out, dq, sz, dt);
    dev_download16(kc, dkc, csz, dt);
    dev_download16(vc, dvc, csz, dt);
    double err = 0;
    for (int t = 0; t < n_tok; t++) {   /* the q heads in place */
        double e = max_row_rel_err(out + (size_t)t * width, ref + (size_t)t * width, nh, hd);
        err = e > err ? e : err;
    }
    double ek = max_row_rel_err(kc, rkc, (size_t)n_slots * nkv, hd);
    double ev = max_row_rel_err(vc, rvc, (size_t)n_slots * nkv, hd);
    check(err <= dt_tol(dt) && ek <= dt_tol(dt) && ev <= dt_tol(dt),
          "qkv_finish %s tok=%d heads=%d/%d hd=%d%s%s: q %.2e, k cache %.2e, v cache %.2e "
          "(bound %.0e)", dt_name(dt), n_tok, nh, nkv, hd, with_bias ? " bias" : "",
          with_norm ? " norm" : "", err, ek, ev, dt_tol(dt));
    free(h); free(ref); free(out); free(kc); free(vc); free(rkc); free(rvc); free(pos); free(slot);
    prep_w_free(&w);
    CUDA_CHECK(cudaFree(dq)); CUDA_CHECK(cudaFree(dkc)); CUDA_CHECK(cudaFree(dvc));
    CUDA_CHECK(cudaFree(dpos)); CUDA_CHECK(cudaFree(dslot));
}

int main(void)
{
    test_init("test_qkv_prep");
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 40), 28, 4, 128, 0, 1, 0, KDT_BF16);    /* Qwen2.5-7B */
        run_case(rng_int(1, 40), 32, 8, 128, 0, 0, 1, KDT_BF16);    /* Qwen3-8B */
        run_case(rng_int(1, 40), 16, 8, 128, 64, 1, 1, KDT_BF16);
        run_case(rng_int(1, 9), 6, 6, 48, 0, 1, 1, KDT_F16);
        run_case(rng_int(1, 9), 64, 4, 256, 0, 0, 1, KDT_BF16);
        run_case(rng_int(1, 9), 12, 2, 64, 8, 1, 0, KDT_F16);
        finish_case(rng_int(1, 8), 28, 4, 128, 1, 0, KDT_BF16);   /* Qwen2.5-7B decode */
        finish_case(rng_int(1, 8), 32, 8, 128, 0, 1, KDT_BF16);   /* Qwen3-8B decode */
        finish_case(rng_int(1, 8), 32, 4, 128, 0, 1, KDT_BF16);   /* Qwen3-30B-A3B */
        finish_case(rng_int(1, 8), 8, 2, 64, 1, 1, KDT_F16);
        finish_case(rng_int(1, 8), 6, 6, 48, 0, 0, KDT_BF16);
    }
    check(qkv_prep_run(NULL, 384, 1, 1, 1, 128, NULL, (void *)1, NULL, 1e-6f, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "qkv_prep rejects a q norm without a k norm");
    check(qkv_prep_run(NULL, 3 * 512, 1, 1, 1, 512, (void *)1, NULL, NULL, 1e-6f, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "qkv_prep rejects head_dim 512");
    return test_summary("test_qkv_prep");
}
