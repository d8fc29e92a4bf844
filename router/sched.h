/* sched.h - the router's scheduler: waiting queue, running batch, KV blocks, step building.
 *
 * Pure bookkeeping over the shared-memory store, no sockets, so tests drive it directly.
 *  - Iteration-level scheduling with chunked prefill (SARATHI): every step carries each
 *    running decode plus prefill chunks up to max_batch_tokens.
 *  - Admission (LightLLM): a request is admitted, in policy order, only while the peak KV of
 *    the running batch plus it fits, the peak computed from each request's tokens so far and
 *    the tokens it may still generate (max_new_tokens left, times new_token_ratio).
 *  - With new_token_ratio < 1 the estimate can fall short; when a step cannot get a block,
 *    the most recently admitted request is preempted: its blocks are freed and it goes back
 *    to the queue, to be recomputed from its tokens in shared memory.
 *  - Pipelining: up to two steps may be in flight; the second is built from the projected
 *    state after the first (every sampling sequence one token longer), so the worker never
 *    waits for the router between iterations. A request that ends in step N while also in
 *    step N+1 is finished (blocks freed, final delta sent) once N+1 returns.
 *  - Prefix caching (on unless no_prefix_caching; the cache itself is in kv_alloc.h):
 *    . a block enters the cache once the steps that computed all its tokens have returned
 *      (sched_step_done), never while a step in flight may still write it; a sequence only
 *      writes positions >= its n_cached, so a cached block is never written again, and the
 *      worker needs no change (a shared block just appears in several block tables);
 *    . a request takes its cached prefix when it is admitted (again after a preemption or a
 *      worker restart): the longest chain of cached blocks equal to its first tokens,
 *      capped at n_tokens - 1 so at least one token is computed (the last block is then
 *      computed again, as in vLLM: a sequence starts at a block boundary and never writes
 *      into a shared block); its prefill starts after them;
 *    . a request whose next block a running request is computing right now (the same
 *      tokens after the same cached blocks) waits for it instead of computing it too
 *      (SGLang's in-batch prefix sharing): later requests may be admitted past it;
 *    . admission counts the blocks requests took from the cache once, however many share
 *      them (and not again for the request that computed them), and evictable blocks as
 *      free (they are dropped when their space is needed);
 *    . a request releases its blocks last first, so the tails of cached prefixes leave
 *      the LRU list first; preempted or finished, its computed blocks stay cached;
 *    . a worker restart that loses the KV drops the whole cache (sched_set_capacity); one
 *      whose KV survived (a holder keeps it: sched_worker_back) keeps it.
 *  - Worker restarts: when the worker is lost (sched_worker_lost) the steps in flight are
 *    forgotten and every running request is set back to its completed positions, keeping
 *    its blocks; when a worker is back with the same KV (sched_worker_back, kv_kept) the
 *    requests go on from there (the lost steps are issued again; no prompt is prefilled
 *    again), otherwise they are recomputed from their tokens.
 *    The prompt tokens a request took from the cache at its first admission go to its
 *    slot (n_prompt_cached, OpenAI's usage.prompt_tokens_details.cached_tokens) and into
 *    the store's prefix_queries / prefix_hits counters (prompt tokens at first admission;
 *    re-admissions are not counted again).
 * Results leave through an outbox of detok_seq entries the caller sends to the detokenizer.
 */
#ifndef CINDER_SCHED_H
#define CINDER_SCHED_H

#include "../common/model_config.h"
#include "../common/msg.h"
#include "../common/store.h"
#include "kv_alloc.h"
#include "policy.h"

typedef struct {
    int max_batch_tokens;   /* tokens per step */
    int max_running;        /* sequences per step */
    int max_total_tokens;   /* KV tokens the router may use; 0 = all the worker has */
    float new_token_ratio;  /* share of max_new_tokens admission reserves (0, 1]; 1 = never preempt */
    const sched_policy *policy; /* NULL = first come, first served */
    int no_prefix_caching;  /* 1: no prefix cache, every request computes its whole prompt */
} sched_opts;

enum req_state { REQ_NONE = 0, REQ_WAITING, REQ_RUNNING };

typedef struct {
    uint64_t req_id;
    int state;       /* req_state */
    int n_prompt;
    int max_new;
    int n_tokens;    /* prompt + generated, as accepted from completed steps */
    int n_cached;    /* tokens whose KV is computed by completed steps */
    int n_inflight;  /* steps in flight that carry this request */
    int proj_tokens; /* n_tokens once the in-flight steps return (each sample adds one) */
    int proj_cached; /* n_cached once the in-flight steps return */
    int n_blocks;    /* blocks in the slot's block table */
    int cancel;      /* finish_reason to apply once no step carries it */
    uint64_t admit_seq; /* admission order, for picking a preemption victim */
    /* prefix caching */
    int n_taken;     /* leading blocks taken from the cache at admission (shared) */
    int n_lent;      /* blocks it computed and cached that running requests took (shared) */
    int n_keyed;     /* leading blocks whose contents are in the cache (taken, inserted, or
                        cached by another request first); -1: the chain broke, cache no more */
    int32_t key_parent;  /* the cached block with the contents of block n_keyed - 1 */
    uint32_t key_gen;    /* its generation then (the parent key of block n_keyed) */
    int cached_prompt;   /* prompt tokens taken from the cache at the first admission; -1 before */
} sched_req;

