/* embed_ref.c - CPU reference for embed: gather embedding rows by token id. */
#include <string.h>
#include "ref.h"

void embed_ref(float *out, const float *table, const int32_t *ids, int n, int vocab, int dim)
{
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= vocab)
            memset(out + (size_t)t * dim, 0, sizeof(float) * dim);
        else
            memcpy(out + (size_t)t * dim, table + (size_t)ids[t] * dim, sizeof(float) * dim);
    }
}
