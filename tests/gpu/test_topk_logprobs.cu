/* test_topk_logprobs.cu - topk_logprobs_run against its CPU reference, the CPU backend's
 * sampler_top_logprobs (worker/sampling.c): random logits rows (some with many equal values,
 * so ties must go to the lower id; some with -inf entries; some with a narrow spread),
 * vocabularies from 1 to 128256, rows selected out of order (some twice), k from 0 to 20 and
 * up to the vocabulary, a random sampled token per row. The ids must be the reference's, in
 * order, and the logprobs (the top ones, and the sampled token's for rows with k > 0) within
 * 1e-5 (double sums on both sides, in another order); entries past k, and the sampled logprob
 * of rows with k = 0, must stay untouched (outputs poisoned with NaN / -1). */
#include "gpu_test.h"
#include "../../kernels/topk_logprobs.cuh"
extern "C" {
#include "../../worker/sampling.h"
}

static void run_case(int n_rows, int vocab, float spread, int k_max)
{
    const int M = TOPK_LOGPROBS_MAX;
    int n_src = n_rows + 2;
    size_t sz = (size_t)n_src * vocab;
    float *x = (float *)malloc(sizeof(float) * sz);
    fill_uniform(x, sz, -spread, spread);
    for (int r = 0; r < n_src; r++) {
        float *row = x + (size_t)r * vocab;
        if (r % 4 == 1)   /* few distinct values: long runs of ties */
            for (int i = 0; i < vocab; i++) row[i] = (float)rng_int(0, 5);
        if (vocab > 8 && r % 4 == 2)
            for (int i = 0; i < vocab / 3; i++) row[rng_int(0, vocab - 1)] = -INFINITY;
    }
    int32_t *rows = (int32_t *)malloc(sizeof(int32_t) * n_rows);
    int32_t *k = (int32_t *)malloc(sizeof(int32_t) * n_rows);
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * n_rows);
    for (int r = 0; r < n_rows; r++) {
        rows[r] = rng_int(0, n_src - 1);
        int hi = k_max < vocab ? k_max : vocab;
        k[r] = rng_int(0, 4) == 0 ? 0 : rng_int(1, hi);
        tok[r] = rng_int(0, vocab - 1);
    }
    float *dx = (float *)dev_upload(x, sizeof(float) * sz);
    int32_t *drows = (int32_t *)dev_upload(rows, sizeof(int32_t) * n_rows);
    int32_t *dk = (int32_t *)dev_upload(k, sizeof(int32_t) * n_rows);
    int32_t *dtok = (int32_t *)dev_upload(tok, sizeof(int32_t) * n_rows);
    int32_t *dids = (int32_t *)dev_alloc_poisoned(sizeof(int32_t) * n_rows * M);
    float *dlps = (float *)dev_alloc_poisoned(sizeof(float) * n_rows * M);
    float *dtlp = (float *)dev_alloc_poisoned(sizeof(float) * n_rows);
    CUDA_CHECK(topk_logprobs_run(dids, dlps, dtlp, dx, drows, dk, dtok, n_rows, vocab, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * n_rows * M);
    float *lps = (float *)malloc(sizeof(float) * n_rows * M), *tlp = (float *)malloc(sizeof(float) * n_rows);
    CUDA_CHECK(cudaMemcpy(ids, dids, sizeof(int32_t) * n_rows * M, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(lps, dlps, sizeof(float) * n_rows * M, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(tlp, dtlp, sizeof(float) * n_rows, cudaMemcpyDeviceToHost));
    sampler smp;
    CUDA_CHECK(sampler_init(&smp, vocab) ? cudaErrorMemoryAllocation : cudaSuccess);
    int bad_ids = 0, touched = 0;
    double worst = 0;
    int32_t rid[M];
    float rlp[M];
    for (int r = 0; r < n_rows; r++) {
        const float *row = x + (size_t)rows[r] * vocab;
        if (k[r] > 0) {
            sampler_top_logprobs(&smp, row, k[r], rid, rlp);
            float want = sampler_logprob(row, sampler_lse(row, vocab), tok[r]);
            double d = isfinite(want) ? (isfinite(tlp[r]) ? fabs((double)tlp[r] - want) : INFINITY)
                                      : (tlp[r] == want ? 0 : INFINITY);
            if (!(d <= worst)) worst = d;
        } else {
            touched += !isnan(tlp[r]);
        }
        for (int j = 0; j < M; j++) {
            int32_t id = ids[(size_t)r * M + j];
            float lp = lps[(size_t)r * M + j];
            if (j >= k[r]) {   /* untouched: still the poison */
                touched += id != -1 || !isnan(lp);
                continue;
            }
            bad_ids += id != rid[j];
            double d = isfinite(rlp[j]) ? (isfinite(lp) ? fabs((double)lp - rlp[j]) : INFINITY)
                                        : (lp == rlp[j] ? 0 : INFINITY);
            if (!(d <= worst)) worst = d;
        }
    }
    check(bad_ids == 0 && touched == 0 && worst <= 1e-5,
          "topk_logprobs rows=%d vocab=%d spread=%g k<=%d: %d ids differ from the CPU reference, "
          "%d entries past k (or sampled logprobs of k = 0 rows) written, logprob err %.2e (bound 1e-5)", n_rows, vocab, spread,
          k_max, bad_ids, touched, worst);
    sampler_free(&smp);
    free(x); free(rows); free(k); free(tok); free(ids); free(lps); free(tlp);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(drows)); CUDA_CHECK(cudaFree(dk));
    CUDA_CHECK(cudaFree(dtok)); CUDA_CHECK(cudaFree(dids)); CUDA_CHECK(cudaFree(dlps));
    CUDA_CHECK(cudaFree(dtlp));
}

int main(void)
{
    test_init("test_topk_logprobs");
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 9), 32000, 10.f, 20);
        run_case(64, 128256, 30.f, 20);
        run_case(5, 1, 3.f, 20);
        run_case(17, 7, 1.f, 20);
        run_case(3, 50257, 0.01f, 5);
        run_case(1, 128256, 20.f, 1);
        run_case(200, 4099, 8.f, 20);
        run_case(33, 300, 2.f, 20);
    }
    return test_summary("test_topk_logprobs");
}
