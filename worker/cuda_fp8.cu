/* cuda_fp8.cu - FP8 in the CUDA engine (cuda_engine.h): --quantization fp8 and
 * --kv-cache-dtype fp8 (worker/fp8_config.h decides, at start, before a weight is read).
 *
 * Weights: after the 16-bit weights are loaded (or drawn), every q/k/v/o and gate/up/down
 * projection is quantized on the device per output row (kernels/fp8_quant.cuh, the CPU
 * backend's math) into one E4M3 allocation with its row scales; ce_gemm hands those
 * products here: the input rows are quantized per token, then the E4M3 GEMV (1-8 rows) or
 * the cuBLASLt FP8 GEMM runs; decode-only batches of 1-8 run ce_fp8_decode_layer. Embeddings, norms and the LM head stay 16-bit. An FP8
 * checkpoint's codes and scales are read as they are (fp8_read_linear, the CPU backend's
 * reader). The 16-bit places of the projections stay allocated (the weights table has one
 * layout), so FP8 weights add memory here rather than halve it.
 * KV: one byte an element (E4M3 with per-tensor scales, kv_store_fp8_run and the attention
 * kernels' E4M3 variants); blocks of half the bytes, so twice as many fit.
 */
#include "cuda_engine.h"
#include "fp8_config.h"
#include "fp8_weights.h"
extern "C" {
#include "../common/log.h"
}
#include "../kernels/cuda_check.cuh"
#include "../kernels/fp8.cuh"
#include "../kernels/fp8_quant.cuh"
#include "../kernels/gemm_fp8.cuh"
#include "../kernels/gemv_fp8.cuh"
#include "../kernels/kv_store.cuh"
#include "../kernels/rng.h"
#include "../kernels/rope.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP8_WS_BYTES (32u << 20)

typedef struct {
    const void *w16;      /* the 16-bit tensor ce_gemm is called with */
    const uint8_t *w8;    /* [rows, cols] E4M3 */
    const float *scale;   /* [rows] */
} fp8_proj;

struct ce_fp8 {
    fp8_config cfg;
    char dir[4096];       /* the model directory (an FP8 checkpoint's codes and scales) */
    uint8_t *w8;          /* every projection's codes, one allocation */
    float *scales;        /* their row scales */
    fp8_proj *proj;       /* [4 * n_layers] */
    int n_proj;
    uint8_t *xq;          /* [max_tokens, max n_in] the input rows' codes */
    float *xs;            /* [max_tokens] their scales */
    float *scratch;       /* [max_tokens, max n_out] fp32 when cuBLASLt lacks outer-vector
                             scales (NULL otherwise) */
    void *ws;             /* cuBLASLt workspace */
    fp8_gemm *gemm;
};

int ce_fp8_config(cuda_engine *e, const ce_opts *o, char *err, size_t n_err)
{
    fp8_config q;
    if (fp8_config_load(&q, o->model_dir, &e->cfg, o->quant_fp8, o->kv_fp8, err, n_err) < 0)
        return -1;
    e->kv_elem = q.kv_fp8 ? 1 : 2;
    if (!q.weights && !q.kv_fp8)
        return 0;
    if (o->hold) {
        snprintf(err, n_err, "FP8 weights or KV cache are not supported with the holder (run "
                 "without it: launch.sh --no-holder)");
        return -1;
    }
    e->fp8 = (ce_fp8 *)calloc(1, sizeof *e->fp8);
    if (!e->fp8) {
        snprintf(err, n_err, "out of host memory");
        return -1;
    }
    if (o->dummy_weights && q.weights == FP8_W_CHECKPOINT)
        q.weights = FP8_W_QUANTIZE;   /* random weights of its shape, quantized */
    e->fp8->cfg = q;
    snprintf(e->fp8->dir, sizeof e->fp8->dir, "%s", o->model_dir);
    return 0;
}

int ce_fp8_weights_load(cuda_engine *e, const char *dir, char *err, size_t n_err)
{
    if (cuda_weights_init(&e->w, &e->cfg, e->dt, NULL, err, n_err) < 0)
        return -1;
    e->w.skip_fp8_linear = e->fp8 && e->fp8->cfg.weights == FP8_W_CHECKPOINT;
    return cuda_weights_read(&e->w, &e->cfg, dir, err, n_err);
}

