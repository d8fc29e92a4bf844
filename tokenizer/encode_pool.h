/* encode_pool.h - a few threads that encode prompts for the HTTP threads.
 *
 * The tokenizer library keeps a per-thread cache of frequent words (a few MB each). With one
 * HTTP thread per connection (hundreds or thousands), encoding on those threads would give
 * each its own cache; handing the work to a small pool keeps the caches few and warm.
 */
#ifndef CINDER_ENCODE_POOL_H
#define CINDER_ENCODE_POOL_H

#include <stddef.h>
#include <stdint.h>
#include "../common/tok/tok.h"

typedef struct encode_pool encode_pool;

/* Starts N_THREADS encoder threads over T; NULL on failure. */
encode_pool *encode_pool_init(const tok *t, int n_threads);
void encode_pool_free(encode_pool *p);
/* tok_encode on a pool thread; same arguments and result. Safe from any thread. */
int64_t encode_pool_run(encode_pool *p, const char *text, size_t len, int add_special, int32_t *ids, size_t cap);

#endif
