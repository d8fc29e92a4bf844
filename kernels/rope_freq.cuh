/* rope_freq.cuh - the RoPE frequency of one rotation pair (device code shared by the RoPE
 * kernel and the fused QKV epilogue of the GEMV kernel, so both rotate identically). */
#ifndef CINDER_ROPE_FREQ_CUH
#define CINDER_ROPE_FREQ_CUH

#include "rope_params.h"

/* Frequency of pair I of a head: plain theta^(-2i/d), or with Llama-3.1 scaling long
 * wavelengths divided by FACTOR, short ones kept, a linear blend of the two in between. */
static __device__ __forceinline__ float rope_inv_freq(int i, int head_dim, const rope_params &p)
{
    float inv = 1.f / powf(p.theta, (float)(2 * i) / head_dim);
    if (p.factor <= 0.f) return inv;
    float wavelen = 6.283185307179586f / inv;
    if (wavelen < p.orig_max_pos / p.high_freq_factor) return inv;
    if (wavelen > p.orig_max_pos / p.low_freq_factor) return inv / p.factor;
    float smooth = (p.orig_max_pos / wavelen - p.low_freq_factor) /
                   (p.high_freq_factor - p.low_freq_factor);
    return (1.f - smooth) * inv / p.factor + smooth * inv;
}

#endif
