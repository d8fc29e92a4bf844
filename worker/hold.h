/* hold.h - the memory a holder process keeps for the worker: the weights, loaded once, and
 * the KV cache, both outliving any worker (holder/main.c is the process, README "Restarts").
 *
 * CPU backend: one POSIX shared-memory region owned by the holder, named after the store
 * (store_holder_name), mode 0600, [weights fp32 (cpu_weights layout)][pad to HOLD_ALIGN]
 * [K][V] (kv_layout.h); the worker maps it (hold_shm_map) instead of allocating and loading.
 * CUDA backend: two device allocations (the weights; K then V) shared through the runtime's
 * CUDA IPC handles (cudaIpcGetMemHandle / cudaIpcOpenMemHandle), which the holder hands the
 * worker in its HOLDER_ATTACHED reply.
 * Why the runtime's handles and not the driver's VMM shareable handles (cuMemCreate with a
 * POSIX fd, passed over a unix socket): a handle is 64 plain bytes that travel in a message,
 * any cudaMalloc allocation can be exported as it is (the weights and KV code stays the
 * same), and the worker needs no fd passing; what VMM would add (re-mapping parts, growing)
 * cinder does not use. One worker per holder, on the same GPU.
 */
#ifndef CINDER_HOLD_H
#define CINDER_HOLD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "../common/msg.h"
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HOLD_ALIGN 4096   /* where K starts in the CPU region: a page after the weights */

static inline size_t hold_kv_offset(size_t weights_bytes)
{
    return (weights_bytes + HOLD_ALIGN - 1) / HOLD_ALIGN * HOLD_ALIGN;
}

/* Milliseconds since T0 (CLOCK_MONOTONIC): the load and digest times the holder reports. */
static inline double hold_ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

typedef struct hold hold;
struct hold {
    const char *name;          /* "cpu" or "cuda" */
    msg_holder_attached info;  /* kind, sizes, IPC handles; the per-attach fields are the
                                  holder process's to fill */
    uint64_t digest;           /* of the weights as loaded (kernels/digest.h) */
    double load_ms;            /* the last load of the weights */
    /* The digest of the weights as they are now, into OUT; its time in *MS. */
    void (*digest_now)(hold *h, uint64_t *out, double *ms);
    /* Loads the weights again into the same memory (and takes their digest); 0, or
       negative with a message in ERR. */
    int (*reload)(hold *h, char *err, size_t n_err);
    void (*free)(hold *h);
};

/* Allocates the weights and the KV cache, loads the weights (O's model directory, or the
 * random model with O->dummy_weights) and takes their digest; NULL with a message in ERR.
 * REGION: the CPU region's name. */
hold *hold_cpu_init(const backend_opts *o, const char *region, char *err, size_t n_err);
hold *hold_cuda_init(const backend_opts *o, char *err, size_t n_err);

/* The CPU region: created by the holder (an old one of this user's is replaced; another
 * user's is refused), mapped by the worker (only if it is this user's, mode 0600, of BYTES
 * bytes). The mapping, or NULL with the reason in ERR. */
void *hold_shm_create(const char *name, size_t bytes, char *err, size_t n_err);
void *hold_shm_map(const char *name, size_t bytes, char *err, size_t n_err);

#ifdef __cplusplus
}
#endif

#endif
