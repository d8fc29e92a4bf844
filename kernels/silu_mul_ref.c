/* silu_mul_ref.c - CPU reference for silu_mul: SwiGLU activation of a fused gate/up row. */
#include <math.h>
#include "ref.h"

void silu_mul_ref(float *out, const float *in, int n, int hidden)
{
    for (int r = 0; r < n; r++)
        for (int i = 0; i < hidden; i++) {
            float g = in[(size_t)r * 2 * hidden + i], u = in[(size_t)r * 2 * hidden + hidden + i];
            out[(size_t)r * hidden + i] = g / (1.f + expf(-g)) * u;
        }
}
