/* sample_greedy_ref.c - CPU reference for sample_greedy: greedy token and its log-probability. */
#include <math.h>
#include "ref.h"

void sample_greedy_ref(int32_t *token, float *logprob, const float *logits, int n, int vocab)
{
    for (int r = 0; r < n; r++) {
        const float *x = logits + (size_t)r * vocab;
        int best = 0;
        for (int i = 1; i < vocab; i++)
            if (x[i] > x[best]) best = i;
        double sum = 0.0;
        for (int i = 0; i < vocab; i++) sum += exp((double)x[i] - x[best]);
        token[r] = best;
        logprob[r] = (float)-log(sum);
    }
}
