/* kv_alloc.c - LIFO free stack of KV block ids (see kv_alloc.h). */
#include "kv_alloc.h"
#include "../common/log.h"

#include <errno.h>
#include <stdlib.h>

int kv_alloc_init(kv_alloc *a, int n_blocks)
{
    a->free = malloc(sizeof(int32_t) * (size_t)(n_blocks > 0 ? n_blocks : 1));
    if (!a->free)
        return -ENOMEM;
    a->n_blocks = n_blocks;
    a->n_free = n_blocks;
    for (int i = 0; i < n_blocks; i++)
        a->free[i] = n_blocks - 1 - i; /* block 0 on top */
    return 0;
}

void kv_alloc_free(kv_alloc *a)
{
    free(a->free);
    a->free = NULL;
    a->n_free = a->n_blocks = 0;
}

int32_t kv_alloc_get(kv_alloc *a)
{
    return a->n_free > 0 ? a->free[--a->n_free] : -1;
}

void kv_alloc_put(kv_alloc *a, int32_t block)
{
    CHECK(block >= 0 && block < a->n_blocks && a->n_free < a->n_blocks);
    a->free[a->n_free++] = block;
}
