/* test_fp8_kernels.cu - the FP8 kernels against their CPU references:
 * (a) the device's E4M3 conversion (cvt.satfinite) against fp8_e4m3_encode on every bf16 bit
 *     pattern and random fp32 values: identical codes;
 * (b) fp8_quant_rows_run (bf16, fp16, fp32 rows; a zero row, values past 448) against
 *     fp8_quantize_rows: identical codes and scales; with the RMSNorm prologue against
 *     rmsnorm_ref then fp8_quantize_rows;
 * (c) gemv_fp8_run (1..8 tokens, every epilogue, odd row counts, inner sizes off the 128 step)
 *     and (d) fp8_gemm_run (outer-vector scales and the epilogue path) against fp8_matmul_ref,
 *     outputs NaN-poisoned, relative error per row.
 */
#include "gpu_test.h"
#include "../../kernels/fp8.cuh"
#include "../../kernels/fp8_quant.cuh"
#include "../../kernels/fp8_ref.h"
#include "../../kernels/gemm_fp8.cuh"
#include "../../kernels/gemv_fp8.cuh"
#include "../../kernels/ref.h"
#include "../../worker/fp8_weights.h"

__global__ void cvt_kernel(uint8_t *q, const float *x, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) q[i] = fp8_cvt(x[i]);
}

static void test_cvt(void)
{
    int n = 65536 + 100000;
    float *x = (float *)malloc(n * 4);
    uint8_t *q = (uint8_t *)malloc(n);
    for (int i = 0; i < 65536; i++) x[i] = st_bf16_to_f32((uint16_t)i);   /* every bf16 */
    for (int i = 65536; i < n; i++) x[i] = rng_uniform(-1.f, 1.f) * ldexpf(1, rng_int(-14, 10));
    float *dx = (float *)dev_upload(x, n * 4);
    uint8_t *dq = (uint8_t *)dev_alloc_poisoned(n);
    cvt_kernel<<<(n + 255) / 256, 256>>>(dq, dx, n);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(q, dq, n, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint8_t want = fp8_e4m3_encode(x[i]);
        bool nan = (want & 0x7f) == 0x7f;   /* NaN: the sign of the code may differ */
        if (nan ? (q[i] & 0x7f) != 0x7f : q[i] != want) bad++;
    }
    check(bad == 0, "device E4M3 conversion vs fp8_e4m3_encode: %d of %d codes differ", bad, n);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dq));
    free(x), free(q);
}

