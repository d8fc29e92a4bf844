/* ipc.h - ZeroMQ sockets between the processes, named by role inside the run directory.
 *
 * Endpoints (ipc://RUN_DIR/NAME.ipc), all PUSH -> PULL so any side can restart and reconnect:
 *   router.ipc    bound PULL by the router; tokenizer, worker, detokenizer connect PUSH
 *   worker.ipc    bound PUSH by the router; the worker connects PULL
 *   detok.ipc     bound PUSH by the router; the detokenizer connects PULL
 *   tokenizer.ipc bound PULL by the tokenizer; detokenizer and router connect PUSH
 *   holder.ipc    bound REP by the holder; the worker connects REQ (its one request, attach)
 */
#ifndef CINDER_IPC_H
#define CINDER_IPC_H

#include "msg.h"

#define IPC_ROUTER "router"
#define IPC_WORKER "worker"
#define IPC_DETOK "detok"
#define IPC_TOKENIZER "tokenizer"
#define IPC_HOLDER "holder"

/* Opens a socket of zmq TYPE (ZMQ_PUSH / ZMQ_PULL, ZMQ_REQ / ZMQ_REP) bound or connected to RUN_DIR/NAME.ipc.
 * NULL on failure (logged). */
void *ipc_open(void *zctx, int type, const char *run_dir, const char *name, int bind);
void ipc_close(void *sock);
/* Closes *SOCK and opens it again (dropping what it had queued). Used when the peer it binds
 * to was restarted: a fresh connection is faster and surer than zmq's own reconnection, which
 * was seen to stall after a peer died by SIGKILL. 0, or -1 with *SOCK NULL. */
int ipc_reopen(void **sock, void *zctx, int type, const char *run_dir, const char *name, int bind);

/* Packs and sends one message without blocking; 0 or negative (e.g. -EAGAIN). */
int ipc_send(void *sock, int type, const void *m);
/* Receives one message without blocking: 1 got one, 0 none waiting, negative malformed
 * (the bad message is consumed and dropped). */
int ipc_recv(void *sock, msg_any *out);
/* Waits up to TIMEOUT_MS for input on SOCK: 1 readable, 0 timeout, negative error. */
int ipc_wait(void *sock, long timeout_ms);
/* The socket's file descriptor, for libuv polling (edge-triggered: drain with ipc_recv). */
int ipc_fd(void *sock);

#endif
