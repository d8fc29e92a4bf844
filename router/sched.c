/* sched.c - requests in and out, preemption, chunked-prefill step building and result
 * handling (see sched.h); admission and the prefix cache's part in it: admit.c. */
#include "sched.h"
#include "sched_impl.h"
#include "../common/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sched_init(sched *s, store *st, const model_config *cfg, const sched_opts *o)
{
    memset(s, 0, sizeof *s);
    s->st = st;
    s->cfg = cfg;
    s->opts = *o;
    if (!(s->opts.new_token_ratio > 0.0f) || s->opts.new_token_ratio > 1.0f)
        s->opts.new_token_ratio = 1.0f;
    if (!s->opts.policy)
        s->opts.policy = policy_find("fcfs");
    s->n_slots = (int)st->hdr->n_slots;
    s->block_size = (int)st->hdr->block_size;
    s->max_seq_len = (int)st->hdr->max_seq_len;
    size_t n = (size_t)s->n_slots;
    s->reqs = calloc(n, sizeof *s->reqs);
    s->waiting = calloc(n, sizeof *s->waiting);
    s->running = calloc(n, sizeof *s->running);
    s->outbox = calloc(n, sizeof *s->outbox);
    s->outbox_pos = malloc(n * sizeof *s->outbox_pos);
    s->est_cur = calloc(n + 1, sizeof *s->est_cur);
    s->est_left = calloc(n + 1, sizeof *s->est_left);
    s->match = calloc(st->hdr->max_blocks_per_seq + 1, sizeof *s->match);
    s->held = calloc(n, sizeof *s->held);
    s->order = calloc(n, sizeof *s->order);
    s->lend = calloc(n, sizeof *s->lend);
    if (!s->reqs || !s->waiting || !s->running || !s->outbox || !s->outbox_pos || !s->est_cur ||
        !s->est_left || !s->match || !s->held || !s->order || !s->lend) {
        sched_free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s->outbox_pos[i] = -1;
    /* counters go on where an earlier router left them (the store outlives it) */
    s->prefix_queries = atomic_load(&st->hdr->prefix_queries);
    s->prefix_hits = atomic_load(&st->hdr->prefix_hits);
    s->n_worker_restarts = atomic_load(&st->hdr->n_worker_restarts);
    s->n_resumed = atomic_load(&st->hdr->n_resumed);
    s->n_recomputed = atomic_load(&st->hdr->n_recomputed_tokens);
    return 0;
}

void sched_free(sched *s)
{
    free(s->reqs);
    free(s->waiting);
    free(s->running);
    free(s->outbox);
    free(s->outbox_pos);
    free(s->est_cur);
    free(s->est_left);
    free(s->match);
    free(s->held);
    free(s->order);
    free(s->n_sharers);
    free(s->owner);
    free(s->lend);
    kv_alloc_free(&s->kv);
    memset(s, 0, sizeof *s);
}

static void outbox_add(sched *s, int slot, int finish)
{
    const sched_req *r = &s->reqs[slot];
    detok_seq e = {slot, r->req_id, r->n_tokens, finish};
    int k = s->outbox_pos[slot];
    if (k >= 0) {   /* the detokenizer reads tokens from the slot: the latest count suffices */
        detok_seq *o = &s->outbox[k];
        if (o->req_id != e.req_id)   /* cannot happen: a slot is reused only after its
                                        final entry was taken and sent */
            LOG_ERR("slot %d: outbox entry of request %llu replaced by %llu", slot,
                    (unsigned long long)o->req_id, (unsigned long long)e.req_id);
        if (o->req_id != e.req_id || o->finish == FINISH_NONE)
            *o = e;
        return;
    }
    CHECK(s->n_outbox < s->n_slots);
    s->outbox_pos[slot] = s->n_outbox;
    s->outbox[s->n_outbox++] = e;
}

/* Forgets the request's blocks (after a worker restart their KV is gone anyway). */
static void reset_blocks(sched_req *r)
{
    r->n_blocks = r->n_cached = r->proj_cached = 0;
    r->n_taken = r->n_keyed = r->n_lent = 0;
}

/* Block B joins or leaves the set admission counts once (see fits_with). */
void sched_share_add(sched *s, int32_t b)
{
    if (s->n_sharers[b]++ == 0) {
        s->n_shared++;
        if (s->owner[b] >= 0)
            s->reqs[s->owner[b]].n_lent++;
    }
}

static void share_drop(sched *s, int32_t b)
{
    if (--s->n_sharers[b] == 0) {
        s->n_shared--;
        if (s->owner[b] >= 0)
            s->reqs[s->owner[b]].n_lent--;
    }
}

/* Releases the request's blocks, last first: the tail of a cached prefix becomes the
 * least recently used, evicted before the blocks it hangs under. */
static void free_blocks(sched *s, int slot)
{
    sched_req *r = &s->reqs[slot];
    const int32_t *table = slot_blocks(s->st, slot);
    for (int i = r->n_blocks - 1; i >= 0; i--) {
        if (i < r->n_taken)
            share_drop(s, table[i]);
        if (s->owner[table[i]] == slot)
            s->owner[table[i]] = -1;
        kv_alloc_put(&s->kv, table[i]);
    }
    reset_blocks(r);
    atomic_store_explicit(&store_slot(s->st, slot)->n_blocks, 0, memory_order_release);
}

static void list_remove(int *list, int *n, int slot)
{
    int k = 0;
    for (int i = 0; i < *n; i++)
        if (list[i] != slot)
            list[k++] = list[i];
    *n = k;
}

static void waiting_push_front(sched *s, int slot)
{
    memmove(s->waiting + 1, s->waiting, sizeof(int) * (size_t)s->n_waiting);
    s->waiting[0] = slot;
    s->n_waiting++;
    s->reqs[slot].state = REQ_WAITING;
}

/* Ends the request now: frees its blocks, tells the detokenizer. No step may carry it. */
static void finish_req(sched *s, int slot, int reason)
{
    sched_req *r = &s->reqs[slot];
    CHECK(r->n_inflight == 0);
    if (r->state == REQ_RUNNING) {
        free_blocks(s, slot);
        list_remove(s->running, &s->n_running, slot);
    } else if (r->state == REQ_WAITING) {
        list_remove(s->waiting, &s->n_waiting, slot);
    }
    atomic_store_explicit(&store_slot(s->st, slot)->finish, reason, memory_order_release);
    outbox_add(s, slot, reason);
    r->state = REQ_NONE;
}

/* Ends the request now, or once the steps carrying it return. */
static void end_req(sched *s, int slot, int reason)
{
    sched_req *r = &s->reqs[slot];
    if (r->n_inflight > 0) {
        if (!r->cancel)
            r->cancel = reason;
    } else {
        finish_req(s, slot, r->cancel ? r->cancel : reason);
    }
}

/* Records why the request fails (read by the tokenizer with FINISH_ERROR), then ends it. */
void sched_fail_req(sched *s, int slot, int status, const char *fmt, ...)
{
    slot_hdr *h = store_slot(s->st, slot);
    if (!s->reqs[slot].cancel) {   /* the first reason wins, as in end_req */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(h->error, sizeof h->error, fmt, ap);
        va_end(ap);
        h->error_status = status;
    }
    end_req(s, slot, FINISH_ERROR);
}

int sched_fail(sched *s, int slot, uint64_t req_id, int status, const char *msg)
{
    if (slot < 0 || slot >= s->n_slots || s->reqs[slot].state == REQ_NONE ||
        s->reqs[slot].req_id != req_id)
        return 0;
    sched_fail_req(s, slot, status, "%s", msg);
    return 1;
}

int sched_fail_all(sched *s, int status, const char *msg)
{
    int n = 0;
    for (int slot = 0; slot < s->n_slots; slot++)
        n += sched_fail(s, slot, s->reqs[slot].req_id, status, msg);
    return n;
}

void sched_worker_lost(sched *s)
{
    /* the steps in flight are gone: each request is where its completed steps left it; a
       position a lost step may have written (or half-written) is written again by the step
       that re-issues it */
    for (int i = s->n_running - 1; i >= 0; i--) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        r->n_inflight = 0;
        r->proj_cached = r->n_cached;
        r->proj_tokens = r->n_tokens;
        if (r->cancel)
            finish_req(s, slot, r->cancel);
    }
    s->ready = 0;
    s->lost = 1;
}

