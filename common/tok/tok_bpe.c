/* tok_bpe.c - the BPE model: one word (a piece of normalized, pre-tokenized text) to ids,
 * exactly as HF tokenizers' BPE::merge_word + Word::merge_all.
 *
 * The word starts as one symbol per character (or per byte with byte fallback, or a fused
 * <unk>); symbols form a doubly linked list and every mergeable neighbour pair sits in a
 * binary min-heap keyed by (merge rank, position). Popping the best pair, checking it is still
 * current, merging and pushing the two new neighbour pairs costs O(log n), so a word of n
 * characters takes O(n log n) - a megabyte without spaces (one SentencePiece "word") included.
 * Scratch arrays are per thread and reused.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* bytes; 0 once merged into its left neighbour */
} bpe_sym;

typedef struct {
    uint64_t key;       /* rank << 32 | position: smaller merges first */
    int32_t id;         /* the merged token */
} bpe_cand;

typedef struct {
    bpe_sym *sym;
    size_t cap_sym;
    bpe_cand *heap;
    size_t cap_heap;
} bpe_scratch;

static void scratch_free(void *p)
{
    bpe_scratch *s = p;
    free(s->sym);
    free(s->heap);
    free(s);
}

static tok_tls scratch_tls = {.destroy = scratch_free};

static bpe_scratch *scratch_get(size_t n)
{
    bpe_scratch *s = tok_tls_get(&scratch_tls, sizeof *s);
    if (!s)
        return NULL;
    if (s->cap_sym < n) {
        size_t cap = n < 256 ? 256 : n;
        bpe_sym *p = realloc(s->sym, cap * sizeof *p);
        if (!p)
            return NULL;
        s->sym = p;
        s->cap_sym = cap;
    }
    return s;
}

static int heap_push(bpe_scratch *s, size_t *n, uint64_t key, int32_t id)
{
    if (*n == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 256;
        bpe_cand *p = realloc(s->heap, cap * sizeof *p);
        if (!p)
            return -1;
        s->heap = p;
        s->cap_heap = cap;
    }
    bpe_cand *h = s->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h[up].key <= key)
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = (bpe_cand){key, id};
    return 0;
}

static bpe_cand heap_pop(bpe_scratch *s, size_t *n)
{
    bpe_cand *h = s->heap, top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && h[c + 1].key < h[c].key)
            c++;
        if (h[c].key >= last.key)
            break;
        h[i] = h[c];
        i = c;
    }
    if (m)
        h[i] = last;
    return top;
}

/* Pushes the pair starting at symbol POS if it merges. */
static int push_pair(const tok *t, bpe_scratch *s, size_t *n_heap, int32_t pos)
{
    int32_t nx = s->sym[pos].next;
    uint32_t rank;
    int32_t id;
    if (nx < 0 || !tok_pairmap_get(&t->merges, s->sym[pos].id, s->sym[nx].id, &rank, &id))
        return 0;
    return heap_push(s, n_heap, (uint64_t)rank << 32 | (uint32_t)pos, id);
}

/* Initial symbols of S[0..N), as BPE::merge_word. Returns the count, or -1. */
static int64_t initial_symbols(const tok *t, const char *s, size_t n, bpe_sym *sym)
{
    size_t n_sym = 0;
    int32_t unk_len = 0; /* pending <unk> bytes (0: none) */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int cl = tok_utf8_len(c);
        int32_t id = c < 0x80 ? t->ascii_id[c] : tok_strmap_get(&t->vocab, s + i, (size_t)cl);
        if (id >= 0) {
            if (unk_len)
                sym[n_sym++] = (bpe_sym){t->unk_id, 0, 0, (uint32_t)unk_len};
            unk_len = 0;
            sym[n_sym++] = (bpe_sym){id, 0, 0, (uint32_t)cl};
        } else {
            int all = t->byte_fallback;
            for (int k = 0; all && k < cl; k++)
                all = t->byte_id[(unsigned char)s[i + k]] >= 0;
            if (all) {
                /* HF leaves a pending <unk> pending here: it lands after these bytes */
                for (int k = 0; k < cl; k++)
                    sym[n_sym++] = (bpe_sym){t->byte_id[(unsigned char)s[i + k]], 0, 0, 1};
            } else if (t->has_unk) {
                if (t->unk_id < 0)
                    return -1; /* unk_token not in the vocabulary: HF fails too */
                if (unk_len && !t->fuse_unk) {
                    sym[n_sym++] = (bpe_sym){t->unk_id, 0, 0, (uint32_t)unk_len};
                    unk_len = 0;
                }
                unk_len += cl;
            }
        }
        i += (size_t)cl;
    }
    if (unk_len)
        sym[n_sym++] = (bpe_sym){t->unk_id, 0, 0, (uint32_t)unk_len};
    return (int64_t)n_sym;
}

