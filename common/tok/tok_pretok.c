/* tok_pretok.c - pre-tokenizers: Split (regex compiled by PCRE2 with JIT, or a literal),
 * ByteLevel (GPT-2 byte -> printable character mapping, optional GPT-2 regex and prefix
 * space) and Metaspace, chained as a Sequence.
 *
 * Pre-tokenizer k splits or rewrites its input and hands each part to pre-tokenizer k + 1;
 * after the last one every part is a word for the model. Nothing is stored between calls;
 * the PCRE2 match data and JIT stack are per thread.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* ---- GPT-2 byte <-> character table */
static uint16_t byte_char[256];
static int16_t char_byte[324]; /* code points 0..323 -> byte, -1 */
static pthread_once_t byte_once = PTHREAD_ONCE_INIT;

static void byte_char_init(void)
{
    int extra = 0;
    for (int c = 0; c < 324; c++)
        char_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_char[b] = (uint16_t)(printable ? b : 256 + extra++);
        char_byte[byte_char[b]] = (int16_t)b;
    }
}

uint32_t tok_byte_to_char(unsigned char b)
{
    pthread_once(&byte_once, byte_char_init);
    return byte_char[b];
}

int tok_char_byte(uint32_t cp)
{
    pthread_once(&byte_once, byte_char_init);
    return cp < 324 ? char_byte[cp] : -1;
}

/* ---- per-thread PCRE2 state */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
    size_t stack_size;
} re_tls;

static void re_tls_free(void *p)
{
    re_tls *r = p;
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mctx);
    pcre2_jit_stack_free(r->stack);
    free(r);
}

static tok_tls re_state = {.destroy = re_tls_free};

/* This thread's state; its match data and context are made on first use (again on the next
 * call after one that ran out of memory). */
static re_tls *re_get(void)
{
    re_tls *r = tok_tls_get(&re_state, sizeof *r);
    if (!r)
        return NULL;
    if (!r->md)
        r->md = pcre2_match_data_create(16, NULL);
    if (!r->mctx)
        r->mctx = pcre2_match_context_create(NULL);
    return r->md && r->mctx ? r : NULL;
}

/* Next match of RE in S[0..N) at or after POS: 1 with [*MS, *ME), 0 for none, <0 on error. */
static int re_next(const pcre2_code *re, re_tls *r, const char *s, size_t n, size_t pos,
                   size_t *ms, size_t *me)
{
    for (;;) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, r->md, r->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && r->stack_size < ((size_t)256 << 20)) {
            size_t size = r->stack_size ? r->stack_size * 4 : (size_t)1 << 20;
            pcre2_jit_stack *st = pcre2_jit_stack_create(32 << 10, size, NULL);
            if (!st)
                return -1;
            pcre2_jit_stack_free(r->stack);
            r->stack = st;
            r->stack_size = size;
            pcre2_jit_stack_assign(r->mctx, NULL, st);
            continue;
        }
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        *ms = ov[0];
        *me = ov[1];
        return 1;
    }
}

static int pre_run(const tok *t, int k, const char *s, size_t n, int at_start, tok_piece_fn fn,
                   void *ctx);

/* One segment of a split: handed on unless empty. */
static int emit(const tok *t, int k, const char *s, size_t off, size_t end, int at_start,
                tok_piece_fn fn, void *ctx)
{
    if (end <= off)
        return 0;
    return pre_run(t, k + 1, s + off, end - off, at_start && off == 0, fn, ctx);
}

typedef struct {
    size_t start, end;
    int match;
} segment;

/* Split: every (match | gap) segment, then combined per the behavior as HF's
 * NormalizedString::split. One function (over 80 lines) because the five behaviors are one
 * table of cases over the same segment walk, kept side by side with HF's to compare. */