/* Layer L's projections of an FP8 checkpoint (fp8_read_linear: codes and row scales of each
 * HF tensor, fused rows in the weights table's order) into W8 and SC on the device. */
static int read_layer(safetensors *st, cuda_engine *e, int l, uint8_t *w8, float *sc,
                      char *err, size_t n_err)
{
    const model_config *c = &e->cfg;
    wl_tensor t[64];
    if (weights_layout_max_tensors(c) > 64) {
        snprintf(err, n_err, "too many tensors a layer");
        return -1;
    }
    int n = weights_layout_tensors(&e->w.layout, c, l, t);
    for (int i = 0; i < n; i++) {
        if (!fp8_is_linear(&t[i], l))
            continue;
        size_t rows = (size_t)t[i].shape[0], cols = (size_t)t[i].shape[1];
        uint8_t *codes = (uint8_t *)malloc(rows * cols);
        float *s = (float *)malloc(rows * sizeof *s);
        int rc = codes && s ? fp8_read_linear(st, &t[i], codes, s, err, n_err)
                            : (snprintf(err, n_err, "out of host memory"), -1);
        if (rc == 0) {   /* the fused tensor's rows run in the table's order, as its offsets */
            CUDA_CHECK(cudaMemcpy(w8, codes, rows * cols, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(sc, s, rows * sizeof *s, cudaMemcpyHostToDevice));
            w8 += rows * cols;
            sc += rows;
        }
        free(codes);
        free(s);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void *fp8_alloc(size_t bytes, char *err, size_t n_err, const char *what)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, n_err, "cannot allocate %zu MB of GPU memory for %s", bytes >> 20, what);
        return NULL;
    }
    return p;
}

int ce_fp8_init(cuda_engine *e, char *err, size_t n_err)
{
    ce_fp8 *f = e->fp8;
    const model_config *c = &e->cfg;
    if (!f || !f->cfg.weights)
        return 0;
    const int dim = c->dim, hid = c->hidden_dim;
    size_t rows_l = (size_t)e->qkv_dim + dim + 2 * hid + dim;   /* rows of a layer's projections */
    size_t codes_l = (size_t)e->qkv_dim * dim + (size_t)dim * e->q_dim + 2 * (size_t)hid * dim +
                     (size_t)dim * hid;
    int max_in = dim > hid ? dim : hid, max_out = 2 * hid > e->qkv_dim ? 2 * hid : e->qkv_dim;
    max_in = e->q_dim > max_in ? e->q_dim : max_in;
    f->n_proj = 4 * c->n_layers;
    f->proj = (fp8_proj *)calloc(f->n_proj, sizeof *f->proj);
    if (!f->proj || !(f->w8 = (uint8_t *)fp8_alloc(codes_l * c->n_layers, err, n_err, "FP8 weights")) ||
        !(f->scales = (float *)fp8_alloc(rows_l * c->n_layers * 4, err, n_err, "FP8 scales")) ||
        !(f->xq = (uint8_t *)fp8_alloc((size_t)e->max_tokens * max_in, err, n_err, "FP8 inputs")) ||
        !(f->xs = (float *)fp8_alloc((size_t)e->max_tokens * 4, err, n_err, "FP8 input scales")) ||
        !(f->ws = fp8_alloc(FP8_WS_BYTES, err, n_err, "cuBLASLt")))
        return -1;
    if (!(f->gemm = fp8_gemm_create(f->ws, FP8_WS_BYTES))) {
        snprintf(err, n_err, "cuBLASLt did not start");
        return -1;
    }
    uint8_t *w8 = f->w8;
    float *sc = f->scales;
    safetensors st;
    int ckpt = f->cfg.weights == FP8_W_CHECKPOINT;
    if (ckpt && st_open_dir(&st, f->dir, err, n_err) < 0)
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        if (ckpt && read_layer(&st, e, l, w8, sc, err, n_err) < 0) {
            st_free(&st);
            return -1;
        }
        const cuda_layer *ly = &e->w.layers[l];
        struct { const void *w; int rows, cols; } t[4] = {
            {ly->wqkv, e->qkv_dim, dim}, {ly->wo, dim, e->q_dim}, {ly->w_gate_up, 2 * hid, dim},
            {ly->w_down, dim, hid}};
        for (int i = 0; i < 4; i++) {
            if (!ckpt)
                CUDA_CHECK(fp8_quant_rows_run(w8, sc, t[i].w, t[i].rows, t[i].cols, t[i].cols, 0,
                                              e->dt, e->stream));
            f->proj[4 * l + i] = fp8_proj{t[i].w, w8, sc};
            w8 += (size_t)t[i].rows * t[i].cols;
            sc += t[i].rows;
        }
    }
    if (ckpt)
        st_free(&st);
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    /* cuBLASLt's outer-vector scales, or fp32 scratch for the epilogue kernel */
    int used = -1;   /* probed on the largest qkv product (its output overwritten later) */
    const fp8_proj *p0 = &f->proj[0];
    cudaError_t r = fp8_gemm_run(f->gemm, e->qkv, f->xq, f->xs, p0->w8, p0->scale, e->max_tokens,
                                 e->qkv_dim, dim, FP8_GEMM_OUTER_VEC, NULL, &used, e->dt, e->stream);
    if (r == cudaErrorNotSupported) {
        if (!(f->scratch = (float *)fp8_alloc((size_t)e->max_tokens * max_out * 4, err, n_err,
                                              "the FP8 GEMM's fp32 scratch")))
            return -1;
        LOG_INFO("fp8: cuBLASLt has no outer-vector scales here: scales applied by a kernel");
    } else {
        CUDA_CHECK(r);
    }
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    LOG_INFO("fp8: %d projections %s (%zu MB of E4M3 codes)%s", f->n_proj,
             ckpt ? "read from the FP8 checkpoint" : "quantized per output channel",
             codes_l * c->n_layers >> 20, f->cfg.kv_fp8 ? "; E4M3 KV cache" : "");
    return 0;
}

