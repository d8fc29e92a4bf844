/* decode_breakdown.cu - where a decode step's device time goes (see decode_breakdown.h): the
 * whole captured graph against its GEMMs (or fused GEMVs) alone, replayed on the engine's
 * own buffers. Benchmark code: it reaches into the engine through worker/cuda_engine.h.
 */
#include "decode_breakdown.h"
#include "../worker/cuda_engine.h"
#include "../kernels/cuda_check.cuh"
#include "../kernels/gemv.cuh"

#include <algorithm>
#include <vector>

static float median_ms(std::vector<float> &v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* Median event time of ITERS runs of F on the engine's stream, after two warm-ups. */
template <typename F> static double time_stream(cuda_engine *e, int iters, F f)
{
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(iters > 0 ? iters : 1);
    for (int i = -2; i < (int)ms.size(); i++) {
        CUDA_CHECK(cudaEventRecord(a, e->stream));
        f();
        CUDA_CHECK(cudaEventRecord(b, e->stream));
        CUDA_CHECK(cudaEventSynchronize(b));
        if (i >= 0)
            CUDA_CHECK(cudaEventElapsedTime(&ms[i], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return median_ms(ms);
}

extern "C" int bench_decode_breakdown(cuda_engine *e, int n, int iters, double *graph_ms, double *gemm_ms)
{
    int g = ce_graph_for(e, n);
    if (g < 0)
        return -1;
    const model_config *c = &e->cfg;
    ce_graph_capture(e, g);   /* graphs are captured on first use */
    int G = e->graph_bs[g], dim = c->dim, hid = c->hidden_dim;
    *graph_ms = time_stream(e, iters, [&] { CUDA_CHECK(cudaGraphLaunch(e->graph[g], e->stream)); });
    const bool fused = ce_use_fused(e, G, 0);
    *gemm_ms = time_stream(e, iters, [&] {
        for (int l = 0; l < c->n_layers; l++) {
            const cuda_layer *ly = &e->w.layers[l];
            if (fused && e->fp8) {   /* the E4M3 GEMVs, their quantization included */
                ce_fp8_layer_products(e, l, G);
            } else if (fused) {   /* the same GEMVs with plain epilogues, into scratch */
                ce_gemv(e, e->gu, e->x, ly->wqkv, G, e->qkv_dim, dim, GEMV_OUT, ly->attn_norm, NULL);
                ce_gemv(e, e->y, e->att, ly->wo, G, dim, e->q_dim, GEMV_OUT, NULL, NULL);
                ce_gemv(e, e->act, e->x, ly->w_gate_up, G, 2 * hid, dim, GEMV_SILU, ly->ffn_norm,
                     NULL);
                ce_gemv(e, e->y, e->act, ly->w_down, G, dim, hid, GEMV_OUT, NULL, NULL);
            } else {
                ce_gemm(e, e->qkv, e->cdt, e->xn, ly->wqkv, G, e->qkv_dim, dim);
                ce_gemm(e, e->y, e->cdt, e->att, ly->wo, G, dim, e->q_dim);
                ce_gemm(e, e->gu, e->cdt, e->xn, ly->w_gate_up, G, 2 * hid, dim);
                ce_gemm(e, e->y, e->cdt, e->act, ly->w_down, G, dim, hid);
            }
        }
        if (fused)
            ce_gemv(e, e->logits, e->x, e->w.lm_head, G, c->vocab_size, dim, GEMV_OUT_F32, e->w.norm,
                 NULL);
        else
            ce_gemm(e, e->logits, CUDA_R_32F, e->xn, e->w.lm_head, G, c->vocab_size, dim);
    });
    return 0;
}

