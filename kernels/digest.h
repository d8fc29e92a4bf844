/* digest.h - the weights digest: one definition for the CPU and the GPU (as rng.h).
 *
 * The buffer is read as little-endian 32-bit words w_i (a last partial word is zero-padded);
 * the digest is the sum mod 2^64 of digest_word(i, w_i). A sum does not depend on the order
 * of the additions, so a parallel reduction (kernels/weights_digest.cu) gives exactly the
 * sequential value; and for a fixed i, w -> digest_word(i, w) is a bijection (the SplitMix64
 * finalizer is one), so changing any one word always changes the digest; several changes
 * cancel out with probability about 2^-64. The holder keeps the digest of the weights it
 * loaded and compares it before a restarted worker attaches (a worker that died from a GPU
 * fault may have written anywhere it could reach).
 */
#ifndef CINDER_DIGEST_H
#define CINDER_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "rng.h"

RNG_FN uint64_t digest_word(uint64_t i, uint32_t w)
{
    return rng_mix(i * 0x9e3779b97f4a7c15ULL ^ w);
}

/* The digest of N bytes at P, sequentially (the reference, and the CPU holder's). */
static inline uint64_t digest_ref(const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t sum = 0;
    size_t n_words = n / 4, i;
    for (i = 0; i < n_words; i++) {
        uint32_t w;
        __builtin_memcpy(&w, b + 4 * i, 4);
        sum += digest_word(i, w);
    }
    if (n % 4) {
        uint32_t w = 0;
        __builtin_memcpy(&w, b + 4 * i, n % 4);
        sum += digest_word(i, w);
    }
    return sum;
}

#endif
