/* test_prefill_attn_sm90.cu - the Hopper prefill attention kernel (prefill_attn_sm90_run):
 * every variant against attn_ref (CPU, fp32 over the rounded inputs) on small variable-length
 * batches (single tokens, lengths not multiples of the 128-row tiles, cached prefixes of any
 * length, GQA and MHA, block sizes 8..256, sliding windows), then against the portable
 * kernel on long shapes (1 x 4096 GQA, chunked prefill over 3000 cached tokens); poisoned
 * outputs, NaN in every cache slot no sequence owns, two runs bitwise equal (a race moves
 * them), the cases it does not cover refused with cudaErrorNotSupported, and prefill_attn_run
 * taking it (or, switched off, the portable kernel). On a device other than compute
 * capability 9.0 it checks the refusals only.
 */
#include "gpu_test.h"
#include "../../kernels/prefill_attn.cuh"
#include "../../kernels/prefill_attn_sm90.cuh"
#include "../../kernels/ref.h"

#define MAX_SEQS 6

/* prefill_attn_run with prefill_attn_sm90_run's signature (VARIANT unused). */
static cudaError_t prefill_attn_run_v(int variant, void *out, const void *q, int q_stride,
                                      const void *kc, const void *vc, const int32_t *bt,
                                      int max_bps, const int32_t *cu, const int32_t *sl,
                                      int n_seqs, int max_q, int nh, int nkv, int hd, int bs,
                                      float scale, int window, kdtype dt, cudaStream_t s)
{
    (void)variant;
    return prefill_attn_run(out, q, q_stride, kc, vc, bt, max_bps, cu, sl, n_seqs, max_q, nh,
                            nkv, hd, bs, scale, window, dt, s);
}

typedef struct {
    int n_heads, n_kv, bs, n_seqs;
    int q_len[MAX_SEQS], seq_len[MAX_SEQS];   /* seq_len >= q_len; -1: random */
} scase;

/* Case C with WINDOW: the reference once (attn_ref on the CPU when CPU_REF, else the
 * portable kernel), then each variant of VARIANTS (a 0-terminated list; -1: the default;
 * -2: through prefill_attn_run, which takes this kernel; -3: prefill_attn_run with the
 * kernel switched off) run twice into poisoned outputs. */
