/* tok_decode.c - ids back to text as HF's Tokenizer::decode: ids -> token strings (added
 * tokens first, special ones dropped on request), then the decoder chain (Replace,
 * ByteFallback, Fuse, Strip, ByteLevel, Metaspace), each turning a list of strings into
 * another, then the strings joined. Without a decoder the tokens are joined with spaces.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* A list of strings: string i is buf[off[i] .. off[i + 1]). */
typedef struct {
    tok_buf buf;
    size_t *off; /* [n + 1] */
    size_t n, cap;
} strlist;

static int sl_end(strlist *l) /* closes the string being written */
{
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        size_t *p = realloc(l->off, cap * sizeof *p);
        if (!p)
            return -1;
        l->off = p;
        l->cap = cap;
    }
    if (l->n == 0)
        l->off[0] = 0;
    l->off[++l->n] = l->buf.n;
    return 0;
}

static int sl_add(strlist *l, const char *s, size_t n)
{
    return strbuf_add(&l->buf, s, n) < 0 ? -1 : sl_end(l);
}

static void sl_reset(strlist *l)
{
    l->buf.n = 0;
    l->n = 0;
}

#define SL_STR(l, i) ((l)->buf.p ? (l)->buf.p + (l)->off[i] : "") /* no arithmetic on NULL */
#define SL_LEN(l, i) ((l)->off[(i) + 1] - (l)->off[i])

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
}

int tok_byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || hexval(s[3]) < 0 || hexval(s[4]) < 0)
        return -1;
    return hexval(s[3]) * 16 + hexval(s[4]);
}

static int flush_bytes(strlist *out, tok_buf *bytes)
{
    if (!bytes->n)
        return 0;
    int rc = 0;
    if (tok_utf8_valid(bytes->p, bytes->n))
        rc = sl_add(out, bytes->p, bytes->n);
    else /* HF: one U+FFFD per byte of an invalid run */
        for (size_t i = 0; i < bytes->n && rc == 0; i++)
            rc = sl_add(out, "\xEF\xBF\xBD", 3);
    bytes->n = 0;
    return rc;
}

static int dec_bytefallback(const strlist *in, strlist *out)
{
    tok_buf bytes = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        int b = tok_byte_token(SL_STR(in, i), SL_LEN(in, i));
        if (b >= 0) {
            char c = (char)b;
            rc = strbuf_add(&bytes, &c, 1);
        } else if ((rc = flush_bytes(out, &bytes)) == 0)
            rc = sl_add(out, SL_STR(in, i), SL_LEN(in, i));
    }
    if (rc == 0)
        rc = flush_bytes(out, &bytes);
    free(bytes.p);
    return rc;
}

static int dec_replace(const tok_dec *d, const strlist *in, strlist *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = SL_LEN(in, i), k = 0;
        while (d->na && k + d->na <= n) {
            if (memcmp(s + k, d->a, d->na) == 0) {
                if (strbuf_add(&out->buf, d->b, d->nb) < 0)
                    return -1;
                k += d->na;
            } else if (strbuf_add(&out->buf, s + k++, 1) < 0)
                return -1;
        }
        if (strbuf_add(&out->buf, s + k, n - k) < 0 || sl_end(out) < 0)
            return -1;
    }
    return 0;
}

static int dec_strip(const tok_dec *d, const strlist *in, strlist *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t a = 0, b = SL_LEN(in, i);
        int l;
        for (int k = 0; k < d->start && a < b && tok_utf8_decode(s + a, &l) == d->ch; k++)
            a += (size_t)l;
        for (int k = 0; k < d->stop && b > a; k++) {
            size_t j = b - 1;
            while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80)
                j--;
            if (tok_utf8_decode(s + j, &l) != d->ch)
                break;
            b = j;
        }
        if (sl_add(out, s + a, b - a) < 0)
            return -1;
    }
    return 0;
}

