/* test_kv_store.cu - kv_store_run against kv_store_ref: random distinct slots with padding
 * (-1) entries, k/v rows inside wider fused rows, the rest of the cache left untouched. */
#include "gpu_test.h"
#include "../../kernels/kv_store.cuh"
#include "../../kernels/ref.h"

static void run_case(int n_tok, int n_kv, int hd, int n_slots, int pad, kdtype dt)
{
    size_t row = (size_t)n_kv * hd, n_cache = (size_t)n_slots * row;
    int stride = (int)row + pad;
    float *hk = (float *)malloc(sizeof(float) * n_cache), *hv = (float *)malloc(sizeof(float) * n_cache);
    float *src = (float *)malloc(sizeof(float) * n_tok * stride * 2);
    fill_uniform(hk, n_cache, -1.f, 1.f);
    fill_uniform(hv, n_cache, -1.f, 1.f);
    fill_uniform(src, (size_t)n_tok * stride * 2, -3.f, 3.f);
    int32_t *perm = (int32_t *)malloc(sizeof(int32_t) * n_slots), *slots = (int32_t *)malloc(sizeof(int32_t) * n_tok);
    for (int i = 0; i < n_slots; i++) perm[i] = i;
    shuffle_i32(perm, n_slots);
    for (int t = 0; t < n_tok; t++) slots[t] = rng_int(0, 9) == 0 ? -1 : perm[t];
    void *dk = dev_upload16(hk, n_cache, dt), *dv = dev_upload16(hv, n_cache, dt);
    /* k rows then v rows, interleaved per token as in a fused [k | v] buffer */
    void *dsrc = dev_upload16(src, (size_t)n_tok * stride * 2, dt);
    int32_t *dslots = (int32_t *)dev_upload(slots, sizeof(int32_t) * n_tok);
    char *k = (char *)dsrc, *v = (char *)dsrc + (size_t)stride * 2;
    CUDA_CHECK(kv_store_run(dk, dv, k, 2 * stride, v, 2 * stride, dslots, n_tok, n_kv, hd, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    kv_store_ref(hk, hv, src, 2 * stride, src + stride, 2 * stride, slots, n_tok, n_kv, hd);
    float *ok = (float *)malloc(sizeof(float) * n_cache), *ov = (float *)malloc(sizeof(float) * n_cache);
    dev_download16(ok, dk, n_cache, dt);
    dev_download16(ov, dv, n_cache, dt);
    size_t bad = 0;
    for (size_t i = 0; i < n_cache; i++) bad += ok[i] != hk[i] || ov[i] != hv[i];
    check(bad == 0, "kv_store %s tokens=%d kv_heads=%d hd=%d slots=%d pad=%d: %zu wrong elements",
          dt_name(dt), n_tok, n_kv, hd, n_slots, pad, bad);
    free(hk); free(hv); free(src); free(perm); free(slots); free(ok); free(ov);
    CUDA_CHECK(cudaFree(dk)); CUDA_CHECK(cudaFree(dv)); CUDA_CHECK(cudaFree(dsrc));
    CUDA_CHECK(cudaFree(dslots));
}

int main(void)
{
    test_init("test_kv_store");
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 300), 8, 128, 4096, 0, KDT_BF16);
        run_case(rng_int(1, 300), 6, 48, 1000, 6 * 48, KDT_BF16);
        run_case(1, 1, 64, 7, 8, KDT_BF16);
        run_case(rng_int(100, 200), 2, 64, 333, 0, KDT_F16);
        run_case(rng_int(1, 50), 40, 128, 64, 16, KDT_BF16);   /* rows wider than a block */
    }
    return test_summary("test_kv_store");
}
