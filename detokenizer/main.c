/* main.c - the detokenizer process: token counts in, text deltas out.
 *
 * Blocks on the DETOK socket from the router (with a heartbeat deadline). For each request in
 * a DETOK message it turns the new tokens in the shared-memory slot into text deltas
 * (detok.c) and pushes them to the tokenizer process, which streams them to the client.
 * When a stop string matches it asks the router to stop the request.
 *
 *   detokenizer --run-dir DIR --shm NAME --model-dir DIR
 */
#include "../common/ipc.h"
#include "../common/log.h"
#include "../common/proc.h"
#include "detok.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

static void send_delta(void *sock, const msg_text_delta *d) { ipc_send(sock, MSG_TEXT_DELTA, d); }

int main(int argc, char **argv)
{
    static proc p;
    proc_init(&p, PROC_DETOKENIZER);
    static const struct option opts[] = {PROC_OPTIONS, {0, 0, 0, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (!proc_option(&p, c, optarg))
            goto usage;
    if (proc_open(&p) < 0)
        goto usage;
    store *st = &p.st;
    char path[PATH_MAX], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", p.model_dir);
    tok *t = tok_load(path, err, sizeof err);
    if (!t) {
        LOG_ERR("%s: %s", path, err);
        return 1;
    }
    proc_register(&p, PROC_STOP_FLAG);
    void *zctx = zmq_ctx_new();
    void *pull = ipc_open(zctx, ZMQ_PULL, p.run_dir, IPC_DETOK, 0);
    void *to_tokenizer = ipc_open(zctx, ZMQ_PUSH, p.run_dir, IPC_TOKENIZER, 0);
    void *to_router = ipc_open(zctx, ZMQ_PUSH, p.run_dir, IPC_ROUTER, 0);
    if (!pull || !to_tokenizer || !to_router)
        return 1;
    LOG_INFO("ready");

    static msg_any in;
    uint64_t *seen = calloc(st->hdr->n_slots, sizeof *seen); /* request handled in this process */
    if (!seen)
        return 1;
    while (!proc_stopping()) {
        store_heartbeat(st, PROC_DETOKENIZER);
        if (proc_router_restarted(&p) && /* connect to the new one */
            (ipc_reopen(&to_router, zctx, ZMQ_PUSH, p.run_dir, IPC_ROUTER, 0) ||
             ipc_reopen(&pull, zctx, ZMQ_PULL, p.run_dir, IPC_DETOK, 0)))
            DIE("cannot reconnect to the router");
        if (ipc_wait(pull, PROC_BEAT_MS) <= 0)
            continue;
        while ((rc = ipc_recv(pull, &in)) != 0) {
            if (rc < 0 || in.type != MSG_DETOK)
                continue;
            for (int i = 0; i < in.u.detok.n_seqs; i++) {
                const detok_seq *e = &in.u.detok.seqs[i];
                if (e->slot < 0 || (uint32_t)e->slot >= st->hdr->n_slots)
                    continue;
                int fresh = seen[e->slot] != e->req_id; /* new, or from before a restart */
                rc = detok_advance(t, st, e, fresh, (detok_emit_fn)send_delta, to_tokenizer);
                if (rc >= 0)
                    seen[e->slot] = e->req_id;
                if (rc == 1) {
                    msg_stop_req m = {e->slot, e->req_id};
                    ipc_send(to_router, MSG_STOP_REQ, &m);
                } else if (rc < 0) {
                    LOG_WARN("skipped a stale or invalid entry for slot %d", e->slot);
                }
            }
        }
    }
    LOG_INFO("stopping");
    free(seen);
    ipc_close(pull);
    ipc_close(to_tokenizer);
    ipc_close(to_router);
    zmq_ctx_term(zctx);
    tok_free(t);
    proc_free(&p);
    return 0;
usage:
    fprintf(stderr, "usage: detokenizer " PROC_USAGE "\n");
    return 2;
}