static int dec_bytelevel(const strlist *in, strlist *out)
{
    tok_buf bytes = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && rc == 0; i++) {
        const char *s = SL_STR(in, i);
        size_t n = SL_LEN(in, i), start = bytes.n;
        for (size_t k = 0; k < n && rc == 0;) {
            int l, b = tok_char_byte(tok_utf8_decode(s + k, &l));
            k += (size_t)l;
            if (b < 0) { /* not a byte character: the token stands for its own bytes */
                bytes.n = start;
                rc = strbuf_add(&bytes, s, n);
                break;
            }
            char c = (char)b;
            rc = strbuf_add(&bytes, &c, 1);
        }
    }
    if (rc == 0 && (rc = tok_utf8_lossy(&out->buf, bytes.p, bytes.n)) == 0)
        rc = sl_end(out);
    free(bytes.p);
    return rc;
}

static int dec_metaspace(const tok_dec *d, const strlist *in, strlist *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const char *s = SL_STR(in, i);
        size_t n = SL_LEN(in, i);
        for (size_t k = 0; k < n;) {
            int l;
            uint32_t c = tok_utf8_decode(s + k, &l);
            int rc;
            if (c != d->repl)
                rc = strbuf_add(&out->buf, s + k, (size_t)l);
            else
                rc = i == 0 && d->prepend ? 0 : strbuf_add(&out->buf, " ", 1);
            if (rc < 0)
                return -1;
            k += (size_t)l;
        }
        if (sl_end(out) < 0)
            return -1;
    }
    return 0;
}

int tok_decode_tokens(const tok *t, const char *const *tok_s, const size_t *tok_n, size_t n,
                      tok_buf *out)
{
    strlist a = {0}, b = {0}, *cur = &a, *nxt = &b;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sl_add(&a, tok_s[i], tok_n[i]);
    for (int k = 0; k < t->n_dec && rc == 0; k++) {
        const tok_dec *d = &t->dec[k];
        sl_reset(nxt);
        switch (d->type) {
        case TOK_DEC_REPLACE: rc = dec_replace(d, cur, nxt); break;
        case TOK_DEC_BYTEFALLBACK: rc = dec_bytefallback(cur, nxt); break;
        case TOK_DEC_FUSE: rc = strbuf_add(&nxt->buf, cur->buf.p, cur->buf.n) < 0 ? -1 : sl_end(nxt); break;
        case TOK_DEC_STRIP: rc = dec_strip(d, cur, nxt); break;
        case TOK_DEC_BYTELEVEL: rc = dec_bytelevel(cur, nxt); break;
        default: rc = dec_metaspace(d, cur, nxt); break;
        }
        strlist *tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    for (size_t i = 0; i < cur->n && rc == 0; i++) {
        if (!t->has_decoder && i > 0)
            rc = strbuf_add(out, " ", 1);
        if (rc == 0)
            rc = strbuf_add(out, SL_STR(cur, i), SL_LEN(cur, i));
    }
    free(a.buf.p);
    free(a.off);
    free(b.buf.p);
    free(b.off);
    return rc;
}

int64_t tok_decode(const tok *t, const int32_t *ids, size_t n, int skip_special, char *out,
                   size_t cap)
{
    const char **s = malloc((n + 1) * sizeof *s);
    size_t *l = malloc((n + 1) * sizeof *l), m = 0;
    tok_buf text = {0};
    int64_t rc = -1;
    if (!s || !l)
        goto out;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_total)
            goto out;
        int32_t a = t->added_of_id[id];
        if (a >= 0 && skip_special && t->added[a].special)
            continue;
        if (a >= 0) {
            s[m] = t->added[a].content;
            l[m++] = t->added[a].n_content;
        } else if (id < t->n_vocab && t->piece[id]) {
            s[m] = t->piece[id];
            l[m++] = t->piece_len[id];
        } /* an unused id decodes to nothing, as in HF */
    }
    if (tok_decode_tokens(t, s, l, m, &text) < 0)
        goto out;
    if (text.n && cap)
        memcpy(out, text.p, text.n < cap ? text.n : cap);
    rc = (int64_t)text.n;
out:
    free(s);
    free(l);
    free(text.p);
    return rc;
}