static int pre_split(const tok *t, int k, const tok_pre *p, const char *s, size_t n, int at_start,
                     tok_piece_fn fn, void *ctx)
{
    re_tls *r = re_get();
    if (!r)
        return -1;
    const pcre2_code *re = tok_re_pick(p->re, s, n);
    segment *seg = NULL;
    size_t n_seg = 0, cap = 0, prev = 0, pos = 0, last_end = (size_t)-1;
    int rc = 0;
    while (pos <= n) {
        size_t ms, me;
        int found = re_next(re, r, s, n, pos, &ms, &me);
        if (found < 0) {
            rc = -1;
            goto out;
        }
        if (!found)
            break;
        if (me == ms) {
            /* empty match: skipped right after a match, and the search moves one char on */
            pos = ms + (ms < n ? (size_t)tok_utf8_len((unsigned char)s[ms]) : 1);
            if (ms == last_end)
                continue;
        } else
            pos = me;
        last_end = me;
        segment add[2] = {{prev, ms, 0}, {ms, me, 1}};
        for (int i = prev != ms ? 0 : 1; i < 2; i++) {
            add[i].match ^= p->invert;
            if (p->behavior == TOK_SPLIT_ISOLATED ||
                (p->behavior == TOK_SPLIT_REMOVED && !add[i].match)) {
                if ((rc = emit(t, k, s, add[i].start, add[i].end, at_start, fn, ctx)) < 0)
                    goto out;
                continue;
            }
            if (p->behavior == TOK_SPLIT_REMOVED)
                continue;
            if (n_seg == cap) {
                cap = cap ? 2 * cap : 64;
                segment *q = realloc(seg, cap * sizeof *q);
                if (!q) {
                    rc = -1;
                    goto out;
                }
                seg = q;
            }
            seg[n_seg++] = add[i];
        }
        prev = me;
    }
    if (prev < n) {
        segment last = {prev, n, p->invert};
        if (p->behavior == TOK_SPLIT_ISOLATED || (p->behavior == TOK_SPLIT_REMOVED && !last.match)) {
            rc = emit(t, k, s, last.start, last.end, at_start, fn, ctx);
            goto out;
        }
        if (p->behavior != TOK_SPLIT_REMOVED) {
            segment *q = realloc(seg, (n_seg + 1) * sizeof *q);
            if (!q) {
                rc = -1;
                goto out;
            }
            seg = q;
            seg[n_seg++] = last;
        }
    }
    if (p->behavior == TOK_SPLIT_ISOLATED || p->behavior == TOK_SPLIT_REMOVED)
        goto out;
    /* combine in place: out[0..m) */
    size_t m = 0;
    if (p->behavior == TOK_SPLIT_MERGED_PREV) {
        int prev_match = 0;
        for (size_t i = 0; i < n_seg; i++) {
            if (seg[i].match && !prev_match && m > 0)
                seg[m - 1].end = seg[i].end;
            else
                seg[m++] = seg[i];
            prev_match = seg[i].match;
        }
    } else if (p->behavior == TOK_SPLIT_MERGED_NEXT) {
        /* walk backwards, growing the last kept segment leftwards */
        int prev_match = 0;
        size_t w = n_seg;
        for (size_t i = n_seg; i-- > 0;) {
            if (seg[i].match && !prev_match && w < n_seg)
                seg[w].start = seg[i].start;
            else
                seg[--w] = seg[i];
            prev_match = seg[i].match;
        }
        memmove(seg, seg + w, (n_seg - w) * sizeof *seg);
        m = n_seg - w;
    } else { /* CONTIGUOUS */
        for (size_t i = 0; i < n_seg; i++) {
            if (m > 0 && seg[m - 1].match == seg[i].match)
                seg[m - 1].end = seg[i].end;
            else
                seg[m++] = seg[i];
        }
    }
    for (size_t i = 0; i < m && rc >= 0; i++)
        rc = emit(t, k, s, seg[i].start, seg[i].end, at_start, fn, ctx);
out:
    free(seg);
    return rc;
}

/* Runs the rest of the chain on Q[0..M), a rewritten copy of the text. */
static int pre_rewritten(const tok *t, int k, char *q, size_t m, char *stack_buf, int at_start,
                         tok_piece_fn fn, void *ctx)
{
    int rc = pre_run(t, k + 1, q, m, at_start, fn, ctx);
    if (q != stack_buf)
        free(q);
    return rc;
}

static int pre_prefix_space(const tok *t, int k, const char *s, size_t n, int at_start,
                            tok_piece_fn fn, void *ctx)
{
    if (n > 0 && s[0] == ' ')
        return pre_run(t, k + 1, s, n, at_start, fn, ctx);
    char stack_buf[512], *q = n + 1 <= sizeof stack_buf ? stack_buf : malloc(n + 1);
    if (!q)
        return -1;
    q[0] = ' ';
    memcpy(q + 1, s, n);
    return pre_rewritten(t, k, q, n + 1, stack_buf, at_start, fn, ctx);
}

static int pre_bytemap(const tok *t, int k, const char *s, size_t n, int at_start,
                       tok_piece_fn fn, void *ctx)
{
    pthread_once(&byte_once, byte_char_init);
    char stack_buf[512], *q = 2 * n <= sizeof stack_buf ? stack_buf : malloc(2 * n);
    if (!q)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += (size_t)tok_utf8_encode(byte_char[(unsigned char)s[i]], q + m);
    return pre_rewritten(t, k, q, m, stack_buf, at_start, fn, ctx);
}

/* Metaspace: ' ' -> replacement, then the replacement prepended per prepend_scheme. */
static int pre_metaspace(const tok *t, int k, const tok_pre *p, const char *s, size_t n,
                         int at_start, tok_piece_fn fn, void *ctx)
{
    size_t nr = strlen(p->repl), cap = (n + 1) * nr;
    char stack_buf[512], *q = cap <= sizeof stack_buf ? stack_buf : malloc(cap);
    if (!q)
        return -1;
    size_t m = 0;
    int starts = n >= nr && memcmp(s, p->repl, nr) == 0;
    if (!starts && n > 0 && s[0] == ' ')
        starts = 1; /* the space becomes the replacement */
    if (!starts && (p->prepend == 1 || (p->prepend == 2 && at_start))) {
        memcpy(q, p->repl, nr);
        m = nr;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(q + m, p->repl, nr);
            m += nr;
        } else
            q[m++] = s[i];
    }
    return pre_rewritten(t, k, q, m, stack_buf, at_start, fn, ctx);
}

static int pre_run(const tok *t, int k, const char *s, size_t n, int at_start, tok_piece_fn fn,
                   void *ctx)
{
    if (k == t->n_pre)
        return n ? fn(ctx, s, n, -1) : 0;
    const tok_pre *p = &t->pre[k];
    switch (p->type) {
    case TOK_PRE_SPLIT:
        return pre_split(t, k, p, s, n, at_start, fn, ctx);
    case TOK_PRE_PREFIX_SPACE:
        return pre_prefix_space(t, k, s, n, at_start, fn, ctx);
    case TOK_PRE_BYTEMAP:
        return pre_bytemap(t, k, s, n, at_start, fn, ctx);
    default:
        return pre_metaspace(t, k, p, s, n, at_start, fn, ctx);
    }
}

int tok_pretokenize(const tok *t, const char *s, size_t n, int at_start, tok_piece_fn fn,
                    void *ctx)
{
    return pre_run(t, 0, s, n, at_start, fn, ctx);
}
