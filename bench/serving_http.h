/* serving_http.h - incremental parsers for bench-serving: an HTTP/1.1 response (status line,
 * headers, body framed by chunked encoding, Content-Length or the connection's end) and a
 * server-sent-events stream on top of the body.
 *
 * Both take bytes exactly as they come off a non-blocking socket, split anywhere, and call
 * back as soon as a piece of body or a whole event is there, so the caller can time each one.
 */
#ifndef CINDER_SERVING_HTTP_H
#define CINDER_SERVING_HTTP_H

#include "../common/strbuf.h"
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated after its N bytes. */
typedef strbuf sv_buf;   /* common/strbuf.h: NUL-terminated, strbuf_add */
void sv_buf_free(sv_buf *b);

typedef void (*sv_body_fn)(void *ctx, const char *p, size_t n);

enum {
    SV_HTTP_MORE = 0,   /* feed more bytes */
    SV_HTTP_DONE = 1,   /* the whole response is in */
    SV_HTTP_ERR = -1,   /* malformed; see sv_http.err */
};

typedef struct {
    int state;               /* internal: where in the response the next byte belongs */
    int status;              /* HTTP status code, 0 until the status line is in */
    int chunked;             /* Transfer-Encoding: chunked */
    long long content_len;   /* Content-Length, -1 when absent */
    long long left;          /* bytes left of the current chunk or of the body */
    sv_buf line;             /* a status, header, chunk-size or trailer line being read */
    sv_body_fn on_body;
    void *ctx;
    const char *err;
} sv_http;

void sv_http_init(sv_http *h, sv_body_fn on_body, void *ctx);
void sv_http_free(sv_http *h);
/* Feeds N bytes; the body (de-chunked) goes to on_body. SV_HTTP_MORE, _DONE or _ERR. */
int sv_http_feed(sv_http *h, const char *p, size_t n);
/* The peer closed the connection: SV_HTTP_DONE if that completes the response (a body
 * delimited by the close, or one already complete), else SV_HTTP_ERR (truncated). */
int sv_http_eof(sv_http *h);

typedef void (*sv_event_fn)(void *ctx, const char *data, size_t n);

/* Server-sent events (WHATWG rules): lines end in LF, CRLF or CR; "data:" fields (one
 * leading space dropped) join with LF; a blank line dispatches the event; comments (":...")
 * and other fields are ignored. */
typedef struct {
    sv_buf line, data;
    int has_data;
    int after_cr;            /* the last byte was a CR: a following LF ends no new line */
    sv_event_fn on_event;
    void *ctx;
} sv_sse;

void sv_sse_init(sv_sse *s, sv_event_fn on_event, void *ctx);
void sv_sse_free(sv_sse *s);
void sv_sse_feed(sv_sse *s, const char *p, size_t n);

#endif
