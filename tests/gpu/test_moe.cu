/* test_moe.cu - the MoE kernels against their CPU references on random inputs: the router
 * (the CPU backend's cpu_moe_route: ids exact, weights 1e-5) with and without
 * renormalisation for Mixtral and Qwen3-MoE shapes (8 of 2, 128 of 8, 512 of 16), and told
 * the experts (forced: weights at those ids); the decode router in one launch (RMSNorm,
 * logits, top-k, its block counter reused); the stable sort by expert with the grouped
 * GEMM's tile offsets (exact); the expert GEMV over pairs (bf16 / fp16 bound) reading pair
 * tokens through x_div, and as the router's fp32 GEMV; the small-batch gate/up + SwiGLU and
 * down + weighted combine (into the residual or not; real Qwen3-MoE expert shapes, ragged
 * tiles, warps without work); the grouped GEMM over the sorted
 * segments (gate/up + SwiGLU through the source map, down), at ragged sizes (rows, columns
 * and k not multiples of the tiles); the weighted combine with and without a position map. */
#include "gpu_test.h"
#include "../../kernels/moe.cuh"
#include "../../kernels/ref.h"
extern "C" {
#include "../../worker/cpu_ops.h"
}

/* K distinct random experts of N_EXP into F. */
static void pick_distinct(int32_t *f, int k, int n_exp)
{
    for (int j = 0; j < k; j++) {
        int dup;
        do {
            f[j] = rng_int(0, n_exp - 1);
            dup = 0;
            for (int m = 0; m < j; m++) dup |= f[m] == f[j];
        } while (dup);
    }
}

/* Largest relative error of the router weights W [n_tok, k] against the softmax of LOGITS at
 * the forced IDS (divided by their sum when RENORM), in double. */
static double forced_weights_err(const float *logits, const int32_t *ids, const float *w,
                                 int n_tok, int n_exp, int k, int renorm)
{
    double werr = 0;
    for (int t = 0; t < n_tok; t++) {
        const float *l = logits + (size_t)t * n_exp;
        double mx = l[0], sum = 0, ws = 0;
        for (int i = 1; i < n_exp; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < n_exp; i++) sum += exp(l[i] - mx);
        for (int j = 0; j < k; j++) ws += exp(l[ids[(size_t)t * k + j]] - mx) / sum;
        for (int j = 0; j < k; j++) {
            size_t p = (size_t)t * k + j;
            double r = exp(l[ids[p]] - mx) / sum / (renorm ? ws : 1.0);
            double e = fabs(w[p] - r) / fmax(1e-6, r);
            werr = e > werr ? e : werr;
        }
    }
    return werr;
}

/* IDS and W [n_tok, k] against cpu_moe_route on LOGITS: *IDS_OK whether every id agrees;
 * returns the largest relative weight error. */
static double route_err(const float *logits, const int32_t *ids, const float *w, int n_tok,
                        int n_exp, int k, int renorm, int *ids_ok)
{
    int32_t *rids = (int32_t *)malloc((size_t)n_tok * k * 4);
    float *rw = (float *)malloc(sizeof(float) * n_tok * k);
    double werr = 0;
    *ids_ok = 1;
    for (int t = 0; t < n_tok; t++) {
        cpu_moe_route(logits + (size_t)t * n_exp, n_exp, k, renorm, rids + (size_t)t * k,
                      rw + (size_t)t * k);
        for (int j = 0; j < k; j++) {
            size_t p = (size_t)t * k + j;
            *ids_ok &= ids[p] == rids[p];
            double e = fabs((double)w[p] - rw[p]) / fmax(1e-6, fabs((double)rw[p]));
            werr = e > werr ? e : werr;
        }
    }
    free(rids);
    free(rw);
    return werr;
}

