/* test_gemv.cu - the decode GEMV kernel (kernels/gemv.cu) against an fp64 CPU product on the
 * same bf16/fp16-rounded inputs: 1..8 token rows, odd row counts, inner sizes that are not
 * multiples of the 64-element step, fp32 and 16-bit outputs, the fused SiLU-mul; then the
 * fused forms against gemv_ref (kernels/gemv_ref.c): RMSNorm prologue, residual add, QKV with
 * RoPE (plain and Llama-3.1 scaling) and the KV store into NaN-poisoned caches (rows of skipped
 * or unused slots must stay untouched), with and without the dependent launch, and the
 * Llama-3-8B shapes (which take the 4-tile blocks). Fresh random inputs per case; outputs
 * poisoned with NaN before each run. */
#include "gpu_test.h"
#include "../../kernels/gemv.cuh"
#include "../../kernels/ref.h"

static void one_case(int n_tok, int n_out, int n_in, int out_f32, int silu, kdtype dt)
{
    size_t nx = (size_t)n_tok * n_in, nw = (size_t)n_out * n_in;
    int rows = silu ? n_out / 2 : n_out;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(nw * 4);
    float *ref = (float *)malloc((size_t)n_tok * rows * 4), *got = (float *)malloc((size_t)n_tok * rows * 4);
    fill_uniform(x, nx, -1.f, 1.f);
    fill_uniform(w, nw, -0.1f, 0.1f);
    void *dx = dev_upload16(x, nx, dt), *dw = dev_upload16(w, nw, dt);
    size_t ob = (size_t)n_tok * rows * (out_f32 ? 4 : 2);
    void *dout = dev_alloc_poisoned(ob);
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < rows; r++) {
            double g = 0, u = 0;
            for (int k = 0; k < n_in; k++) {
                g += (double)w[(size_t)r * n_in + k] * x[(size_t)t * n_in + k];
                if (silu) u += (double)w[(size_t)(r + rows) * n_in + k] * x[(size_t)t * n_in + k];
            }
            ref[(size_t)t * rows + r] = (float)(silu ? g / (1 + exp(-g)) * u : g);
        }
    CUDA_CHECK(gemv_run(dout, dx, dw, n_tok, n_out, n_in, out_f32, silu, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    if (out_f32) CUDA_CHECK(cudaMemcpy(got, dout, ob, cudaMemcpyDeviceToHost));
    else dev_download16(got, dout, (size_t)n_tok * rows, dt);
    double err = max_row_rel_err(got, ref, (size_t)n_tok, (size_t)rows);
    double tol = out_f32 ? 1e-4 : dt_tol(dt);
    check(err < tol, "gemv %s n_tok %d n_out %d n_in %d%s%s: rel err %.2e < %.0e", dt_name(dt),
          n_tok, n_out, n_in, out_f32 ? " f32-out" : "", silu ? " silu" : "", err, tol);
    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dout));
    free(x), free(w), free(ref), free(got);
}

static const char *kind_name(gemv_epi_kind k)
{
    static const char *n[] = {"out", "out-f32", "resid", "silu", "qkv"};
    return n[k];
}

/* Whether every 16-bit element of the N at D is the poison (all bits set). */
static int all_poison16(const uint16_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (d[i] != 0xffff) return 0;
    return 1;
}

