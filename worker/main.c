/* main.c - the worker process: owns the model and the KV cache, runs the router's steps.
 *
 * Loop: block on the PULL socket (with a heartbeat deadline); for each STEP, read every
 * sequence's tokens and block table from the shared-memory store, run one forward pass of the
 * mixed prefill/decode batch on the backend, write each sampled token (and its logprob) into
 * the slot, publish the new token count, and answer STEP_DONE.
 * In a launch with a holder (the store's with_holder) the weights and the KV cache are the
 * holder's: the worker attaches to them (attach.c) instead of allocating and loading, tells
 * the router the KV generation it found (the router resumes running requests when it is the
 * one the last worker had), and stops when the holder goes (its memory goes with it).
 *
 *   worker --run-dir DIR --shm NAME --model-dir DIR [--backend auto|cpu|cuda]
 *          [--kv-tokens N] [--max-batch-tokens N] [--threads N]
 *          [--gpu-memory-utilization F] [--load-format auto|dummy] [--reload-weights]
 *   --reload-weights: the holder loads the weights from disk again before this worker
 *   attaches (new weights, a changed layout); the KV is then recomputed.
 */
#include "../common/ipc.h"
#include "../common/log.h"
#include "../common/proc.h"
#include "attach.h"
#include "backend.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define GAP_COUNTED_US 100000 /* longer idle spells mean no work, not a slow router */
_Static_assert(STORE_TOP_LOGPROBS == FWD_MAX_TOP_LOGPROBS, "a slot's top logprobs per position");


/* Per sequence of a step: the ids it must not sample now and where its top logprobs go. */
typedef struct {
    int32_t suppress[MODEL_MAX_EOS + STORE_MAX_STOP_IDS];
    int32_t top_ids[FWD_MAX_TOP_LOGPROBS];
    float top_lps[FWD_MAX_TOP_LOGPROBS];
} seq_extra;

/* min_tokens (vLLM's): while fewer output tokens than that are out, EOS (unless ignore_eos)
 * and the request's stop token ids are not sampled. Fills X->suppress; returns the count. */
static int suppressed_ids(const model_config *cfg, const slot_hdr *sh, int64_t end, seq_extra *x)
{
    int n = 0;
    if (end - sh->n_prompt >= sh->params.min_tokens)
        return 0;
    if (!sh->params.ignore_eos)
        for (int i = 0; i < cfg->n_eos; i++)
            x->suppress[n++] = cfg->eos_ids[i];
    for (int i = 0; i < sh->n_stop_ids && i < STORE_MAX_STOP_IDS; i++)
        x->suppress[n++] = sh->stop_ids[i];
    return n;
}

/* Checks a step against the store and fills SEQS [m->n_seqs] (with EXTRA [m->n_seqs]) and
 * the backend's batch B (over RUN): every entry except those whose new tokens hold a failed
 * sample (-1, see step_publish), which are not computed and fail again; 0 or negative. */
static int step_prepare(const store *st, const model_config *cfg, const msg_step *m, fwd_seq *seqs,
                        seq_extra *extra, fwd_seq *run, fwd_batch *b)
{
    const store_hdr *h = st->hdr;
    for (int i = 0; i < m->n_seqs; i++) {
        const step_seq *q = &m->seqs[i];
        if (q->slot < 0 || (uint32_t)q->slot >= h->n_slots || q->n_cached < 0 || q->n_new < 1)
            return -1;
        const slot_hdr *sh = store_slot(st, q->slot);
        int64_t end = (int64_t)q->n_cached + q->n_new;
        int n_blocks = atomic_load_explicit(&sh->n_blocks, memory_order_acquire);
        if (end > h->max_seq_len || end > sh->n_prompt + sh->params.max_new_tokens ||
            (int64_t)n_blocks * h->block_size < end || (q->sample && end >= h->max_seq_len))
            return -1;
        seqs[i] = (fwd_seq){
            .slot = q->slot, .n_cached = q->n_cached, .n_new = q->n_new, .sample = q->sample,
            .tokens = slot_tokens(st, q->slot), .n_prompt = sh->n_prompt,
            .block_table = slot_blocks(st, q->slot),
            .params = &sh->params,
            .out_top_ids = extra[i].top_ids, .out_top_lps = extra[i].top_lps,
        };
        if (q->sample) {
            seqs[i].suppress = extra[i].suppress;
            seqs[i].n_suppress = suppressed_ids(cfg, sh, end, &extra[i]);
        }
    }
    b->n_seqs = 0;
    b->seqs = run;
    for (int i = 0; i < m->n_seqs; i++) {
        const fwd_seq *q = &seqs[i];
        int bad = 0;
        for (int p = q->n_cached; p < q->n_cached + q->n_new && !bad; p++)
            bad = q->tokens[p] < 0;
        seqs[i].out_token = -1;
        if (!bad)
            run[b->n_seqs++] = *q;
    }
    return 0;
}

