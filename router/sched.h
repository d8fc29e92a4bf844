/* sched.h - the router's scheduler: waiting queue, running batch, KV blocks, step building.
 *
 * Pure bookkeeping over the shared-memory store, no sockets, so tests drive it directly.
 * Iteration-level scheduling: every step carries each running decode plus prefill chunks
 * (chunked prefill) up to max_batch_tokens. Admission reserves each request's peak KV
 * (prompt + max_new_tokens, capped by the context) so the worker can never run out of blocks.
 * Results leave through an outbox of detok_seq entries the caller sends to the detokenizer.
 */
#ifndef CINDER_SCHED_H
#define CINDER_SCHED_H

#include "../common/model_config.h"
#include "../common/msg.h"
#include "../common/store.h"
#include "kv_alloc.h"

typedef struct {
    int max_batch_tokens;  /* tokens per step */
    int max_running;       /* sequences per step */
    int max_total_tokens;  /* KV tokens the router may use; 0 = all the worker has */
} sched_opts;

enum req_state { REQ_NONE = 0, REQ_WAITING, REQ_RUNNING };

typedef struct {
    uint64_t req_id;
    int state;       /* req_state */
    int n_prompt;
    int n_tokens;    /* prompt + generated, as the router has accepted them */
    int n_cached;    /* tokens whose KV is in the cache */
    int n_blocks;    /* blocks in the slot's block table */
    int peak_blocks; /* reservation held while running */
    int in_step;     /* part of the step in flight */
    int cancel;      /* finish_reason to apply once out of the step */
} sched_req;

typedef struct {
    store *st;
    const model_config *cfg;
    sched_opts opts;
    int n_slots, block_size, max_seq_len;
    sched_req *reqs;     /* [n_slots] indexed by slot */
    int *waiting;        /* [n_slots] ring of slots, FIFO */
    int wait_head, n_waiting;
    int *running;        /* [n_slots] slots in admission order */
    int n_running;
    kv_alloc kv;
    int kv_limit;        /* blocks the router may reserve */
    int reserved;        /* blocks reserved by running requests */
    int ready;           /* a worker has reported its capacity */
    int max_batch_tokens;
    detok_seq *outbox;   /* [n_slots] */
    int n_outbox;
    uint64_t n_steps;
} sched;

int sched_init(sched *s, store *st, const model_config *cfg, const sched_opts *o);
void sched_free(sched *s);

/* A worker (re)started with this capacity: the KV cache is empty, so every running request
 * goes back to the front of the queue to be recomputed from its tokens. */
int sched_set_capacity(sched *s, int n_kv_blocks, int worker_max_batch_tokens);

/* A new request in SLOT; 0, or negative if the slot or its contents are invalid. A request
 * that can never fit is finished at once with FINISH_ERROR (see the outbox). */
int sched_add(sched *s, int slot, uint64_t req_id);

/* Ends a request early (abort, stop string) with REASON; stale req_ids are ignored. */
void sched_cancel(sched *s, int slot, uint64_t req_id, int reason);

/* Fills STEP with the next iteration's work; returns its sequence count (0: nothing to run). */
int sched_build_step(sched *s, msg_step *step);

/* Applies the results of STEP (STATUS < 0: the worker failed it). */
void sched_step_done(sched *s, const msg_step *step, int status);

/* Moves the outbox into OUT (up to MSG_MAX_SEQS entries); returns how many. */
int sched_take_outbox(sched *s, msg_detok *out);

int sched_n_free_blocks(const sched *s);

#endif