/* One fused case with fresh inputs. QKV: N_OUT is (nh + 2 nkv) * hd. */
static void fused_case(kdtype dt, gemv_epi_kind kind, int norm, int n_tok, int n_out, int n_in,
                       int nh, int nkv, int hd, rope_params rp)
{
    size_t nx = (size_t)n_tok * n_in, nw = (size_t)n_out * n_in;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(nw * 4);
    float *g = (float *)malloc((size_t)n_in * 4);
    fill_uniform(x, nx, -1.f, 1.f);
    fill_uniform(w, nw, -0.1f, 0.1f);
    fill_uniform(g, n_in, 0.5f, 1.5f);
    void *dx = dev_upload16(x, nx, dt), *dw = dev_upload16(w, nw, dt), *dg = dev_upload16(g, n_in, dt);
    int out_f32 = kind == GEMV_OUT_F32;
    int width = kind == GEMV_SILU ? n_out / 2 : n_out;   /* out row (QKV: its stride) */
    int q_dim = nh * hd, kv_dim = nkv * hd, n_slots = n_tok + 3;
    if (kind == GEMV_QKV) width = q_dim + 8 * rng_int(0, 2);
    size_t n_o = (size_t)n_tok * width, ob = n_o * (out_f32 ? 4 : 2);
    float *ref = (float *)malloc(n_o * 4), *got = (float *)malloc(n_o * 4);
    void *dout;
    if (kind == GEMV_RESID) {   /* the residual stream: random, updated in place */
        fill_uniform(ref, n_o, -1.f, 1.f);
        dout = dev_upload16(ref, n_o, dt);
    } else {
        dout = dev_alloc_poisoned(ob);
        for (size_t i = 0; i < n_o; i++) ref[i] = NAN;
    }
    /* QKV: distinct shuffled cache slots, one token skipped (slot -1) when there are several */
    int32_t *pos = (int32_t *)malloc(sizeof(int32_t) * n_tok), *slot = (int32_t *)malloc(sizeof(int32_t) * n_slots);
    for (int i = 0; i < n_slots; i++) slot[i] = i;
    shuffle_i32(slot, n_slots);
    for (int t = 0; t < n_tok; t++) pos[t] = rng_int(0, 8191);
    if (n_tok > 1) slot[rng_int(0, n_tok - 1)] = -1;
    size_t n_cache = (size_t)n_slots * kv_dim;
    float *kc = (float *)malloc(n_cache * 4 + 4), *vc = (float *)malloc(n_cache * 4 + 4);
    for (size_t i = 0; i < n_cache; i++) kc[i] = vc[i] = NAN;
    void *dkc = dev_alloc_poisoned(n_cache * 2), *dvc = dev_alloc_poisoned(n_cache * 2);
    int32_t *dpos = (int32_t *)dev_upload(pos, sizeof(int32_t) * n_tok);
    int32_t *dslot = (int32_t *)dev_upload(slot, sizeof(int32_t) * n_tok);

    gemv_epi e = {};
    e.kind = kind;
    e.norm_w = norm ? dg : NULL;
    e.norm_eps = 1e-5f;
    e.pdl = rng_int(0, 1);
    e.n_heads = nh, e.n_kv_heads = nkv, e.head_dim = hd, e.out_stride = width;
    e.pos = dpos, e.slot = dslot, e.k_cache = dkc, e.v_cache = dvc, e.rope = rp;
    CUDA_CHECK(gemv_fused_run(dout, dx, dw, n_tok, n_out, n_in, &e, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    gemv_ref_qkv rq = {nh, nkv, hd, width, pos, slot, kc, vc, rp};
    int rk = kind == GEMV_RESID ? GEMV_REF_RESID : kind == GEMV_SILU ? GEMV_REF_SILU
           : kind == GEMV_QKV ? GEMV_REF_QKV : GEMV_REF_OUT;
    gemv_ref(ref, x, w, n_tok, n_out, n_in, rk, norm ? g : NULL, 1e-5f, &rq);

    if (out_f32) CUDA_CHECK(cudaMemcpy(got, dout, ob, cudaMemcpyDeviceToHost));
    else dev_download16(got, dout, n_o, dt);
    double err, tol = out_f32 && !norm ? 1e-4 : dt_tol(dt);
    size_t untouched_bad = 0;
    if (kind == GEMV_QKV) {   /* q columns of out; k and v rows of the slots written */
        float *gq = (float *)malloc((size_t)n_tok * q_dim * 4), *rq_ = (float *)malloc((size_t)n_tok * q_dim * 4);
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < q_dim; i++) {
                gq[(size_t)t * q_dim + i] = got[(size_t)t * width + i];
                rq_[(size_t)t * q_dim + i] = ref[(size_t)t * width + i];
            }
        err = max_row_rel_err(gq, rq_, n_tok, q_dim);
        uint16_t *hk = (uint16_t *)malloc(n_cache * 2 + 2), *hv = (uint16_t *)malloc(n_cache * 2 + 2);
        CUDA_CHECK(cudaMemcpy(hk, dkc, n_cache * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(hv, dvc, n_cache * 2, cudaMemcpyDeviceToHost));
        float *fk = (float *)malloc(n_cache * 4 + 4), *fv = (float *)malloc(n_cache * 4 + 4);
        dev_download16(fk, dkc, n_cache, dt);
        dev_download16(fv, dvc, n_cache, dt);
        for (int s = 0; s < n_slots; s++) {
            size_t o = (size_t)s * kv_dim;
            if (isnan(kc[o])) {   /* no token wrote this slot */
                untouched_bad += !all_poison16(hk + o, kv_dim) + !all_poison16(hv + o, kv_dim);
                continue;
            }
            double ek = max_row_rel_err(fk + o, kc + o, 1, kv_dim);
            double ev = max_row_rel_err(fv + o, vc + o, 1, kv_dim);
            err = ek > err ? ek : err;
            err = ev > err ? ev : err;
        }
        for (int t = 0; t < n_tok; t++)   /* columns past q untouched */
            for (int i = q_dim; i < width; i++) untouched_bad += !isnan(got[(size_t)t * width + i]);
        free(gq), free(rq_), free(hk), free(hv), free(fk), free(fv);
    } else {
        err = max_row_rel_err(got, ref, n_tok, width);
    }
    check(err < tol && untouched_bad == 0,
          "gemv fused %s %s%s n_tok %d n_out %d n_in %d%s%s: rel err %.2e < %.0e, %zu untouched "
          "rows changed", kind_name(kind), dt_name(dt), norm ? " +norm" : "", n_tok, n_out, n_in,
          kind == GEMV_QKV ? " heads" : "", kind == GEMV_QKV ? (rp.factor > 0 ? " llama3" : " plain") : "",
          err, tol, untouched_bad);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dw)); CUDA_CHECK(cudaFree(dg));
    CUDA_CHECK(cudaFree(dout)); CUDA_CHECK(cudaFree(dkc)); CUDA_CHECK(cudaFree(dvc));
    CUDA_CHECK(cudaFree(dpos)); CUDA_CHECK(cudaFree(dslot));
    free(x), free(w), free(g), free(ref), free(got), free(pos), free(slot), free(kc), free(vc);
}