/* The results of the computed entries RUN back into SEQS (same order, failed ones skipped). */
static void step_collect(fwd_seq *seqs, int n, const fwd_batch *b)
{
    for (int i = 0, k = 0; i < n && k < b->n_seqs; i++)
        if (seqs[i].slot == b->seqs[k].slot && seqs[i].n_cached == b->seqs[k].n_cached) {
            seqs[i].out_token = b->seqs[k].out_token;
            seqs[i].out_logprob = b->seqs[k].out_logprob;
            k++;
        }
}

/* Writes each sampled token after the sequence's last one and publishes the count. A sample
 * from non-finite logits (NaN or +inf: its log-sum-exp is not finite; broken weights or
 * activations), or one not computed because of an earlier such sample, is written as -1:
 * the router fails that request alone with an error. */
static void step_publish(store *st, const fwd_seq *seqs, int n, int vocab)
{
    for (int i = 0; i < n; i++) {
        const fwd_seq *s = &seqs[i];
        if (!s->sample)
            continue;
        int pos = s->n_cached + s->n_new;
        int ok = s->out_token >= 0 && s->out_token < vocab && isfinite(s->out_logprob);
        slot_tokens(st, s->slot)[pos] = ok ? s->out_token : -1;
        slot_logprobs(st, s->slot)[pos] = ok ? s->out_logprob : NAN;
        int n_top = s->params->n_top_logprobs;
        if (ok && n_top > 0 && (uint32_t)n_top <= st->hdr->n_top_logprobs) {
            memcpy(slot_top_ids(st, s->slot, pos), s->out_top_ids, (size_t)n_top * sizeof(int32_t));
            memcpy(slot_top_lps(st, s->slot, pos), s->out_top_lps, (size_t)n_top * sizeof(float));
        }
        atomic_store_explicit(&store_slot(st, s->slot)->n_tokens, pos + 1, memory_order_release);
    }
}

/* The backend BO->backend (auto: CUDA when this build and the machine have it, else the
 * CPU); NULL with the reason logged. */
static backend *backend_open(const backend_opts *bo)
{
    char err[512] = "";
    backend *be = NULL;
    const char *name = bo->backend;
#ifdef CINDER_CUDA_BACKEND
    if (strcmp(name, "cpu")) {
        be = cuda_backend_init(bo, err, sizeof err);
        if (!be && !strcmp(name, "cuda")) {
            LOG_ERR("cuda backend: %s", err);
            return NULL;
        }
        if (!be)
            LOG_INFO("no CUDA backend (%s): using the CPU backend", err);
    }
#else
    if (!strcmp(name, "cuda")) {
        LOG_ERR("this build has no CUDA backend");
        return NULL;
    }
#endif
    if (!be) {
        be = cpu_backend_init(bo, err, sizeof err);
        if (!be)
            LOG_ERR("cpu backend: %s", err);
    }
    return be;
}

static int usage(void)
{
    fprintf(stderr, "usage: worker " PROC_USAGE " [--reload-weights] [--list-backends] %s\n", backend_opts_usage);
    return 2;
}