int sched_worker_back(sched *s, int n_kv_blocks, int worker_max_batch_tokens, int kv_kept)
{
    if (s->lost)
        s->n_worker_restarts++;
    s->lost = 0;
    if (kv_kept && n_kv_blocks == s->n_kv_blocks && n_kv_blocks > 0) {
        s->n_resumed += (uint64_t)s->n_running;
        s->max_batch_tokens = s->opts.max_batch_tokens;
        if (worker_max_batch_tokens > 0 && worker_max_batch_tokens < s->max_batch_tokens)
            s->max_batch_tokens = worker_max_batch_tokens;
        s->ready = 1;
        LOG_INFO("worker back with the KV cache kept: %d running requests go on from their "
                 "completed positions, %d blocks cached", s->n_running, s->kv.n_cached);
        return 0;
    }
    for (int i = 0; i < s->n_running; i++)
        s->n_recomputed += (uint64_t)s->reqs[s->running[i]].n_cached;
    return sched_set_capacity(s, n_kv_blocks, worker_max_batch_tokens);
}

int sched_set_capacity(sched *s, int n_kv_blocks, int worker_max_batch_tokens)
{
    s->n_kv_blocks = n_kv_blocks;
    /* running requests go back to the queue front, oldest first, to be recomputed */
    for (int i = s->n_running - 1; i >= 0; i--) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        reset_blocks(r);
        r->n_inflight = 0;
        r->proj_tokens = r->n_tokens;
        atomic_store(&store_slot(s->st, slot)->n_blocks, 0);
        waiting_push_front(s, slot);
        if (r->cancel)
            finish_req(s, slot, r->cancel);
    }
    s->n_running = 0;
    /* the allocator manages the blocks the router may use, so evictable cached blocks never
       take more than max_total_tokens either; the prefix cache starts empty */
    int limit = s->opts.max_total_tokens > 0 ? s->opts.max_total_tokens / s->block_size : n_kv_blocks;
    s->kv_limit = limit < n_kv_blocks ? limit : n_kv_blocks;
    kv_alloc_free(&s->kv);
    free(s->n_sharers);
    free(s->owner);
    s->n_shared = 0;
    size_t nb = (size_t)(s->kv_limit > 0 ? s->kv_limit : 1);
    s->n_sharers = calloc(nb, sizeof *s->n_sharers);
    s->owner = malloc(nb * sizeof *s->owner);
    if (!s->n_sharers || !s->owner || kv_alloc_init(&s->kv, s->kv_limit, s->block_size))
        return -ENOMEM;
    memset(s->owner, 0xff, nb * sizeof *s->owner);
    s->max_batch_tokens = s->opts.max_batch_tokens;
    if (worker_max_batch_tokens > 0 && worker_max_batch_tokens < s->max_batch_tokens)
        s->max_batch_tokens = worker_max_batch_tokens;
    s->ready = n_kv_blocks > 0;
    LOG_INFO("capacity: %d KV blocks of %d tokens (router uses %d), %d tokens per step, policy %s, "
             "prefix caching %s", n_kv_blocks, s->block_size, s->kv_limit, s->max_batch_tokens,
             s->opts.policy->name, s->opts.no_prefix_caching ? "off" : "on");
    return 0;
}

