/* embed.cuh - token embedding gather. */
#ifndef CINDER_EMBED_CUH
#define CINDER_EMBED_CUH

#include <stdint.h>
#include <cuda_runtime.h>
#include "kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out[t] = table[ids[t]]; an id outside [0, vocab) gives a zero row (callers validate ids).
 * dim a multiple of 8. Element size only matters, so any 16-bit type works. */
cudaError_t embed_run(void *out,            /* [n_tokens, dim] */
                      const void *table,    /* [vocab, dim] */
                      const int32_t *ids,   /* [n_tokens] */
                      int n_tokens, int vocab, int dim, kdtype dt, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
