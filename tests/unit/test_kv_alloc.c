/* test_kv_alloc.c - the router's KV block allocator and its prefix cache, against a model.
 *
 * Random get / take / put / insert / match over small block counts and a tiny token alphabet
 * (so keys repeat and collide). After every operation: each block's reference count equals
 * the holders the model counts; a block is free, held or evictable exactly as the model says
 * (the LRU list holds exactly the cached blocks nobody holds, the free stack the others);
 * get takes a free block first, else the least recently released evictable one, and drops its
 * cache entry; every cached block is found under its key and nothing else is (a stale parent
 * generation never matches); inserting a key that is cached returns the cached block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../router/kv_alloc.h"

#define MAX_BS 8

typedef struct {
    int ref, cached;
    int32_t parent;
    uint32_t parent_gen;
    int32_t tokens[MAX_BS];
    uint64_t released; /* when its count last fell to 0 */
} model_block;

static void check(const kv_alloc *a, const model_block *m)
{
    int n_free = 0, n_lru = 0, n_cached = 0;
    for (int b = 0; b < a->n_blocks; b++) {
        assert_int_equal(a->ref[b], m[b].ref);
        assert_int_equal(a->cached[b], m[b].cached);
        n_free += !m[b].ref && !m[b].cached;
        n_lru += !m[b].ref && m[b].cached;
        n_cached += m[b].cached;
        if (m[b].cached) /* found under its key */
            assert_int_equal(kv_alloc_match(a, m[b].parent, m[b].parent_gen, m[b].tokens), b);
        if (m[b].cached && m[b].parent >= 0 && a->gen[m[b].parent] != m[b].parent_gen)
            /* its parent was evicted since: unreachable under the parent's new contents */
            assert_int_not_equal(kv_alloc_match(a, m[b].parent, a->gen[m[b].parent], m[b].tokens), b);
    }
    assert_int_equal(a->n_free, n_free);
    assert_int_equal(a->n_lru, n_lru);
    assert_int_equal(a->n_cached, n_cached);
    for (int i = 0; i < a->n_free; i++) /* the free stack: unheld, uncached, once each */
        assert_true(!m[a->free[i]].ref && !m[a->free[i]].cached);
    int k = 0;
    uint64_t last = 0;
    for (int32_t b = a->lru_head; b >= 0; b = a->lru_next[b], k++) { /* LRU: oldest first */
        assert_true(!m[b].ref && m[b].cached);
        assert_true(m[b].released >= last);
        last = m[b].released;
    }
    assert_int_equal(k, n_lru);
}

