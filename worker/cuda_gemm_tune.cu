/* cuda_gemm_tune.cu - the decode batches' 16-bit projections on measured cuBLASLt algorithms
 * (kernels/gemm_lt.cuh). Before a decode graph of batch G is first captured, each projection
 * shape of that batch (q/k/v, o, gate/up, down and the LM head) runs with cublasGemmEx (what
 * ce_gemm does by default) and with each of cuBLASLt's candidates, over the weights of up to
 * TUNE_LAYERS layers in turn, as a step streams them (one matrix repeated would sit in the L2
 * cache and flatter whoever runs second). A candidate at least TUNE_GAIN faster than the default
 * becomes the shape's pick, which ce_gemm then runs (captured into the graph as any call).
 * Off with --gemm-tune 0; FP8 projections (cuda_fp8.cu) and MoE experts are not tuned here.
 */
#include "cuda_engine.h"

extern "C" {
#include "../common/log.h"
}
#include "../kernels/cuda_check.cuh"
#include "../kernels/gemm_lt.cuh"

#include <string.h>
#include <time.h>

#define TUNE_LAYERS 8
#define TUNE_GAIN 0.97f   /* a pick must take at most this fraction of the default's time */

/* Device time of F(i) for i in [0, n) on the engine's stream, after one warm-up F(0); ms, or
 * a negative value when F returns false (a candidate cuBLASLt refused). */
template <typename F> static float time_runs(cuda_engine *e, int n, F f)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    bool ok = f(0);
    CUDA_CHECK(cudaEventRecord(a, e->stream));
    for (int i = 0; i < n && ok; i++) ok = f(i);
    CUDA_CHECK(cudaEventRecord(b, e->stream));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = -1.f;
    if (ok) CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return ms;
}

/* One projection shape of the step: C [G, n_out] (type CT) = X [G, n_in] . W_l^T, with W_l the
 * weights of layer l (the LM head: one matrix). */
typedef struct {
    const char *name;
    void *c;
    cudaDataType_t ct;
    const void *x;
    int n_out, n_in;
    const void *(*w)(const cuda_engine *e, int l);
} tune_shape;

static const void *w_qkv(const cuda_engine *e, int l) { return e->w.layers[l].wqkv; }
static const void *w_o(const cuda_engine *e, int l) { return e->w.layers[l].wo; }
static const void *w_gu(const cuda_engine *e, int l) { return e->w.layers[l].w_gate_up; }
static const void *w_down(const cuda_engine *e, int l) { return e->w.layers[l].w_down; }
static const void *w_head(const cuda_engine *e, int l) { (void)l; return e->w.lm_head; }

static void tune_one(cuda_engine *e, const tune_shape *s, int G, int n_w, char *log, size_t n_log)
{
    int n = gemm_lt_candidates(e->lt, G, s->n_out, s->n_in, e->cdt, s->ct);
    if (n <= 0)
        return;
    const float alpha = 1.f, beta = 0.f;
    float t_def = time_runs(e, n_w, [&](int i) {
        CUBLAS_CHECK(cublasGemmEx(e->blas, CUBLAS_OP_T, CUBLAS_OP_N, s->n_out, G, s->n_in, &alpha,
                                  s->w(e, i), e->cdt, s->n_in, s->x, e->cdt, s->n_in, &beta, s->c,
                                  s->ct, s->n_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return true;
    });
    int best = -1;
    float t_best = t_def * TUNE_GAIN;
    for (int a = 0; a < n; a++) {
        float t = time_runs(e, n_w, [&](int i) {
            return gemm_lt_run(e->lt, a, s->c, s->x, s->w(e, i), G, s->n_out, s->n_in, e->cdt,
                               s->ct, e->stream) == cudaSuccess;
        });
        if (t >= 0.f && t < t_best)
            best = a, t_best = t;
    }
    gemm_lt_pick(e->lt, G, s->n_out, s->n_in, e->cdt, s->ct, best);
    size_t k = strlen(log);
    snprintf(log + k, n_log - k, " %s %.1f->%.1f us (%s);", s->name, 1e3f * t_def / n_w,
             1e3f * (best < 0 ? t_def : t_best) / n_w,
             best < 0 ? "default" : "candidate");
}

void ce_gemm_tune(cuda_engine *e, int G)
{
    if (!e->lt || G > e->max_tokens)
        return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const model_config *c = &e->cfg;
    const int dim = c->dim, hid = c->hidden_dim;
    int n_w = c->n_layers < TUNE_LAYERS ? c->n_layers : TUNE_LAYERS;
    /* outputs into the step's scratch; inputs hold whatever the last step left */
    const tune_shape shapes[] = {
        {"qkv", e->qkv, e->cdt, e->xn, e->qkv_dim, dim, w_qkv},
        {"o", e->y, e->cdt, e->att, dim, e->q_dim, w_o},
        {"gate_up", e->gu, e->cdt, e->xn, 2 * hid, dim, w_gu},
        {"down", e->y, e->cdt, e->act, dim, hid, w_down},
        {"lm_head", e->logits, CUDA_R_32F, e->xn, c->vocab_size, dim, w_head},
    };
    char log[512] = "";
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        if (e->fp8 && ce_fp8_gemm_owns(e, shapes[i].w(e, 0)))
            continue;   /* an E4M3 projection */
        if (c->n_experts && i >= 2 && i <= 3)
            continue;   /* MoE: the experts have their own kernels */
        tune_one(e, &shapes[i], G, i == 4 ? 2 : n_w, log, sizeof log);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    LOG_INFO("gemm tune, batch %d (a projection's time, default -> picked):%s %.0f ms", G, log,
             ms);
}
