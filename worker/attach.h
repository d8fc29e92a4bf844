/* attach.h - the worker attaching to the launch's holder (see attach.c). */
#ifndef CINDER_ATTACH_H
#define CINDER_ATTACH_H

#include "../common/msg.h"
#include "../common/proc.h"

/* Asks the holder for its weights and KV cache (RELOAD: load the weights from disk again
 * first) and waits for the answer, as long as a holder runs (it may still be loading); 0
 * with OUT filled, or negative (logged). */
int worker_attach(proc *p, int reload, msg_holder_attached *out);
/* The holder this worker attached to (KV generation KV_GEN) is gone or was replaced: its
 * memory went with it, the worker must stop. */
int worker_holder_lost(const proc *p, uint64_t kv_gen);

#endif