static void run(int n, int bs, int alphabet)
{
    kv_alloc a;
    assert_int_equal(kv_alloc_init(&a, n, bs), 0);
    model_block *m = calloc((size_t)n, sizeof *m);
    int32_t *holds = malloc(sizeof(int32_t) * (size_t)n * 4); /* one entry per reference */
    int n_holds = 0;
    uint64_t clock = 0;
    for (int op = 0; op < 4000; op++) {
        int what = rand() % 10;
        int32_t tokens[MAX_BS];
        for (int i = 0; i < bs; i++)
            tokens[i] = rand() % alphabet;
        /* a parent: none, a cached block (its generation now, or a stale one) */
        int32_t parent = KV_NO_PARENT;
        uint32_t pgen = 0;
        int32_t pb = rand() % n;
        if (rand() % 3 && m[pb].cached) {
            parent = pb;
            pgen = a.gen[pb] - (rand() % 8 == 0);
        }
        if (what < 3) { /* get */
            int32_t b = kv_alloc_get(&a);
            int any_free = 0, oldest = -1;
            for (int i = 0; i < n; i++) {
                any_free |= !m[i].ref && !m[i].cached;
                if (!m[i].ref && m[i].cached && (oldest < 0 || m[i].released < m[oldest].released))
                    oldest = i;
            }
            if (any_free) {
                assert_true(b >= 0 && !m[b].ref && !m[b].cached);
            } else if (oldest >= 0) {
                assert_int_equal(b, oldest);
                m[b].cached = 0; /* evicted: its old key no longer matches it */
                assert_int_not_equal(kv_alloc_match(&a, m[b].parent, m[b].parent_gen, m[b].tokens), b);
            } else {
                assert_int_equal(b, -1);
                continue;
            }
            m[b].ref = 1;
            holds[n_holds++] = b;
        } else if (what < 6 && n_holds > 0) { /* put */
            int k = rand() % n_holds;
            int32_t b = holds[k];
            holds[k] = holds[--n_holds];
            kv_alloc_put(&a, b);
            if (--m[b].ref == 0)
                m[b].released = ++clock;
        } else if (what < 8 && n_holds > 0) { /* insert a held, uncached block */
            int32_t b = holds[rand() % n_holds];
            if (m[b].cached)
                continue;
            int32_t old = kv_alloc_match(&a, parent, pgen, tokens);
            int32_t c = kv_alloc_insert(&a, b, parent, pgen, tokens);
            if (old >= 0) {
                assert_int_equal(c, old); /* the key was cached: b stays private */
            } else {
                assert_int_equal(c, b);
                m[b].cached = 1;
                m[b].parent = parent;
                m[b].parent_gen = pgen;
                memcpy(m[b].tokens, tokens, sizeof(int32_t) * (size_t)bs);
            }
        } else if (n_holds < n * 4) { /* match a key (a cached one half the time) and take it */
            int32_t want = -1;
            if (rand() % 2) {
                int32_t b = rand() % n;
                if (m[b].cached) {
                    parent = m[b].parent;
                    pgen = m[b].parent_gen;
                    memcpy(tokens, m[b].tokens, sizeof(int32_t) * (size_t)bs);
                }
            }
            for (int i = 0; i < n; i++)
                if (m[i].cached && m[i].parent == parent && m[i].parent_gen == pgen &&
                    !memcmp(m[i].tokens, tokens, sizeof(int32_t) * (size_t)bs))
                    want = i; /* keys are unique among cached blocks */
            int32_t b = kv_alloc_match(&a, parent, pgen, tokens);
            assert_int_equal(b, want);
            if (b >= 0) {
                kv_alloc_take(&a, b);
                m[b].ref++;
                holds[n_holds++] = b;
            }
        }
        check(&a, m);
    }
    while (n_holds > 0) { /* every holder lets go: nothing is lost */
        int32_t b = holds[--n_holds];
        kv_alloc_put(&a, b);
        m[b].released = ++clock;
        m[b].ref--;
    }
    check(&a, m);
    assert_int_equal(kv_alloc_available(&a), n);
    free(holds);
    free(m);
    kv_alloc_free(&a);
}

static void test_kv_alloc_random(void **state)
{
    for (int it = 0; it < 30; it++)
        run(1 + rand() % 40, 1 + rand() % MAX_BS, 2 + rand() % 3);
}

/* Without the cache (nothing inserted) it is the old free stack: never a block twice,
 * -1 when empty, every block back. */
static void test_kv_alloc_plain(void **state)
{
    for (int it = 0; it < 20; it++) {
        int n = 1 + rand() % 500;
        kv_alloc a;
        assert_int_equal(kv_alloc_init(&a, n, 16), 0);
        int32_t *held = malloc(sizeof(int32_t) * (size_t)n);
        char *used = calloc((size_t)n, 1);
        int n_held = 0;
        for (int op = 0; op < 5000; op++) {
            if (rand() % 2 && n_held > 0) {
                int k = rand() % n_held;
                used[held[k]] = 0;
                kv_alloc_put(&a, held[k]);
                held[k] = held[--n_held];
            } else {
                int32_t b = kv_alloc_get(&a);
                if (n_held == n) {
                    assert_int_equal(b, -1);
                    continue;
                }
                assert_true(b >= 0 && b < n);
                assert_false(used[b]);
                used[b] = 1;
                held[n_held++] = b;
            }
            assert_int_equal(a.n_free + n_held, n);
        }
        while (n_held > 0)
            kv_alloc_put(&a, held[--n_held]);
        assert_int_equal(a.n_free, n);
        free(held);
        free(used);
        kv_alloc_free(&a);
    }
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_alloc_plain),
        cmocka_unit_test(test_kv_alloc_random),
    };
    return cmocka_run_group_tests_name("kv_alloc", tests, NULL, NULL);
}
