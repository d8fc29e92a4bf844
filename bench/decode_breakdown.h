/* decode_breakdown.h - where a decode step of the CUDA engine spends its device time, for the
 * forward benchmark (bench/cmd_forward.c --breakdown). */
#ifndef CINDER_DECODE_BREAKDOWN_H
#define CINDER_DECODE_BREAKDOWN_H

#include "../worker/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device time of a decode step of batch N (<= the largest graph), medians of ITERS runs by
 * events: the whole graph replay, and the GEMMs alone (every layer's projections and the LM
 * head, eager; on the fused path the same GEMV kernels with plain epilogues, as dependent
 * launches, RMSNorms in their prologues). Call after a forward of that batch (it replays its
 * inputs). 0, or -1 without a graph for N. */
int bench_decode_breakdown(cuda_engine *e, int n, int iters, double *graph_ms, double *gemm_ms);

#ifdef __cplusplus
}
#endif

#endif
