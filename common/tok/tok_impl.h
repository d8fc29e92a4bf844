/* tok_impl.h - internals of the tokenizer library shared by its source files (not a public
 * interface: include tok.h outside common/tok/tok_*.c).
 *
 * A tok is built once by tok_load and never written again, so encode/decode only read it;
 * everything they write lives in a per-call tok_buf or in thread-local storage.
 */
#ifndef CINDER_TOK_IMPL_H
#define CINDER_TOK_IMPL_H

#include "../strbuf.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tok.h"

typedef struct tok_re tok_re; /* a compiled pre-tokenizer regex (tok_regex.c) */

/* ---- growable byte / id buffers (per call) */
typedef strbuf tok_buf;   /* common/strbuf.h */

typedef struct {
    int32_t *p;
    size_t n, cap;
} tok_ids;

int tok_ids_add(tok_ids *v, int32_t id);

/* ---- per-thread state: one static tok_tls per kind, {.destroy = FN}; FN frees one thread's
 * value when that thread exits */
typedef struct {
    void (*destroy)(void *);
    pthread_key_t key;       /* created on first use */
    atomic_int ready;
} tok_tls;
/* This thread's value of T: SIZE zeroed bytes made on the thread's first call (then the same
 * each time); NULL on out of memory. */
void *tok_tls_get(tok_tls *t, size_t size);

/* ---- UTF-8 */
/* Length of the UTF-8 sequence starting with byte C (1 for invalid lead bytes). */
static inline int tok_utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* 1 if S[0..N) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int tok_utf8_valid(const char *s, size_t n);
/* Decodes the code point at S (valid UTF-8 assumed); *N gets its length. */
uint32_t tok_utf8_decode(const char *s, int *n);
/* Writes CP as UTF-8 into OUT (4 bytes room); returns its length. */
int tok_utf8_encode(uint32_t cp, char *out);
/* Appends S[0..N) to B, replacing invalid sequences by U+FFFD as Rust's
 * String::from_utf8_lossy does (one per maximal invalid subpart). */
int tok_utf8_lossy(tok_buf *b, const char *s, size_t n);

/* ---- string -> id map over an array of strings owned elsewhere */
typedef struct {
    int32_t id;             /* -1 when empty */
    uint32_t tag;           /* high hash bits: most mismatches never touch the key */
} tok_strslot;

typedef struct {
    tok_strslot *slot;      /* [mask + 1] */
    uint32_t mask;
    const char *const *key; /* [n_keys] key of each id (NULL: none) */
    const uint32_t *key_len;
} tok_strmap;

uint64_t tok_hash(const char *s, size_t n);
int tok_strmap_init(tok_strmap *m, const char *const *key, const uint32_t *key_len, int n_keys);
void tok_strmap_free(tok_strmap *m);
int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n);
/* Adds ID (key[id] must be set); an existing equal key is replaced, as a later entry of an
 * HF vocabulary object would be. */
void tok_strmap_put(tok_strmap *m, int32_t id);

/* ---- BPE merges: (left id, right id) -> (rank, merged id), one 16-byte slot per pair */
typedef struct {
    uint64_t key;           /* left << 32 | right; UINT64_MAX when empty */
    uint32_t rank;
    int32_t id;
} tok_pairslot;

typedef struct {
    tok_pairslot *slot;     /* [mask + 1] */
    uint32_t mask;
} tok_pairmap;

int tok_pairmap_init(tok_pairmap *m, size_t n);
void tok_pairmap_free(tok_pairmap *m);
void tok_pairmap_put(tok_pairmap *m, int32_t l, int32_t r, uint32_t rank, int32_t id);
/* 1 and *RANK, *ID when (L, R) merges; 0 otherwise. */
static inline int tok_pairmap_get(const tok_pairmap *m, int32_t l, int32_t r, uint32_t *rank,
                                  int32_t *id)
{
    uint64_t k = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        const tok_pairslot *s = &m->slot[i];
        if (s->key == k) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
        if (s->key == UINT64_MAX)
            return 0;
    }
}

