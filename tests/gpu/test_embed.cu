/* test_embed.cu - embed_run against embed_ref: random ids with out-of-range ones (zero rows),
 * exact comparison. */
#include "gpu_test.h"
#include "../../kernels/embed.cuh"
#include "../../kernels/ref.h"

static void run_case(int n, int vocab, int dim, kdtype dt)
{
    size_t tsz = (size_t)vocab * dim, osz = (size_t)n * dim;
    float *table = (float *)malloc(sizeof(float) * tsz), *ref = (float *)malloc(sizeof(float) * osz);
    float *out = (float *)malloc(sizeof(float) * osz);
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * n);
    fill_uniform(table, tsz, -1.f, 1.f);
    for (int t = 0; t < n; t++) ids[t] = rng_int(0, 20) == 0 ? rng_int(-3, 3) * vocab - rng_int(0, 1) : rng_int(0, vocab - 1);
    ids[0] = vocab - 1;
    void *dtab = dev_upload16(table, tsz, dt), *dout = dev_alloc_poisoned(osz * 2);
    int32_t *dids = (int32_t *)dev_upload(ids, sizeof(int32_t) * n);
    CUDA_CHECK(embed_run(dout, dtab, dids, n, vocab, dim, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    embed_ref(ref, table, ids, n, vocab, dim);
    dev_download16(out, dout, osz, dt);
    size_t bad = 0;
    for (size_t i = 0; i < osz; i++) bad += out[i] != ref[i];
    check(bad == 0, "embed %s tokens=%d vocab=%d dim=%d: %zu wrong elements", dt_name(dt), n,
          vocab, dim, bad);
    free(table); free(ref); free(out); free(ids);
    CUDA_CHECK(cudaFree(dtab)); CUDA_CHECK(cudaFree(dout)); CUDA_CHECK(cudaFree(dids));
}

int main(void)
{
    test_init("test_embed");
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 100), 32000, 288, KDT_BF16);
        run_case(rng_int(1, 100), 5000, 4096, KDT_BF16);
        run_case(1, 3, 8, KDT_F16);
        run_case(777, 1000, 64, KDT_F16);
    }
    return test_summary("test_embed");
}
