/* tok_util.c - small containers and UTF-8 helpers of the tokenizer library: growable
 * buffers, per-thread state, the string->id hash map (vocabulary) and the pair map (merges).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* ---- buffers */
int tok_ids_add(tok_ids *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p)
            return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return 0;
}

/* ---- per-thread state */
void *tok_tls_get(tok_tls *t, size_t size)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    if (!atomic_load_explicit(&t->ready, memory_order_acquire)) {
        pthread_mutex_lock(&lock);
        if (!atomic_load_explicit(&t->ready, memory_order_relaxed)) {
            if (pthread_key_create(&t->key, t->destroy) != 0)
                abort();
            atomic_store_explicit(&t->ready, 1, memory_order_release);
        }
        pthread_mutex_unlock(&lock);
    }
    void *p = pthread_getspecific(t->key);
    if (!p && (!(p = calloc(1, size)) || pthread_setspecific(t->key, p) != 0)) {
        free(p);
        return NULL;
    }
    return p;
}

/* ---- UTF-8 */

/* Length of the valid prefix of the sequence at S (at most N bytes) when it is not a whole
 * valid sequence: 0 for a valid sequence, whose length *LEN gets; otherwise the number of
 * bytes forming the maximal invalid subpart (>= 1). */
static size_t utf8_check(const unsigned char *s, size_t n, int *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return 0;
    }
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 1;
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n)
            return (size_t)i;
        unsigned d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
            return (size_t)i;
    }
    *len = need + 1;
    return 0;
}

int tok_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int len;
        if (utf8_check(u + i, n - i, &len))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

uint32_t tok_utf8_decode(const char *s, int *n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *n = 1;
        return u[0];
    }
    if (u[0] < 0xE0) {
        *n = 2;
        return (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
    }
    if (u[0] < 0xF0) {
        *n = 3;
        return (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
    }
    *n = 4;
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
           (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
}

int tok_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int tok_utf8_lossy(tok_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* valid bytes not yet copied start at i - run */
    while (i < n) {
        int len = 1;
        size_t bad = u[i] < 0x80 ? 0 : utf8_check(u + i, n - i, &len);
        if (!bad) {
            i += (size_t)len;
            run += (size_t)len;
            continue;
        }
        if (strbuf_add(b, s + i - run, run) < 0 || strbuf_add(b, "\xEF\xBF\xBD", 3) < 0)
            return -1;
        run = 0;
        i += bad;
    }
    return run ? strbuf_add(b, s + n - run, run) : 0; /* S may be NULL when N is 0 */
}

/* ---- hashing and maps */
uint64_t tok_hash(const char *s, size_t n)
{
    uint64_t h = 0x243F6A8885A308D3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s + i, n - i);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 32;
    return h * 0xBF58476D1CE4E5B9ull;
}

int tok_strmap_init(tok_strmap *m, const char *const *key, const uint32_t *key_len, int n_keys)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)n_keys * 2)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        m->slot[i] = (tok_strslot){-1, 0};
    m->mask = cap - 1;
    m->key = key;
    m->key_len = key_len;
    return 0;
}

void tok_strmap_free(tok_strmap *m)
{
    free(m->slot);
    m->slot = NULL;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n)
{
    uint64_t h = tok_hash(s, n);
    uint32_t tag = (uint32_t)h;
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        tok_strslot sl = m->slot[i];
        if (sl.id < 0)
            return -1;
        if (sl.tag == tag && m->key_len[sl.id] == n && memcmp(m->key[sl.id], s, n) == 0)
            return sl.id;
    }
}

void tok_strmap_put(tok_strmap *m, int32_t id)
{
    const char *s = m->key[id];
    size_t n = m->key_len[id];
    uint64_t h = tok_hash(s, n);
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        tok_strslot *sl = &m->slot[i];
        if (sl->id < 0 || (sl->tag == (uint32_t)h && m->key_len[sl->id] == n &&
                           memcmp(m->key[sl->id], s, n) == 0)) {
            *sl = (tok_strslot){id, (uint32_t)h};
            return;
        }
    }
}

int tok_pairmap_init(tok_pairmap *m, size_t n)
{
    uint32_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    if (!m->slot)
        return -1;
    for (uint32_t i = 0; i < cap; i++)
        m->slot[i].key = UINT64_MAX;
    m->mask = cap - 1;
    return 0;
}

void tok_pairmap_free(tok_pairmap *m)
{
    free(m->slot);
    m->slot = NULL;
}

void tok_pairmap_put(tok_pairmap *m, int32_t l, int32_t r, uint32_t rank, int32_t id)
{
    uint64_t k = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    while (m->slot[i].key != UINT64_MAX && m->slot[i].key != k)
        i = (i + 1) & m->mask;
    m->slot[i] = (tok_pairslot){k, rank, id};
}
