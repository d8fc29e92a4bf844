/* silu_mul.cuh - SwiGLU activation on the fused gate/up projection output. */
#ifndef CINDER_SILU_MUL_CUH
#define CINDER_SILU_MUL_CUH

#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[r, i] = silu(in[r, i]) * in[r, hidden + i], fp32 inside. hidden a multiple of 8. */
cudaError_t silu_mul_run(void *out,         /* [n_rows, hidden] */
                         const void *in,    /* [n_rows, 2 * hidden]: gate then up */
                         int n_rows, int hidden, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
