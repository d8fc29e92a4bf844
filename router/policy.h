/* policy.h - a scheduling policy: which waiting request to admit next.
 *
 * The scheduler (sched.c) asks pick() for an index into the waiting array each time it has
 * room; the request at that index is admitted if its KV fits, else admission stops for this
 * step (no overtaking past a request that does not fit, so nothing starves). Policies live
 * one per file; add one by writing a pick function and listing it in policies[] (policy.c).
 */
#ifndef CINDER_POLICY_H
#define CINDER_POLICY_H

struct sched;

typedef struct {
    const char *name;
    /* Index into s->waiting[0..n_waiting) of the request to admit next (n_waiting > 0). */
    int (*pick)(const struct sched *s);
} sched_policy;

/* The policy named NAME ("fcfs", "spf", "lpm"), or NULL. */
const sched_policy *policy_find(const char *name);

#endif
