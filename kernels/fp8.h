/* fp8.h - the FP8 E4M3 format (OCP "E4M3FN", what Hopper's tensor cores and HF checkpoints
 * use) and cinder's FP8 quantization math, in one header that C (the CPU backend, loaders,
 * tests) and CUDA (device code) both compile, so every place rounds the same way.
 *
 * E4M3: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities; 0x7f / 0xff are NaN;
 * largest finite 448 (0x7e), smallest normal 2^-6, subnormals m * 2^-9 (m = 1..7).
 * Encoding rounds to nearest, ties to even; magnitudes >= 448 (and infinities) saturate to
 * +-448, as quantizers clamp before casting; NaN encodes as 0x7f (sign kept).
 *
 * Quantization (weights per output channel, activations per token, both symmetric):
 *   scale = amax / 448 (1 for an all-zero row), code = e4m3(x / scale), x' = decode(code) * scale.
 */
#ifndef CINDER_FP8_H
#define CINDER_FP8_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define FP8_FN __host__ __device__ static inline
#else
#define FP8_FN static inline
#endif

#define FP8_E4M3_MAX 448.0f

FP8_FN uint32_t fp8_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

FP8_FN float fp8_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The value of code V (NaN for 0x7f, 0xff). */
FP8_FN float fp8_e4m3_decode(uint8_t v)
{
    uint32_t sign = (uint32_t)(v & 0x80) << 24, e = (v >> 3) & 15, m = v & 7;
    if (e == 15 && m == 7)
        return fp8_bits_f32(sign | 0x7fc00000u);
    if (e == 0)   /* subnormal: m * 2^-9, exact in fp32 */
        return fp8_bits_f32(sign | fp8_f32_bits((float)m * (1.0f / 512.0f)));
    return fp8_bits_f32(sign | ((e + 120) << 23) | (m << 20));   /* exponent e - 7 + 127 */
}

/* X rounded to nearest E4M3 (ties to even), saturated to +-448; NaN -> 0x7f | sign. */
FP8_FN uint8_t fp8_e4m3_encode(float x)
{
    uint32_t u = fp8_f32_bits(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u)
        return sign | 0x7f;
    if (u >= 0x43e00000u)   /* 448 and above, infinity included */
        return sign | 0x7e;
    if (u < 0x3c800000u) {  /* below 2^-6: multiples of 2^-9; 8 * 2^-9 is code 0x08 */
        float f = fp8_bits_f32(u) * 512.0f;   /* exact */
        uint32_t m = (uint32_t)f;
        float rem = f - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1)))
            m++;
        return sign | (uint8_t)m;
    }
    uint32_t code = (((u >> 23) - 120) << 3) | ((u >> 20) & 7);
    uint32_t rem = u & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (code & 1)))
        code++;   /* a carry into the exponent is right; never reaches 0x7f below 448 */
    return sign | (uint8_t)code;
}

/* The scale of a row (or tensor) whose largest magnitude is AMAX. */
FP8_FN float fp8_scale_of(float amax)
{
    float s = amax / FP8_E4M3_MAX;
    return s > 0.0f ? s : 1.0f;
}

/* Largest |x[i]|, i < n (NaN ignored). */
FP8_FN float fp8_amax(const float *x, long n)
{
    float a = 0.0f;
    for (long i = 0; i < n; i++) {
        float v = x[i] < 0 ? -x[i] : x[i];
        a = v > a ? v : a;
    }
    return a;
}

/* Codes Q [n] of X [n] at SCALE. */
FP8_FN void fp8_quantize(uint8_t *q, const float *x, long n, float scale)
{
    for (long i = 0; i < n; i++)
        q[i] = fp8_e4m3_encode(x[i] / scale);
}

/* X [n] replaced by its own per-row quantization, dequantized (what an FP8 product sees);
 * returns the scale. */
FP8_FN float fp8_qdq_row(float *x, long n)
{
    float s = fp8_scale_of(fp8_amax(x, n));
    for (long i = 0; i < n; i++)
        x[i] = fp8_e4m3_decode(fp8_e4m3_encode(x[i] / s)) * s;
    return s;
}

#endif