static void fused_qkv(kdtype dt, int norm, int n_tok, int nh, int nkv, int hd, int n_in, int llama3)
{
    rope_params rp = {500000.f, 0.f, 0.f, 0.f, 0};
    if (llama3) rp = (rope_params){500000.f, 8.f, 1.f, 4.f, 8192};
    fused_case(dt, GEMV_QKV, norm, n_tok, (nh + 2 * nkv) * hd, n_in, nh, nkv, hd, rp);
}

int main(void)
{
    test_init("test_gemv");
    for (int i = 0; i < 12; i++) {
        kdtype dt = i % 3 == 2 ? KDT_F16 : KDT_BF16;
        int n_tok = rng_int(1, GEMV_MAX_TOKENS), n_in = 8 * rng_int(1, 700);
        int silu = i % 4 == 1, f32 = !silu && i % 4 == 2;
        int n_out = silu ? 2 * rng_int(1, 300) : rng_int(1, 600);
        one_case(n_tok, n_out, n_in, f32, silu, dt);
    }
    one_case(1, 6144, 4096, 0, 0, KDT_BF16);
    one_case(8, 28672 / 8, 4096, 0, 1, KDT_BF16);
    one_case(3, 4096, 14336, 0, 0, KDT_BF16);
    /* fused forms: random shapes, every kind, with and without the norm */
    rope_params none = {10000.f, 0.f, 0.f, 0.f, 0};
    for (int i = 0; i < 16; i++) {
        kdtype dt = i % 4 == 3 ? KDT_F16 : KDT_BF16;
        gemv_epi_kind kind = (gemv_epi_kind)(i % 4);   /* out, out-f32, resid, silu */
        int n_tok = rng_int(1, GEMV_MAX_TOKENS), n_in = 8 * rng_int(1, 600), norm = i / 4 % 2;
        int n_out = kind == GEMV_SILU ? 2 * rng_int(1, 300) : rng_int(1, 700);
        fused_case(dt, kind, norm, n_tok, n_out, n_in, 0, 0, 0, none);
    }
    static const int hds[] = {16, 48, 64, 128};
    for (int i = 0; i < 8; i++) {
        int nkv = rng_int(1, 4), nh = nkv * rng_int(1, 4);
        fused_qkv(i % 4 == 1 ? KDT_F16 : KDT_BF16, i % 3 != 2, rng_int(1, GEMV_MAX_TOKENS), nh,
                  nkv, hds[i % 4], 8 * rng_int(2, 100), i % 2);
    }
    /* Llama-3-8B decode shapes (the gate/up and LM-head sizes take 4-tile blocks) */
    fused_qkv(KDT_BF16, 1, 1, 32, 8, 128, 4096, 1);
    fused_qkv(KDT_BF16, 1, rng_int(2, 8), 32, 8, 128, 4096, 1);
    fused_case(KDT_BF16, GEMV_RESID, 0, 1, 4096, 4096, 0, 0, 0, none);
    fused_case(KDT_BF16, GEMV_SILU, 1, rng_int(1, 4), 2 * 14336, 4096, 0, 0, 0, none);
    fused_case(KDT_BF16, GEMV_RESID, 0, rng_int(1, 8), 4096, 14336, 0, 0, 0, none);
    fused_case(KDT_BF16, GEMV_OUT_F32, 1, 2, 32000, 4096, 0, 0, 0, none);
    gemv_epi bad = {};
    bad.kind = GEMV_QKV;   /* no heads, caches or positions */
    CUDA_CHECK(gemv_fused_run((void *)8, (void *)8, (void *)8, 1, 48, 8, &bad, KDT_BF16, 0) ==
                       cudaErrorInvalidValue ? cudaSuccess : cudaErrorUnknown);
    CUDA_CHECK(gemv_run(NULL, NULL, NULL, 9, 8, 8, 0, 0, KDT_BF16, 0) == cudaErrorInvalidValue
                   ? cudaSuccess : cudaErrorUnknown);
    return test_summary("test_gemv");
}
