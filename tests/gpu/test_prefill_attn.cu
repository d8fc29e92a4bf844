/* test_prefill_attn.cu - prefill_attn_run(_tiled) against attn_ref: variable-length batches
 * with and without cached context (chunked prefill), single-token and odd lengths, GQA and
 * MHA, head dims 48/64/128, block sizes 1..256, every tiling variant and the default, bf16
 * and fp16; each case also with a sliding window (random, shorter than most sequences) and
 * with a window of 1. */
#include "gpu_test.h"
#include "../../kernels/prefill_attn.cuh"
#include "../../kernels/ref.h"

#define MAX_SEQS 8

typedef struct {
    int n_heads, n_kv, hd, bs, q_pad;
    kdtype dt;
    int n_seqs;
    int q_len[MAX_SEQS], seq_len[MAX_SEQS];   /* seq_len >= q_len; -1: random */
} pcase;

static void run_case(const pcase *c, int variant, int window)
{
    int n = c->n_seqs, cu[MAX_SEQS + 1] = {0}, sl[MAX_SEQS], max_q = 0;
    for (int s = 0; s < n; s++) {
        int ql = c->q_len[s] >= 0 ? c->q_len[s] : rng_int(1, 300);
        sl[s] = c->seq_len[s] >= 0 ? c->seq_len[s] : ql + rng_int(0, 500);
        cu[s + 1] = cu[s] + ql;
        if (ql > max_q) max_q = ql;
    }
    int n_tok = cu[n];
    paged_kv kv;
    paged_kv_init(&kv, sl, n, c->n_kv, c->hd, c->bs, c->dt);
    int q_stride = c->n_heads * c->hd + c->q_pad;
    size_t n_out = (size_t)n_tok * c->n_heads * c->hd;
    float *hq = (float *)malloc(sizeof(float) * n_tok * q_stride);
    fill_uniform(hq, (size_t)n_tok * q_stride, -2.f, 2.f);
    void *dq = dev_upload16(hq, (size_t)n_tok * q_stride, c->dt);
    int32_t *dcu = (int32_t *)dev_upload(cu, sizeof(int32_t) * (n + 1));
    int32_t *dsl = (int32_t *)dev_upload(sl, sizeof(int32_t) * n);
    void *dout = dev_alloc_poisoned(n_out * 2);
    float scale = rng_uniform(0.5f, 2.f) / sqrtf((float)c->hd);

    CUDA_CHECK(prefill_attn_run_tiled(variant, dout, dq, q_stride, kv.dk, kv.dv, kv.dbt,
                                      kv.max_bps, dcu, dsl, n, max_q, c->n_heads, c->n_kv, c->hd,
                                      c->bs, scale, window, c->dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *out = (float *)malloc(sizeof(float) * n_out), *ref = (float *)malloc(sizeof(float) * n_out);
    dev_download16(out, dout, n_out, c->dt);
    attn_ref(ref, hq, q_stride, kv.hk, kv.hv, kv.hbt, kv.max_bps, cu, sl, n, c->n_heads, c->n_kv,
             c->hd, c->bs, scale, window);
    double err = max_row_rel_err(out, ref, (size_t)n_tok * c->n_heads, c->hd);
    char lens[256];
    int o = 0;
    for (int s = 0; s < n && o < 200; s++)
        o += snprintf(lens + o, sizeof(lens) - o, " %d/%d", cu[s + 1] - cu[s], sl[s]);
    check(err <= dt_tol(c->dt),
          "prefill_attn %s variant=%d heads=%d/%d hd=%d bs=%d q_pad=%d window=%d q/kv lens:%s: "
          "max row rel err %.2e (bound %.0e)",
          dt_name(c->dt), variant, c->n_heads, c->n_kv, c->hd, c->bs, c->q_pad, window, lens,
          err, dt_tol(c->dt));
    paged_kv_free(&kv);
    free(hq); free(out); free(ref);
    CUDA_CHECK(cudaFree(dq)); CUDA_CHECK(cudaFree(dcu)); CUDA_CHECK(cudaFree(dsl));
    CUDA_CHECK(cudaFree(dout));
}

int main(void)
{
    test_init("test_prefill_attn");
    static const pcase cases[] = {
        {8, 2, 128, 16, 0, KDT_BF16, 6, {1, 17, 100, 257, 64, 3}, {1, 17, 357, 257, 1000, 130}},
        {6, 6, 48, 1, 0, KDT_BF16, 3, {33, 200, 1}, {33, 250, 40}},          /* stories15M */
        {32, 8, 64, 256, 2 * 8 * 64, KDT_BF16, 2, {300, 129}, {300, 700}},   /* fused QKV rows */
        {16, 4, 128, 16, 0, KDT_BF16, 1, {700}, {1100}},
        {4, 4, 128, 7, 0, KDT_F16, 2, {150, 65}, {200, 65}},
        {12, 4, 64, 3, 0, KDT_F16, 3, {5, 127, 129}, {5, 300, 129}},
        {16, 2, 128, 32, 0, KDT_BF16, 4, {-1, -1, -1, -1}, {-1, -1, -1, -1}}, /* random lens */
        {6, 2, 48, 16, 0, KDT_BF16, 5, {-1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int v = 0; v <= 4; v++) {
            run_case(&cases[i], v, 0);
            run_case(&cases[i], v, rng_int(1, 200));
        }
        run_case(&cases[i], 0, 1);
    }
    int32_t z = 0;
    cudaError_t e = prefill_attn_run(NULL, NULL, 96 * 4, NULL, NULL, NULL, 1, &z, &z, 1, 1, 4,
                                     4, 96, 16, 1.f, 0, KDT_BF16, 0);
    check(e == cudaErrorInvalidValue, "prefill_attn rejects head_dim 96");
    return test_summary("test_prefill_attn");
}
