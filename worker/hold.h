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

typedef struct hold hold;
struct hold {
    const char *name;          /* "cpu" or "cuda" */
    int dummy;                 /* the random model, not the model directory's weights */
    msg_holder_attached info;  /* kind, sizes, IPC handles; the per-attach fields are the
                                  holder process's to fill */
    uint64_t digest;           /* of the weights as last loaded (hold_load) */
    /* Fills the weights: the model directory's, or the random model; 0, or negative with a
       message in ERR. */
    int (*fill)(hold *h, char *err, size_t n_err);
    /* The digest of the weights as they are now (kernels/digest.h). */
    uint64_t (*digest_now)(hold *h);
    void (*free)(hold *h);
};

/* Loads the weights (again, into the same memory) and keeps their digest, logging the size
 * and the times; 0, or negative with a message in ERR. */
int hold_load(hold *h, char *err, size_t n_err);
/* The digest of the weights now, and its time in *MS. */
uint64_t hold_digest(hold *h, double *ms);

/* Allocates the weights and the KV cache (hold_load then fills the weights: O's model
 * directory, or the random model with O->dummy_weights); NULL with a message in ERR.
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