bool ce_fp8_gemm(cuda_engine *e, void *out, cudaDataType_t ct, const void *x, const void *w,
                 int n_tok, int n_out, int n_in)
{
    ce_fp8 *f = e->fp8;
    if (!f || !f->cfg.weights || ct != e->cdt)
        return false;
    const fp8_proj *p = NULL;
    for (int i = 0; i < f->n_proj && !p; i++)
        if (f->proj[i].w16 == w)
            p = &f->proj[i];
    if (!p)
        return false;   /* the LM head and the MoE router stay 16-bit */
    if (n_tok == 0)
        return true;
    CUDA_CHECK(fp8_quant_rows_run(f->xq, f->xs, x, n_tok, n_in, n_in, 0, e->dt, e->stream));
    if (n_tok <= GEMV_MAX_TOKENS)
        CUDA_CHECK(gemv_fp8_run(out, f->xq, f->xs, p->w8, p->scale, n_tok, n_out, n_in, GEMV_OUT,
                                0, e->dt, e->stream));
    else
        CUDA_CHECK(fp8_gemm_run(f->gemm, out, f->xq, f->xs, p->w8, p->scale, n_tok, n_out, n_in,
                                f->scratch ? FP8_GEMM_EPILOGUE : FP8_GEMM_OUTER_VEC, f->scratch,
                                NULL, e->dt, e->stream));
    return true;
}

bool ce_fp8_fusable(const cuda_engine *e)
{
    /* ce_fp8_decode_layer has no q/k/v bias or q/k norm: those families take the unfused path */
    return !e->fp8 || (e->fp8->cfg.weights && !e->cfg.qkv_bias && !e->cfg.qk_norm);
}

/* OUT (KIND's epilogue) = projection PROJ of X's rows [n_tok, n_in], normalized first with
 * NORM_W (or not) and quantized per token by one kernel, then the E4M3 GEMV (a dependent
 * launch: its weight loads overlap the quantization). Quantizing inside the GEMV instead
 * measured slower in the step (bench/RESULTS.md, run S2). */
static void proj8(cuda_engine *e, void *out, int proj, const void *x, const void *norm_w,
                  int n_tok, int n_out, int n_in, gemv_epi_kind kind)
{
    ce_fp8 *f = e->fp8;
    const fp8_proj *p = &f->proj[proj];
    CUDA_CHECK(norm_w ? fp8_quant_norm_rows_run(f->xq, f->xs, x, norm_w, e->cfg.norm_eps, n_tok,
                                                n_in, n_in, e->dt, e->stream)
                      : fp8_quant_rows_run(f->xq, f->xs, x, n_tok, n_in, n_in, 0, e->dt,
                                           e->stream));
    CUDA_CHECK(gemv_fp8_run(out, f->xq, f->xs, p->w8, p->scale, n_tok, n_out, n_in, kind,
                            e->pdl_mask & 1, e->dt, e->stream));
}

