/* main.c - the router process: one libuv event loop around the scheduler (sched.c).
 *
 * It receives NEW_REQ/ABORT from the tokenizer, STOP_REQ from the detokenizer and
 * WORKER_READY/STEP_DONE from the worker on one PULL socket, polled through its file
 * descriptor (no sleep-polling). It keeps up to PIPELINE_DEPTH steps in flight: while the
 * worker runs step N, step N+1 already waits in its socket, so the GPU never idles on the
 * router. When a step is done it sends one DETOK with the new token counts.
 *
 *   router --run-dir DIR --shm NAME --model-dir DIR [--verbose] [--max-batch-tokens N]
 *          [--max-total-tokens N] [--max-running N] [--new-token-ratio F] [--policy fcfs|spf|lpm]
 *          [--pipeline-depth 1|2] [--worker-wait-ms N] [--no-prefix-caching]
 *   --worker-wait-ms: how long requests wait for a worker (one that died, or a restarted one
 *   still loading) before they fail with 503 (default 30000).
 *   --no-prefix-caching: every request computes its whole prompt (prefix caching is on by
 *   default: see sched.h).
 */
#include "../common/ipc.h"
#include "../common/log.h"
#include "../common/model_config.h"
#include "../common/proc.h"
#include "sched.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

#define MAX_DEPTH 2

typedef struct {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_signal_t sigterm, sigint;
    void *zctx, *pull, *to_worker, *to_detok, *to_tokenizer;
    proc p;                       /* common flags, the store */
    model_config cfg;
    sched sched;
    msg_any in;                   /* last received message */
    msg_step inflight[MAX_DEPTH]; /* steps sent and not yet done, oldest at head */
    int head, n_inflight, depth;
    uint32_t worker_epoch;
    uint64_t kv_gen;              /* the holder's KV generation the worker had (0: none) */
    int worker_up;                /* a worker reported and still beats */
    uint64_t worker_down_ms;      /* since when no worker is up (0: one is) */
    int worker_wait_ms;           /* requests held longer without a worker fail (503) */
    msg_detok detok;
    detok_seq *pending;           /* [n_slots] latest unsent entry per slot (req_id 0: none) */
    int n_pending;
} router;

/* The scheduler's results go to the detokenizer. Entries are kept per slot until sent, the
 * latest superseding earlier ones (the detokenizer reads the tokens from the slot), so a
 * detokenizer that is down or restarting loses nothing: they go when it is back. */
static void flush_outbox(router *r)
{
    while (sched_take_outbox(&r->sched, &r->detok) > 0)
        for (int i = 0; i < r->detok.n_seqs; i++) {
            detok_seq *e = &r->detok.seqs[i], *p = &r->pending[e->slot];
            if (p->req_id == 0)
                r->n_pending++;
            else if (p->req_id == e->req_id && p->finish)
                continue; /* the end is already queued */
            *p = *e;
        }
    while (r->n_pending > 0) {
        r->detok.n_seqs = 0;
        for (int s = 0; s < r->sched.n_slots && r->detok.n_seqs < MSG_MAX_SEQS; s++)
            if (r->pending[s].req_id)
                r->detok.seqs[r->detok.n_seqs++] = r->pending[s];
        if (ipc_send(r->to_detok, MSG_DETOK, &r->detok))
            return; /* retried on the next event or tick */
        for (int i = 0; i < r->detok.n_seqs; i++)
            r->pending[r->detok.seqs[i].slot].req_id = 0;
        r->n_pending -= r->detok.n_seqs;
    }
}

/* Sends steps while fewer than DEPTH are in flight and there is work. */
static void kick(router *r)
{
    while (r->worker_up && r->n_inflight < r->depth) {
        msg_step *st = &r->inflight[(r->head + r->n_inflight) % MAX_DEPTH];
        if (sched_build_step(&r->sched, st) == 0)
            break;
        st->epoch = atomic_load(&r->p.st.hdr->epoch[PROC_ROUTER]);
        r->n_inflight++;
        if (ipc_send(r->to_worker, MSG_STEP, st) != 0) { /* not connected yet: retry later */
            r->n_inflight--;
            sched_step_done(&r->sched, st, STEP_NOT_SENT);
            break;
        }
    }
    flush_outbox(r);
    sched_publish(&r->sched);
}

/* The worker is gone: its steps in flight with it. Running requests wait for the next worker
 * (a new one registers with a new epoch and beats while it loads or attaches, before it
 * announces itself), which resumes them when the holder kept their KV, else recomputes
 * them; --worker-wait counts from now. */
