/* tok_normalize.c - the normalizers of the LLaMA and Qwen families (a Sequence flattened at
 * load): Prepend (only to non-empty text, as HF), Replace of a literal string, and Unicode NFC
 * (Qwen2/3) through libutf8proc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_impl.h"

/* NFC of S [n] (valid UTF-8) appended to OUT. Code points below U+0300 are NFC and never
 * compose with a neighbour (every NFC_QC=No/Maybe code point is >= U+0300), so text whose
 * bytes are all below 0xCC (the lead byte of U+0300) is copied as it is. */
static int nfc(const char *s, size_t n, tok_buf *out)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0xCC)
        i++;
    if (i == n)
        return strbuf_add(out, s, n);
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (k < 0)
        return -1;
    int rc = strbuf_add(out, (const char *)r, (size_t)k);
    free(r);
    return rc;
}

static int replace_all(const char *s, size_t n, const char *pat, size_t n_pat, const char *with,
                       size_t n_with, tok_buf *out)
{
    size_t i = 0;
    while (i < n) {
        const char *hit = n_pat && n - i >= n_pat ? memmem(s + i, n - i, pat, n_pat) : NULL;
        if (!hit)
            break;
        size_t at = (size_t)(hit - s);
        if (strbuf_add(out, s + i, at - i) < 0 || strbuf_add(out, with, n_with) < 0)
            return -1;
        i = at + n_pat;
    }
    return strbuf_add(out, s + i, n - i);
}

int tok_normalize(const tok *t, const char *s, size_t n, tok_buf *out)
{
    tok_buf a = {0}, b = {0};
    const char *cur = s;
    size_t n_cur = n;
    int rc = -1;
    for (int k = 0; k < t->n_norm; k++) {
        const tok_norm *nm = &t->norm[k];
        tok_buf *dst = (k % 2) ? &b : &a;
        dst->n = 0;
        if (nm->type == TOK_NORM_PREPEND) {
            if (n_cur && strbuf_add(dst, nm->a, nm->na) < 0)
                goto fail;
            if (strbuf_add(dst, cur, n_cur) < 0)
                goto fail;
        } else if (nm->type == TOK_NORM_NFC) {
            if (nfc(cur, n_cur, dst) < 0)
                goto fail;
        } else if (replace_all(cur, n_cur, nm->a, nm->na, nm->b, nm->nb, dst) < 0)
            goto fail;
        cur = dst->p;
        n_cur = dst->n;
    }
    rc = strbuf_add(out, cur, n_cur);
fail:
    free(a.p);
    free(b.p);
    return rc;
}
