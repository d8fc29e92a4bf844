/* strbuf.h - a growable byte buffer, kept NUL-terminated after its N bytes: the one the
 * tokenizer library builds its text in and the serving client its HTTP bodies. */
#ifndef CINDER_STRBUF_H
#define CINDER_STRBUF_H

#include <stddef.h>

typedef struct {
    char *p;        /* [cap], p[n] == 0 once anything was added */
    size_t n, cap;
} strbuf;

/* Room for EXTRA more bytes and the NUL; 0, or -1 out of memory. */
int strbuf_reserve(strbuf *b, size_t extra);
/* Appends S [N]; 0, or -1 out of memory. */
int strbuf_add(strbuf *b, const void *s, size_t n);

#endif
