/* sched.c - admission, chunked-prefill step building and result handling (see sched.h). */
#include "sched.h"
#include "../common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int blocks_for(const sched *s, int n_tokens)
{
    return (n_tokens + s->block_size - 1) / s->block_size;
}

/* Most tokens the request can reach: prompt + max_new_tokens, capped by the context. */
static int peak_tokens(const sched *s, int slot)
{
    const slot_hdr *h = store_slot(s->st, slot);
    int64_t peak = (int64_t)h->n_prompt + h->params.max_new_tokens;
    return peak < s->max_seq_len ? (int)peak : s->max_seq_len;
}

int sched_init(sched *s, store *st, const model_config *cfg, const sched_opts *o)
{
    memset(s, 0, sizeof *s);
    s->st = st;
    s->cfg = cfg;
    s->opts = *o;
    s->n_slots = (int)st->hdr->n_slots;
    s->block_size = (int)st->hdr->block_size;
    s->max_seq_len = (int)st->hdr->max_seq_len;
    s->reqs = calloc((size_t)s->n_slots, sizeof *s->reqs);
    s->waiting = calloc((size_t)s->n_slots, sizeof *s->waiting);
    s->running = calloc((size_t)s->n_slots, sizeof *s->running);
    s->outbox = calloc((size_t)s->n_slots, sizeof *s->outbox);
    if (!s->reqs || !s->waiting || !s->running || !s->outbox) {
        sched_free(s);
        return -ENOMEM;
    }
    return 0;
}

void sched_free(sched *s)
{
    free(s->reqs);
    free(s->waiting);
    free(s->running);
    free(s->outbox);
    kv_alloc_free(&s->kv);
    memset(s, 0, sizeof *s);
}

static void outbox_add(sched *s, int slot, int finish)
{
    const sched_req *r = &s->reqs[slot];
    CHECK(s->n_outbox < s->n_slots);
    s->outbox[s->n_outbox++] = (detok_seq){slot, r->req_id, r->n_tokens, finish};
}

static void free_blocks(sched *s, int slot)
{
    sched_req *r = &s->reqs[slot];
    const int32_t *table = slot_blocks(s->st, slot);
    for (int i = 0; i < r->n_blocks; i++)
        kv_alloc_put(&s->kv, table[i]);
    r->n_blocks = 0;
    r->n_cached = 0;
    atomic_store_explicit(&store_slot(s->st, slot)->n_blocks, 0, memory_order_release);
}

static void waiting_remove(sched *s, int slot)
{
    int n = 0;
    for (int i = 0; i < s->n_waiting; i++) {
        int x = s->waiting[(s->wait_head + i) % s->n_slots];
        if (x != slot)
            s->waiting[(s->wait_head + n++) % s->n_slots] = x;
    }
    s->n_waiting = n;
}

static void running_remove(sched *s, int slot)
{
    int n = 0;
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] != slot)
            s->running[n++] = s->running[i];
    s->n_running = n;
}

/* Ends the request: frees its blocks and reservation, tells the detokenizer. */
static void finish_req(sched *s, int slot, int reason)
{
    sched_req *r = &s->reqs[slot];
    if (r->state == REQ_RUNNING) {
        free_blocks(s, slot);
        s->reserved -= r->peak_blocks;
        running_remove(s, slot);
    } else if (r->state == REQ_WAITING) {
        waiting_remove(s, slot);
    }
    atomic_store_explicit(&store_slot(s->st, slot)->finish, reason, memory_order_release);
    outbox_add(s, slot, reason);
    r->state = REQ_NONE;
    r->peak_blocks = 0;
}

