/* sched_impl.h - what the scheduler's two files (sched.c, admit.c) share beyond sched.h:
 * block arithmetic and the internal steps each calls in the other. */
#ifndef CINDER_SCHED_IMPL_H
#define CINDER_SCHED_IMPL_H

#include "sched.h"

static inline int blocks_for(const sched *s, int64_t n_tokens)
{
    return (int)((n_tokens + s->block_size - 1) / s->block_size);
}

/* Most tokens the request can reach: prompt + max_new_tokens, capped by the context. */
static inline int peak_tokens(const sched *s, const sched_req *r)
{
    int64_t peak = (int64_t)r->n_prompt + r->max_new;
    return peak < s->max_seq_len ? (int)peak : s->max_seq_len;
}

/* Even alone (with a block of rounding slack) the request would not fit. */
static inline int never_fits(const sched *s, const sched_req *r)
{
    return blocks_for(s, peak_tokens(s, r)) + 1 > s->kv_limit;
}

/* Block B joins the set admission counts once (sched.c). */
void sched_share_add(sched *s, int32_t b);
/* Records why the request fails (read by the tokenizer with FINISH_ERROR), then ends it. */
void sched_fail_req(sched *s, int slot, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Frees the blocks of the latest-admitted request no step carries (other than KEEP) and
 * requeues it; 0, or -1 when there is none (sched.c). */
int sched_preempt_one(sched *s, int keep);
/* Moves waiting requests into the running batch in policy order while they fit, each taking
 * its cached prefix (admit.c). */
void sched_admit(sched *s);

#endif
