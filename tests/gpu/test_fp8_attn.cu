/* test_fp8_attn.cu - the E4M3 KV cache (--kv-cache-dtype fp8): kv_store_fp8_run against
 * kv_store_fp8_ref (identical codes, padding and unowned slots untouched), then decode and
 * prefill attention over an E4M3 paged cache (random per-tensor scales, unowned slots NaN
 * codes) against attn_ref on the dequantized cache; GQA and MHA, head dims 48/64/128, several
 * block sizes and splits, sliding windows, bf16 and fp16. */
#include "gpu_test.h"
#include "../../kernels/decode_attn.cuh"
#include "../../kernels/fp8.h"
#include "../../kernels/fp8_ref.h"
#include "../../kernels/kv_store.cuh"
#include "../../kernels/prefill_attn.cuh"
#include "../../kernels/ref.h"

static void store_case(int n_tok, int n_kv, int hd, int n_slots, int pad, kdtype dt)
{
    int row = n_kv * hd, stride = row + pad;
    size_t n_cache = (size_t)n_slots * row;
    float *src = (float *)malloc(sizeof(float) * n_tok * stride * 2);
    fill_uniform(src, (size_t)n_tok * stride * 2, -3.f, 3.f);
    uint8_t *hk = (uint8_t *)malloc(n_cache), *hv = (uint8_t *)malloc(n_cache);
    memset(hk, 0xff, n_cache);
    memset(hv, 0xff, n_cache);
    int32_t *perm = (int32_t *)malloc(sizeof(int32_t) * n_slots), *slots = (int32_t *)malloc(sizeof(int32_t) * n_tok);
    for (int i = 0; i < n_slots; i++) perm[i] = i;
    shuffle_i32(perm, n_slots);
    for (int t = 0; t < n_tok; t++) slots[t] = rng_int(0, 9) == 0 ? -1 : perm[t];
    float ks = rng_uniform(0.005f, 0.05f), vs = rng_uniform(0.005f, 0.05f);
    void *dsrc = dev_upload16(src, (size_t)n_tok * stride * 2, dt);   /* rounds src too */
    void *dk = dev_alloc_poisoned(n_cache), *dv = dev_alloc_poisoned(n_cache);
    int32_t *dslots = (int32_t *)dev_upload(slots, sizeof(int32_t) * n_tok);
    char *k = (char *)dsrc, *v = (char *)dsrc + (size_t)stride * 2;
    CUDA_CHECK(kv_store_fp8_run(dk, dv, k, 2 * stride, v, 2 * stride, dslots, n_tok, n_kv, hd, ks,
                                vs, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    kv_store_fp8_ref(hk, hv, src, 2 * stride, src + stride, 2 * stride, slots, n_tok, row, ks, vs);
    uint8_t *gk = (uint8_t *)malloc(n_cache), *gv = (uint8_t *)malloc(n_cache);
    CUDA_CHECK(cudaMemcpy(gk, dk, n_cache, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(gv, dv, n_cache, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < n_cache; i++) bad += gk[i] != hk[i] || gv[i] != hv[i];
    check(bad == 0, "kv_store_fp8 %s tokens=%d kv_heads=%d hd=%d pad=%d: %zu wrong codes",
          dt_name(dt), n_tok, n_kv, hd, pad, bad);
    free(src), free(hk), free(hv), free(perm), free(slots), free(gk), free(gv);
    CUDA_CHECK(cudaFree(dsrc)); CUDA_CHECK(cudaFree(dk)); CUDA_CHECK(cudaFree(dv));
    CUDA_CHECK(cudaFree(dslots));
}

/* KV's host caches replaced by their E4M3 round trip at the scales (NaN stays NaN), and the
 * codes uploaded into *DK, *DV. */
static void to_fp8(paged_kv *kv, float ks, float vs, void **dk, void **dv)
{
    uint8_t *ck = (uint8_t *)malloc(kv->n_elems), *cv = (uint8_t *)malloc(kv->n_elems);
    for (size_t i = 0; i < kv->n_elems; i++) {
        ck[i] = fp8_e4m3_encode(kv->hk[i] / ks);
        cv[i] = fp8_e4m3_encode(kv->hv[i] / vs);
        kv->hk[i] = fp8_e4m3_decode(ck[i]) * ks;
        kv->hv[i] = fp8_e4m3_decode(cv[i]) * vs;
    }
    *dk = dev_upload(ck, kv->n_elems);
    *dv = dev_upload(cv, kv->n_elems);
    free(ck), free(cv);
}

/* N_SEQS sequences with Q_LEN [n] new tokens of SEQ_LEN [n]; DECODE: q_len 1 each through
 * decode_attn_fp8kv_run with SPLITS, else prefill_attn_fp8kv_run. */
static void attn_case(int decode, int n, const int *q_len, const int *seq_len, int nh, int nkv,
                      int hd, int bs, int splits, int window, kdtype dt)
{
    int cu[9] = {0}, max_q = 0, max_ctx = 0;
    for (int s = 0; s < n; s++) {
        cu[s + 1] = cu[s] + q_len[s];
        max_q = q_len[s] > max_q ? q_len[s] : max_q;
        max_ctx = seq_len[s] > max_ctx ? seq_len[s] : max_ctx;
    }
    int n_tok = cu[n], q_stride = nh * hd;
    paged_kv kv;
    paged_kv_init(&kv, seq_len, n, nkv, hd, bs, dt);
    float ks = rng_uniform(0.003f, 0.02f), vs = rng_uniform(0.003f, 0.02f);
    void *dk8, *dv8;
    to_fp8(&kv, ks, vs, &dk8, &dv8);
    size_t n_out = (size_t)n_tok * nh * hd;
    float *hq = (float *)malloc(sizeof(float) * n_tok * q_stride);
    fill_uniform(hq, (size_t)n_tok * q_stride, -2.f, 2.f);
    void *dq = dev_upload16(hq, (size_t)n_tok * q_stride, dt);
    int32_t *dcu = (int32_t *)dev_upload(cu, sizeof(int32_t) * (n + 1));
    int32_t *dsl = (int32_t *)dev_upload(seq_len, sizeof(int32_t) * n);
    void *dout = dev_alloc_poisoned(n_out * 2);
    float scale = 1.f / sqrtf((float)hd);
    size_t ws_bytes = decode ? decode_attn_workspace_size(n, nh, hd, splits) : 0;
    void *ws = ws_bytes ? dev_alloc_poisoned(ws_bytes) : NULL;
    if (decode)
        CUDA_CHECK(decode_attn_fp8kv_run(dout, dq, q_stride, dk8, dv8, kv.dbt, kv.max_bps, dsl, n,
                                         nh, nkv, hd, bs, scale, ks, vs, window, splits, ws, 0,
                                         dt, 0));
    else
        CUDA_CHECK(prefill_attn_fp8kv_run(dout, dq, q_stride, dk8, dv8, kv.dbt, kv.max_bps, dcu,
                                          dsl, n, max_q, nh, nkv, hd, bs, scale, ks, vs, window,
                                          dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *out = (float *)malloc(sizeof(float) * n_out), *ref = (float *)malloc(sizeof(float) * n_out);
    dev_download16(out, dout, n_out, dt);
    attn_ref(ref, hq, q_stride, kv.hk, kv.hv, kv.hbt, kv.max_bps, cu, seq_len, n, nh, nkv, hd, bs,
             scale, window);
    double err = max_row_rel_err(out, ref, (size_t)n_tok * nh, hd);
    check(err <= dt_tol(dt), "%s_attn fp8 KV %s seqs=%d heads=%d/%d hd=%d bs=%d max_ctx=%d "
          "splits=%d window=%d k/v scales %.4f/%.4f: max row rel err %.2e (bound %.0e)",
          decode ? "decode" : "prefill", dt_name(dt), n, nh, nkv, hd, bs, max_ctx, splits, window,
          ks, vs, err, dt_tol(dt));
    paged_kv_free(&kv);
    free(hq), free(out), free(ref);
    CUDA_CHECK(cudaFree(dk8)); CUDA_CHECK(cudaFree(dv8)); CUDA_CHECK(cudaFree(dq));
    CUDA_CHECK(cudaFree(dcu)); CUDA_CHECK(cudaFree(dsl)); CUDA_CHECK(cudaFree(dout));
    if (ws) CUDA_CHECK(cudaFree(ws));
}

int main(void)
{
    test_init("test_fp8_attn");
    for (int rep = 0; rep < 2; rep++) {
        store_case(rng_int(1, 300), 8, 128, 4096, 0, KDT_BF16);
        store_case(rng_int(1, 300), 6, 48, 1000, 6 * 48, KDT_F16);
        store_case(1, 1, 64, 7, 8, KDT_BF16);
    }
    int ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int rep = 0; rep < 2; rep++) {
        int sl[8];
        for (int s = 0; s < 8; s++) sl[s] = rng_int(1, 3000);
        attn_case(1, 8, ones, sl, 32, 8, 128, 16, 1, 0, KDT_BF16);
        attn_case(1, 8, ones, sl, 32, 8, 128, 16, 4, 0, KDT_BF16);
        attn_case(1, 3, ones, sl, 6, 6, 48, 1, 2, 0, KDT_BF16);
        attn_case(1, 5, ones, sl, 16, 4, 64, 7, 3, rng_int(1, 500), KDT_F16);
        int sh[8];   /* fewer tiles than the E4M3 pipeline has stages */
        for (int s = 0; s < 8; s++) sh[s] = rng_int(1, 250);
        attn_case(1, 8, ones, sh, 32, 8, 128, 16, 1, 0, KDT_BF16);
        attn_case(1, 8, ones, sh, 32, 8, 128, 16, 2, 0, KDT_F16);
        int ql[4] = {rng_int(1, 300), 17, 1, rng_int(100, 700)}, pl[4];
        for (int s = 0; s < 4; s++) pl[s] = ql[s] + rng_int(0, 500);
        attn_case(0, 4, ql, pl, 32, 8, 128, 16, 1, 0, KDT_BF16);
        attn_case(0, 4, ql, pl, 8, 2, 64, 3, 1, rng_int(1, 300), KDT_F16);
        attn_case(0, 4, ql, pl, 6, 6, 48, 256, 1, 0, KDT_BF16);
    }
    return test_summary("test_fp8_attn");
}