int sched_add(sched *s, int slot, uint64_t req_id)
{
    if (slot < 0 || slot >= s->n_slots)
        return -EINVAL;
    sched_req *r = &s->reqs[slot];
    slot_hdr *h = store_slot(s->st, slot);
    if (r->state != REQ_NONE || atomic_load_explicit(&h->state, memory_order_acquire) != SLOT_ACTIVE ||
        h->req_id != req_id)
        return -EINVAL;
    if (h->n_prompt < 1 || h->n_prompt >= s->max_seq_len || h->params.max_new_tokens < 1)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    r->req_id = req_id;
    r->n_prompt = r->n_tokens = r->proj_tokens = h->n_prompt;
    r->max_new = h->params.max_new_tokens;
    r->cached_prompt = -1;
    atomic_store(&h->finish, FINISH_NONE);
    atomic_store(&h->n_prompt_cached, 0);
    atomic_store(&h->n_blocks, 0);
    atomic_store(&h->t_queued_us, now_us());
    atomic_store(&h->t_scheduled_us, 0);
    atomic_store(&h->t_first_token_us, 0);
    atomic_store(&h->t_last_token_us, 0);
    h->error_status = 0;
    h->error[0] = 0;
    r->state = REQ_WAITING;
    s->waiting[s->n_waiting++] = slot;
    if (s->ready && never_fits(s, r)) {
        LOG_WARN("slot %d needs %d KV blocks, more than the %d the server has", slot,
                 blocks_for(s, peak_tokens(s, r)), s->kv_limit);
        sched_fail_req(s, slot, 400, "the prompt and max_new_tokens need %d KV tokens; the server "
                 "has %d", peak_tokens(s, r), s->kv_limit * s->block_size);
    }
    return 0;
}

