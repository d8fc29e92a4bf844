/* policy_lpm.c - longest prefix match (SGLang's "lpm"): the waiting request with the most
 * prompt tokens in the prefix cache, oldest first among equals. Requests that share a
 * prefix run while it is cached, before other traffic evicts it, and each admission
 * computes the fewest tokens. With a long queue the scan costs more than it saves (every
 * waiting request's prefix is looked up at every pick), so beyond LPM_MAX_SCAN waiting
 * requests it falls back to first come, first served, as SGLang does. */
#include "policy.h"
#include "sched.h"

#define LPM_MAX_SCAN 128

static int lpm_pick(const struct sched *s)
{
    if (s->n_waiting > LPM_MAX_SCAN)
        return 0;
    int best = 0, best_len = -1;
    for (int i = 0; i < s->n_waiting; i++) {
        int len = sched_cached_prefix(s, s->waiting[i]);
        if (len > best_len) {
            best = i;
            best_len = len;
        }
    }
    return best;
}

const sched_policy policy_lpm = {"lpm", lpm_pick};