/* Runs step M on BE (this worker's epoch EPOCH) and returns its answer. *T_END is when the
 * previous step ended (0: none yet), set to when this one ends; the time between the two is the
 * router's gap, counted when work was queued (under GAP_COUNTED_US). */
static msg_step_done step_run(store *st, backend *be, const msg_step *m, uint32_t epoch, uint64_t *t_end)
{
    static fwd_seq seqs[MSG_MAX_SEQS], run[MSG_MAX_SEQS];
    static seq_extra extra[MSG_MAX_SEQS];
    msg_step_done done = {.step_id = m->step_id, .epoch = epoch};
    uint64_t t0 = now_us();
    if (*t_end && t0 - *t_end < GAP_COUNTED_US) { /* work was queued: the router's gap */
        atomic_fetch_add(&st->hdr->step_gap_us, t0 - *t_end);
        atomic_fetch_add(&st->hdr->n_step_gaps, 1);
    }
    fwd_batch batch;
    done.status = step_prepare(st, &be->cfg, m, seqs, extra, run, &batch);
    if (done.status)
        LOG_ERR("step %llu rejected: inconsistent with the store", (unsigned long long)done.step_id);
    else if ((done.status = batch.n_seqs ? be->forward(be, &batch) : 0) == 0 &&
             m->epoch == atomic_load(&st->hdr->epoch[PROC_ROUTER])) {
        step_collect(seqs, m->n_seqs, &batch);
        /* slots of a gone router may already be reused */
        step_publish(st, seqs, m->n_seqs, be->cfg.vocab_size);
    }
    *t_end = now_us();
    done.step_ms = (float)(*t_end - t0) / 1000.0f;
    atomic_fetch_add(&st->hdr->step_busy_us, *t_end - t0);
    atomic_fetch_add(&st->hdr->n_worker_steps, 1);
    return done;
}

/* Announces the worker to the router and runs its steps until a stop signal; the exit code. */
static int serve(proc *p, backend *be, const backend_opts *bo, uint64_t kv_gen)
{
    store *st = &p->st;
    const char *run_dir = p->run_dir;
    int rc;

    proc_catch_stop();
    void *zctx = zmq_ctx_new();
    void *pull = ipc_open(zctx, ZMQ_PULL, run_dir, IPC_WORKER, 0);
    void *push = ipc_open(zctx, ZMQ_PUSH, run_dir, IPC_ROUTER, 0);
    if (!pull || !push)
        return 1;
    msg_worker_ready ready = {
        .epoch = atomic_load(&st->hdr->epoch[PROC_WORKER]),
        .n_kv_blocks = be->n_kv_blocks,
        .max_batch_tokens = bo->max_batch_tokens,
        .kv_gen = kv_gen,
    };
    ipc_send(push, MSG_WORKER_READY, &ready);
    LOG_INFO("ready: %s backend, %d KV blocks of %d tokens", be->name, be->n_kv_blocks, bo->block_size);

    static msg_any in;
    uint64_t t_end = 0; /* when the last step ended */
    uint64_t announced_ms = now_ms();
    while (!proc_stopping()) {
        if (kv_gen && worker_holder_lost(p, kv_gen)) {
            LOG_ERR("the holder is gone or was restarted: its weights and KV cache went with "
                    "it; stopping (a new worker attaches to the new holder)");
            rc = 1;
            goto out;
        }
        /* announce again to a new router at once, and every second in case a message was lost
         * while a router restarted (the router ignores repeats from the worker it knows) */
        int restarted = proc_router_restarted(p);
        if (restarted || now_ms() - announced_ms >= 1000) {
            if (restarted) {
                LOG_INFO("router restarted: connecting to it afresh and announcing this worker");
                if (ipc_reopen(&push, zctx, ZMQ_PUSH, run_dir, IPC_ROUTER, 0) ||
                    ipc_reopen(&pull, zctx, ZMQ_PULL, run_dir, IPC_WORKER, 0))
                    DIE("cannot reconnect to the router");
            }
            ipc_send(push, MSG_WORKER_READY, &ready);
            announced_ms = now_ms();
        }
        if (ipc_wait(pull, PROC_BEAT_MS) <= 0)
            continue;
        while (!proc_stopping() && (rc = ipc_recv(pull, &in)) != 0) {
            if (rc < 0 || in.type != MSG_STEP)
                continue;
            if (in.u.step.epoch != atomic_load(&st->hdr->epoch[PROC_ROUTER]))
                continue; /* from a router that is gone: its requests are being failed */
            msg_step_done done = step_run(st, be, &in.u.step, ready.epoch, &t_end);
            ipc_send(push, MSG_STEP_DONE, &done);
        }
    }
    LOG_INFO("stopping");
    rc = 0;
out:
    ipc_close(pull);
    ipc_close(push);
    zmq_ctx_term(zctx);
    be->free(be);
    proc_free(p);
    return rc;
}