int sched_set_capacity(sched *s, int n_kv_blocks, int worker_max_batch_tokens)
{
    /* running requests go back to the queue front, oldest first, to be recomputed */
    for (int i = s->n_running - 1; i >= 0; i--) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        r->n_blocks = 0; /* the old allocator's blocks are gone with the old cache */
        r->n_cached = 0;
        r->in_step = 0;
        r->peak_blocks = 0;
        atomic_store(&store_slot(s->st, slot)->n_blocks, 0);
        if (r->cancel) {
            r->state = REQ_NONE;
            atomic_store(&store_slot(s->st, slot)->finish, r->cancel);
            outbox_add(s, slot, r->cancel);
            continue;
        }
        r->state = REQ_WAITING;
        s->wait_head = (s->wait_head + s->n_slots - 1) % s->n_slots;
        s->waiting[s->wait_head] = slot;
        s->n_waiting++;
    }
    s->n_running = 0;
    s->reserved = 0;
    kv_alloc_free(&s->kv);
    if (kv_alloc_init(&s->kv, n_kv_blocks))
        return -ENOMEM;
    int limit_blocks = s->opts.max_total_tokens > 0 ? s->opts.max_total_tokens / s->block_size : n_kv_blocks;
    s->kv_limit = limit_blocks < n_kv_blocks ? limit_blocks : n_kv_blocks;
    s->max_batch_tokens = s->opts.max_batch_tokens;
    if (worker_max_batch_tokens > 0 && worker_max_batch_tokens < s->max_batch_tokens)
        s->max_batch_tokens = worker_max_batch_tokens;
    s->ready = 1;
    LOG_INFO("capacity: %d KV blocks of %d tokens (router uses %d), %d tokens per step",
             n_kv_blocks, s->block_size, s->kv_limit, s->max_batch_tokens);
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
    r->n_prompt = h->n_prompt;
    r->n_tokens = h->n_prompt;
    atomic_store(&h->finish, FINISH_NONE);
    atomic_store(&h->n_blocks, 0);
    if (s->ready && blocks_for(s, peak_tokens(s, slot)) > s->kv_limit) {
        LOG_WARN("slot %d needs %d KV blocks, more than the %d the server has", slot,
                 blocks_for(s, peak_tokens(s, slot)), s->kv_limit);
        finish_req(s, slot, FINISH_ERROR);
        return 0;
    }
    r->state = REQ_WAITING;
    s->waiting[(s->wait_head + s->n_waiting++) % s->n_slots] = slot;
    return 0;
}

void sched_cancel(sched *s, int slot, uint64_t req_id, int reason)
{
    if (slot < 0 || slot >= s->n_slots)
        return;
    sched_req *r = &s->reqs[slot];
    if (r->state == REQ_NONE || r->req_id != req_id || r->cancel)
        return;
    if (r->in_step)
        r->cancel = reason; /* applied when the step returns */
    else
        finish_req(s, slot, reason);
}

/* Admits waiting requests first-come first-served while their peak KV fits. */
static void admit(sched *s)
{
    int max_running = s->opts.max_running < MSG_MAX_SEQS ? s->opts.max_running : MSG_MAX_SEQS;
    while (s->n_waiting > 0 && s->n_running < max_running) {
        int slot = s->waiting[s->wait_head];
        sched_req *r = &s->reqs[slot];
        int peak = blocks_for(s, peak_tokens(s, slot));
        if (peak > s->kv_limit) { /* capacity shrank after a worker restart */
            finish_req(s, slot, FINISH_ERROR);
            continue;
        }
        if (s->reserved + peak > s->kv_limit)
            break;
        s->wait_head = (s->wait_head + 1) % s->n_slots;
        s->n_waiting--;
        r->state = REQ_RUNNING;
        r->peak_blocks = peak;
        s->reserved += peak;
        s->running[s->n_running++] = slot;
    }
}