int sched_cancel(sched *s, int slot, uint64_t req_id, int reason)
{
    if (slot < 0 || slot >= s->n_slots)
        return 0;
    sched_req *r = &s->reqs[slot];
    if (r->state == REQ_NONE || r->req_id != req_id)
        return 0;
    if (!r->cancel)
        end_req(s, slot, reason);
    return 1;
}

/* Frees the blocks of the latest-admitted request no step carries (other than KEEP) and
 * requeues it; 0, or -1 when there is none. */
int sched_preempt_one(sched *s, int keep)
{
    int victim = -1;
    for (int i = 0; i < s->n_running; i++) {
        int slot = s->running[i];
        const sched_req *r = &s->reqs[slot];
        if (slot != keep && r->n_inflight == 0 && !r->cancel && r->n_blocks > 0 &&
            (victim < 0 || r->admit_seq > s->reqs[victim].admit_seq))
            victim = slot;
    }
    if (victim < 0)
        return -1;
    free_blocks(s, victim);
    list_remove(s->running, &s->n_running, victim);
    waiting_push_front(s, victim);
    s->n_preempted++;
    LOG_INFO("preempted slot %d (%d tokens) to free KV blocks", victim, s->reqs[victim].n_tokens);
    return 0;
}

/* Grows the slot's block table to hold N_TOKENS tokens; 0, or -1 if blocks ran out. */
static int grow_blocks(sched *s, int slot, int n_tokens)
{
    sched_req *r = &s->reqs[slot];
    int32_t *table = slot_blocks(s->st, slot);
    int need = blocks_for(s, n_tokens);
    while (r->n_blocks < need) {
        int32_t b = kv_alloc_get(&s->kv); /* a free block, else the LRU evictable one */
        if (b < 0) {
            if (sched_preempt_one(s, slot))
                return -1;
            continue;
        }
        table[r->n_blocks++] = b;
    }
    atomic_store_explicit(&store_slot(s->st, slot)->n_blocks, r->n_blocks, memory_order_release);
    return 0;
}

