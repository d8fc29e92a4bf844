/* policy_fcfs.c - first come, first served: the oldest waiting request (the default). */
#include "policy.h"

static int fcfs_pick(const struct sched *s)
{
    (void)s;
    return 0; /* waiting[] is in arrival order; preempted requests go back to its front */
}

const sched_policy policy_fcfs = {"fcfs", fcfs_pick};
