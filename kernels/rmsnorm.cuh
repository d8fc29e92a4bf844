/* rmsnorm.cuh - RMSNorm fused with the residual add of a transformer block. */
#ifndef CINDER_RMSNORM_CUH
#define CINDER_RMSNORM_CUH

#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* If X is not NULL: resid += x (rounded to the element type, in place). Then
 * out = resid * rsqrt(mean(resid^2) + eps) * w, in fp32, rounded once. OUT may be X.
 * dim a multiple of 8, at most 32768. */
cudaError_t rmsnorm_run(void *out,          /* [n_rows, dim] */
                        void *resid,        /* [n_rows, dim] residual stream */
                        const void *x,      /* [n_rows, dim] block output, or NULL */
                        const void *w,      /* [dim] */
                        int n_rows, int dim, float eps, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
