/* tok_added.c - finding added (and special) tokens written in the text, as HF's
 * AddedVocabulary: leftmost-longest matches (Aho-Corasick semantics) over the tokens whose
 * `normalized` flag selects them, then single_word / lstrip / rstrip applied to each match,
 * with HF's quirks (a stripped token may swallow spaces a later match starts in).
 *
 * The tokens sit in a byte trie built at load time (tok_added_build); lookup walks it from
 * every position whose byte can start a token.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

int tok_is_white(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* single_word boundary test: ASCII letters, digits and '_' are word characters, and so is
 * any non-ASCII character that is not white space (an approximation of Unicode \w). */
static int is_word_char(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
    return !tok_is_white(c);
}

static uint32_t last_char(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    int l;
    return i > 0 ? tok_utf8_decode(s + i - 1, &l) : 0;
}

/* byte index where the run of white space ending S[0..N) begins */
static size_t white_start_at_end(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
            j--;
        int l;
        if (!tok_is_white(tok_utf8_decode(s + j, &l)))
            break;
        i = j;
    }
    return i;
}

static size_t white_len_at_start(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int l;
        if (!tok_is_white(tok_utf8_decode(s + i, &l)))
            break;
        i += (size_t)l;
    }
    return i;
}

/* ---- trie */
int tok_added_trie_add(tok_trie *tr, const char *s, size_t n, int32_t added)
{
    int32_t node = 0;
    if (tr->n == 0 && tok_trie_node(tr) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        int32_t c = tr->node[node].child;
        while (c >= 0 && tr->node[c].byte != b)
            c = tr->node[c].sibling;
        if (c < 0) {
            c = tok_trie_node(tr);
            if (c < 0)
                return -1;
            tr->node[c].byte = b;
            tr->node[c].sibling = tr->node[node].child;
            tr->node[node].child = c;
        }
        node = c;
    }
    if (tr->node[node].added < 0)
        tr->node[node].added = added;
    tr->first[(unsigned char)s[0]] = 1;
    return 0;
}

int32_t tok_trie_node(tok_trie *tr)
{
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? tr->cap * 2 : 64;
        tok_trie_node_t *p = realloc(tr->node, cap * sizeof *p);
        if (!p)
            return -1;
        tr->node = p;
        tr->cap = cap;
    }
    tr->node[tr->n] = (tok_trie_node_t){.child = -1, .sibling = -1, .added = -1};
    return (int32_t)tr->n++;
}

/* Longest token starting at S[0..N): its index into t->added and *LEN, or -1. */
static int32_t longest_at(const tok_trie *tr, const char *s, size_t n, size_t *len)
{
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->node[node].child;
        while (c >= 0 && tr->node[c].byte != (unsigned char)s[i])
            c = tr->node[c].sibling;
        if (c < 0)
            break;
        node = c;
        if (tr->node[c].added >= 0) {
            best = tr->node[c].added;
            *len = i + 1;
        }
    }
    return best;
}

int tok_added_split(const tok *t, const char *s, size_t n, int normalized, tok_piece_fn fn,
                    void *ctx)
{
    const tok_trie *tr = normalized ? &t->trie_norm : &t->trie_raw;
    size_t done = 0; /* start_offset in HF: end of the last emitted piece */
    if (tr->n == 0)
        return n ? fn(ctx, s, n, -1) : 0;
    for (size_t i = 0; i < n;) {
        size_t len = 0;
        int32_t a = tr->first[(unsigned char)s[i]] ? longest_at(tr, s + i, n - i, &len) : -1;
        if (a < 0) {
            i++;
            continue;
        }
        const tok_added *at = &t->added[a];
        size_t start = i, stop = i + len;
        i = stop; /* matches never overlap in the original text */
        if (at->single_word) {
            int start_ok = start == 0 || !is_word_char(last_char(s, start));
            int l;
            int stop_ok = stop == n || !is_word_char(tok_utf8_decode(s + stop, &l));
            if (!start_ok || !stop_ok)
                continue;
        }
        if (at->lstrip) {
            size_t ns = white_start_at_end(s, start);
            start = ns > done ? ns : done;
        }
        if (at->rstrip)
            stop += white_len_at_start(s + stop, n - stop);
        int rc;
        if (done < start && (rc = fn(ctx, s + done, start - done, -1)) < 0)
            return rc;
        if ((rc = fn(ctx, s + start, stop - start, a)) < 0)
            return rc;
        done = stop;
    }
    if (done < n)
        return fn(ctx, s + done, n - done, -1);
    return 0;
}
