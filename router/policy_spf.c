/* policy_spf.c - shortest prompt first: the waiting request with the fewest tokens to
 * prefill, oldest first among equals. Lower mean time to first token under load, at the
 * price of fairness to long prompts. */
#include "policy.h"
#include "sched.h"

static int spf_pick(const struct sched *s)
{
    int best = 0;
    for (int i = 1; i < s->n_waiting; i++)
        if (s->reqs[s->waiting[i]].n_tokens < s->reqs[s->waiting[best]].n_tokens)
            best = i;
    return best;
}

const sched_policy policy_spf = {"spf", spf_pick};
