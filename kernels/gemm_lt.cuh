/* gemm_lt.cuh - 16-bit projections through cuBLASLt with an algorithm picked by measurement.
 *
 * cublasGemmEx takes cuBLAS's first heuristic choice, which at decode batches (16-256 token
 * rows against 4096-28672 weight rows) is not always the fastest: the weights stream once and
 * the tile shape decides how many multiprocessors pull them. A plan holds, for one shape, the
 * heuristic's candidates (up to GEMM_LT_MAX_ALGOS); the caller times them on its own operands
 * (worker/cuda_gemm_tune.cu: over every layer's weights, so the L2 cache does not flatter a
 * candidate) and records its pick, which later calls of that exact shape then run.
 * Column-major view as cublasGemmEx's in the engine: C^T [n_out, n_tok] = W [n_out, n_in] . X^T.
 */
#ifndef CINDER_GEMM_LT_CUH
#define CINDER_GEMM_LT_CUH

#include <cuda_runtime.h>
#include <library_types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GEMM_LT_MAX_ALGOS 8

typedef struct gemm_lt gemm_lt;

/* WORKSPACE [ws_bytes] on the device, shared by every plan (one stream). NULL on failure. */
gemm_lt *gemm_lt_create(void *workspace, size_t ws_bytes);
void gemm_lt_free(gemm_lt *g);

/* The candidates of the shape (X and W of type AB, C of type CT: CUDA_R_16BF, CUDA_R_16F, or
 * CT CUDA_R_32F), the plan made on first use: their number (0: none), or -1 on a cuBLASLt
 * error or a full plan table. */
int gemm_lt_candidates(gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                       cudaDataType_t ct);

/* C [n_tok, n_out] = X [n_tok, n_in] . W [n_out, n_in]^T with candidate ALGO of the shape's
 * plan (0 <= ALGO < gemm_lt_candidates), or with ALGO -1 the recorded pick.
 * cudaErrorInvalidValue for a bad argument, no plan, or no pick; cudaErrorUnknown when
 * cuBLASLt fails. Capturable into a CUDA graph. */
cudaError_t gemm_lt_run(gemm_lt *g, int algo, void *c, const void *x, const void *w, int n_tok,
                        int n_out, int n_in, cudaDataType_t ab, cudaDataType_t ct,
                        cudaStream_t stream);

/* Records ALGO (-1: none, the caller's default runs) as the pick of the shape's plan. */
void gemm_lt_pick(gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                  cudaDataType_t ct, int algo);
/* The recorded pick of the shape, or -1 (no plan, or none picked). */
int gemm_lt_picked(const gemm_lt *g, int n_tok, int n_out, int n_in, cudaDataType_t ab,
                   cudaDataType_t ct);

#ifdef __cplusplus
}
#endif

#endif