/* ---- components */
enum { TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_NFC };
typedef struct {
    int type;
    char *a, *b; /* PREPEND: a = text; REPLACE: a = pattern (a literal string), b = content;
                    NFC: both "" */
    size_t na, nb;
} tok_norm;

/* Pre-tokenizer stages. ByteLevel loads as [PREFIX_SPACE] [SPLIT(GPT-2 regex)] BYTEMAP and
 * Metaspace as METASPACE [SPLIT(replacement, MergedWithNext)], so each stage does one thing. */
enum { TOK_PRE_SPLIT, TOK_PRE_PREFIX_SPACE, TOK_PRE_BYTEMAP, TOK_PRE_METASPACE };
enum { TOK_SPLIT_ISOLATED, TOK_SPLIT_REMOVED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
       TOK_SPLIT_CONTIGUOUS };
typedef struct {
    int type;
    tok_re *re;       /* SPLIT */
    int behavior;     /* SPLIT: TOK_SPLIT_* */
    int invert;       /* SPLIT */
    int prepend;      /* METASPACE: prepend_scheme, 0 never, 1 always, 2 first */
    char repl[8];     /* METASPACE: replacement character (UTF-8, NUL-terminated) */
} tok_pre;

enum { TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP, TOK_DEC_BYTELEVEL,
       TOK_DEC_METASPACE };
typedef struct {
    int type;
    char *a, *b;     /* REPLACE: literal pattern, content */
    size_t na, nb;
    uint32_t ch;     /* STRIP: content character */
    int start, stop; /* STRIP: how many to strip at each end */
    int prepend;     /* METASPACE: prepend_scheme as in tok_pre */
    uint32_t repl;   /* METASPACE: replacement character */
} tok_dec;

typedef struct {
    char *content;
    size_t n_content;
    int32_t id;
    int special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* byte trie of added-token contents */
typedef struct {
    int32_t child, sibling; /* first child / next sibling node, -1 for none */
    int32_t added;          /* index into tok.added of the token ending here, or -1 */
    unsigned char byte;
} tok_trie_node_t;

typedef struct {
    tok_trie_node_t *node;  /* [n]; node 0 is the root */
    size_t n, cap;
    uint8_t first[256];     /* 1 where a token starts with this byte */
} tok_trie;

int32_t tok_trie_node(tok_trie *tr);
int tok_added_trie_add(tok_trie *tr, const char *s, size_t n, int32_t added);
int tok_is_white(uint32_t c); /* Unicode White_Space (Rust's char::is_whitespace) */

/* The post-processor, reduced to what it does to the ids of one sequence. */
typedef struct {
    int32_t *pre, *post; /* [n_pre], [n_post] ids added before / after the sequence */
    int n_pre, n_post;
} tok_post;

struct tok {
    /* model (BPE) */
    int n_vocab;            /* model ids are 0..n_vocab-1 (some may be unused) */
    char **piece;           /* [n_vocab] token string, NULL for unused ids */
    uint32_t *piece_len;    /* [n_vocab] */
    tok_strmap vocab;
    tok_pairmap merges;
    int has_unk;            /* the model names an unk_token */
    int32_t unk_id;         /* its id; -1 when absent from the vocabulary */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256];   /* <0xXX> token ids, -1 where absent */
    int32_t ascii_id[128];  /* id of each one-byte piece, -1 where absent */
    int mark_split;         /* words may be cut before each U+2581 that follows another
                               character: no vocabulary piece holds such a pair, so no merge
                               can cross the cut (SentencePiece vocabularies) */
    uint64_t gen;           /* unique load generation: keys the per-thread word caches */

    /* added tokens, in file order; the tries find them in text */
    tok_added *added;
    int n_added;
    tok_trie trie_raw;      /* tokens with normalized = false, matched in the raw text */
    tok_trie trie_norm;     /* normalized = true, matched (normalized) in normalized text */
    int n_total;            /* ids 0..n_total-1 are valid (model and added) */
    int32_t *added_of_id;   /* [n_total] index into added, or -1 */

    tok_norm *norm;
    int n_norm;
    tok_pre *pre;
    int n_pre;
    tok_dec *dec;
    int n_dec;
    int has_decoder;
    tok_re *gpt2_re;        /* shared by ByteLevel stages, or NULL */
    tok_re *meta_re;        /* the Metaspace replacement, or NULL */
    tok_post post;
    int32_t bos_id;         /* from tokenizer_config.json or the post-processor; -1 none */
};

