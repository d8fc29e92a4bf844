/* tokenizer.h - the tokenizer process's shared state: slots, mailboxes and its two sockets.
 *
 * HTTP handler threads (http_pool.c) take a slot per choice, write the prompt into it and send
 * NEW_REQ; then each waits on its slots' mailboxes. One receiver thread reads TEXT_DELTA / REQ_FAILED
 * messages and drops each into the mailbox of its slot. The handler answers the client and
 * frees the slot after the final delta, which the router sends only once it has let go of
 * the request (its KV blocks are free), so a slot is never reused while still in use.
 */
#ifndef CINDER_TOKENIZER_H
#define CINDER_TOKENIZER_H

#include <pthread.h>
#include "../common/msg.h"
#include "../common/proc.h"
#include "../common/store.h"
#include "encode_pool.h"
#include "../common/tok/tok.h"

typedef struct delta_node {
    struct delta_node *next;
    int32_t token_id, n_out, special, finish;
    float logprob;
    uint32_t text_len;
    char text[];
} delta_node;

/* What a handler waiting on several mailboxes at once (the choices of one request) sleeps
 * on: the receiver bumps SEQ and signals after each delivery into any of them. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t seq;
} mail_waiter;

typedef struct {
    pthread_mutex_t mu;
    mail_waiter *waiter;  /* signalled on each delivery (set by tokenizer_submit) */
    uint64_t req_id;      /* request waiting here; 0 = none */
    delta_node *head, *tail;
    int failed;           /* REQ_FAILED arrived: status and error below */
    int status;
    char error[256];
} mailbox;

typedef struct {
    proc *p;                  /* the process: its flags, the store it mapped */
    store st;                 /* p->st */
    tok *tok;
    encode_pool *encoders;    /* prompts are encoded here, not on the HTTP threads */
    int max_seq_len;
    int max_queue;            /* requests waiting for the running batch before 503; 0 = no limit */
    void *zctx;
    char run_dir[256];
    void *to_router;          /* PUSH; guarded by send_mu */
    pthread_mutex_t send_mu;
    void *pull;               /* PULL tokenizer.ipc; receiver thread only */
    mailbox *boxes;           /* [n_slots] */
    pthread_mutex_t slot_mu;  /* guards free_slots */
    int *free_slots;          /* [n_slots] stack */
    int n_free;
    uint8_t *orphan;          /* [n_slots] 1: left active by an earlier tokenizer, aborted */
    _Atomic uint8_t *lost;    /* [n_slots] 1: failed because the router went away; freed once
                                 a new router runs (it never heard of the request) or the
                                 resumed router lets go of it */
    pthread_t receiver;
    _Atomic int stopping;
} tokenizer;

/* Sets up slots, mailboxes, sockets and the receiver thread over P's store (proc_open'ed and
 * registered: the receiver beats for the process). */
int tokenizer_init(tokenizer *f, proc *p);
void tokenizer_free(tokenizer *f);

/* Takes a free slot, or -1 when all are in use. */
int tokenizer_slot_take(tokenizer *f);
/* Publishes slot SLOT (already filled by the caller except state/req_id) to the router, its
 * deliveries also signalling W (until the slot is released); returns the request id, or 0 if
 * the router cannot be reached. */
uint64_t tokenizer_submit(tokenizer *f, int slot, mail_waiter *w);
/* Waits up to TIMEOUT_MS for the next delta of any of the requests in SLOTS [n] (submitted
 * with W). Returns the delta (the caller frees it) with the index of its slot in *WHICH, or
 * NULL on timeout or when one of them failed (see tokenizer_failure). */
delta_node *tokenizer_next(tokenizer *f, mail_waiter *w, const int *slots, int n, long timeout_ms,
                           int *which);
void mail_waiter_init(mail_waiter *w);
void mail_waiter_free(mail_waiter *w);
/* When a REQ_FAILED came for the request in SLOT: its HTTP status, with the message in WHY
 * [N_WHY]; else 0. */
int tokenizer_failure(tokenizer *f, int slot, char *why, size_t n_why);
/* Asks the router to drop the request (client gone). */
void tokenizer_abort(tokenizer *f, int slot);
/* Returns the slot to the free pool once the final delta came. */
void tokenizer_slot_release(tokenizer *f, int slot);
/* The request in SLOT failed because its router went away (died, or silent past
 * STORE_HUNG_MS): the slot is freed as soon as a new router runs (at once if one already
 * does), or, when the same router resumes, once it ends the request (it is sent an abort). */
void tokenizer_slot_lost(tokenizer *f, int slot, uint32_t router_epoch_at_submit);
/* Requests accepted and not yet in the router's running batch. */
int tokenizer_n_queued(tokenizer *f);
/* 1 when all four processes beat within the last second and the worker has KV (/health). */
int tokenizer_healthy(const tokenizer *f);
/* 1 when all four processes run and the worker has KV: requests are taken (a heartbeat late
 * under load is no reason to turn them away). */
int tokenizer_ready(const tokenizer *f);

#endif
