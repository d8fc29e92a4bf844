/* policy.c - the table of scheduling policies (see policy.h). */
#include "policy.h"

#include <string.h>

extern const sched_policy policy_fcfs, policy_spf, policy_lpm;
static const sched_policy *const policies[] = {&policy_fcfs, &policy_spf, &policy_lpm};

const sched_policy *policy_find(const char *name)
{
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++)
        if (!strcmp(policies[i]->name, name))
            return policies[i];
    return NULL;
}
