/* rng.h - counter-based random numbers: value = f(key, counter), no state, so a result never
 * depends on what else ran before (batch composition, restarts, threads). Used by sampling
 * (key = request seed, counter = token position) and by random weight generation
 * (key = seed and tensor, counter = element index). SplitMix64 finalizer as the mixer.
 * It lives with the kernels that draw from it (sample_full.cu) and is plain C for the CPU
 * backend's sampler and weights: one definition, so the GPU draws exactly the CPU's values.
 */
#ifndef CINDER_RNG_H
#define CINDER_RNG_H

#include <stdint.h>

/* One definition for the CPU and the GPU (the CUDA backend must draw the same values). */
#ifdef __CUDACC__
#define RNG_FN static __host__ __device__ __forceinline__
#else
#define RNG_FN static inline
#endif

RNG_FN uint64_t rng_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

RNG_FN uint64_t rng_u64(uint64_t key, uint64_t counter)
{
    return rng_mix(rng_mix(key) ^ counter);
}

/* Uniform in [0, 1) with 53 random bits. */
RNG_FN double rng_uniform(uint64_t key, uint64_t counter)
{
    return (double)(rng_u64(key, counter) >> 11) * 0x1.0p-53;
}

/* Uniform in [-1, 1) as float. */
RNG_FN float rng_sym(uint64_t key, uint64_t counter)
{
    return (float)(2.0 * rng_uniform(key, counter) - 1.0);
}

#endif