/* Adds up to N_NEW tokens of SLOT to STEP; returns how many went in (0 if no KV). */
static int step_add(sched *s, msg_step *step, int slot, int n_new)
{
    sched_req *r = &s->reqs[slot];
    if (grow_blocks(s, slot, r->proj_cached + n_new))
        return 0;
    int sample = r->proj_cached + n_new == r->proj_tokens;
    step->seqs[step->n_seqs++] = (step_seq){slot, r->proj_cached, n_new, sample};
    r->proj_cached += n_new;
    r->proj_tokens += sample;
    r->n_inflight++;
    return n_new;
}

/* Whether R may take part in another step: not ending, and not already at the length where
 * the steps in flight will finish it. */
static int schedulable(const sched *s, const sched_req *r)
{
    if (r->state != REQ_RUNNING || r->cancel)
        return 0;
    return r->proj_tokens - r->n_prompt < r->max_new && r->proj_tokens < s->max_seq_len;
}

int sched_build_step(sched *s, msg_step *step)
{
    step->n_seqs = 0;
    if (!s->ready)
        return 0;
    sched_admit(s);
    int budget = s->max_batch_tokens;
    /* decodes first: one token each, they keep the running batch moving */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        if (schedulable(s, r) && r->proj_tokens - r->proj_cached == 1)
            budget -= step_add(s, step, slot, 1);
    }
    /* then prefill chunks, in admission order */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        int need = r->proj_tokens - r->proj_cached;
        if (!schedulable(s, r) || need <= 1)
            continue;
        budget -= step_add(s, step, slot, need < budget ? need : budget);
    }
    if (step->n_seqs > 0)
        step->step_id = ++s->n_steps;
    return step->n_seqs;
}

/* The model's EOS ids and the request's stop token ids end it. */
static int is_stop_token(const sched *s, const slot_hdr *h, int32_t tok)
{
    if (!h->params.ignore_eos)
        for (int i = 0; i < s->cfg->n_eos; i++)
            if (tok == s->cfg->eos_ids[i])
                return 1;
    for (int i = 0; i < h->n_stop_ids && i < STORE_MAX_STOP_IDS; i++)
        if (tok == h->stop_ids[i])
            return 1;
    return 0;
}

/* Caches the request's blocks that completed steps have filled: each under the cached
 * block holding the contents of the one before it (its own, or one another request cached
 * first: then this copy stays private). The chain stops for good if that block was evicted
 * meanwhile (its generation moved on). */
static void cache_computed(sched *s, int slot)
{
    sched_req *r = &s->reqs[slot];
    if (s->opts.no_prefix_caching)
        return;
    const int32_t *table = slot_blocks(s->st, slot), *tok = slot_tokens(s->st, slot);
    int bs = s->block_size;
    while (r->n_keyed >= 0 && (r->n_keyed + 1) * bs <= r->n_cached) {
        int k = r->n_keyed;
        if (k > 0 && s->kv.gen[r->key_parent] != r->key_gen) {
            r->n_keyed = -1;
            break;
        }
        int32_t c = kv_alloc_insert(&s->kv, table[k], k ? r->key_parent : KV_NO_PARENT,
                                    k ? r->key_gen : 0, tok + (size_t)k * bs);
        if (c == table[k])
            s->owner[c] = slot;
        r->key_parent = c;
        r->key_gen = s->kv.gen[c];
        r->n_keyed++;
    }
}

