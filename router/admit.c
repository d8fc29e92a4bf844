/* admit.c - admission (see sched.h): LightLLM's estimate of the running batch's peak KV use,
 * made an upper bound for chunked prefill, with blocks shared through the prefix cache
 * counted once; and the prefix a request takes from the cache when it is admitted. */
#include "sched_impl.h"
#include "../common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tokens R may still generate, as admission counts them. */
static int64_t left_tokens(const sched *s, const sched_req *r)
{
    int64_t left = peak_tokens(s, r) - r->proj_tokens;
    left = (int64_t)ceilf((float)left * s->opts.new_token_ratio);
    return left > 0 ? left : 0;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* LightLLM's estimate, made an upper bound for chunked prefill: request i ends after T_i
 * steps, its tokens left plus the steps until its prefill is done (prefills are served in
 * admission order with at least the budget the decodes leave). Its KV never exceeds
 * cur_i + t at step t; with the requests sorted by T (longest first), when request j ends
 * requests 0..j are alive, so the peak is the largest cum_cur[j] + T_j * (j + 1).
 * One block of rounding slack per request.
 * With prefix caching, the blocks running requests took from the cache (the shared set) are
 * counted once however many requests hold them, and as if alive throughout; cur_i counts
 * the tokens of request i's other blocks: less those it took, and less those it computed
 * and cached that others took (n_lent). Every block a request holds is in the shared set
 * or among its other blocks, so this is still an upper bound. The candidate would take
 * N_HIT blocks, N_NEW of them not shared yet, s->lend[j] of those computed by running
 * request j; evictable blocks count as free. Nothing shared: exactly the estimate above. */
static int fits_with(sched *s, const sched_req *cand, int n_hit, int n_new)
{
    int n = 0;
    int64_t prefill_left = 0, per_step = s->max_batch_tokens - (s->n_running + 1);
    if (per_step < 1)
        per_step = 1;
    for (int i = 0; i <= s->n_running; i++) {
        const sched_req *r = i < s->n_running ? &s->reqs[s->running[i]] : cand;
        int taken = i < s->n_running ? r->n_taken + r->n_lent + s->lend[s->running[i]] : n_hit;
        int computed = i < s->n_running ? r->proj_cached : n_hit * s->block_size;
        prefill_left += r->proj_tokens - computed;
        int64_t t = left_tokens(s, r) + (prefill_left + per_step - 1) / per_step;
        s->est_left[n] = t << 20 | n; /* sort keys carry the index */
        s->est_cur[n++] = r->proj_tokens - (int64_t)taken * s->block_size;
    }
    qsort(s->est_left, (size_t)n, sizeof *s->est_left, cmp_desc);
    int64_t cum = 0, peak = 0;
    for (int j = 0; j < n; j++) {
        int64_t t = s->est_left[j] >> 20;
        cum += s->est_cur[s->est_left[j] & 0xfffff];
        if (cum + t * (j + 1) > peak)
            peak = cum + t * (j + 1);
    }
    return blocks_for(s, peak) + s->n_shared + n_new + n <= s->kv_limit;
}

/* The cached blocks equal to R's first tokens (at most n_tokens - 1 of them, so one is
 * always computed), into OUT when given; returns how many. */
static int prefix_match(const sched *s, int slot, int32_t *out)
{
    const sched_req *r = &s->reqs[slot];
    if (s->opts.no_prefix_caching || s->kv.n_cached == 0)
        return 0;
    const int32_t *tok = slot_tokens(s->st, slot);
    int max = (r->n_tokens - 1) / s->block_size, k = 0;
    int32_t parent = KV_NO_PARENT;
    uint32_t gen = 0;
    for (; k < max; k++) {
        int32_t b = kv_alloc_match(&s->kv, parent, gen, tok + (size_t)k * s->block_size);
        if (b < 0)
            break;
        if (out)
            out[k] = b;
        parent = b;
        gen = s->kv.gen[b];
    }
    return k;
}

int sched_cached_prefix(const sched *s, int slot)
{
    return prefix_match(s, slot, NULL) * s->block_size;
}

/* Whether a running request is computing the block SLOT's request would compute next (its
 * block N_HIT: the same tokens after the same cached blocks MATCH[0..N_HIT)): it is cached
 * once that step returns, so the request waits for it rather than compute it twice. */
static int prefix_in_flight(const sched *s, int slot, int n_hit)
{
    const sched_req *c = &s->reqs[slot];
    int bs = s->block_size, end = (n_hit + 1) * bs;
    if (s->opts.no_prefix_caching || end > c->n_tokens - 1)
        return 0;
    const int32_t *want = slot_tokens(s->st, slot) + (size_t)n_hit * bs;
    for (int i = 0; i < s->n_running; i++) {
        int other = s->running[i];
        const sched_req *r = &s->reqs[other];
        if (r->cancel || r->n_keyed < 0 || r->n_cached >= end || r->n_tokens < end ||
            r->n_keyed < n_hit)
            continue;
        /* its block N_HIT - 1 is the one we matched, or keyed to it */
        if (n_hit > 0 && slot_blocks(s->st, other)[n_hit - 1] != s->match[n_hit - 1] &&
            !(r->n_keyed == n_hit && r->key_parent == s->match[n_hit - 1]))
            continue;
        if (!memcmp(slot_tokens(s->st, other) + (size_t)n_hit * bs, want, sizeof(int32_t) * (size_t)bs))
            return 1;
    }
    return 0;
}

/* Puts the N_HIT cached blocks in s->match at the head of SLOT's block table. */
static void take_prefix(sched *s, int slot, int n_hit)
{
    sched_req *r = &s->reqs[slot];
    int32_t *table = slot_blocks(s->st, slot);
    for (int i = 0; i < n_hit; i++) {
        int32_t b = s->match[i];
        kv_alloc_take(&s->kv, b);
        sched_share_add(s, b);
        table[i] = b;
    }
    r->n_blocks = r->n_taken = r->n_keyed = n_hit;
    r->n_cached = r->proj_cached = n_hit * s->block_size;
    r->key_parent = n_hit ? table[n_hit - 1] : KV_NO_PARENT;
    r->key_gen = n_hit ? s->kv.gen[table[n_hit - 1]] : 0;
    atomic_store_explicit(&store_slot(s->st, slot)->n_blocks, r->n_blocks, memory_order_release);
    if (r->cached_prompt < 0) { /* first admission: what the request is billed as cached */
        slot_hdr *h = store_slot(s->st, slot);
        atomic_store_explicit(&h->t_scheduled_us, now_us(), memory_order_release);
        r->cached_prompt = r->n_cached < r->n_prompt ? r->n_cached : r->n_prompt;
        atomic_store_explicit(&h->n_prompt_cached, r->cached_prompt, memory_order_release);
        if (!s->opts.no_prefix_caching) {
            s->prefix_queries += (uint64_t)r->n_prompt;
            s->prefix_hits += (uint64_t)r->cached_prompt;
        }
    }
}

void sched_admit(sched *s)
{
    /* every running decode fits in each step, so none ever stalls (the estimate needs it) */
    int max_running = s->opts.max_running < MSG_MAX_SEQS ? s->opts.max_running : MSG_MAX_SEQS;
    if (max_running > s->max_batch_tokens)
        max_running = s->max_batch_tokens;
    int n_held = 0, n_order = s->n_waiting;
    memcpy(s->order, s->waiting, sizeof(int) * (size_t)n_order);
    while (s->n_waiting > 0 && s->n_running < max_running) {
        int k = s->opts.policy->pick(s);
        int slot = s->waiting[k];
        sched_req *r = &s->reqs[slot];
        if (never_fits(s, r)) { /* capacity shrank after a worker restart */
            sched_fail_req(s, slot, 503, "the restarted worker has room for %d KV tokens; the request "
                     "needs %d", s->kv_limit * s->block_size, peak_tokens(s, r));
            continue;
        }
        int n_hit = prefix_match(s, slot, s->match), n_new = 0;
        for (int i = 0; i < n_hit; i++) {
            int32_t b = s->match[i];
            if (s->n_sharers[b] == 0) {
                n_new++;
                if (s->owner[b] >= 0)
                    s->lend[s->owner[b]]++;
            }
        }
        int wait = prefix_in_flight(s, slot, n_hit);
        int fits = wait || fits_with(s, r, n_hit, n_new);
        for (int i = 0; i < n_hit; i++)
            if (s->owner[s->match[i]] >= 0)
                s->lend[s->owner[s->match[i]]] = 0;
        if (!fits)
            break;
        memmove(s->waiting + k, s->waiting + k + 1, sizeof(int) * (size_t)(s->n_waiting - k - 1));
        s->n_waiting--;
        if (wait) { /* passed over this time, keeps its place in the queue */
            s->held[n_held++] = slot;
            continue;
        }
        r->state = REQ_RUNNING;
        r->admit_seq = ++s->n_admitted;
        s->running[s->n_running++] = slot;
        take_prefix(s, slot, n_hit);
    }
    if (n_held > 0) { /* the queue in its order again, less those admitted or ended */
        s->n_waiting = 0;
        for (int i = 0; i < n_order; i++)
            if (s->reqs[s->order[i]].state == REQ_WAITING)
                s->waiting[s->n_waiting++] = s->order[i];
    }
}

