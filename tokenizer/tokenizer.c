/* tokenizer.c - slots, mailboxes and the receiver thread of the tokenizer process (see tokenizer.h). */
#include "tokenizer.h"
#include "../common/ipc.h"
#include "../common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define RECV_WAIT_MS 100

static void mailbox_push(mailbox *b, delta_node *d)
{
    d->next = NULL;
    if (b->tail)
        b->tail->next = d;
    else
        b->head = d;
    b->tail = d;
}

void mail_waiter_init(mail_waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->seq = 0;
}

void mail_waiter_free(mail_waiter *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Wakes B's waiter, if any (called with B's lock held: b->mu, then the waiter's). */
static void mailbox_kick(mailbox *b)
{
    if (!b->waiter)
        return;
    pthread_mutex_lock(&b->waiter->mu);
    b->waiter->seq++;
    pthread_cond_signal(&b->waiter->cv);
    pthread_mutex_unlock(&b->waiter->mu);
}

static void mailbox_clear(mailbox *b)
{
    for (delta_node *d = b->head, *next; d; d = next) {
        next = d->next;
        free(d);
    }
    b->head = b->tail = NULL;
    b->failed = 0;
}

static void deliver_delta(tokenizer *f, const msg_text_delta *m)
{
    if (m->slot < 0 || (uint32_t)m->slot >= f->st.hdr->n_slots)
        return;
    mailbox *b = &f->boxes[m->slot];
    delta_node *d = malloc(sizeof *d + m->text_len);
    if (!d)
        return;
    *d = (delta_node){NULL, m->token_id, m->n_out, m->special, m->finish, m->logprob, m->text_len};
    memcpy(d->text, m->text, m->text_len);
    pthread_mutex_lock(&b->mu);
    if (b->req_id == m->req_id) {
        if (m->token_id >= 0) /* a restarted detokenizer resends from here */
            atomic_store(&store_slot(&f->st, m->slot)->n_delivered, m->n_out);
        mailbox_push(b, d);
        mailbox_kick(b);
        d = NULL;
    }
    pthread_mutex_unlock(&b->mu);
    free(d); /* stale: the request is gone */
    if (m->finish && f->orphan[m->slot] && store_slot(&f->st, m->slot)->req_id == m->req_id) {
        f->orphan[m->slot] = 0; /* the router has let go of an earlier tokenizer's request */
        tokenizer_slot_release(f, m->slot);
    }
    if (m->finish && store_slot(&f->st, m->slot)->req_id == m->req_id &&
        atomic_exchange(&f->lost[m->slot], 0))
        tokenizer_slot_release(f, m->slot); /* given up on, but the router came back and let go */
}

static void deliver_failure(tokenizer *f, const msg_req_failed *m)
{
    if (m->slot < 0 || (uint32_t)m->slot >= f->st.hdr->n_slots)
        return;
    if (f->orphan[m->slot] && store_slot(&f->st, m->slot)->req_id == m->req_id) {
        f->orphan[m->slot] = 0; /* the router never had it (any more) */
        tokenizer_slot_release(f, m->slot);
        return;
    }
    if (store_slot(&f->st, m->slot)->req_id == m->req_id && atomic_exchange(&f->lost[m->slot], 0)) {
        tokenizer_slot_release(f, m->slot); /* the router answered our abort: it holds nothing */
        return;
    }
    mailbox *b = &f->boxes[m->slot];
    pthread_mutex_lock(&b->mu);
    if (b->req_id == m->req_id) {
        b->failed = 1;
        b->status = m->status;
        snprintf(b->error, sizeof b->error, "%s", m->error);
        mailbox_kick(b);
    }
    pthread_mutex_unlock(&b->mu);
}

static void *receiver_main(void *arg)
{
    tokenizer *f = arg;
    static msg_any in;
    while (!atomic_load(&f->stopping)) {
        store_heartbeat(&f->st, PROC_TOKENIZER);
        if (proc_router_restarted(f->p)) { /* a new router knows none of the lost requests */
            pthread_mutex_lock(&f->send_mu);
            if (ipc_reopen(&f->to_router, f->zctx, ZMQ_PUSH, f->run_dir, IPC_ROUTER, 0))
                DIE("cannot reconnect to the router");
            pthread_mutex_unlock(&f->send_mu);
            for (uint32_t i = 0; i < f->st.hdr->n_slots; i++)
                if (atomic_exchange(&f->lost[i], 0))
                    tokenizer_slot_release(f, (int)i);
        }
        if (ipc_wait(f->pull, RECV_WAIT_MS) <= 0)
            continue;
        int rc;
        while ((rc = ipc_recv(f->pull, &in)) != 0) {
            if (rc < 0)
                continue;
            if (in.type == MSG_TEXT_DELTA)
                deliver_delta(f, &in.u.text_delta);
            else if (in.type == MSG_REQ_FAILED)
                deliver_failure(f, &in.u.req_failed);
        }
    }
    return NULL;
}

int tokenizer_init(tokenizer *f, proc *p)
{
    memset(f, 0, sizeof *f);
    f->p = p;
    f->st = p->st;
    const char *run_dir = p->run_dir, *model_dir = p->model_dir;
    char path[PATH_MAX], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (!(f->tok = tok_load(path, err, sizeof err))) {
        LOG_ERR("%s: %s", path, err);
        return -1;
    }
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!(f->encoders = encode_pool_init(f->tok, n_cpu > 1 ? (int)(n_cpu < 8 ? n_cpu : 8) : 2)))
        return -1;
    int n = (int)f->st.hdr->n_slots;
    f->max_seq_len = (int)f->st.hdr->max_seq_len;
    f->boxes = calloc((size_t)n, sizeof *f->boxes);
    f->free_slots = calloc((size_t)n, sizeof *f->free_slots);
    f->orphan = calloc((size_t)n, 1);
    f->lost = calloc((size_t)n, 1);
    if (!f->boxes || !f->free_slots || !f->orphan || !f->lost)
        return -1;
    for (int i = 0; i < n; i++)
        pthread_mutex_init(&f->boxes[i].mu, NULL);
    /* slots still active belong to an earlier tokenizer: aborted below, freed when the
     * router lets go of them */
    for (int i = n - 1; i >= 0; i--) {
        if (atomic_load(&store_slot(&f->st, i)->state) != SLOT_FREE)
            f->orphan[i] = 1;
        else
            f->free_slots[f->n_free++] = i;
    }
    pthread_mutex_init(&f->send_mu, NULL);
    pthread_mutex_init(&f->slot_mu, NULL);
    f->zctx = zmq_ctx_new();
    f->pull = ipc_open(f->zctx, ZMQ_PULL, run_dir, IPC_TOKENIZER, 1);
    snprintf(f->run_dir, sizeof f->run_dir, "%s", run_dir);
    f->to_router = ipc_open(f->zctx, ZMQ_PUSH, run_dir, IPC_ROUTER, 0);
    if (!f->pull || !f->to_router)
        return -1;
    for (int i = 0; i < n; i++)
        if (f->orphan[i]) {
            LOG_WARN("slot %d was left active by an earlier tokenizer: aborting it", i);
            tokenizer_abort(f, i);
        }
    if (pthread_create(&f->receiver, NULL, receiver_main, f))
        return -1;
    return 0;
}

