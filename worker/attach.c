/* attach.c - the worker's side of the holder protocol (hold.h, holder/main.c): one
 * HOLDER_ATTACH request over RUN_DIR/holder.ipc (ZeroMQ REQ/REP), answered once the holder
 * has loaded, checked (or reloaded) the weights, with where the weights and KV cache are. */
#include "attach.h"
#include "../common/ipc.h"
#include "../common/log.h"

#include <errno.h>
#include <zmq.h>

#define HOLDER_ABSENT_MS 10000 /* give up when no holder has run for this long */

int worker_attach(proc *p, int reload, msg_holder_attached *out)
{
    store_hdr *h = p->st.hdr;
    void *zctx = zmq_ctx_new();
    void *req = ipc_open(zctx, ZMQ_REQ, p->run_dir, IPC_HOLDER, 0);
    msg_holder_attach ask = {atomic_load(&h->epoch[PROC_WORKER]), reload};
    static msg_any in;
    int rc = -EIO, sent = 0;
    uint64_t t0 = now_ms(), absent_since = 0;
    while (req && !proc_stopping()) {
        if (!sent)   /* queued even before the holder binds (it may still be loading) */
            sent = ipc_send(req, MSG_HOLDER_ATTACH, &ask) == 0;
        if (sent && ipc_wait(req, PROC_BEAT_MS) > 0) {
            if (ipc_recv(req, &in) == 1 && in.type == MSG_HOLDER_ATTACHED) {
                *out = in.u.holder_attached;
                rc = out->status;
                if (rc)
                    LOG_ERR("the holder cannot serve this worker (status %d; see holder.log)", rc);
            } else {
                LOG_ERR("the holder answered with something other than holder_attached");
            }
            break;
        }
        if (store_running(&p->st, PROC_HOLDER))
            absent_since = 0;
        else if (!absent_since)
            absent_since = now_ms();
        else if (now_ms() - absent_since > HOLDER_ABSENT_MS) {
            LOG_ERR("no holder has run for %d s: cannot attach", HOLDER_ABSENT_MS / 1000);
            break;
        }
    }
    if (rc == 0)
        LOG_INFO("attached to the holder in %llu ms: KV generation %llx, %d blocks; weights %s%s",
                 (unsigned long long)(now_ms() - t0), (unsigned long long)out->kv_gen,
                 out->n_kv_blocks, out->reloaded ? "loaded again" : "kept",
                 out->verify_ms >= 0 ? " (digest checked)" : "");
    ipc_close(req);
    zmq_ctx_term(zctx);
    return rc;
}

int worker_holder_lost(const proc *p, uint64_t kv_gen)
{
    const store_hdr *h = p->st.hdr;
    return atomic_load(&h->epoch[PROC_HOLDER]) != (uint32_t)(kv_gen >> 32) ||
           !store_running(&p->st, PROC_HOLDER);
}