static void route_and_sort(int n_tok, int n_exp, int k, int renorm)
{
    size_t nl = (size_t)n_tok * n_exp, np = (size_t)n_tok * k;
    float *hl = (float *)malloc(sizeof(float) * nl);
    fill_uniform(hl, nl, -4.f, 4.f);
    float *dl = (float *)dev_upload(hl, sizeof(float) * nl);
    int32_t *dids = (int32_t *)dev_alloc_poisoned(np * 4), *doff = (int32_t *)dev_alloc_poisoned((n_exp + 1) * 4);
    int32_t *dpos = (int32_t *)dev_alloc_poisoned(np * 4), *dsrc = (int32_t *)dev_alloc_poisoned(np * 4);
    float *dw = (float *)dev_alloc_poisoned(np * 4);
    int32_t *dtiles = (int32_t *)dev_alloc_poisoned((n_exp + 1) * 4);
    CUDA_CHECK(moe_route_run(dids, dw, dl, NULL, n_tok, n_exp, k, renorm, 0));
    CUDA_CHECK(moe_sort_run(doff, dtiles, dpos, dsrc, dids, (int)np, k, n_exp, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t *ids = (int32_t *)malloc(np * 4), *rids = (int32_t *)malloc(np * 4);
    float *w = (float *)malloc(np * 4);
    CUDA_CHECK(cudaMemcpy(ids, dids, np * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(w, dw, np * 4, cudaMemcpyDeviceToHost));
    int ids_ok;
    double werr = route_err(hl, ids, w, n_tok, n_exp, k, renorm, &ids_ok);
    check(ids_ok && werr <= 1e-5, "moe_route tok=%d experts=%d k=%d renorm=%d: ids %s, weights "
          "max rel err %.1e", n_tok, n_exp, k, renorm, ids_ok ? "equal" : "DIFFER", werr);
    int32_t *off = (int32_t *)malloc((n_exp + 1) * 4), *pos = (int32_t *)malloc(np * 4);
    int32_t *src = (int32_t *)malloc(np * 4), *roff = (int32_t *)malloc((n_exp + 1) * 4);
    int32_t *rpos = (int32_t *)malloc(np * 4), *rsrc = (int32_t *)malloc(np * 4);
    int32_t *tiles = (int32_t *)malloc((n_exp + 1) * 4), *rtiles = (int32_t *)malloc((n_exp + 1) * 4);
    CUDA_CHECK(cudaMemcpy(tiles, dtiles, (n_exp + 1) * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(off, doff, (n_exp + 1) * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(pos, dpos, np * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(src, dsrc, np * 4, cudaMemcpyDeviceToHost));
    moe_sort_ref(roff, rtiles, rpos, rsrc, ids, (int)np, k, n_exp, MOE_GEMM_BM);
    check(!memcmp(off, roff, (n_exp + 1) * 4) && !memcmp(pos, rpos, np * 4) &&
              !memcmp(src, rsrc, np * 4) && !memcmp(tiles, rtiles, (n_exp + 1) * 4),
          "moe_sort pairs=%zu experts=%d: offsets, tiles, positions and sources equal", np, n_exp);
    /* forced: k distinct random experts a token, weights the softmax at them */
    for (int t = 0; t < n_tok; t++)
        pick_distinct(rids + (size_t)t * k, k, n_exp);
    int32_t *dforce = (int32_t *)dev_upload(rids, np * 4);
    CUDA_CHECK(moe_route_run(dids, dw, dl, dforce, n_tok, n_exp, k, renorm, 0));
    CUDA_CHECK(cudaMemcpy(ids, dids, np * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(w, dw, np * 4, cudaMemcpyDeviceToHost));
    werr = forced_weights_err(hl, rids, w, n_tok, n_exp, k, renorm);
    check(!memcmp(ids, rids, np * 4) && werr <= 1e-5, "moe_route forced tok=%d experts=%d k=%d "
          "renorm=%d: the forced ids, weights max rel err %.1e", n_tok, n_exp, k, renorm, werr);
    free(hl); free(ids); free(rids); free(w); free(off); free(pos); free(src);
    free(roff); free(rpos); free(rsrc); free(tiles); free(rtiles);
    CUDA_CHECK(cudaFree(dtiles)); CUDA_CHECK(cudaFree(dforce));
    CUDA_CHECK(cudaFree(dl)); CUDA_CHECK(cudaFree(dids)); CUDA_CHECK(cudaFree(doff));
    CUDA_CHECK(cudaFree(dpos)); CUDA_CHECK(cudaFree(dsrc)); CUDA_CHECK(cudaFree(dw));
}

/* The decode router in one launch: the RMSNorm rows against rmsnorm_ref, the logits against
 * a CPU dot on the kernel's own normalized rows (fp32: 1e-5), ids and weights against
 * cpu_moe_route on the kernel's logits; run 0 normalizes, run 1 again on the same block
 * counter (left zero) with forced experts, run 2 without the norm (XN left untouched). */
static void router_fused(int n_tok, int n_exp, int dim, int k, int renorm, kdtype dt)
{
    size_t nx = (size_t)n_tok * dim, nwr = (size_t)n_exp * dim, np = (size_t)n_tok * k;
    float *x = (float *)malloc(sizeof(float) * nx), *g = (float *)malloc(sizeof(float) * dim);
    float *w = (float *)malloc(sizeof(float) * nwr), *xn = (float *)malloc(sizeof(float) * nx);
    float *rxn = (float *)malloc(sizeof(float) * nx), *h = (float *)malloc(sizeof(float) * nx);
    float *l = (float *)malloc(sizeof(float) * n_tok * n_exp);
    float *rl = (float *)malloc(sizeof(float) * n_tok * n_exp);
    float *wt = (float *)malloc(sizeof(float) * np);
    int32_t *ids = (int32_t *)malloc(np * 4), *rids = (int32_t *)malloc(np * 4);
    fill_uniform(x, nx, -2.f, 2.f);
    fill_uniform(g, dim, 0.5f, 1.5f);
    fill_uniform(w, nwr, -0.1f, 0.1f);
    void *dx = dev_upload16(x, nx, dt), *dg = dev_upload16(g, dim, dt), *dw = dev_upload16(w, nwr, dt);
    dev_download16(x, dx, nx, dt);
    dev_download16(g, dg, dim, dt);
    dev_download16(w, dw, nwr, dt);
    unsigned zero = 0, cnt = 1;
    unsigned *dcnt = (unsigned *)dev_upload(&zero, 4);
    for (int run = 0; run < 3; run++) {
        int norm = run < 2, forced = run == 1;
        void *dxn = dev_alloc_poisoned(nx * 2);
        float *dl = (float *)dev_alloc_poisoned(sizeof(float) * n_tok * n_exp);
        float *dwt = (float *)dev_alloc_poisoned(np * 4);
        int32_t *dids = (int32_t *)dev_alloc_poisoned(np * 4), *dforce = NULL;
        if (forced) {
            for (int t = 0; t < n_tok; t++)
                pick_distinct(rids + (size_t)t * k, k, n_exp);
            dforce = (int32_t *)dev_upload(rids, np * 4);
        }
        CUDA_CHECK(moe_router_run(dids, dwt, dl, dxn, dx, norm ? dg : NULL, 1e-5f, dw, dforce,
                                  dcnt, n_tok, n_exp, dim, k, renorm, 0, dt, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(xn, dxn, nx, dt);
        CUDA_CHECK(cudaMemcpy(l, dl, sizeof(float) * n_tok * n_exp, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(ids, dids, np * 4, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(wt, dwt, np * 4, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(&cnt, dcnt, 4, cudaMemcpyDeviceToHost));
        double exn = 0;
        int untouched = 1;
        if (norm) {
            memcpy(h, x, sizeof(float) * nx);
            rmsnorm_ref(rxn, h, NULL, g, n_tok, dim, 1e-5f);
            exn = max_row_rel_err(xn, rxn, n_tok, dim);
        } else {
            for (size_t i = 0; i < nx; i++) untouched &= isnan(xn[i]);
        }
        moe_gemv_ref(rl, norm ? xn : x, 1, w, 0, NULL, n_tok, n_exp, dim);
        double el = max_row_rel_err(l, rl, n_tok, n_exp), ew;
        int ids_ok = 1;
        if (forced) {
            ids_ok = !memcmp(ids, rids, np * 4);
            ew = forced_weights_err(l, rids, wt, n_tok, n_exp, k, renorm);
        } else {
            ew = route_err(l, ids, wt, n_tok, n_exp, k, renorm, &ids_ok);
        }
        check(exn <= dt_tol(dt) && untouched && el <= 1e-5 && ids_ok && ew <= 1e-5 && cnt == 0,
              "moe_router %s tok=%d experts=%d dim=%d k=%d renorm=%d%s: norm %.2e%s, logits %.2e, "
              "ids %s, weights %.1e, counter %u", dt_name(dt), n_tok, n_exp, dim, k, renorm,
              norm ? (forced ? " again, forced" : "") : " without norm", exn,
              untouched ? "" : " (XN WRITTEN)", el, ids_ok ? "equal" : "DIFFER", ew, cnt);
        CUDA_CHECK(cudaFree(dxn)); CUDA_CHECK(cudaFree(dl)); CUDA_CHECK(cudaFree(dwt));
        CUDA_CHECK(cudaFree(dids));
        if (dforce) CUDA_CHECK(cudaFree(dforce));
    }
    free(x); free(g); free(w); free(xn); free(rxn); free(h); free(l); free(rl); free(wt);
    free(ids); free(rids);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dg)); CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dcnt));
}

static void gemv_and_combine(int n_tok, int k, int n_exp, int n_out, int n_in, kdtype dt)
{
    int np = n_tok * k;
    size_t stride = (size_t)n_out * n_in + 8, nw = stride * n_exp;
    float *x = (float *)malloc(sizeof(float) * n_tok * n_in), *w = (float *)malloc(sizeof(float) * nw);
    fill_uniform(x, (size_t)n_tok * n_in, -2.f, 2.f);
    fill_uniform(w, nw, -0.2f, 0.2f);
    int32_t *ids = (int32_t *)malloc(np * 4);
    for (int p = 0; p < np; p++) ids[p] = rng_int(0, n_exp - 1);
    void *dx = dev_upload16(x, (size_t)n_tok * n_in, dt), *dwt = dev_upload16(w, nw, dt);
    dev_download16(x, dx, (size_t)n_tok * n_in, dt);   /* the rounded values */
    dev_download16(w, dwt, nw, dt);
    int32_t *dids = (int32_t *)dev_upload(ids, np * 4);
    void *dout = dev_alloc_poisoned((size_t)np * n_out * 2);
    CUDA_CHECK(moe_gemv_run(dout, 0, dx, k, dwt, stride, dids, np, n_out, n_in, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *out = (float *)malloc(sizeof(float) * np * n_out), *ref = (float *)malloc(sizeof(float) * np * n_out);
    dev_download16(out, dout, (size_t)np * n_out, dt);
    moe_gemv_ref(ref, x, k, w, stride, ids, np, n_out, n_in);
    double err = max_row_rel_err(out, ref, np, n_out);
    check(err <= dt_tol(dt), "moe_gemv %s pairs=%d (k=%d) experts=%d out=%d in=%d: max row rel "
          "err %.2e (bound %.0e)", dt_name(dt), np, k, n_exp, n_out, n_in, err, dt_tol(dt));
    /* combine the GEMV's rows (as rounded), in pair order and through a shuffled map */
    float *wt = (float *)malloc(sizeof(float) * np);
    fill_uniform(wt, np, 0.f, 1.f);
    int32_t *pos = (int32_t *)malloc(np * 4);
    for (int p = 0; p < np; p++) pos[p] = p;
    for (int p = np - 1; p > 0; p--) {
        int q = rng_int(0, p), tmp = pos[p];
        pos[p] = pos[q], pos[q] = tmp;
    }
    float *dwt32 = (float *)dev_upload(wt, sizeof(float) * np);
    int32_t *dpos = (int32_t *)dev_upload(pos, np * 4);
    for (int mode = 0; mode < 3; mode++) {   /* pair order, mapped, mapped into a residual */
        int mapped = mode > 0, resid = mode == 2;
        float *y = (float *)malloc(sizeof(float) * n_tok * n_out);
        float *ry = (float *)malloc(sizeof(float) * n_tok * n_out);
        fill_uniform(ry, (size_t)n_tok * n_out, -1.f, 1.f);
        void *dy = resid ? dev_upload16(ry, (size_t)n_tok * n_out, dt)
                         : dev_alloc_poisoned((size_t)n_tok * n_out * 2);
        CUDA_CHECK(moe_combine_run(dy, resid, dout, mapped ? dpos : NULL, dwt32, n_tok, k, n_out,
                                   dt, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(y, dy, (size_t)n_tok * n_out, dt);
        moe_combine_ref(ry, resid, out, mapped ? pos : NULL, wt, n_tok, k, n_out);
        double e = max_row_rel_err(y, ry, n_tok, n_out);
        check(e <= dt_tol(dt), "moe_combine %s tok=%d k=%d dim=%d%s%s: max row rel err %.2e",
              dt_name(dt), n_tok, k, n_out, mapped ? " mapped" : "", resid ? " +residual" : "", e);
        free(y); free(ry);
        CUDA_CHECK(cudaFree(dy));
    }
    free(x); free(w); free(ids); free(out); free(ref); free(wt); free(pos);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dwt)); CUDA_CHECK(cudaFree(dids));
    CUDA_CHECK(cudaFree(dout)); CUDA_CHECK(cudaFree(dwt32)); CUDA_CHECK(cudaFree(dpos));
}

/* Random inputs of one MoE layer: x [n_tok, dim], gate/up [E, 2 hid, dim] and down
 * [E, dim, hid] (strides padded), ids of k distinct experts a token, weights; all rounded to
 * DT on upload (the references see what the kernels see). */
typedef struct {
    int n_tok, k, n_exp, dim, hid, np;
    size_t gu_stride, dn_stride;
    float *x, *gu, *dn, *wt;
    int32_t *ids;
    void *dx, *dgu, *ddn;
    float *dwt;
    int32_t *dids;
} moe_case;

static void case_init(moe_case *c, int n_tok, int k, int n_exp, int dim, int hid, kdtype dt)
{
    c->n_tok = n_tok, c->k = k, c->n_exp = n_exp, c->dim = dim, c->hid = hid, c->np = n_tok * k;
    c->gu_stride = (size_t)2 * hid * dim + 8, c->dn_stride = (size_t)dim * hid + 8;
    c->x = (float *)malloc(sizeof(float) * n_tok * dim);
    c->gu = (float *)malloc(sizeof(float) * c->gu_stride * n_exp);
    c->dn = (float *)malloc(sizeof(float) * c->dn_stride * n_exp);
    c->wt = (float *)malloc(sizeof(float) * c->np);
    c->ids = (int32_t *)malloc(4 * c->np);
    fill_uniform(c->x, (size_t)n_tok * dim, -2.f, 2.f);
    fill_uniform(c->gu, c->gu_stride * n_exp, -0.15f, 0.15f);
    fill_uniform(c->dn, c->dn_stride * n_exp, -0.15f, 0.15f);
    fill_uniform(c->wt, c->np, 0.f, 1.f);
    for (int t = 0; t < n_tok; t++)
        pick_distinct(c->ids + (size_t)t * k, k, n_exp);
    c->dx = dev_upload16(c->x, (size_t)n_tok * dim, dt);
    c->dgu = dev_upload16(c->gu, c->gu_stride * n_exp, dt);
    c->ddn = dev_upload16(c->dn, c->dn_stride * n_exp, dt);
    c->dwt = (float *)dev_upload(c->wt, sizeof(float) * c->np);
    c->dids = (int32_t *)dev_upload(c->ids, 4 * c->np);
}

static void case_free(moe_case *c)
{
    free(c->x); free(c->gu); free(c->dn); free(c->wt); free(c->ids);
    CUDA_CHECK(cudaFree(c->dx)); CUDA_CHECK(cudaFree(c->dgu)); CUDA_CHECK(cudaFree(c->ddn));
    CUDA_CHECK(cudaFree(c->dwt)); CUDA_CHECK(cudaFree(c->dids));
}

/* The small-batch path: gate/up + SwiGLU, then down + combine (plain and into a residual);
 * and the router's fp32 GEMV (no ids). */
static void small_path(int n_tok, int k, int n_exp, int dim, int hid, kdtype dt)
{
    moe_case c;
    case_init(&c, n_tok, k, n_exp, dim, hid, dt);
    void *dact = dev_alloc_poisoned((size_t)c.np * hid * 2);
    CUDA_CHECK(moe_gate_up_run(dact, c.dx, c.dgu, c.gu_stride, c.dids, c.np, k, hid, dim, 0, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *act = (float *)malloc(sizeof(float) * c.np * hid), *ract = (float *)malloc(sizeof(float) * c.np * hid);
    dev_download16(act, dact, (size_t)c.np * hid, dt);
    moe_gate_up_ref(ract, c.x, c.gu, c.gu_stride, c.ids, c.np, k, hid, dim);
    double e = max_row_rel_err(act, ract, c.np, hid);
    check(e <= dt_tol(dt), "moe_gate_up %s pairs=%d (k=%d) experts=%d hid=%d dim=%d: max row rel "
          "err %.2e", dt_name(dt), c.np, k, n_exp, hid, dim, e);
    for (int resid = 0; resid < 2; resid++) {
        float *y = (float *)malloc(sizeof(float) * n_tok * dim), *ry = (float *)malloc(sizeof(float) * n_tok * dim);
        fill_uniform(ry, (size_t)n_tok * dim, -1.f, 1.f);
        void *dy = resid ? dev_upload16(ry, (size_t)n_tok * dim, dt) : dev_alloc_poisoned((size_t)n_tok * dim * 2);
        CUDA_CHECK(moe_down_run(dy, resid, dact, c.ddn, c.dn_stride, c.dids, c.dwt, n_tok, k, dim,
                                hid, 0, dt, 0));
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(y, dy, (size_t)n_tok * dim, dt);
        moe_down_ref(ry, resid, act, c.dn, c.dn_stride, c.ids, c.wt, n_tok, k, dim, hid);
        e = max_row_rel_err(y, ry, n_tok, dim);
        check(e <= dt_tol(dt), "moe_down %s tok=%d k=%d experts=%d dim=%d hid=%d%s: max row rel "
              "err %.2e", dt_name(dt), n_tok, k, n_exp, dim, hid, resid ? " +residual" : "", e);
        free(y); free(ry);
        CUDA_CHECK(cudaFree(dy));
    }
    /* the router: [n_exp, dim] rows of the gate/up weights as a plain matrix, fp32 out */
    float *dl = (float *)dev_alloc_poisoned(sizeof(float) * n_tok * n_exp);
    CUDA_CHECK(moe_gemv_run(dl, 1, c.dx, 1, c.dgu, 0, NULL, n_tok, n_exp, dim, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *l = (float *)malloc(sizeof(float) * n_tok * n_exp), *rl = (float *)malloc(sizeof(float) * n_tok * n_exp);
    CUDA_CHECK(cudaMemcpy(l, dl, sizeof(float) * n_tok * n_exp, cudaMemcpyDeviceToHost));
    moe_gemv_ref(rl, c.x, 1, c.gu, 0, NULL, n_tok, n_exp, dim);
    e = max_row_rel_err(l, rl, n_tok, n_exp);
    check(e <= 1e-5, "moe_gemv fp32 router tok=%d experts=%d dim=%d: max row rel err %.2e",
          n_tok, n_exp, dim, e);
    free(act); free(ract); free(l); free(rl);
    CUDA_CHECK(cudaFree(dact)); CUDA_CHECK(cudaFree(dl));
    case_free(&c);
}

/* The large-batch path: sort, grouped gate/up GEMM + SwiGLU through the source map, grouped
 * down GEMM, combine through the positions; against the references step by step and whole. */
static void grouped_path(int n_tok, int k, int n_exp, int dim, int hid, kdtype dt)
{
    moe_case c;
    case_init(&c, n_tok, k, n_exp, dim, hid, dt);
    int np = c.np;
    int32_t *doff = (int32_t *)dev_alloc_poisoned((n_exp + 1) * 4), *dtiles = (int32_t *)dev_alloc_poisoned((n_exp + 1) * 4);
    int32_t *dpos = (int32_t *)dev_alloc_poisoned(np * 4), *dsrc = (int32_t *)dev_alloc_poisoned(np * 4);
    void *dact = dev_alloc_poisoned((size_t)np * hid * 2), *dys = dev_alloc_poisoned((size_t)np * dim * 2);
    void *dy = dev_alloc_poisoned((size_t)n_tok * dim * 2);
    CUDA_CHECK(moe_sort_run(doff, dtiles, dpos, dsrc, c.dids, np, k, n_exp, 0));
    CUDA_CHECK(moe_gemm_run(dact, c.dx, dsrc, c.dgu, c.gu_stride, doff, dtiles, n_exp, np, 1, hid,
                            dim, dt, 0));
    CUDA_CHECK(moe_gemm_run(dys, dact, NULL, c.ddn, c.dn_stride, doff, dtiles, n_exp, np, 0, dim,
                            hid, dt, 0));
    CUDA_CHECK(moe_combine_run(dy, 0, dys, dpos, c.dwt, n_tok, k, dim, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t *off = (int32_t *)malloc((n_exp + 1) * 4), *tiles = (int32_t *)malloc((n_exp + 1) * 4);
    int32_t *pos = (int32_t *)malloc(np * 4), *src = (int32_t *)malloc(np * 4);
    moe_sort_ref(off, tiles, pos, src, c.ids, np, k, n_exp, MOE_GEMM_BM);
    float *act = (float *)malloc(sizeof(float) * np * hid), *ract = (float *)malloc(sizeof(float) * np * hid);
    float *ys = (float *)malloc(sizeof(float) * np * dim), *rys = (float *)malloc(sizeof(float) * np * dim);
    float *y = (float *)malloc(sizeof(float) * n_tok * dim), *ry = (float *)malloc(sizeof(float) * n_tok * dim);
    float *ract2 = (float *)malloc(sizeof(float) * np * hid);
    dev_download16(act, dact, (size_t)np * hid, dt);
    dev_download16(ys, dys, (size_t)np * dim, dt);
    dev_download16(y, dy, (size_t)n_tok * dim, dt);
    moe_gemm_ref(ract, c.x, src, c.gu, c.gu_stride, off, n_exp, 1, hid, dim);
    double e1 = max_row_rel_err(act, ract, np, hid);
    moe_gemm_ref(rys, act, NULL, c.dn, c.dn_stride, off, n_exp, 0, dim, hid);
    double e2 = max_row_rel_err(ys, rys, np, dim);
    /* the whole layer against the small path's references, in pair order */
    moe_gate_up_ref(ract2, c.x, c.gu, c.gu_stride, c.ids, np, k, hid, dim);
    moe_down_ref(ry, 0, ract2, c.dn, c.dn_stride, c.ids, c.wt, n_tok, k, dim, hid);
    double e3 = max_row_rel_err(y, ry, n_tok, dim);
    check(e1 <= dt_tol(dt) && e2 <= dt_tol(dt) && e3 <= 2 * dt_tol(dt), "moe grouped GEMM %s "
          "tok=%d k=%d experts=%d dim=%d hid=%d: gate/up+SwiGLU %.2e, down %.2e, layer %.2e",
          dt_name(dt), n_tok, k, n_exp, dim, hid, e1, e2, e3);
    free(off); free(tiles); free(pos); free(src); free(act); free(ract); free(ys); free(rys);
    free(y); free(ry); free(ract2);
    CUDA_CHECK(cudaFree(doff)); CUDA_CHECK(cudaFree(dtiles)); CUDA_CHECK(cudaFree(dpos));
    CUDA_CHECK(cudaFree(dsrc)); CUDA_CHECK(cudaFree(dact)); CUDA_CHECK(cudaFree(dys));
    CUDA_CHECK(cudaFree(dy));
    case_free(&c);
}

int main(void)
{
    test_init("test_moe");
    for (int rep = 0; rep < 2; rep++) {
        route_and_sort(rng_int(1, 64), 8, 2, 1);        /* Mixtral */
        route_and_sort(rng_int(1, 300), 128, 8, 0);     /* Qwen3-30B-A3B */
        route_and_sort(rng_int(1, 300), 128, 8, 1);
        route_and_sort(2048, 64, 6, 1);
        route_and_sort(rng_int(1, 9), 512, 16, 0);
        route_and_sort(5, 3, 3, 1);                     /* every expert chosen */
        gemv_and_combine(rng_int(1, 8), 2, 8, 2 * 256, 512, KDT_BF16);
        gemv_and_combine(rng_int(1, 8), 8, 128, 2 * 96, 256, KDT_BF16);
        gemv_and_combine(rng_int(1, 8), 8, 128, 512, 96, KDT_F16);
        gemv_and_combine(3, 1, 4, 40, 1000, KDT_BF16);
        router_fused(1, 128, 2048, 8, 1, KDT_BF16);     /* Qwen3-30B-A3B decode */
        router_fused(rng_int(1, 8), 8, 4096, 2, 0, KDT_BF16);   /* Mixtral */
        router_fused(rng_int(1, 8), 60, 264, 4, 1, KDT_F16);    /* ragged rows and blocks */
        router_fused(MOE_ROUTER_MAX_TOK, 512, 1024, 16, 0, KDT_BF16);
        small_path(1, 8, 128, 512, 96, KDT_BF16);          /* Qwen3-MoE-like */
        small_path(1, 8, 10, 2048, 768, KDT_BF16);         /* Qwen3-30B-A3B's expert shape */
        small_path(1, 2, 3, 1024, 3584, KDT_BF16);         /* Mixtral-like: long down rows */
        small_path(rng_int(1, 8), 8, 64, 264, 104, KDT_BF16);  /* ragged tiles and steps */
        small_path(rng_int(1, 3), 1, 4, 24, 16, KDT_F16);  /* warps with no step */
        small_path(rng_int(1, 8), 2, 8, 256, 200, KDT_BF16);
        small_path(rng_int(1, 4), 4, 16, 136, 72, KDT_F16);
        grouped_path(rng_int(1, 5), 2, 8, 264, 200, KDT_BF16);  /* ragged rows, cols, k */
        grouped_path(rng_int(30, 300), 2, 8, 256, 192, KDT_BF16);
        grouped_path(rng_int(60, 200), 8, 64, 128, 96, KDT_BF16);
        grouped_path(1024, 8, 128, 256, 64, KDT_BF16);
        grouped_path(rng_int(20, 90), 4, 16, 200, 136, KDT_F16);
    }
    check(moe_route_run(NULL, NULL, NULL, NULL, 1, 8, 17, 1, 0) == cudaErrorInvalidValue,
          "moe_route rejects k 17");
    check(moe_gemv_run(NULL, 0, NULL, 1, NULL, 0, NULL, 1, 8, 12, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "moe_gemv rejects n_in 12");
    check(moe_router_run(NULL, NULL, NULL, NULL, NULL, NULL, 0.f, NULL, NULL, NULL,
                         MOE_ROUTER_MAX_TOK + 1, 8, 64, 2, 0, 0, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "moe_router rejects %d tokens", MOE_ROUTER_MAX_TOK + 1);
    check(moe_down_run(NULL, 0, NULL, NULL, 0, NULL, NULL, 1, 8, 64, MOE_SMEM_MAX / 8, 0,
                       KDT_BF16, 0) == cudaErrorInvalidValue,
          "moe_down rejects k * n_in past its shared memory");
    check(moe_gemm_run(NULL, NULL, NULL, NULL, 0, NULL, NULL, 8, 64, 1, 64, 12, KDT_BF16, 0) ==
              cudaErrorInvalidValue, "moe_gemm rejects n_in 12");
    return test_summary("test_moe");
}