void tokenizer_free(tokenizer *f)
{
    atomic_store(&f->stopping, 1);
    if (f->receiver)
        pthread_join(f->receiver, NULL);
    ipc_close(f->pull);
    ipc_close(f->to_router);
    if (f->zctx)
        zmq_ctx_term(f->zctx);
    if (f->boxes)
        for (uint32_t i = 0; i < f->st.hdr->n_slots; i++)
            mailbox_clear(&f->boxes[i]);
    free(f->boxes);
    free(f->free_slots);
    free(f->orphan);
    free((void *)f->lost);
    encode_pool_free(f->encoders);
    tok_free(f->tok);
}

int tokenizer_slot_take(tokenizer *f)
{
    pthread_mutex_lock(&f->slot_mu);
    int slot = f->n_free > 0 ? f->free_slots[--f->n_free] : -1;
    pthread_mutex_unlock(&f->slot_mu);
    return slot;
}

void tokenizer_slot_release(tokenizer *f, int slot)
{
    mailbox *b = &f->boxes[slot];
    pthread_mutex_lock(&b->mu);
    b->req_id = 0;
    b->waiter = NULL;
    mailbox_clear(b);
    pthread_mutex_unlock(&b->mu);
    atomic_store_explicit(&store_slot(&f->st, slot)->state, SLOT_FREE, memory_order_release);
    pthread_mutex_lock(&f->slot_mu);
    f->free_slots[f->n_free++] = slot;
    pthread_mutex_unlock(&f->slot_mu);
}