static void run_case(const scase *c, const int *variants, int window, int cpu_ref)
{
    int n = c->n_seqs, cu[MAX_SEQS + 1] = {0}, sl[MAX_SEQS], max_q = 0;
    for (int s = 0; s < n; s++) {
        int ql = c->q_len[s] >= 0 ? c->q_len[s] : rng_int(1, 400);
        sl[s] = c->seq_len[s] >= 0 ? c->seq_len[s] : ql + rng_int(0, 600);
        cu[s + 1] = cu[s] + ql;
        if (ql > max_q) max_q = ql;
    }
    const int hd = 128;
    int n_tok = cu[n], q_stride = (c->n_heads + 2 * c->n_kv) * hd;   /* fused QKV rows */
    paged_kv kv;
    paged_kv_init(&kv, sl, n, c->n_kv, hd, c->bs, KDT_BF16);
    size_t n_out = (size_t)n_tok * c->n_heads * hd;
    float *hq = (float *)malloc(sizeof(float) * n_tok * q_stride);
    fill_uniform(hq, (size_t)n_tok * q_stride, -2.f, 2.f);
    void *dq = dev_upload16(hq, (size_t)n_tok * q_stride, KDT_BF16);
    int32_t *dcu = (int32_t *)dev_upload(cu, sizeof(int32_t) * (n + 1));
    int32_t *dsl = (int32_t *)dev_upload(sl, sizeof(int32_t) * n);
    void *d1 = dev_alloc_poisoned(n_out * 2), *d2 = dev_alloc_poisoned(n_out * 2);
    float scale = rng_uniform(0.5f, 2.f) / sqrtf((float)hd);
    float *out = (float *)malloc(sizeof(float) * n_out);
    float *ref = (float *)malloc(sizeof(float) * n_out);
    uint16_t *b1 = (uint16_t *)malloc(n_out * 2), *b2 = (uint16_t *)malloc(n_out * 2);
    if (cpu_ref) {
        attn_ref(ref, hq, q_stride, kv.hk, kv.hv, kv.hbt, kv.max_bps, cu, sl, n, c->n_heads,
                 c->n_kv, hd, c->bs, scale, window);
    } else {
        CUDA_CHECK(prefill_attn_run_tiled(0, d1, dq, q_stride, kv.dk, kv.dv, kv.dbt, kv.max_bps,
                                          dcu, dsl, n, max_q, c->n_heads, c->n_kv, hd, c->bs,
                                          scale, window, KDT_BF16, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(ref, d1, n_out, KDT_BF16);
    }
    char lens[160];
    int o = 0;
    for (int s = 0; s < n && o < 120; s++)
        o += snprintf(lens + o, sizeof(lens) - o, " %d/%d", cu[s + 1] - cu[s], sl[s]);
    for (const int *v = variants; *v; v++) {
        int variant = *v < 0 ? 0 : *v;
        prefill_attn_sm90_set(*v != -3);
        for (int rep = 0; rep < 2; rep++) {
            void *d = rep ? d2 : d1;
            CUDA_CHECK(cudaMemset(d, 0xff, n_out * 2));
            CUDA_CHECK((*v <= -2 ? prefill_attn_run_v : prefill_attn_sm90_run)(
                variant, d, dq, q_stride, kv.dk, kv.dv, kv.dbt, kv.max_bps, dcu, dsl, n, max_q,
                c->n_heads, c->n_kv, hd, c->bs, scale, window, KDT_BF16, 0));
        }
        prefill_attn_sm90_set(1);
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(out, d1, n_out, KDT_BF16);
        CUDA_CHECK(cudaMemcpy(b1, d1, n_out * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(b2, d2, n_out * 2, cudaMemcpyDeviceToHost));
        double err = max_row_rel_err(out, ref, (size_t)n_tok * c->n_heads, hd);
        int same = memcmp(b1, b2, n_out * 2) == 0;
        check(err <= 1e-2 && same,
              "prefill_attn_sm90 variant=%d vs %s heads=%d/%d bs=%d window=%d q/kv lens:%s: "
              "max row rel err %.2e (bound 1e-02), repeat %s", *v,
              cpu_ref ? "CPU" : "portable kernel", c->n_heads, c->n_kv, c->bs, window, lens, err,
              same ? "bitwise equal" : "DIFFERS");
    }
    paged_kv_free(&kv);
    free(hq); free(out); free(ref); free(b1); free(b2);
    CUDA_CHECK(cudaFree(dq)); CUDA_CHECK(cudaFree(dcu)); CUDA_CHECK(cudaFree(dsl));
    CUDA_CHECK(cudaFree(d1)); CUDA_CHECK(cudaFree(d2));
}

/* Cases outside the kernel come back cudaErrorNotSupported (prefill_attn_run then takes the
 * portable kernel); bad arguments cudaErrorInvalidValue. */
static void check_refusals(void)
{
    int32_t *z;
    CUDA_CHECK(cudaMalloc(&z, 16));
    CUDA_CHECK(cudaMemset(z, 0, 16));
    struct { int hd, bs; kdtype dt; const char *what; } no[] = {
        {64, 16, KDT_BF16, "head_dim 64"}, {128, 16, KDT_F16, "fp16"},
        {128, 12, KDT_BF16, "block_size 12"}, {128, 48, KDT_BF16, "block_size 48"},
        {128, 1, KDT_BF16, "block_size 1"},
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        cudaError_t e = prefill_attn_sm90_run(0, z, z, 4 * no[i].hd, z, z, z, 1, z, z, 1, 1, 4,
                                              4, no[i].hd, no[i].bs, 1.f, 0, no[i].dt, 0);
        check(e == cudaErrorNotSupported, "prefill_attn_sm90 refuses %s (%s)", no[i].what,
              cudaGetErrorName(e));
    }
    cudaError_t e = prefill_attn_sm90_run(0, z, z, 4 * 128, z, z, z, 1, z, z, 1, 1, 4, 3, 128,
                                          16, 1.f, 0, KDT_BF16, 0);
    check(e == cudaErrorInvalidValue, "prefill_attn_sm90 rejects 4 heads over 3 kv heads (%s)",
          cudaGetErrorName(e));
    CUDA_CHECK(cudaFree(z));
}

int main(void)
{
    test_init("test_prefill_attn_sm90");
    int dev, major, minor;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    int hopper = major == 9 && minor == 0, available = prefill_attn_sm90_available();
    check(available == hopper, "prefill_attn_sm90 available %d on compute capability %d.%d",
          available, major, minor);
    check_refusals();
    if (!available) return test_summary("test_prefill_attn_sm90");

    static const scase small[] = {
        {8, 2, 16, 6, {1, 17, 100, 257, 64, 3}, {1, 17, 357, 257, 1000, 130}},
        {4, 4, 8, 3, {128, 129, 127}, {128, 300, 255}},
        {6, 2, 32, 2, {200, 1}, {701, 1}},
        {8, 8, 64, 1, {333}, {333}},
        {4, 1, 128, 2, {140, 256}, {400, 256}},
        {4, 2, 256, 2, {300, 50}, {300, 600}},
        {16, 2, 16, 4, {-1, -1, -1, -1}, {-1, -1, -1, -1}},   /* random lengths */
        {8, 4, 32, 5, {-1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1}},
    };
    static const int all[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1, -2, -3, 0};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        run_case(&small[i], all, 0, 1);
        run_case(&small[i], all, rng_int(1, 300), 1);
    }
    run_case(&small[0], all, 1, 1);

    static const scase large[] = {
        {32, 8, 16, 1, {4096}, {4096}},
        {16, 4, 16, 2, {1000, 1500}, {4000, 1500}},   /* chunked prefill over a cached prefix */
        {8, 8, 64, 3, {2048, 777, 1}, {2048, 3000, 2500}},
    };
    for (size_t i = 0; i < sizeof(large) / sizeof(large[0]); i++) {
        run_case(&large[i], all, 0, 0);
        run_case(&large[i], all, 1000, 0);
    }
    return test_summary("test_prefill_attn_sm90");
}
