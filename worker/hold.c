/* hold.c - what the holder does the same way on either backend (hold.h): load the weights,
 * take their digest, time both. */
#include "hold.h"
#include "../common/log.h"

#include <time.h>

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

int hold_load(hold *h, char *err, size_t n_err)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (h->fill(h, err, n_err) < 0)
        return -1;
    double load_ms = ms_since(&t0), digest_ms;
    h->digest = hold_digest(h, &digest_ms);
    double mb = (double)h->info.weights_bytes / 1e6;
    LOG_INFO("weights %s: %.0f MB in %.0f ms (%.2f GB/s); digest %016llx in %.2f ms (%s)",
             h->dummy ? "filled with the random model" : "loaded", mb, load_ms,
             mb / (load_ms > 0 ? load_ms : 1e-3), (unsigned long long)h->digest, digest_ms, h->name);
    return 0;
}

uint64_t hold_digest(hold *h, double *ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t d = h->digest_now(h);
    *ms = ms_since(&t0);
    return d;
}
