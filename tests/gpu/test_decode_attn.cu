/* test_decode_attn.cu - decode_attn_run against attn_ref on random paged caches: GQA/MQA/MHA,
 * head dims 48/64/128, block sizes 1..256, split counts 1..8 and automatic, empty splits and
 * empty contexts, q inside a wider (fused QKV) row, sliding windows (shorter and longer than
 * contexts, cutting blocks and splits), bf16 and fp16. */
#include "gpu_test.h"
#include "../../kernels/decode_attn.cuh"
#include "../../kernels/ref.h"

typedef struct {
    int n_seqs, n_heads, n_kv, hd, bs, max_ctx, n_splits; /* n_splits 0: decode_attn_splits */
    int q_pad;      /* extra elements per q row */
    int zero_ctx;   /* last sequence has an empty context */
    kdtype dt;
    int window;     /* sliding window; 0 none, -1 random in [1, max_ctx] */
} dcase;

static void run_case(const dcase *c, int n_sms)
{
    int n = c->n_seqs;
    int32_t *ctx = (int32_t *)malloc(sizeof(int32_t) * n);
    for (int s = 0; s < n; s++) ctx[s] = rng_int(1, c->max_ctx);
    ctx[0] = c->max_ctx;
    if (n > 2) ctx[1] = 1;
    if (c->zero_ctx) ctx[n - 1] = 0;
    paged_kv kv;
    paged_kv_init(&kv, ctx, n, c->n_kv, c->hd, c->bs, c->dt);

    int q_stride = c->n_heads * c->hd + c->q_pad;
    size_t n_out = (size_t)n * c->n_heads * c->hd;
    float *hq = (float *)malloc(sizeof(float) * n * q_stride);
    fill_uniform(hq, (size_t)n * q_stride, -2.f, 2.f);
    void *dq = dev_upload16(hq, (size_t)n * q_stride, c->dt);
    int32_t *dctx = (int32_t *)dev_upload(ctx, sizeof(int32_t) * n);
    int splits = c->n_splits ? c->n_splits
                             : decode_attn_splits(n, c->n_heads, c->n_kv, c->hd, c->max_ctx, n_sms);
    size_t ws_bytes = decode_attn_workspace_size(n, c->n_heads, c->hd, splits);
    void *ws = ws_bytes ? dev_alloc_poisoned(ws_bytes) : NULL;
    void *dout = dev_alloc_poisoned(n_out * 2);
    float scale = rng_uniform(0.5f, 2.f) / sqrtf((float)c->hd);
    int window = c->window >= 0 ? c->window : rng_int(1, c->max_ctx);

    CUDA_CHECK(decode_attn_run(dout, dq, q_stride, kv.dk, kv.dv, kv.dbt, kv.max_bps, dctx, n,
                               c->n_heads, c->n_kv, c->hd, c->bs, scale, window, splits, ws,
                               splits & 1 /* early launch on odd split counts */, c->dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());

    float *out = (float *)malloc(sizeof(float) * n_out), *ref = (float *)malloc(sizeof(float) * n_out);
    dev_download16(out, dout, n_out, c->dt);
    int32_t *cu = (int32_t *)malloc(sizeof(int32_t) * (n + 1));
    for (int s = 0; s <= n; s++) cu[s] = s;
    attn_ref(ref, hq, q_stride, kv.hk, kv.hv, kv.hbt, kv.max_bps, cu, ctx, n, c->n_heads,
             c->n_kv, c->hd, c->bs, scale, window);
    for (int s = 0; s < n; s++)   /* an empty context attends to nothing: zeros */
        if (ctx[s] == 0) memset(ref + (size_t)s * c->n_heads * c->hd, 0,
                                sizeof(float) * c->n_heads * c->hd);
    double err = max_row_rel_err(out, ref, (size_t)n * c->n_heads, c->hd);
    check(err <= dt_tol(c->dt),
          "decode_attn %s seqs=%d heads=%d/%d hd=%d bs=%d max_ctx=%d splits=%d q_pad=%d "
          "window=%d%s: max row rel err %.2e (bound %.0e)",
          dt_name(c->dt), n, c->n_heads, c->n_kv, c->hd, c->bs, c->max_ctx, splits, c->q_pad,
          window, c->zero_ctx ? " empty-ctx" : "", err, dt_tol(c->dt));

    paged_kv_free(&kv);
    free(ctx); free(hq); free(out); free(ref); free(cu);
    CUDA_CHECK(cudaFree(dq)); CUDA_CHECK(cudaFree(dctx)); CUDA_CHECK(cudaFree(dout));
    if (ws) CUDA_CHECK(cudaFree(ws));
}

int main(void)
{
    test_init("test_decode_attn");
    int dev, n_sms;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n_sms, cudaDevAttrMultiProcessorCount, dev));
    static const dcase cases[] = {
        /* seqs heads kv  hd   bs  ctx  splits pad zero dt */
        {3,  8,  2, 128, 16,  700, 0, 0,   0, KDT_BF16},
        {5,  6,  6, 48,  1,   300, 1, 0,   1, KDT_BF16},   /* stories15M shape, token pages */
        {4,  6,  6, 48,  1,   257, 3, 0,   1, KDT_BF16},
        {4,  32, 8, 128, 256, 1500, 4, 2 * 8 * 128, 0, KDT_BF16}, /* Llama-3-8B in fused QKV */
        {2,  16, 1, 64,  7,   333, 3, 0,   0, KDT_BF16},   /* MQA, 16 heads a group */
        {3,  40, 1, 64,  3,   200, 2, 8,   0, KDT_BF16},   /* 40 heads a group: 3 head groups */
        {2,  4,  4, 64,  32,  65,  8, 0,   1, KDT_BF16},   /* more splits than tiles */
        {6,  32, 8, 128, 16,  2100, 0, 0,  0, KDT_BF16},
        {4,  8,  2, 128, 16,  900, 5, 0,   0, KDT_F16},
        {3,  12, 4, 64,  5,   400, 1, 0,   0, KDT_F16},
        /* sliding windows */
        {4,  8,  2, 128, 16,  700, 0, 0,   0, KDT_BF16, 100},
        {5,  32, 8, 128, 16,  2100, 4, 0,  1, KDT_BF16, 4096},  /* wider than every context */
        {3,  4,  4, 64,  7,   500, 3, 0,   0, KDT_BF16, 65},
        {6,  6,  6, 48,  1,   300, 0, 0,   0, KDT_F16, -1},
        {4,  16, 1, 64,  3,   900, 8, 0,   0, KDT_BF16, -1},
        {2,  8,  2, 128, 32,  600, 1, 0,   0, KDT_BF16, 1},     /* only the token itself */
    };
    for (int rep = 0; rep < 2; rep++)
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) run_case(&cases[i], n_sms);

    int32_t one = 1;
    cudaError_t e = decode_attn_run(NULL, NULL, 80 * 4, NULL, NULL, NULL, 1, &one, 1, 4, 4, 80,
                                    16, 1.f, 0, 1, NULL, 0, KDT_BF16, 0);
    check(e == cudaErrorInvalidValue, "decode_attn rejects head_dim 80");
    e = decode_attn_run(NULL, NULL, 128 * 6, NULL, NULL, NULL, 1, &one, 1, 6, 4, 128, 16, 1.f,
                        0, 1, NULL, 0, KDT_BF16, 0);
    check(e == cudaErrorInvalidValue, "decode_attn rejects 6 heads over 4 kv heads");
    return test_summary("test_decode_attn");
}
