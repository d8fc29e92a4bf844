/* tok_cache.c - per-thread cache of word -> ids for the BPE model, so frequent words skip the
 * merge loop. Each thread keeps its own direct-mapped tables (no locks, nothing shared),
 * one per tokenizer it used lately, told apart by the tokenizer's load generation (unique per
 * process, never reused, so a freed tokenizer's table is simply never matched again).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

#define CACHE_SLOTS 32768 /* per table (3.4 MB); direct-mapped by hash */
#define CACHE_TABLES 4   /* tokenizers per thread */

typedef struct {
    uint64_t hash;       /* 0: empty */
    uint8_t n_key, n_ids;
    char key[TOK_CACHE_KEY];
    int32_t ids[TOK_CACHE_IDS];
} cache_entry;

struct tok_cache {
    uint64_t gen;        /* tokenizer generation; 0: unused */
    uint64_t last_use;
    cache_entry *e;      /* [CACHE_SLOTS] */
};

typedef struct {
    struct tok_cache tab[CACHE_TABLES];
    uint64_t clock;
} thread_caches;

static atomic_uint_fast64_t next_gen = 1;

uint64_t tok_cache_new_gen(void)
{
    return atomic_fetch_add(&next_gen, 1);
}

static void caches_free(void *p)
{
    thread_caches *tc = p;
    for (int i = 0; i < CACHE_TABLES; i++)
        free(tc->tab[i].e);
    free(tc);
}

static tok_tls caches_tls = {.destroy = caches_free};

tok_cache *tok_cache_get(const tok *t)
{
    thread_caches *tc = tok_tls_get(&caches_tls, sizeof *tc);
    if (!tc)
        return NULL;
    tc->clock++;
    struct tok_cache *lru = &tc->tab[0];
    for (int i = 0; i < CACHE_TABLES; i++) {
        if (tc->tab[i].gen == t->gen) {
            tc->tab[i].last_use = tc->clock;
            return &tc->tab[i];
        }
        if (tc->tab[i].last_use < lru->last_use)
            lru = &tc->tab[i];
    }
    if (!lru->e && !(lru->e = malloc(CACHE_SLOTS * sizeof *lru->e)))
        return NULL;
    memset(lru->e, 0, CACHE_SLOTS * sizeof *lru->e);
    lru->gen = t->gen;
    lru->last_use = tc->clock;
    return lru;
}

int tok_cache_find(const tok_cache *c, uint64_t h, const char *s, size_t n, tok_ids *out)
{
    const cache_entry *e = &c->e[h & (CACHE_SLOTS - 1)];
    if (e->hash != h || e->n_key != n || memcmp(e->key, s, n) != 0)
        return 0;
    for (int i = 0; i < e->n_ids; i++)
        if (tok_ids_add(out, e->ids[i]) < 0)
            return -1;
    return 1;
}

void tok_cache_put(tok_cache *c, uint64_t h, const char *s, size_t n, const int32_t *ids,
                   size_t n_ids)
{
    if (n > TOK_CACHE_KEY || n_ids > TOK_CACHE_IDS)
        return;
    cache_entry *e = &c->e[h & (CACHE_SLOTS - 1)];
    e->hash = h;
    e->n_key = (uint8_t)n;
    e->n_ids = (uint8_t)n_ids;
    memcpy(e->key, s, n);
    memcpy(e->ids, ids, n_ids * sizeof *ids);
}
