/* kv_alloc.h - the KV block allocator: which of the worker's KV blocks are free.
 *
 * The router owns it; the worker only sees the block tables the router writes into each
 * slot. A LIFO free stack: O(1) alloc and free, recently freed blocks reused first.
 */
#ifndef CINDER_KV_ALLOC_H
#define CINDER_KV_ALLOC_H

#include <stdint.h>

typedef struct {
    int32_t *free;   /* [n_blocks] stack of free block ids */
    int n_free;
    int n_blocks;
} kv_alloc;

int kv_alloc_init(kv_alloc *a, int n_blocks);   /* 0 or -ENOMEM */
void kv_alloc_free(kv_alloc *a);
/* Pops one block id, or -1 when none is free. */
int32_t kv_alloc_get(kv_alloc *a);
/* Returns a block; aborts on a double free or a foreign id (router bug). */
void kv_alloc_put(kv_alloc *a, int32_t block);

#endif
