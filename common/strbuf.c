/* strbuf.c - the growable byte buffer (see strbuf.h). */
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

int strbuf_reserve(strbuf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int strbuf_add(strbuf *b, const void *s, size_t n)
{
    if (strbuf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}
