/* tok_normalize.c - the normalizers the LLaMA family uses (a Sequence flattened at load):
 * Prepend (only to non-empty text, as HF) and Replace of a literal string.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

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