/* Layer L's FFN (or with PRODUCTS_ONLY, its four projections into scratch, no residual). */
static void ffn8(cuda_engine *e, int l, int n_tok, bool products_only)
{
    const cuda_layer *ly = &e->w.layers[l];
    const int dim = e->cfg.dim, hid = e->cfg.hidden_dim;
    proj8(e, e->act, 4 * l + 2, e->x, ly->ffn_norm, n_tok, 2 * hid, dim, GEMV_SILU);
    proj8(e, products_only ? e->y : e->x, 4 * l + 3, e->act, NULL, n_tok, dim, hid,
          products_only ? GEMV_OUT : GEMV_RESID);
}

void ce_fp8_decode_layer(cuda_engine *e, const fwd_in *in, int l, int n_tok, int splits)
{
    const model_config *c = &e->cfg;
    const cuda_layer *ly = &e->w.layers[l];
    const int dim = c->dim, hd = c->head_dim;
    void *kc, *vc;
    float ks, vs;
    layer_cache(e, l, &kc, &vc);
    proj8(e, e->qkv, 4 * l, e->x, ly->attn_norm, n_tok, e->qkv_dim, dim, GEMV_OUT);
    void *q = e->qkv, *k = (uint16_t *)e->qkv + e->q_dim, *v = (uint16_t *)k + e->kv_dim;
    CUDA_CHECK(rope_run(q, e->qkv_dim, k, e->qkv_dim, in->pos, n_tok, c->n_heads, c->n_kv_heads,
                        hd, e->rp, e->dt, e->stream));
    CUDA_CHECK(ce_fp8_kv(e, &ks, &vs)
                   ? kv_store_fp8_run(kc, vc, k, e->qkv_dim, v, e->qkv_dim, in->slot, n_tok,
                                      c->n_kv_heads, hd, ks, vs, e->dt, e->stream)
                   : kv_store_run(kc, vc, k, e->qkv_dim, v, e->qkv_dim, in->slot, n_tok,
                                  c->n_kv_heads, hd, e->dt, e->stream));
    decode_attn(e, in, q, kc, vc, n_tok, splits, model_layer_window(c, l));
    proj8(e, e->x, 4 * l + 1, e->att, NULL, n_tok, dim, e->q_dim, GEMV_RESID);
    ffn8(e, l, n_tok, false);
}

void ce_fp8_layer_products(cuda_engine *e, int l, int n_tok)
{
    const int dim = e->cfg.dim;
    proj8(e, e->gu, 4 * l, e->x, e->w.layers[l].attn_norm, n_tok, e->qkv_dim, dim, GEMV_OUT);
    proj8(e, e->y, 4 * l + 1, e->att, NULL, n_tok, dim, e->q_dim, GEMV_OUT);
    ffn8(e, l, n_tok, true);
}

bool ce_fp8_kv(const cuda_engine *e, float *k_scale, float *v_scale)
{
    if (!e->fp8 || !e->fp8->cfg.kv_fp8)
        return false;
    *k_scale = e->fp8->cfg.k_scale;
    *v_scale = e->fp8->cfg.v_scale;
    return true;
}

/* codes of uniform values in [-1, 1) keyed by KEY (benchmark caches no prefill wrote) */
__global__ void fp8_fill_kernel(uint8_t *p, size_t n, uint64_t key)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = fp8_cvt(rng_sym(key, i));
}

void ce_fp8_fill_kv(cuda_engine *e, size_t n)
{
    fp8_fill_kernel<<<4096, 256, 0, e->stream>>>((uint8_t *)e->k_cache, n, 11);
    CUDA_CHECK(cudaGetLastError());
    fp8_fill_kernel<<<4096, 256, 0, e->stream>>>((uint8_t *)e->v_cache, n, 12);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
}

void ce_fp8_free(cuda_engine *e)
{
    ce_fp8 *f = e->fp8;
    if (!f)
        return;
    fp8_gemm_destroy(f->gemm);
    void *dev[] = {f->w8, f->scales, f->xq, f->xs, f->scratch, f->ws};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i])
            CUDA_CHECK(cudaFree(dev[i]));
    free(f->proj);
    free(f);
    e->fp8 = NULL;
}
