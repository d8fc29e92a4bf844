/* kv_store_ref.c - CPU reference for kv_store: scatter K/V rows into their cache slots. */
#include <string.h>
#include "ref.h"

void kv_store_ref(float *k_cache, float *v_cache, const float *k, int k_stride, const float *v,
                  int v_stride, const int32_t *slot_mapping, int n_tokens, int n_kv_heads,
                  int head_dim)
{
    size_t row = (size_t)n_kv_heads * head_dim;
    for (int t = 0; t < n_tokens; t++) {
        if (slot_mapping[t] < 0) continue;
        memcpy(k_cache + slot_mapping[t] * row, k + (size_t)t * k_stride, row * sizeof(float));
        memcpy(v_cache + slot_mapping[t] * row, v + (size_t)t * v_stride, row * sizeof(float));
    }
}
