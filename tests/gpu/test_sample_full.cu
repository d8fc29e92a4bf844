/* test_sample_full.cu - sample_full_run against its CPU reference, the CPU backend's sampler
 * (worker/sampling.c, sampler_sample): random logits rows (some with ties for the top, some
 * with -inf entries), every sampling mode (greedy, temperature, top-k, top-p, both), penalties
 * (repetition, frequency, presence) over random token histories with repeats, logit_bias
 * entries (small, and +-100) and ids min_tokens suppresses, random seeds and positions,
 * vocabularies from 7 to 128256, rows selected out of order. The token must be the
 * reference's on every row and the (raw) logprob within 1e-3 (sums in double on both sides;
 * summation order differs). Outputs poisoned; a row of NaN logits must give a non-finite
 * logprob (the worker fails such a request). */
#include "gpu_test.h"
#include "../../kernels/sample_full.cuh"
extern "C" {
#include "../../worker/sampling.h"
}

static void run_case(int n_rows, int vocab, int mode_mix)
{
    int n_src = n_rows + 3;   /* logits rows to pick from */
    size_t sz = (size_t)n_src * vocab;
    float *x = (float *)malloc(sizeof(float) * sz);
    fill_uniform(x, sz, -8.f, 8.f);
    for (int r = 0; r < n_src; r++) {
        float *row = x + (size_t)r * vocab;
        if (vocab > 8 && r % 4 == 1) {
            int a = rng_int(0, vocab - 1), b = rng_int(0, vocab - 1);
            row[a] = row[b] = 9.f;           /* a tie for the top */
        }
        if (vocab > 8 && r % 4 == 2)
            for (int k = 0; k < vocab / 8; k++) row[rng_int(0, vocab - 1)] = -INFINITY;
    }
    int32_t *rows = (int32_t *)malloc(sizeof(int32_t) * n_rows);
    sample_row_params *prm = (sample_row_params *)calloc(n_rows, sizeof *prm);
    sampling_params *sp = (sampling_params *)calloc(n_rows, sizeof *sp);
    enum { HIST = 48, BIAS = 6, SUP = 3 };
    int32_t *hist = (int32_t *)malloc(sizeof(int32_t) * n_rows * HIST);
    int32_t *sup = (int32_t *)malloc(sizeof(int32_t) * n_rows * SUP);
    int *n_hist = (int *)malloc(sizeof(int) * n_rows), *n_prompt = (int *)malloc(sizeof(int) * n_rows);
    int *n_sup = (int *)calloc(n_rows, sizeof(int));
    sample_penalty *pen = (sample_penalty *)malloc(sizeof *pen * n_rows * (HIST + BIAS + SUP));
    int n_pen = 0, any_sort = 0;
    for (int r = 0; r < n_rows; r++) {
        rows[r] = rng_int(0, n_src - 1);
        sampling_params *p = &sp[r];
        *p = (sampling_params){.max_new_tokens = 1, .top_p = 1, .repetition_penalty = 1};
        int mode = mode_mix ? rng_int(0, 4) : 0;
        if (mode) p->temperature = rng_uniform(0.3f, 1.5f);
        if (mode == 2 || mode == 4) p->top_k = rng_int(1, vocab < 60 ? vocab : 60);
        if (mode == 3 || mode == 4) p->top_p = rng_uniform(0.05f, 0.95f);
        if (rng_int(0, 2) == 0) p->repetition_penalty = rng_uniform(0.7f, 1.5f);
        if (rng_int(0, 2) == 0) p->frequency_penalty = rng_uniform(-0.5f, 1.f);
        if (rng_int(0, 2) == 0) p->presence_penalty = rng_uniform(-0.5f, 1.f);
        p->seed = rng_next();
        n_hist[r] = rng_int(1, HIST);
        n_prompt[r] = rng_int(0, n_hist[r]);
        int32_t *h = hist + (size_t)r * HIST;
        for (int i = 0; i < n_hist[r]; i++) h[i] = rng_int(0, vocab < 40 ? vocab - 1 : 39);
        /* logit_bias: distinct ids, some among the history's, some at the API's limits */
        if (rng_int(0, 2) == 0)
            for (int i = 0; i < BIAS && p->n_logit_bias < vocab; i++) {
                int32_t id = rng_int(0, vocab < 60 ? vocab - 1 : 59);
                bool dup = false;
                for (int j = 0; j < p->n_logit_bias; j++) dup |= p->bias_ids[j] == id;
                if (dup) continue;
                p->bias_ids[p->n_logit_bias] = id;
                p->bias[p->n_logit_bias++] = rng_int(0, 3) == 0 ? (rng_int(0, 1) ? 100.f : -100.f)
                                                                 : rng_uniform(-5.f, 5.f);
            }
        /* min_tokens: ids not to sample (not all of a tiny vocabulary) */
        if (rng_int(0, 3) == 0 && vocab > 2 * SUP)
            for (int i = 0; i < SUP; i++) sup[r * SUP + n_sup[r]++] = rng_int(0, vocab - 1);
        /* the list as the engine builds it: every distinct token when the repetition penalty
           is on, else those of the output (n_out counts the output occurrences); then the
           biased ids and the suppressed ones (bias -inf) */
        bool rep = p->repetition_penalty != 1.f, fp = p->frequency_penalty != 0.f ||
                                                        p->presence_penalty != 0.f;
        int first = n_pen;
        auto entry = [&](int32_t t) -> sample_penalty & {
            int k = first;
            while (k < n_pen && pen[k].token != t) k++;
            if (k == n_pen) pen[n_pen++] = (sample_penalty){t, 0, 0, 0.f};
            return pen[k];
        };
        for (int i = rep ? 0 : n_prompt[r]; (rep || fp) && i < n_hist[r]; i++) {
            sample_penalty &q = entry(h[i]);
            q.in_seq = 1;
            if (i >= n_prompt[r]) q.n_out++;
        }
        for (int i = 0; i < p->n_logit_bias; i++) entry(p->bias_ids[i]).bias += p->bias[i];
        for (int i = 0; i < n_sup[r]; i++) entry(sup[r * SUP + i]).bias = -INFINITY;
        prm[r] = (sample_row_params){p->temperature, p->top_k, p->top_p, p->repetition_penalty,
                                     p->frequency_penalty, p->presence_penalty, first, n_pen,
                                     p->seed, (uint64_t)n_hist[r]};
        bool greedy = !(p->temperature > 0.f);
        if (!greedy && ((p->top_k > 0 && p->top_k < vocab) || (p->top_p > 0.f && p->top_p < 1.f)))
            any_sort = 1;
    }
    float *dx = (float *)dev_upload(x, sizeof(float) * sz);
    int32_t *drows = (int32_t *)dev_upload(rows, sizeof(int32_t) * n_rows);
    sample_row_params *dprm = (sample_row_params *)dev_upload(prm, sizeof *prm * n_rows);
    sample_penalty *dpen = (sample_penalty *)dev_upload(pen, sizeof *pen * (n_pen ? n_pen : 1));
    int32_t *dtok = (int32_t *)dev_alloc_poisoned(sizeof(int32_t) * n_rows);
    float *dlp = (float *)dev_alloc_poisoned(sizeof(float) * n_rows);
    size_t ws_bytes = sample_full_workspace_size(n_rows, vocab);
    void *ws = dev_alloc_poisoned(ws_bytes);
    CUDA_CHECK(sample_full_run(dtok, dlp, dx, drows, dprm, dpen, n_rows, vocab, any_sort, ws,
                               ws_bytes, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * n_rows);
    float *lp = (float *)malloc(sizeof(float) * n_rows);
    CUDA_CHECK(cudaMemcpy(tok, dtok, sizeof(int32_t) * n_rows, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(lp, dlp, sizeof(float) * n_rows, cudaMemcpyDeviceToHost));
    sampler smp;
    CUDA_CHECK(sampler_init(&smp, vocab) ? cudaErrorMemoryAllocation : cudaSuccess);
    int bad = 0;
    double worst = 0;
    for (int r = 0; r < n_rows; r++) {
        float rlp;
        sample_input in = {&sp[r], hist + (size_t)r * HIST, n_hist[r], n_prompt[r],
                           sup + (size_t)r * SUP, n_sup[r]};
        int32_t want = sampler_sample(&smp, x + (size_t)rows[r] * vocab, &in, &rlp);
        if (want != tok[r]) bad++;
        double d = isfinite(lp[r]) ? fabs((double)lp[r] - rlp) / (1.0 + fabs(rlp)) : INFINITY;
        if (d > worst) worst = d;
    }
    check(bad == 0 && worst <= 1e-3,
          "sample_full rows=%d vocab=%d %s: %d tokens differ from the CPU sampler, logprob err "
          "%.2e (bound 1e-3)", n_rows, vocab, mode_mix ? "mixed modes" : "greedy", bad, worst);
    sampler_free(&smp);
    free(x); free(rows); free(prm); free(sp); free(hist); free(n_hist); free(n_prompt); free(pen);
    free(sup); free(n_sup);
    free(tok); free(lp);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(drows)); CUDA_CHECK(cudaFree(dprm));
    CUDA_CHECK(cudaFree(dpen)); CUDA_CHECK(cudaFree(dtok)); CUDA_CHECK(cudaFree(dlp));
    CUDA_CHECK(cudaFree(ws));
}

/* Rows of NaN logits: every mode must report a non-finite logprob. */
static void nan_rows(void)
{
    const int vocab = 1000, n = 4;
    float *x = (float *)malloc(sizeof(float) * n * vocab);
    for (int i = 0; i < n * vocab; i++) x[i] = NAN;
    int32_t rows[n] = {0, 1, 2, 3};
    sample_row_params prm[n] = {};
    for (int r = 0; r < n; r++) {
        prm[r].temperature = r ? 0.8f : 0.f;
        prm[r].top_k = r == 2 ? 10 : 0;
        prm[r].top_p = r == 3 ? 0.9f : 1.f;
        prm[r].repetition_penalty = 1.f;
        prm[r].seed = r;
    }
    float *dx = (float *)dev_upload(x, sizeof(float) * n * vocab);
    int32_t *drows = (int32_t *)dev_upload(rows, sizeof rows);
    sample_row_params *dprm = (sample_row_params *)dev_upload(prm, sizeof prm);
    int32_t *dtok = (int32_t *)dev_alloc_poisoned(sizeof(int32_t) * n);
    float *dlp = (float *)dev_alloc_poisoned(sizeof(float) * n);
    size_t ws_bytes = sample_full_workspace_size(n, vocab);
    void *ws = dev_alloc_poisoned(ws_bytes);
    CUDA_CHECK(sample_full_run(dtok, dlp, dx, drows, dprm, NULL, n, vocab, 1, ws, ws_bytes, 0));
    float lp[n];
    CUDA_CHECK(cudaMemcpy(lp, dlp, sizeof lp, cudaMemcpyDeviceToHost));
    int n_finite = 0;
    for (int r = 0; r < n; r++) n_finite += isfinite(lp[r]) != 0;
    check(n_finite == 0, "sample_full NaN rows: %d of %d logprobs finite (want 0)", n_finite, n);
    free(x);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(drows)); CUDA_CHECK(cudaFree(dprm));
    CUDA_CHECK(cudaFree(dtok)); CUDA_CHECK(cudaFree(dlp)); CUDA_CHECK(cudaFree(ws));
}

int main(void)
{
    test_init("test_sample_full");
    for (int rep = 0; rep < 2; rep++) {
        run_case(rng_int(1, 9), 32000, 1);
        run_case(64, 128256, 1);
        run_case(40, 777, 1);
        run_case(17, 7, 1);
        run_case(200, 4099, 1);
        run_case(12, 50257, 0);
    }
    nan_rows();
    return test_summary("test_sample_full");
}