/* ---- per-thread word -> ids cache (tok_cache.c) */
#define TOK_CACHE_KEY 46 /* longest cached word, bytes */
#define TOK_CACHE_IDS 12 /* most ids of a cached word */
typedef struct tok_cache tok_cache;
uint64_t tok_cache_new_gen(void);
tok_cache *tok_cache_get(const tok *t); /* this thread's table for T; NULL on out of memory */
/* 1 and the ids appended to OUT on a hit, 0 on a miss, -1 on out of memory */
int tok_cache_find(const tok_cache *c, uint64_t h, const char *s, size_t n, tok_ids *out);
void tok_cache_put(tok_cache *c, uint64_t h, const char *s, size_t n, const int32_t *ids,
                   size_t n_ids);

/* pipeline stages, each in its own file */
int tok_normalize(const tok *t, const char *s, size_t n, tok_buf *out);
/* Splits S[0..N) into words and calls FN(CTX, word, len, -1) for each in order. AT_START:
 * the text begins at offset 0 of the input (Metaspace's prepend_scheme "first"). */
typedef int (*tok_piece_fn)(void *ctx, const char *s, size_t n, int added);
int tok_pretokenize(const tok *t, const char *s, size_t n, int at_start, tok_piece_fn fn,
                    void *ctx);
/* Appends the ids of one word. Negative on error. */
int tok_bpe_word(const tok *t, const char *s, size_t n, tok_ids *out);
/* Finds added tokens in S[0..N): calls FN for every piece in order, with the added token's
 * index or -1 for text between tokens. NORMALIZED selects which tokens are looked for. */
int tok_added_split(const tok *t, const char *s, size_t n, int normalized, tok_piece_fn fn,
                    void *ctx);
/* The byte a "<0xHH>" token (ByteFallback's) stands for, or -1. */
int tok_byte_token(const char *s, size_t n);
/* Applies the decoder chain to token strings, writes the text into OUT. */
int tok_decode_tokens(const tok *t, const char *const *tok_s, const size_t *tok_n, size_t n,
                      tok_buf *out);

/* component loading helpers (tok_load_parts.c) */
struct cJSON;
int tok_load_normalizer(tok *t, const struct cJSON *j, char *err, size_t n_err);
int tok_load_pretokenizer(tok *t, const struct cJSON *j, char *err, size_t n_err);
int tok_load_decoder(tok *t, const struct cJSON *j, char *err, size_t n_err);
int tok_load_post(tok *t, const struct cJSON *j, char *err, size_t n_err);
void tok_free_parts(tok *t);

/* A pre-tokenizer regex (tok_regex.c): PCRE2 with its \p{L}, \p{N}, \s patched to match
 * what HF's engine matches, or a literal. */
tok_re *tok_re_compile(const char *pattern, size_t n, int literal, char *err, size_t n_err);
void tok_re_free(tok_re *r);
/* the pcre2_code to run on S[0..N): the unpatched one when S holds no code point on which
 * the engines disagree (it is faster) */
const void *tok_re_pick(const tok_re *r, const char *s, size_t n);

/* GPT-2 byte <-> printable-char mapping used by ByteLevel */
uint32_t tok_byte_to_char(unsigned char b);
int tok_char_byte(uint32_t cp); /* the byte CP stands for, or -1 */

#endif
