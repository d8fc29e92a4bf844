/* rng.cuh - the counter-based random numbers of worker/rng.h on the device: the same
 * definitions (host and device), so the GPU draws exactly the values the CPU backend draws. */
#ifndef CINDER_RNG_CUH
#define CINDER_RNG_CUH

#include "../worker/rng.h"

#endif