static void worker_lost(router *r, const char *how)
{
    LOG_WARN("worker epoch %u %s: waiting for a new one", r->worker_epoch, how);
    atomic_store(&r->p.st.hdr->worker_serving, 0);
    r->worker_up = 0;
    r->n_inflight = 0;
    sched_worker_lost(&r->sched);
}

static void handle(router *r, const msg_any *m)
{
    switch (m->type) {
    case MSG_NEW_REQ:
        if (sched_add(&r->sched, m->u.new_req.slot, m->u.new_req.req_id))
            LOG_WARN("rejected new_req for slot %d", m->u.new_req.slot);
        break;
    case MSG_ABORT:
        if (!sched_cancel(&r->sched, m->u.abort.slot, m->u.abort.req_id, FINISH_ABORT)) {
            /* not ours (ended, or sent to an earlier router): the tokenizer can let it go */
            msg_req_failed f = {m->u.abort.slot, m->u.abort.req_id, 410, "the router holds no such request"};
            ipc_send(r->to_tokenizer, MSG_REQ_FAILED, &f);
        }
        break;
    case MSG_STOP_REQ:
        sched_cancel(&r->sched, m->u.stop_req.slot, m->u.stop_req.req_id, FINISH_STOP);
        break;
    case MSG_WORKER_READY: {
        const msg_worker_ready *w = &m->u.worker_ready;
        if (r->worker_up && w->epoch == r->worker_epoch)
            break; /* the worker we have, announcing itself again */
        if (r->worker_up)
            worker_lost(r, "was replaced");
        int kept = w->kv_gen != 0 && w->kv_gen == r->kv_gen;
        LOG_INFO("worker epoch %u ready (KV generation %llx: %s)", w->epoch,
                 (unsigned long long)w->kv_gen, kept ? "kept, running requests resume" :
                 "new: any running requests are recomputed");
        r->worker_epoch = w->epoch;
        r->kv_gen = w->kv_gen;
        r->worker_up = 1;
        r->n_inflight = 0;
        if (sched_worker_back(&r->sched, w->n_kv_blocks, w->max_batch_tokens, kept))
            DIE("out of memory for %d KV blocks", w->n_kv_blocks);
        atomic_store(&r->p.st.hdr->worker_serving, w->epoch);
        break;
    }
    case MSG_STEP_DONE: {
        const msg_step *oldest = &r->inflight[r->head];
        if (!r->n_inflight || m->u.step_done.step_id != oldest->step_id ||
            m->u.step_done.epoch != r->worker_epoch) {
            LOG_WARN("ignored stale step_done %llu", (unsigned long long)m->u.step_done.step_id);
            break;
        }
        LOG_DEBUG("step %llu: %d seqs, worker %.2f ms", (unsigned long long)oldest->step_id,
                  oldest->n_seqs, m->u.step_done.step_ms);
        sched_step_done(&r->sched, oldest, m->u.step_done.status);
        r->head = (r->head + 1) % MAX_DEPTH;
        r->n_inflight--;
        break;
    }
    default:
        LOG_WARN("unexpected %s message", msg_type_name(m->type));
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    router *r = h->data;
    int rc;
    while ((rc = ipc_recv(r->pull, &r->in)) != 0)
        if (rc > 0)
            handle(r, &r->in);
    kick(r);
}

static void on_timer(uv_timer_t *t)
{
    router *r = t->data;
    store_heartbeat(&r->p.st, PROC_ROUTER);
    if (r->worker_up && (store_gone(&r->p.st, PROC_WORKER) ||
                         atomic_load(&r->p.st.hdr->epoch[PROC_WORKER]) != r->worker_epoch))
        worker_lost(r, "stopped beating or was replaced");
    /* every accepted request ends in bounded time: without a worker for worker_wait_ms (none
       restarted it, or it keeps failing to start), the requests held fail with 503 */
    uint64_t now = now_ms();
    if (r->worker_up)
        r->worker_down_ms = 0;
    else if (!r->worker_down_ms)
        r->worker_down_ms = now;
    else if (now - r->worker_down_ms >= (uint64_t)r->worker_wait_ms &&
             (r->sched.n_waiting || r->sched.n_running)) {
        char why[STORE_ERROR_BYTES];
        snprintf(why, sizeof why, "the worker is down and did not come back within %d s; the "
                 "request was not completed", r->worker_wait_ms / 1000);
        LOG_WARN("no worker for %llu ms: failed %d requests",
                 (unsigned long long)(now - r->worker_down_ms),
                 sched_fail_all(&r->sched, 503, why));
    }
    on_readable(&r->poll, 0, 0); /* zmq's fd is edge-triggered: never leave input behind */
}

static void on_signal(uv_signal_t *s, int signum)
{
    LOG_INFO("signal %d: stopping", signum);
    uv_stop(s->loop);
}

static int usage(void)
{
    fprintf(stderr, "usage: router " PROC_USAGE " [--max-batch-tokens N]"
                    " [--max-total-tokens N] [--max-running N] [--new-token-ratio F]"
                    " [--policy fcfs|spf|lpm] [--pipeline-depth 1|2] [--worker-wait-ms N]"
                    " [--no-prefix-caching]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static router r; /* large: the step and detok arrays */
    proc_init(&r.p, PROC_ROUTER);
    sched_opts so = {.max_batch_tokens = 2048, .max_running = 256, .new_token_ratio = 1.0f};
    int depth = MAX_DEPTH, worker_wait_ms = 30000;
    static const struct option opts[] = {
        PROC_OPTIONS, {"max-batch-tokens", 1, 0, 'b'}, {"max-total-tokens", 1, 0, 't'},
        {"max-running", 1, 0, 'n'}, {"new-token-ratio", 1, 0, 'R'}, {"policy", 1, 0, 'P'},
        {"pipeline-depth", 1, 0, 'd'}, {"worker-wait-ms", 1, 0, 'w'},
        {"no-prefix-caching", 0, 0, 'C'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': so.max_batch_tokens = atoi(optarg); break;
        case 't': so.max_total_tokens = atoi(optarg); break;
        case 'n': so.max_running = atoi(optarg); break;
        case 'R': so.new_token_ratio = (float)atof(optarg); break;
        case 'P':
            if (!(so.policy = policy_find(optarg))) {
                fprintf(stderr, "router: unknown policy %s\n", optarg);
                return 2;
            }
            break;
        case 'd': depth = atoi(optarg); break;
        case 'w': worker_wait_ms = atoi(optarg); break;
        case 'C': so.no_prefix_caching = 1; break;
        default:
            if (!proc_option(&r.p, c, optarg))
                return usage();
        }
    }
    if (so.max_batch_tokens < 1 || so.max_running < 1 || depth < 1 || depth > MAX_DEPTH ||
        worker_wait_ms < 1 || proc_open(&r.p) < 0)
        return usage();
    const char *run_dir = r.p.run_dir;
    r.depth = depth;
    r.worker_wait_ms = worker_wait_ms;
    char err[256];
    if (model_config_load(&r.cfg, r.p.model_dir, err, sizeof err)) {
        LOG_ERR("%s", err);
        return 1;
    }
    if (sched_init(&r.sched, &r.p.st, &r.cfg, &so))
        DIE("out of memory");
    atomic_store(&r.p.st.hdr->worker_serving, 0);   /* no worker until one announces itself */
    proc_register(&r.p, PROC_STOP_DEFAULT);   /* the loop's signal watchers take them below */
    r.zctx = zmq_ctx_new();
    r.pull = ipc_open(r.zctx, ZMQ_PULL, run_dir, IPC_ROUTER, 1);
    r.to_worker = ipc_open(r.zctx, ZMQ_PUSH, run_dir, IPC_WORKER, 1);
    r.to_detok = ipc_open(r.zctx, ZMQ_PUSH, run_dir, IPC_DETOK, 1);
    r.to_tokenizer = ipc_open(r.zctx, ZMQ_PUSH, run_dir, IPC_TOKENIZER, 0);
    r.pending = calloc(r.p.st.hdr->n_slots, sizeof *r.pending);
    if (!r.pull || !r.to_worker || !r.to_detok || !r.to_tokenizer || !r.pending)
        return 1;

    r.loop = uv_default_loop();
    uv_poll_init(r.loop, &r.poll, ipc_fd(r.pull));
    r.poll.data = &r;
    uv_poll_start(&r.poll, UV_READABLE, on_readable);
    uv_timer_init(r.loop, &r.timer);
    r.timer.data = &r;
    uv_timer_start(&r.timer, on_timer, 0, PROC_BEAT_MS);
    uv_signal_init(r.loop, &r.sigterm);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_init(r.loop, &r.sigint);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    LOG_INFO("ready: %u slots, block size %u, max_seq_len %u", r.p.st.hdr->n_slots,
             r.p.st.hdr->block_size, r.p.st.hdr->max_seq_len);
    uv_run(r.loop, UV_RUN_DEFAULT);

    ipc_close(r.pull);
    ipc_close(r.to_worker);
    ipc_close(r.to_detok);
    ipc_close(r.to_tokenizer);
    zmq_ctx_term(r.zctx);
    free(r.pending);
    sched_free(&r.sched);
    proc_free(&r.p); /* launcher gone: nothing is left */
    return 0;
}