/* Rows of x [n_rows, ld] in DT (or fp32), quantized on the device and by the reference. */
static void quant_case(int n_rows, int n, int ld, int f32, kdtype dt)
{
    size_t nx = (size_t)n_rows * ld;
    float *x = (float *)malloc(nx * 4);
    fill_uniform(x, nx, -3.f, 3.f);
    for (int i = 0; i < ld; i++) x[i] = 0.f;                                   /* a zero row */
    if (n_rows > 1) for (int i = 0; i < n; i++) x[ld + i] *= 1000.f;           /* past 448 */
    void *dx = f32 ? dev_upload(x, nx * 4) : dev_upload16(x, nx, dt);
    uint8_t *dq = (uint8_t *)dev_alloc_poisoned((size_t)n_rows * n);
    float *ds = (float *)dev_alloc_poisoned(n_rows * 4);
    CUDA_CHECK(fp8_quant_rows_run(dq, ds, dx, n_rows, n, ld, f32, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    float *packed = (float *)malloc((size_t)n_rows * n * 4), *sref = (float *)malloc(n_rows * 4);
    float *sgot = (float *)malloc(n_rows * 4);
    uint8_t *qref = (uint8_t *)malloc((size_t)n_rows * n), *qgot = (uint8_t *)malloc((size_t)n_rows * n);
    for (int r = 0; r < n_rows; r++) memcpy(packed + (size_t)r * n, x + (size_t)r * ld, n * 4);
    fp8_quantize_rows(qref, sref, packed, n_rows, n);
    CUDA_CHECK(cudaMemcpy(qgot, dq, (size_t)n_rows * n, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(sgot, ds, n_rows * 4, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)n_rows * n; i++) bad += qgot[i] != qref[i];
    for (int r = 0; r < n_rows; r++) bad += sgot[r] != sref[r];
    check(bad == 0, "fp8_quant %s rows %d n %d ld %d: %zu codes or scales differ",
          f32 ? "f32" : dt_name(dt), n_rows, n, ld, bad);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dq)); CUDA_CHECK(cudaFree(ds));
    free(x), free(packed), free(sref), free(sgot), free(qref), free(qgot);
}

/* RMSNorm then per-token quantization (fp8_quant_norm_rows_run) against rmsnorm_ref rounded
 * to DT, then fp8_quantize_rows: the dequantized rows agree (a code may differ by one step
 * where the device's rstd rounds apart), scales within 1e-5. */
static void quant_norm_case(int n_rows, int n, kdtype dt)
{
    size_t nx = (size_t)n_rows * n;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(n * 4), *y = (float *)malloc(nx * 4);
    fill_uniform(x, nx, -3.f, 3.f);
    fill_uniform(w, n, 0.5f, 1.5f);
    void *dx = dev_upload16(x, nx, dt), *dw = dev_upload16(w, n, dt);
    uint8_t *dq = (uint8_t *)dev_alloc_poisoned(nx);
    float *ds = (float *)dev_alloc_poisoned(n_rows * 4);
    CUDA_CHECK(fp8_quant_norm_rows_run(dq, ds, dx, dw, 1e-5f, n_rows, n, n, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    rmsnorm_ref(y, x, NULL, w, n_rows, n, 1e-5f);
    void *dy = dev_upload16(y, nx, dt);   /* rounds y to DT as the kernel does */
    uint8_t *qref = (uint8_t *)malloc(nx), *qgot = (uint8_t *)malloc(nx);
    float *sref = (float *)malloc(n_rows * 4), *sgot = (float *)malloc(n_rows * 4);
    fp8_quantize_rows(qref, sref, y, n_rows, n);
    CUDA_CHECK(cudaMemcpy(qgot, dq, nx, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(sgot, ds, n_rows * 4, cudaMemcpyDeviceToHost));
    float *a = (float *)malloc(nx * 4), *b = (float *)malloc(nx * 4);
    double worst_s = 0;
    for (int r = 0; r < n_rows; r++) {
        worst_s = fmax(worst_s, fabs(sgot[r] - sref[r]) / sref[r]);
        for (int i = 0; i < n; i++) {
            a[(size_t)r * n + i] = fp8_e4m3_decode(qgot[(size_t)r * n + i]) * sgot[r];
            b[(size_t)r * n + i] = fp8_e4m3_decode(qref[(size_t)r * n + i]) * sref[r];
        }
    }
    double err = max_row_rel_err(a, b, n_rows, n);
    check(err < 1e-2 && worst_s < 1e-5, "fp8_quant_norm %s rows %d n %d: dequantized rel err "
          "%.2e < 1e-2, scales %.1e < 1e-5", dt_name(dt), n_rows, n, err, worst_s);
    CUDA_CHECK(cudaFree(dx)); CUDA_CHECK(cudaFree(dw)); CUDA_CHECK(cudaFree(dq));
    CUDA_CHECK(cudaFree(ds)); CUDA_CHECK(cudaFree(dy));
    free(x), free(w), free(y), free(qref), free(qgot), free(sref), free(sgot), free(a), free(b);
}

/* Random E4M3 operands: W [n_out, n_in] and X [n_tok, n_in] quantized per row on the host. */
typedef struct {
    uint8_t *wq, *xq;
    float *ws, *xs;
    uint8_t *dwq, *dxq;
    float *dws, *dxs;
} operands;

static void operands_init(operands *o, int n_tok, int n_out, int n_in)
{
    float *w = (float *)malloc((size_t)n_out * n_in * 4), *x = (float *)malloc((size_t)n_tok * n_in * 4);
    fill_uniform(w, (size_t)n_out * n_in, -0.1f, 0.1f);
    fill_uniform(x, (size_t)n_tok * n_in, -2.f, 2.f);
    for (int r = 0; r < n_out; r += 7) w[(size_t)r * n_in] = 0.5f;   /* row scales differ */
    o->wq = (uint8_t *)malloc((size_t)n_out * n_in), o->ws = (float *)malloc(n_out * 4);
    o->xq = (uint8_t *)malloc((size_t)n_tok * n_in), o->xs = (float *)malloc(n_tok * 4);
    fp8_quantize_rows(o->wq, o->ws, w, n_out, n_in);
    fp8_quantize_rows(o->xq, o->xs, x, n_tok, n_in);
    o->dwq = (uint8_t *)dev_upload(o->wq, (size_t)n_out * n_in);
    o->dxq = (uint8_t *)dev_upload(o->xq, (size_t)n_tok * n_in);
    o->dws = (float *)dev_upload(o->ws, n_out * 4);
    o->dxs = (float *)dev_upload(o->xs, n_tok * 4);
    free(w), free(x);
}

static void operands_free(operands *o)
{
    free(o->wq), free(o->xq), free(o->ws), free(o->xs);
    CUDA_CHECK(cudaFree(o->dwq)); CUDA_CHECK(cudaFree(o->dxq));
    CUDA_CHECK(cudaFree(o->dws)); CUDA_CHECK(cudaFree(o->dxs));
}

static const char *kind_name(gemv_epi_kind k)
{
    static const char *n[] = {"out", "out-f32", "resid", "silu", "qkv"};
    return n[k];
}

static void gemv_case(int n_tok, int n_out, int n_in, gemv_epi_kind kind, int pdl, kdtype dt)
{
    operands o;
    operands_init(&o, n_tok, n_out, n_in);
    int width = kind == GEMV_SILU ? n_out / 2 : n_out;
    size_t n_o = (size_t)n_tok * width;
    float *y = (float *)malloc((size_t)n_tok * n_out * 4), *ref = (float *)malloc(n_o * 4);
    float *got = (float *)malloc(n_o * 4);
    fp8_matmul_ref(y, o.xq, o.xs, o.wq, o.ws, n_tok, n_out, n_in);
    void *dout;
    if (kind == GEMV_RESID) {
        fill_uniform(ref, n_o, -1.f, 1.f);
        dout = dev_upload16(ref, n_o, dt);   /* rounded: the kernel adds to these */
    } else {
        dout = dev_alloc_poisoned(n_o * (kind == GEMV_OUT_F32 ? 4 : 2));
    }
    for (int t = 0; t < n_tok; t++)
        for (int r = 0; r < width; r++) {
            float a = y[(size_t)t * n_out + r];
            float *e = &ref[(size_t)t * width + r];
            if (kind == GEMV_SILU) *e = a / (1.f + expf(-a)) * y[(size_t)t * n_out + width + r];
            else if (kind == GEMV_RESID) *e += a;
            else *e = a;
        }
    CUDA_CHECK(gemv_fp8_run(dout, o.dxq, o.dxs, o.dwq, o.dws, n_tok, n_out, n_in, kind, pdl, dt, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    if (kind == GEMV_OUT_F32) CUDA_CHECK(cudaMemcpy(got, dout, n_o * 4, cudaMemcpyDeviceToHost));
    else dev_download16(got, dout, n_o, dt);
    double err = max_row_rel_err(got, ref, n_tok, width), tol = kind == GEMV_OUT_F32 ? 1e-4 : dt_tol(dt);
    check(err < tol, "gemv_fp8 %s %s n_tok %d n_out %d n_in %d%s: rel err %.2e < %.0e", dt_name(dt),
          kind_name(kind), n_tok, n_out, n_in, pdl ? " pdl" : "", err, tol);
    CUDA_CHECK(cudaFree(dout));
    operands_free(&o);
    free(y), free(ref), free(got);
}

/* SCRATCH_OK 0: no fp32 scratch (the 16-bit fallback of the epilogue path) */
static void gemm_case(fp8_gemm *g, int n_tok, int n_out, int n_in, int mode, kdtype dt,
                      int scratch_ok = 1)
{
    operands o;
    operands_init(&o, n_tok, n_out, n_in);
    size_t n_o = (size_t)n_tok * n_out;
    float *ref = (float *)malloc(n_o * 4), *got = (float *)malloc(n_o * 4);
    fp8_matmul_ref(ref, o.xq, o.xs, o.wq, o.ws, n_tok, n_out, n_in);
    void *dout = dev_alloc_poisoned(n_o * 2);
    float *scratch = (float *)dev_alloc_poisoned(n_o * 4);
    int used = -1;
    cudaError_t e = fp8_gemm_run(g, dout, o.dxq, o.dxs, o.dwq, o.dws, n_tok, n_out, n_in, mode,
                                 scratch_ok ? scratch : NULL, &used, dt, 0);
    if (e == cudaErrorNotSupported) {
        printf("INFO gemm_fp8 mode %d %dx%dx%d: cuBLASLt has no algorithm (not run)\n", mode,
               n_tok, n_out, n_in);
    } else {
        CUDA_CHECK(e);
        CUDA_CHECK(cudaDeviceSynchronize());
        dev_download16(got, dout, n_o, dt);
        double err = max_row_rel_err(got, ref, n_tok, n_out);
        check(err < dt_tol(dt), "gemm_fp8 %s mode %d (ran %s%s) n_tok %d n_out %d n_in %d: rel err "
              "%.2e < %.0e", dt_name(dt), mode, used == FP8_GEMM_OUTER_VEC ? "outer-vec" : "epilogue",
              scratch_ok ? "" : ", no scratch", n_tok, n_out, n_in, err, dt_tol(dt));
    }
    CUDA_CHECK(cudaFree(dout)); CUDA_CHECK(cudaFree(scratch));
    operands_free(&o);
    free(ref), free(got);
}

int main(void)
{
    test_init("test_fp8_kernels");
    test_cvt();
    quant_case(5, 4096, 4096, 0, KDT_BF16);
    quant_case(rng_int(2, 40), 8 * rng_int(1, 700), 8 * 710, 0, KDT_BF16);
    quant_case(3, 784, 800, 0, KDT_F16);
    quant_case(7, 1028, 1032, 1, KDT_BF16);
    quant_norm_case(8, 4096, KDT_BF16);
    quant_norm_case(rng_int(1, 8), 8 * rng_int(1, 2000), KDT_F16);
    for (int rep = 0; rep < 2; rep++) {
        for (int k = 0; k < 4; k++) {
            gemv_epi_kind kind = (gemv_epi_kind)k;
            gemv_case(rng_int(1, 8), 2 * rng_int(3, 700), 16 * rng_int(1, 300), kind, rep, KDT_BF16);
        }
        gemv_case(rng_int(1, 8), 1000, 4112, GEMV_OUT, 0, KDT_F16);
        gemv_case(8, 4096, 14336, GEMV_RESID, 1, KDT_BF16);    /* Llama-3-8B down_proj */
        gemv_case(1, 28672, 4096, GEMV_SILU, 1, KDT_BF16);     /* gate/up */
        gemv_case(rng_int(1, 8), 6144, 4096, GEMV_OUT, 0, KDT_BF16);   /* qkv */
    }
    CUDA_CHECK(gemv_fp8_run(NULL, NULL, NULL, NULL, NULL, 1, 16, 16, GEMV_OUT, 0, KDT_BF16, 0) ==
               cudaErrorInvalidValue ? cudaSuccess : cudaErrorUnknown);
    void *ws;
    CUDA_CHECK(cudaMalloc(&ws, 32 << 20));
    fp8_gemm *g = fp8_gemm_create(ws, 32 << 20);
    check(g != NULL, "fp8_gemm_create");
    for (int mode = 0; mode < 3; mode++) {
        gemm_case(g, rng_int(9, 200), 16 * rng_int(1, 64), 16 * rng_int(1, 128), mode, KDT_BF16);
        gemm_case(g, 128, 2048, 2048, mode, KDT_BF16);
        gemm_case(g, rng_int(9, 64), 512, 14336, mode, KDT_F16);
        if (mode == FP8_GEMM_EPILOGUE) gemm_case(g, 100, 1024, 1024, mode, KDT_BF16, 0);
    }
    fp8_gemm_destroy(g);
    CUDA_CHECK(cudaFree(ws));
    return test_summary("test_fp8_kernels");
}