/* BPE of S[0..N), ids appended to OUT */
static int bpe_merge(const tok *t, const char *s, size_t n, tok_ids *out)
{
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->vocab, s, n);
        if (id >= 0)
            return tok_ids_add(out, id);
    }
    bpe_scratch *sc = scratch_get(n);
    if (!sc)
        return -1;
    int64_t n_sym = initial_symbols(t, s, n, sc->sym);
    if (n_sym < 0)
        return -1;
    bpe_sym *sym = sc->sym;
    for (int64_t i = 0; i < n_sym; i++) {
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n_sym ? (int32_t)i + 1 : -1;
    }
    size_t n_heap = 0;
    for (int64_t i = 0; i + 1 < n_sym; i++)
        if (push_pair(t, sc, &n_heap, (int32_t)i) < 0)
            return -1;
    while (n_heap) {
        bpe_cand top = heap_pop(sc, &n_heap);
        int32_t pos = (int32_t)(uint32_t)top.key;
        int32_t nx = sym[pos].next;
        uint32_t rank;
        int32_t id;
        if (sym[pos].len == 0 || nx < 0 ||
            !tok_pairmap_get(&t->merges, sym[pos].id, sym[nx].id, &rank, &id) || id != top.id)
            continue; /* stale */
        sym[pos].id = id;
        sym[pos].len += sym[nx].len;
        sym[pos].next = sym[nx].next;
        sym[nx].len = 0;
        if (sym[pos].next >= 0)
            sym[sym[pos].next].prev = pos;
        if ((sym[pos].prev >= 0 && push_pair(t, sc, &n_heap, sym[pos].prev) < 0) ||
            push_pair(t, sc, &n_heap, pos) < 0)
            return -1;
    }
    for (int32_t i = n_sym ? 0 : -1; i >= 0; i = sym[i].next)
        if (tok_ids_add(out, sym[i].id) < 0)
            return -1;
    return 0;
}

/* bpe_merge through this thread's cache for short words */
static int bpe_cached(const tok *t, tok_cache *c, const char *s, size_t n, tok_ids *out)
{
    if (!c || n > TOK_CACHE_KEY)
        return bpe_merge(t, s, n, out);
    uint64_t h = tok_hash(s, n) | 1;
    int hit = tok_cache_find(c, h, s, n, out);
    if (hit)
        return hit < 0 ? -1 : 0;
    size_t first = out->n;
    if (bpe_merge(t, s, n, out) < 0)
        return -1;
    if (out->n > first) /* a word of no ids (no unk, no byte fallback) is not cached */
        tok_cache_put(c, h, s, n, out->p + first, out->n - first);
    return 0;
}

#define MARK "\xE2\x96\x81" /* U+2581 */

int tok_bpe_word(const tok *t, const char *s, size_t n, tok_ids *out)
{
    if (n == 0)
        return 0;
    tok_cache *c = tok_cache_get(t);
    if (!t->mark_split)
        return bpe_cached(t, c, s, n, out);
    /* cut before every mark that follows a non-mark character; chunks merge independently */
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(s + i, MARK, 3) != 0 || (i >= 3 && memcmp(s + i - 3, MARK, 3) == 0))
            continue;
        if (bpe_cached(t, c, s + start, i - start, out) < 0)
            return -1;
        start = i;
        i += 2;
    }
    return bpe_cached(t, c, s + start, n - start, out);
}