typedef struct sched {
    store *st;
    const model_config *cfg;
    sched_opts opts;
    int n_slots, block_size, max_seq_len;
    sched_req *reqs;     /* [n_slots] indexed by slot */
    int *waiting;        /* [n_slots] slots, arrival order (preempted ones at the front) */
    int n_waiting;
    int *running;        /* [n_slots] slots in admission order */
    int n_running;
    kv_alloc kv;         /* kv_limit blocks and the prefix cache over them */
    int kv_limit;        /* blocks the router may use */
    int ready;           /* a worker has reported its capacity */
    int max_batch_tokens;
    detok_seq *outbox;   /* [n_slots] at most one entry per slot, the latest */
    int *outbox_pos;     /* [n_slots] index of the slot's entry in outbox, or -1 */
    int n_outbox;
    uint64_t n_steps, n_admitted, n_preempted;
    int64_t *est_cur, *est_left; /* [n_slots] scratch for the admission estimate */
    int32_t *match;      /* [max_blocks_per_seq] scratch: a candidate's cached prefix */
    int *held, *order;   /* [n_slots] scratch: requests admit() passed over, waiting order */
    int32_t *n_sharers;  /* [kv_limit] running requests that took the block from the cache */
    int32_t *owner;      /* [kv_limit] the request that computed and cached the block while
                            it holds it, or -1 */
    int *lend;           /* [n_slots] scratch: blocks a candidate would take from each owner */
    int n_shared;        /* blocks with n_sharers > 0: admission counts each once */
    uint64_t prefix_queries, prefix_hits; /* prompt tokens at first admission, and of them
                                             taken from the cache */
    int n_kv_blocks;     /* the worker's capacity, as last reported */
    int lost;            /* the worker was lost and none is back yet */
    uint64_t n_worker_restarts, n_resumed, n_recomputed; /* the store's counters (store.h) */
} sched;

int sched_init(sched *s, store *st, const model_config *cfg, const sched_opts *o);
void sched_free(sched *s);

/* A worker (re)started with this capacity: the KV cache is empty and steps in flight are
 * lost, so every running request goes back to the queue front to be recomputed. A capacity
 * of 0 (the worker died) parks everything until the next worker reports. */
int sched_set_capacity(sched *s, int n_kv_blocks, int worker_max_batch_tokens);

/* The worker is gone (died, stopped or replaced): its steps in flight are lost; running
 * requests keep their blocks and completed positions, and nothing runs until
 * sched_worker_back. */
void sched_worker_lost(sched *s);

/* A worker is ready with this capacity. KV_KEPT: it found the KV cache the lost one left
 * (the same holder memory, same generation): with the same capacity, running requests and
 * the prefix cache go on as they were (counted as resumed); otherwise as
 * sched_set_capacity (the completed positions of running requests counted as recomputed). */
int sched_worker_back(sched *s, int n_kv_blocks, int worker_max_batch_tokens, int kv_kept);

/* A new request in SLOT; 0, or negative if the slot or its contents are invalid. A request
 * that can never fit is finished at once with FINISH_ERROR (see the outbox). */
int sched_add(sched *s, int slot, uint64_t req_id);

/* Ends a request early (abort, stop string) with REASON. Returns 1, or 0 when the router
 * holds no such request (already ended, or never seen: e.g. sent to an earlier router). */
int sched_cancel(sched *s, int slot, uint64_t req_id, int reason);

/* Ends a request with FINISH_ERROR, answered with HTTP STATUS and MSG (see slot_hdr.error);
 * 1, or 0 when the router holds no such request. */
int sched_fail(sched *s, int slot, uint64_t req_id, int status, const char *msg);

/* Fails every request the router holds (e.g. the worker is gone and did not come back);
 * returns how many. */
int sched_fail_all(sched *s, int status, const char *msg);

/* Fills STEP with the next iteration's work, given the steps already in flight; returns
 * its sequence count (0: nothing to run). */
int sched_build_step(sched *s, msg_step *step);

#define STEP_NOT_SENT 1 /* status: the step never reached a worker; undo it, fail nothing */

/* Applies the results of STEP, the oldest in flight (STATUS < 0: the worker failed it;
 * STEP_NOT_SENT: it was never sent, so it is undone, the newest in flight). */
void sched_step_done(sched *s, const msg_step *step, int status);

/* Moves the outbox into OUT (up to MSG_MAX_SEQS entries); returns how many. The outbox
 * holds one entry per slot (a later one supersedes an earlier, a final one is kept), so
 * however many steps complete between two takes (a router that was stopped, then
 * continued, handles them all at once) it never holds more than n_slots entries. */
int sched_take_outbox(sched *s, msg_detok *out);

/* Tokens of SLOT's waiting request that the prefix cache holds now (what admission would
 * take); 0 with prefix caching off. For policies (policy_lpm.c). */
int sched_cached_prefix(const sched *s, int slot);

/* Publishes queue and KV figures into the store header (for /metrics). */
void sched_publish(const sched *s);

#endif