int main(int argc, char **argv)
{
    static proc p;
    proc_init(&p, PROC_WORKER);
    backend_opts bo;
    backend_opts_init(&bo);
    int reload = 0;
    static const struct option opts[] = {
        PROC_OPTIONS, BACKEND_OPTIONS, {"reload-weights", 0, 0, 'R'}, {"list-backends", 0, 0, 'L'}, {0, 0, 0, 0},
    };
    int c, idx;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (c) {
        case 'R': reload = 1; break;
        case 'L': /* the backends of this build (launch.sh checks --backend cuda with it) */
#ifdef CINDER_CUDA_BACKEND
            puts("cpu cuda");
#else
            puts("cpu");
#endif
            return 0;
        case 'X':
            if (backend_opts_parse(&bo, opts[idx].name, optarg) != 1)
                return usage();
            break;
        default:
            if (!proc_option(&p, c, optarg))
                return usage();
        }
    }
    if (proc_open(&p) < 0)
        return usage();
    bo.model_dir = p.model_dir;
    store *st = &p.st;
    backend_opts_layout(&bo, (int)st->hdr->block_size, (int)st->hdr->max_seq_len,
                        (int)st->hdr->n_slots);
    /* no KV until this worker has loaded (a previous worker's figure would make /health and
       the tokenizer take requests now); published before the pid, so no window shows both */
    atomic_store(&st->hdr->n_kv_blocks, 0);
    proc_register(&p, PROC_STOP_DEFAULT);   /* a stop while loading ends it at once */
    /* beats from now on: loading can take long, and the heartbeat is also where a worker
       notices that its launcher is gone (SIGTERM's default action stops it while loading) */
    if (store_heartbeat_thread(st, PROC_WORKER))
        DIE("cannot start the heartbeat thread");

    static msg_holder_attached held;
    char region[256];
    if (st->hdr->with_holder) {
        if (worker_attach(&p, reload, &held) < 0 || store_holder_name(p.shm, region, sizeof region))
            return 1;
        bo.hold = &held;
        bo.hold_region = region;
        bo.backend = held.kind == HOLD_CPU_F32 ? "cpu" : "cuda";   /* the holder's memory */
    } else if (reload) {
        LOG_ERR("--reload-weights: this launch has no holder (the worker loads the weights anyway)");
        return 2;
    }
    uint64_t t0 = now_ms();
    backend *be = backend_open(&bo);
    if (!be)
        return 1;
    if ((uint32_t)be->cfg.vocab_size != st->hdr->vocab_size) {
        LOG_ERR("model vocab %d does not match the store's %u", be->cfg.vocab_size, st->hdr->vocab_size);
        return 1;
    }
    LOG_INFO("backend up in %llu ms%s", (unsigned long long)(now_ms() - t0),
             bo.hold ? " (memory of the holder)" : "");
    atomic_store(&st->hdr->n_kv_blocks, be->n_kv_blocks);
    return serve(&p, be, &bo, bo.hold ? held.kv_gen : 0);
}
