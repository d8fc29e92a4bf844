/* serving_http.c - incremental HTTP/1.1 response and server-sent-events parsers for
 * bench-serving (see serving_http.h). No allocation per byte: lines collect in one buffer,
 * body bytes go straight to the callback.
 */
#include "serving_http.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LINE 65536 /* longest status, header or chunk-size line accepted */

void sv_buf_free(sv_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

enum { ST_STATUS, ST_HEADER, ST_BODY_LEN, ST_BODY_EOF, ST_CHUNK_SIZE, ST_CHUNK_DATA,
       ST_CHUNK_END, ST_TRAILER, ST_DONE, ST_ERR };

void sv_http_init(sv_http *h, sv_body_fn on_body, void *ctx)
{
    memset(h, 0, sizeof *h);
    h->content_len = -1;
    h->on_body = on_body;
    h->ctx = ctx;
}

void sv_http_free(sv_http *h) { sv_buf_free(&h->line); }

static int fail(sv_http *h, const char *why)
{
    h->err = why;
    h->state = ST_ERR;
    return SV_HTTP_ERR;
}

static int parse_status(sv_http *h, const char *s)
{
    if (strncmp(s, "HTTP/1.", 7) || !isdigit((unsigned char)s[7]) || s[8] != ' ' ||
        !isdigit((unsigned char)s[9]) || !isdigit((unsigned char)s[10]) ||
        !isdigit((unsigned char)s[11]) || (s[12] && s[12] != ' '))
        return fail(h, "bad status line");
    h->status = atoi(s + 9);
    h->state = ST_HEADER;
    return SV_HTTP_MORE;
}

/* The blank line after the headers: decides how the body is framed. */
static int headers_end(sv_http *h)
{
    if (h->status >= 100 && h->status < 200) { /* interim response: the real one follows */
        sv_buf line = h->line;
        sv_http_init(h, h->on_body, h->ctx);
        h->line = line;
        return SV_HTTP_MORE;
    }
    if (h->status == 204 || h->status == 304 || (!h->chunked && h->content_len == 0)) {
        h->state = ST_DONE;
        return SV_HTTP_DONE;
    }
    if (h->chunked)
        h->state = ST_CHUNK_SIZE;
    else if (h->content_len > 0) {
        h->state = ST_BODY_LEN;
        h->left = h->content_len;
    } else
        h->state = ST_BODY_EOF;
    return SV_HTTP_MORE;
}

static int parse_header(sv_http *h, const char *s)
{
    if (!*s)
        return headers_end(h);
    const char *colon = strchr(s, ':');
    if (!colon)
        return fail(h, "header line without a colon");
    size_t name_len = (size_t)(colon - s);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (name_len == 17 && !strncasecmp(s, "transfer-encoding", 17)) {
        const char *last = strrchr(v, ',');
        last = last ? last + 1 : v;
        while (*last == ' ')
            last++;
        h->chunked = !strncasecmp(last, "chunked", 7);
    } else if (name_len == 14 && !strncasecmp(s, "content-length", 14)) {
        char *end;
        long long len = strtoll(v, &end, 10);
        if (end == v || len < 0)
            return fail(h, "bad Content-Length");
        h->content_len = len;
    }
    return SV_HTTP_MORE;
}

static int parse_chunk_size(sv_http *h, const char *s)
{
    char *end;
    if (!isxdigit((unsigned char)*s))
        return fail(h, "bad chunk size");
    long long size = strtoll(s, &end, 16);
    if (size < 0 || (*end && *end != ';' && *end != ' ' && *end != '\t'))
        return fail(h, "bad chunk size");
    h->left = size;
    h->state = size ? ST_CHUNK_DATA : ST_TRAILER;
    return SV_HTTP_MORE;
}

/* One complete line (CR LF or LF stripped) in the state that reads lines. */
static int on_line(sv_http *h, const char *s)
{
    switch (h->state) {
    case ST_STATUS:
        return parse_status(h, s);
    case ST_HEADER:
        return parse_header(h, s);
    case ST_CHUNK_SIZE:
        return parse_chunk_size(h, s);
    case ST_CHUNK_END:
        if (*s)
            return fail(h, "chunk data longer than its size");
        h->state = ST_CHUNK_SIZE;
        return SV_HTTP_MORE;
    case ST_TRAILER:
        if (*s)
            return SV_HTTP_MORE; /* trailer fields are ignored */
        h->state = ST_DONE;
        return SV_HTTP_DONE;
    }
    return fail(h, "internal state");
}

int sv_http_feed(sv_http *h, const char *p, size_t n)
{
    while (n && h->state != ST_DONE && h->state != ST_ERR) {
        if (h->state == ST_BODY_EOF || h->state == ST_BODY_LEN || h->state == ST_CHUNK_DATA) {
            size_t take = n;
            if (h->state != ST_BODY_EOF && (long long)take > h->left)
                take = (size_t)h->left;
            h->on_body(h->ctx, p, take);
            p += take;
            n -= take;
            h->left -= (long long)take;
            if (h->state == ST_BODY_LEN && !h->left)
                h->state = ST_DONE;
            else if (h->state == ST_CHUNK_DATA && !h->left)
                h->state = ST_CHUNK_END;
            continue;
        }
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (h->line.n + take > MAX_LINE)
            return fail(h, "line too long");
        if (strbuf_add(&h->line, p, take))
            return fail(h, "out of memory");
        p += take;
        n -= take;
        if (!nl)
            break;
        h->line.p[--h->line.n] = 0; /* the LF */
        if (h->line.n && h->line.p[h->line.n - 1] == '\r')
            h->line.p[--h->line.n] = 0;
        h->line.n = 0;
        if (on_line(h, h->line.p) == SV_HTTP_ERR)
            return SV_HTTP_ERR;
    }
    return h->state == ST_DONE ? SV_HTTP_DONE : h->state == ST_ERR ? SV_HTTP_ERR : SV_HTTP_MORE;
}

int sv_http_eof(sv_http *h)
{
    if (h->state == ST_BODY_EOF || h->state == ST_DONE) {
        h->state = ST_DONE;
        return SV_HTTP_DONE;
    }
    if (h->state != ST_ERR)
        fail(h, h->status ? "connection closed before the response ended"
                          : "connection closed before a response");
    return SV_HTTP_ERR;
}

void sv_sse_init(sv_sse *s, sv_event_fn on_event, void *ctx)
{
    memset(s, 0, sizeof *s);
    s->on_event = on_event;
    s->ctx = ctx;
}

void sv_sse_free(sv_sse *s)
{
    sv_buf_free(&s->line);
    sv_buf_free(&s->data);
}

static void sse_line(sv_sse *s, const char *l, size_t n)
{
    if (!n) { /* blank line: dispatch */
        if (s->has_data)
            s->on_event(s->ctx, s->data.p ? s->data.p : "", s->data.n);
        s->data.n = 0;
        s->has_data = 0;
        return;
    }
    const char *colon = memchr(l, ':', n);
    size_t name_len = colon ? (size_t)(colon - l) : n;
    if (name_len != 4 || memcmp(l, "data", 4))
        return; /* comment, event, id, retry: nothing a benchmark needs */
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ')
        v++;
    if (s->has_data)
        strbuf_add(&s->data, "\n", 1);
    strbuf_add(&s->data, v, (size_t)(l + n - v));
    s->has_data = 1;
}

void sv_sse_feed(sv_sse *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (s->after_cr && p[i] == '\n') { /* the LF of a CR LF */
            s->after_cr = 0;
            i++;
            continue;
        }
        s->after_cr = 0;
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        strbuf_add(&s->line, p + i, j - i);
        if (j == n)
            break;
        s->after_cr = p[j] == '\r';
        sse_line(s, s->line.p ? s->line.p : "", s->line.n);
        s->line.n = 0;
        i = j + 1;
    }
}
