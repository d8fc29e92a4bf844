/* kv_alloc.h - the KV block allocator and the prefix cache over it.
 *
 * The router owns it; the worker only sees the block tables the router writes into each
 * slot, so a block shared by several requests simply appears in several tables.
 *
 * Every block is in exactly one of three states:
 *   free      - on a LIFO stack (recently freed blocks reused first), not cached;
 *   held      - ref > 0: that many requests hold it in their block tables;
 *   evictable - ref == 0 but cached: its KV stays valid for a later request with the same
 *               prefix, on an LRU list; kv_alloc_get takes the least recently released one
 *               when the free stack is empty (its cache entry is dropped then).
 * The reference count counts requests only (the cache holds none): a cached block is on the
 * LRU list exactly when its count is 0.
 *
 * The cache (prefix caching): a full block of KV is keyed by its BLOCK_SIZE token ids and
 * by everything before it, which is the key of its parent block. Rather than hash the
 * whole prefix (vLLM's hash chain) or keep a radix tree of token runs (SGLang), a key is
 * (parent block id, the parent's generation, the block's tokens): the cached blocks form a
 * tree whose edges are block-sized token runs, each node found in O(1) by a hash table
 * lookup under its parent. Lookups compare the stored token ids and the parent exactly, so
 * no hash collision can ever hand out the wrong KV, and each cached block is its own tree
 * node (no node allocation, memory fixed at init: BLOCK_SIZE ids per block). A block's
 * generation is bumped when its cache entry is dropped (evicted for reuse), so children
 * keyed under its old contents become unreachable without walking the tree; they are
 * evicted in turn (a request releases its blocks last first, so children normally leave
 * the LRU list before their parents).
 */
#ifndef CINDER_KV_ALLOC_H
#define CINDER_KV_ALLOC_H

#include <stdint.h>

#define KV_NO_PARENT (-1) /* the parent of a request's first block */

typedef struct {
    int n_blocks, block_size;
    int32_t *free;       /* [n_blocks] stack of free block ids */
    int n_free;
    int32_t *ref;        /* [n_blocks] requests holding the block */
    uint32_t *gen;       /* [n_blocks] bumped when the block's cache entry is dropped */
    /* cache entries, valid where cached[b] */
    uint8_t *cached;     /* [n_blocks] */
    int32_t *parent;     /* [n_blocks] parent block, or KV_NO_PARENT */
    uint32_t *parent_gen;/* [n_blocks] the parent's generation when the entry was made */
    uint64_t *hash;      /* [n_blocks] of the key, to skip most token comparisons */
    int32_t *tokens;     /* [n_blocks * block_size] the block's token ids */
    int32_t *bucket;     /* [n_buckets] first entry of each hash bucket, -1: none */
    int32_t *chain;      /* [n_blocks] next entry in the same bucket */
    uint32_t n_buckets;  /* a power of two >= n_blocks */
    int n_cached;        /* entries in the table (held or evictable) */
    /* LRU list of evictable blocks: head is the least recently released */
    int32_t *lru_prev, *lru_next;
    int32_t lru_head, lru_tail;
    int n_lru;
    uint64_t n_evicted;
} kv_alloc;

/* N_BLOCKS blocks of BLOCK_SIZE tokens, all free; 0 or -ENOMEM. */
int kv_alloc_init(kv_alloc *a, int n_blocks, int block_size);
void kv_alloc_free(kv_alloc *a);

/* A block for one request (ref 1): a free one, else the least recently used evictable one
 * (its cache entry dropped); -1 when every block is held. */
int32_t kv_alloc_get(kv_alloc *a);
/* One more request holds BLOCK, a cached block found by kv_alloc_match (evictable or held). */
void kv_alloc_take(kv_alloc *a, int32_t block);
/* A request lets go of BLOCK: at 0 it becomes evictable if cached, else free. Aborts on a
 * block nobody holds or a foreign id (router bug). */
void kv_alloc_put(kv_alloc *a, int32_t block);

/* The cached block whose key is (PARENT, PARENT_GEN, TOKENS[block_size]), or -1. */
int32_t kv_alloc_match(const kv_alloc *a, int32_t parent, uint32_t parent_gen, const int32_t *tokens);
/* Caches BLOCK (held, fully computed, not cached) under that key and returns it; when the
 * key is cached already (another request computed the same tokens), returns that block
 * and leaves BLOCK uncached (it stays its holder's own, freed when released). */
int32_t kv_alloc_insert(kv_alloc *a, int32_t block, int32_t parent, uint32_t parent_gen,
                        const int32_t *tokens);

/* Blocks a request could get now: free plus evictable. */
static inline int kv_alloc_available(const kv_alloc *a) { return a->n_free + a->n_lru; }

#endif