void tokenizer_slot_lost(tokenizer *f, int slot, uint32_t router_epoch_at_submit)
{
    /* the handler that waited on the slot returns now and frees its waiter: a delta the
       router sends later must not signal it (ThreadSanitizer: a destroyed mutex in
       mailbox_kick after a long router stall, e2e_stall's test_long_stall) */
    mailbox *b = &f->boxes[slot];
    pthread_mutex_lock(&b->mu);
    b->waiter = NULL;
    pthread_mutex_unlock(&b->mu);
    atomic_store(&f->lost[slot], 1);
    /* a router that was only stopped or slow may come back still holding the request: ask
       it to end it; its final delta (or its answer that it has no such request) frees the
       slot. Without this a router stall of more than STORE_HUNG_MS leaked every slot. */
    tokenizer_abort(f, slot);
    /* already a new router: the receiver may have passed its check; free it here */
    if (atomic_load(&f->st.hdr->epoch[PROC_ROUTER]) != router_epoch_at_submit && atomic_exchange(&f->lost[slot], 0))
        tokenizer_slot_release(f, slot);
}

uint64_t tokenizer_submit(tokenizer *f, int slot, mail_waiter *w)
{
    slot_hdr *h = store_slot(&f->st, slot);
    uint64_t id = atomic_fetch_add(&f->st.hdr->next_req_id, 1);
    h->req_id = id;
    mailbox *b = &f->boxes[slot];
    pthread_mutex_lock(&b->mu);
    mailbox_clear(b);
    b->req_id = id;
    b->waiter = w;
    pthread_mutex_unlock(&b->mu);
    atomic_store_explicit(&h->state, SLOT_ACTIVE, memory_order_release);
    msg_new_req m = {slot, id};
    pthread_mutex_lock(&f->send_mu);
    int rc = ipc_send(f->to_router, MSG_NEW_REQ, &m);
    pthread_mutex_unlock(&f->send_mu);
    return rc ? 0 : id;
}

void tokenizer_abort(tokenizer *f, int slot)
{
    msg_abort m = {slot, store_slot(&f->st, slot)->req_id};
    pthread_mutex_lock(&f->send_mu);
    ipc_send(f->to_router, MSG_ABORT, &m);
    pthread_mutex_unlock(&f->send_mu);
}

/* Takes B's first delta; NULL (and *FAILED set when it failed) when there is none. */
static delta_node *mailbox_pop(mailbox *b, int *failed)
{
    pthread_mutex_lock(&b->mu);
    delta_node *d = b->head;
    if (d) {
        b->head = d->next;
        if (!b->head)
            b->tail = NULL;
    }
    *failed |= b->failed;
    pthread_mutex_unlock(&b->mu);
    return d;
}

delta_node *tokenizer_next(tokenizer *f, mail_waiter *w, const int *slots, int n, long timeout_ms,
                           int *which)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int start = *which + 1; /* round robin: every choice gets its turn */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        uint64_t seq = w->seq;  /* a delivery after this wakes the wait below */
        pthread_mutex_unlock(&w->mu);
        int failed = 0;
        for (int k = 0; k < n; k++) {
            int i = (start + k) % n;
            delta_node *d = mailbox_pop(&f->boxes[slots[i]], &failed);
            if (d) {
                *which = i;
                return d;
            }
        }
        if (failed)
            return NULL;
        int timed_out = 0;
        pthread_mutex_lock(&w->mu);
        while (w->seq == seq && !timed_out)
            timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT;
        pthread_mutex_unlock(&w->mu);
        if (timed_out)
            return NULL;
    }
}

int tokenizer_failure(tokenizer *f, int slot, char *why, size_t n_why)
{
    mailbox *b = &f->boxes[slot];
    pthread_mutex_lock(&b->mu);   /* deliver_failure writes them under it */
    int status = b->failed ? (b->status >= 400 ? b->status : 500) : 0;
    if (status)
        snprintf(why, n_why, "%s", b->error);
    pthread_mutex_unlock(&b->mu);
    return status;
}

int tokenizer_n_queued(tokenizer *f)
{
    pthread_mutex_lock(&f->slot_mu);
    int active = (int)f->st.hdr->n_slots - f->n_free;
    pthread_mutex_unlock(&f->slot_mu);
    int queued = active - atomic_load(&f->st.hdr->n_running);
    return queued > 0 ? queued : 0;
}

/* Every process of the launch passes CHECK (store_running or store_alive), and the worker
 * that runs has loaded (or attached) and the router has taken its capacity: it can run a
 * step. From a worker's death until its successor is there, this is false. */
static int all_up(const tokenizer *f, int (*check)(const store *, int))
{
    const store_hdr *h = f->st.hdr;
    for (int p = 0; p < N_PROC; p++)
        if ((p != PROC_HOLDER || h->with_holder) && !check(&f->st, p))
            return 0;
    return atomic_load(&h->n_kv_blocks) > 0 &&
           atomic_load(&h->worker_serving) == atomic_load(&h->epoch[PROC_WORKER]);
}

int tokenizer_ready(const tokenizer *f) { return all_up(f, store_running); }

int tokenizer_healthy(const tokenizer *f) { return all_up(f, store_alive); }