void sched_step_done(sched *s, const msg_step *step, int status)
{
    for (int i = 0; i < step->n_seqs; i++) {
        const step_seq *q = &step->seqs[i];
        sched_req *r = &s->reqs[q->slot];
        if (r->state != REQ_RUNNING || r->n_inflight == 0)
            continue; /* a worker restart already requeued it */
        r->n_inflight--;
        if (status == STEP_NOT_SENT) { /* as if never built; its blocks stay for the next */
            r->proj_cached -= q->n_new;
            r->proj_tokens -= q->sample;
        } else if (status < 0) {
            sched_fail_req(s, q->slot, 500, "the worker failed the step (status %d)", status);
        } else if (!r->cancel) {
            r->n_cached += q->n_new;
            cache_computed(s, q->slot);
            if (q->sample) {
                /* the token sampled at position pos; with two steps in flight the worker
                 * may already have written the next one too */
                const slot_hdr *h = store_slot(s->st, q->slot);
                int pos = q->n_cached + q->n_new;
                int n_shm = atomic_load_explicit(&h->n_tokens, memory_order_acquire);
                if (pos != r->n_tokens || n_shm < pos + 1) {
                    LOG_ERR("slot %d: worker reported %d tokens, expected %d", q->slot, n_shm, pos + 1);
                    sched_fail_req(s, q->slot, 500, "the worker reported %d tokens, expected %d", n_shm,
                             pos + 1);
                } else {
                    int32_t tok = slot_tokens(s->st, q->slot)[pos];
                    if (tok < 0) {   /* the worker could not sample it (step_publish) */
                        sched_fail_req(s, q->slot, 500, "the model produced non-finite logits (NaN or "
                                 "inf) at position %d; the weights or activations are broken",
                                 pos);
                        goto next;
                    }
                    int n = r->n_tokens = pos + 1;
                    slot_hdr *w = store_slot(s->st, q->slot);
                    uint64_t t = now_us();
                    if (!atomic_load_explicit(&w->t_first_token_us, memory_order_relaxed))
                        atomic_store_explicit(&w->t_first_token_us, t, memory_order_release);
                    atomic_store_explicit(&w->t_last_token_us, t, memory_order_release);
                    if (is_stop_token(s, h, tok))
                        end_req(s, q->slot, FINISH_STOP);
                    else if (n - r->n_prompt >= r->max_new || n >= s->max_seq_len)
                        end_req(s, q->slot, FINISH_LENGTH);
                    else
                        outbox_add(s, q->slot, FINISH_NONE);
                }
            }
        }
    next:
        /* a request ending while another step still carries it ends when that one returns */
        if (r->state == REQ_RUNNING && r->cancel && r->n_inflight == 0)
            finish_req(s, q->slot, r->cancel);
    }
}

int sched_take_outbox(sched *s, msg_detok *out)
{
    int n = s->n_outbox < MSG_MAX_SEQS ? s->n_outbox : MSG_MAX_SEQS;
    memcpy(out->seqs, s->outbox, sizeof(detok_seq) * (size_t)n);
    out->n_seqs = n;
    for (int i = 0; i < n; i++)
        s->outbox_pos[s->outbox[i].slot] = -1;
    memmove(s->outbox, s->outbox + n, sizeof(detok_seq) * (size_t)(s->n_outbox - n));
    s->n_outbox -= n;
    for (int i = 0; i < s->n_outbox; i++)
        s->outbox_pos[s->outbox[i].slot] = i;
    return n;
}

void sched_publish(const sched *s)
{
    store_hdr *h = s->st->hdr;
    atomic_store(&h->n_waiting, s->n_waiting);
    atomic_store(&h->n_running, s->n_running);
    atomic_store(&h->n_free_blocks, kv_alloc_available(&s->kv)); /* evictable ones are free */
    atomic_store(&h->kv_limit_blocks, s->kv_limit);
    atomic_store(&h->n_preempted, s->n_preempted);
    atomic_store(&h->n_cached_blocks, s->kv.n_cached);
    atomic_store(&h->prefix_queries, s->prefix_queries);
    atomic_store(&h->prefix_hits, s->prefix_hits);
    atomic_store(&h->n_worker_restarts, s->n_worker_restarts);
    atomic_store(&h->n_resumed, s->n_resumed);
    atomic_store(&h->n_recomputed_tokens, s->n_recomputed);
}
