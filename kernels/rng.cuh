/* rng.cuh - device twins of worker/rng.h (counter-based SplitMix64 random numbers), so the
 * GPU draws exactly the values the CPU backend draws: sampling uniforms keyed by (seed,
 * position) and random weights keyed by (tensor key, element index). Integer mixing plus one
 * exact double multiply: bit-identical to the host functions. Keep the two in step.
 */
#ifndef CINDER_RNG_CUH
#define CINDER_RNG_CUH

#include <stdint.h>

__device__ __forceinline__ uint64_t rng_mix_d(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ uint64_t rng_u64_d(uint64_t key, uint64_t counter)
{
    return rng_mix_d(rng_mix_d(key) ^ counter);
}

/* Uniform in [0, 1) with 53 random bits. */
__device__ __forceinline__ double rng_uniform_d(uint64_t key, uint64_t counter)
{
    return (double)(rng_u64_d(key, counter) >> 11) * 0x1.0p-53;
}

/* Uniform in [-1, 1) as float. */
__device__ __forceinline__ float rng_sym_d(uint64_t key, uint64_t counter)
{
    return (float)(2.0 * rng_uniform_d(key, counter) - 1.0);
}

#endif
