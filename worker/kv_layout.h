/* kv_layout.h - the paged KV cache layout of the reference CPU backend (and the layout GPU
 * tests read back to compare with it).
 *
 * The cache is n_kv_blocks blocks of block_size tokens. Token t of a sequence lives in block
 * block_table[t / block_size] at offset t % block_size (backend.h). K and V are two arrays of
 * the same shape, token-major inside a block so that one token's K (or V) for all KV heads is
 * one contiguous row of kv_dim = n_kv_heads * head_dim floats:
 *
 *   k_cache: [n_layers, n_kv_blocks, block_size, n_kv_heads, head_dim]
 *   v_cache: [n_layers, n_kv_blocks, block_size, n_kv_heads, head_dim]
 *
 * K is stored after RoPE (HF half-rotation convention), so attention reads it as is.
 * Block size 1 gives token-granular allocation (LightLLM); nothing else changes with it.
 */
#ifndef CINDER_KV_LAYOUT_H
#define CINDER_KV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "../common/model_config.h"

#define KV_CPU_DEFAULT_TOKENS 16384  /* the CPU backend's KV capacity when none is asked */

typedef struct {
    int n_layers, n_blocks, block_size, n_kv_heads, head_dim;
} kv_layout;

/* Offset in elements of (layer, block, slot in block, kv head, 0) in k_cache or v_cache. */
static inline size_t kv_offset(const kv_layout *l, int layer, int block, int slot, int kv_head)
{
    return ((((size_t)layer * l->n_blocks + block) * l->block_size + slot) * l->n_kv_heads +
            kv_head) * l->head_dim;
}

/* Offset of token POS of a sequence with block table BT (all KV heads follow contiguously). */
static inline size_t kv_token_offset(const kv_layout *l, int layer, const int32_t *bt, int pos)
{
    return kv_offset(l, layer, bt[pos / l->block_size], pos % l->block_size, 0);
}

/* Elements in one of k_cache / v_cache. */
static inline size_t kv_elems(const kv_layout *l)
{
    return (size_t)l->n_layers * l->n_blocks * l->block_size * l->n_kv_heads * l->head_dim;
}

/* The CPU backend's layout for model C: KV_TOKENS (0: the default) in blocks of BLOCK_SIZE
 * (the worker's, and the holder's when it keeps the cache); 0, or -1 with a message in ERR
 * when that makes no block or more than INT32_MAX. */
static inline int kv_layout_cpu(kv_layout *l, const model_config *c, int64_t kv_tokens,
                                int block_size, char *err, size_t n_err)
{
    int64_t n = block_size > 0 ? (kv_tokens > 0 ? kv_tokens : KV_CPU_DEFAULT_TOKENS) / block_size : 0;
    if (n < 1 || n > INT32_MAX) {
        snprintf(err, n_err, "%lld KV tokens make no blocks of %d (or too many)",
                 (long long)kv_tokens, block_size);
        return -1;
    }
    *l = (kv_layout){c->n_layers, (int)n, block_size, c->n_kv_heads, c->head_dim};
    return 0;
}

#endif
