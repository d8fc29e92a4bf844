/* rmsnorm_ref.c - CPU reference for rmsnorm: optional residual add, then RMS normalization. */
#include <math.h>
#include "ref.h"

void rmsnorm_ref(float *out, float *resid, const float *x, const float *w, int n, int dim,
                 float eps)
{
    for (int r = 0; r < n; r++) {
        float *h = resid + (size_t)r * dim;
        float ss = 0.f;
        for (int i = 0; i < dim; i++) {
            if (x) h[i] += x[(size_t)r * dim + i];
            ss += h[i] * h[i];
        }
        float rstd = 1.f / sqrtf(ss / dim + eps);
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = h[i] * rstd * w[i];
    }
}
