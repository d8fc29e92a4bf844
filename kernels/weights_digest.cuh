/* weights_digest.cuh - the digest of a device buffer (kernels/digest.h): what the holder
 * compares before a restarted worker attaches. Memory-bound: one read of the buffer. The CPU
 * reference is digest_ref in digest.h (a header: the CPU holder, built without nvcc too,
 * uses it). */
#ifndef CINDER_WEIGHTS_DIGEST_CUH
#define CINDER_WEIGHTS_DIGEST_CUH

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* *OUT (device, one uint64) = the digest of N_BYTES at P (device, 16-byte aligned: a
 * cudaMalloc pointer), on STREAM. */
cudaError_t weights_digest_run(const void *p, size_t n_bytes, uint64_t *out, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
