/* sm90_host.cuh - host side of the Hopper (sm_90a) kernels: whether this process can run them,
 * and the TMA tensor map over a paged KV cache (driver entry points reached through
 * cudaGetDriverEntryPointByVersion, so nothing links libcuda directly).
 */
#ifndef CINDER_SM90_HOST_CUH
#define CINDER_SM90_HOST_CUH

#include <cuda.h>
#include <cuda_runtime.h>

/* 1 when the current device has compute capability 9.0, the driver has the tensor-map entry
 * points and this build carries sm_90a code (a probe kernel says so); checked once. The first
 * call synchronizes: make it outside stream capture. */
int sm90_available(void);

/* MAP <- a 3-d bf16 tensor map (head dim HD, kv head, cache slot) over the cache CACHE
 * ([slots, n_kv, hd]), box (64, 1, ROWS_BOX), 128-byte swizzle: the box of a slot range and
 * kv head lands in shared memory as wgmma's K-major 128-byte-swizzled tile (two boxes per 128
 * columns). The slot extent reaches the end of the allocation holding CACHE (the kernels only
 * read slots the block tables name). cudaErrorNotSupported when the driver refuses it;
 * sm90_available() must have returned 1. */
cudaError_t sm90_kv_map(CUtensorMap *map, const void *cache, int n_kv, int hd, int rows_box);

#endif
