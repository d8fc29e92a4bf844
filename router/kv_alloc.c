/* kv_alloc.c - free stack, reference counts, LRU list and the prefix cache's hash table
 * of KV blocks (see kv_alloc.h). */
#include "kv_alloc.h"
#include "../common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kv_alloc_init(kv_alloc *a, int n_blocks, int block_size)
{
    memset(a, 0, sizeof *a);
    size_t n = (size_t)(n_blocks > 0 ? n_blocks : 1);
    uint32_t nb = 1;
    while (nb < n)
        nb <<= 1;
    a->n_blocks = n_blocks;
    a->block_size = block_size > 0 ? block_size : 1;
    a->n_buckets = nb;
    a->free = malloc(n * sizeof *a->free);
    a->ref = calloc(n, sizeof *a->ref);
    a->gen = calloc(n, sizeof *a->gen);
    a->cached = calloc(n, sizeof *a->cached);
    a->parent = malloc(n * sizeof *a->parent);
    a->parent_gen = malloc(n * sizeof *a->parent_gen);
    a->hash = malloc(n * sizeof *a->hash);
    a->tokens = malloc(n * (size_t)a->block_size * sizeof *a->tokens);
    a->bucket = malloc(nb * sizeof *a->bucket);
    a->chain = malloc(n * sizeof *a->chain);
    a->lru_prev = malloc(n * sizeof *a->lru_prev);
    a->lru_next = malloc(n * sizeof *a->lru_next);
    if (!a->free || !a->ref || !a->gen || !a->cached || !a->parent || !a->parent_gen || !a->hash ||
        !a->tokens || !a->bucket || !a->chain || !a->lru_prev || !a->lru_next)
        goto fail;
    a->n_free = n_blocks;
    for (int i = 0; i < n_blocks; i++)
        a->free[i] = n_blocks - 1 - i; /* block 0 on top */
    memset(a->bucket, 0xff, nb * sizeof *a->bucket);
    a->lru_head = a->lru_tail = -1;
    return 0;
fail:
    kv_alloc_free(a);
    return -ENOMEM;
}

void kv_alloc_free(kv_alloc *a)
{
    free(a->free);
    free(a->ref);
    free(a->gen);
    free(a->cached);
    free(a->parent);
    free(a->parent_gen);
    free(a->hash);
    free(a->tokens);
    free(a->bucket);
    free(a->chain);
    free(a->lru_prev);
    free(a->lru_next);
    memset(a, 0, sizeof *a);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 29);
}

static uint64_t key_hash(const kv_alloc *a, int32_t parent, uint32_t parent_gen, const int32_t *tokens)
{
    uint64_t h = mix(0x6a09e667f3bcc909ULL, (uint64_t)(uint32_t)parent << 32 | parent_gen);
    for (int i = 0; i < a->block_size; i++)
        h = mix(h, (uint32_t)tokens[i]);
    return h;
}

static void lru_unlink(kv_alloc *a, int32_t b)
{
    int32_t p = a->lru_prev[b], n = a->lru_next[b];
    if (p >= 0)
        a->lru_next[p] = n;
    else
        a->lru_head = n;
    if (n >= 0)
        a->lru_prev[n] = p;
    else
        a->lru_tail = p;
    a->n_lru--;
}

static void lru_push_tail(kv_alloc *a, int32_t b)
{
    a->lru_prev[b] = a->lru_tail;
    a->lru_next[b] = -1;
    if (a->lru_tail >= 0)
        a->lru_next[a->lru_tail] = b;
    else
        a->lru_head = b;
    a->lru_tail = b;
    a->n_lru++;
}

/* Drops B's cache entry: later lookups miss it, and its children's keys go stale. */
static void uncache(kv_alloc *a, int32_t b)
{
    int32_t *p = &a->bucket[a->hash[b] & (a->n_buckets - 1)];
    while (*p != b) {
        CHECK(*p >= 0);
        p = &a->chain[*p];
    }
    *p = a->chain[b];
    a->cached[b] = 0;
    a->gen[b]++;
    a->n_cached--;
}

int32_t kv_alloc_get(kv_alloc *a)
{
    int32_t b;
    if (a->n_free > 0) {
        b = a->free[--a->n_free];
    } else if (a->lru_head >= 0) {
        b = a->lru_head;
        lru_unlink(a, b);
        uncache(a, b);
        a->n_evicted++;
    } else {
        return -1;
    }
    a->ref[b] = 1;
    return b;
}

void kv_alloc_take(kv_alloc *a, int32_t b)
{
    CHECK(b >= 0 && b < a->n_blocks && a->cached[b]);
    if (a->ref[b]++ == 0)
        lru_unlink(a, b);
}

void kv_alloc_put(kv_alloc *a, int32_t b)
{
    CHECK(b >= 0 && b < a->n_blocks && a->ref[b] > 0);
    if (--a->ref[b] > 0)
        return;
    if (a->cached[b]) {
        lru_push_tail(a, b);
    } else {
        CHECK(a->n_free < a->n_blocks);
        a->free[a->n_free++] = b;
    }
}

int32_t kv_alloc_match(const kv_alloc *a, int32_t parent, uint32_t parent_gen, const int32_t *tokens)
{
    if (a->n_blocks <= 0)
        return -1;
    uint64_t h = key_hash(a, parent, parent_gen, tokens);
    for (int32_t b = a->bucket[h & (a->n_buckets - 1)]; b >= 0; b = a->chain[b])
        if (a->hash[b] == h && a->parent[b] == parent && a->parent_gen[b] == parent_gen &&
            !memcmp(a->tokens + (size_t)b * a->block_size, tokens, sizeof(int32_t) * (size_t)a->block_size))
            return b;
    return -1;
}

int32_t kv_alloc_insert(kv_alloc *a, int32_t b, int32_t parent, uint32_t parent_gen, const int32_t *tokens)
{
    CHECK(b >= 0 && b < a->n_blocks && a->ref[b] > 0 && !a->cached[b]);
    int32_t old = kv_alloc_match(a, parent, parent_gen, tokens);
    if (old >= 0)
        return old;
    uint64_t h = key_hash(a, parent, parent_gen, tokens);
    uint32_t k = (uint32_t)(h & (a->n_buckets - 1));
    a->hash[b] = h;
    a->parent[b] = parent;
    a->parent_gen[b] = parent_gen;
    memcpy(a->tokens + (size_t)b * a->block_size, tokens, sizeof(int32_t) * (size_t)a->block_size);
    a->chain[b] = a->bucket[k];
    a->bucket[k] = b;
    a->cached[b] = 1;
    a->n_cached++;
    return b;
}