/* Grows the slot's block table to hold N_TOKENS tokens. */
static void grow_blocks(sched *s, int slot, int n_tokens)
{
    sched_req *r = &s->reqs[slot];
    int32_t *table = slot_blocks(s->st, slot);
    int need = blocks_for(s, n_tokens);
    CHECK(need <= r->peak_blocks);
    while (r->n_blocks < need) {
        int32_t b = kv_alloc_get(&s->kv);
        CHECK(b >= 0); /* reservations guarantee a free block */
        table[r->n_blocks++] = b;
    }
    atomic_store_explicit(&store_slot(s->st, slot)->n_blocks, r->n_blocks, memory_order_release);
}

static void step_add(sched *s, msg_step *step, int slot, int n_new)
{
    sched_req *r = &s->reqs[slot];
    grow_blocks(s, slot, r->n_cached + n_new);
    int sample = r->n_cached + n_new == r->n_tokens;
    step->seqs[step->n_seqs++] = (step_seq){slot, r->n_cached, n_new, sample};
    r->in_step = 1;
}

int sched_build_step(sched *s, msg_step *step)
{
    step->n_seqs = 0;
    if (!s->ready)
        return 0;
    admit(s);
    int budget = s->max_batch_tokens;
    /* decodes first: one token each, they keep the running batch moving */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        if (!r->cancel && r->n_tokens - r->n_cached == 1) {
            step_add(s, step, slot, 1);
            budget--;
        }
    }
    /* then prefill chunks, oldest request first */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        int slot = s->running[i];
        sched_req *r = &s->reqs[slot];
        int need = r->n_tokens - r->n_cached;
        if (r->cancel || need <= 1)
            continue;
        int n_new = need < budget ? need : budget;
        step_add(s, step, slot, n_new);
        budget -= n_new;
    }
    step->step_id = ++s->n_steps;
    return step->n_seqs;
}

static int is_eos(const sched *s, int32_t tok)
{
    for (int i = 0; i < s->cfg->n_eos; i++)
        if (tok == s->cfg->eos_ids[i])
            return 1;
    return 0;
}

void sched_step_done(sched *s, const msg_step *step, int status)
{
    for (int i = 0; i < step->n_seqs; i++) {
        const step_seq *q = &step->seqs[i];
        sched_req *r = &s->reqs[q->slot];
        if (r->state != REQ_RUNNING || !r->in_step)
            continue; /* a worker restart already requeued it */
        r->in_step = 0;
        if (status < 0) {
            finish_req(s, q->slot, FINISH_ERROR);
            continue;
        }
        r->n_cached += q->n_new;
        int finish = FINISH_NONE;
        if (q->sample) {
            const slot_hdr *h = store_slot(s->st, q->slot);
            int n = atomic_load_explicit(&h->n_tokens, memory_order_acquire);
            if (n != r->n_tokens + 1) {
                LOG_ERR("slot %d: worker reported %d tokens, expected %d", q->slot, n, r->n_tokens + 1);
                finish_req(s, q->slot, FINISH_ERROR);
                continue;
            }
            r->n_tokens = n;
            int32_t tok = slot_tokens(s->st, q->slot)[n - 1];
            if (!h->params.ignore_eos && is_eos(s, tok))
                finish = FINISH_STOP;
            else if (n - r->n_prompt >= h->params.max_new_tokens || n >= s->max_seq_len)
                finish = FINISH_LENGTH;
        }
        if (r->cancel)
            finish = r->cancel;
        if (finish)
            finish_req(s, q->slot, finish);
        else if (q->sample)
            outbox_add(s, q->slot, FINISH_NONE);
    }
}

int sched_take_outbox(sched *s, msg_detok *out)
{
    int n = s->n_outbox < MSG_MAX_SEQS ? s->n_outbox : MSG_MAX_SEQS;
    memcpy(out->seqs, s->outbox, sizeof(detok_seq) * (size_t)n);
    out->n_seqs = n;
    memmove(s->outbox, s->outbox + n, sizeof(detok_seq) * (size_t)(s->n_outbox - n));
    s->n_outbox -= n;
    return n;
}

int sched_n_free_blocks(const sched *s) { return s->kv.n_free; }
