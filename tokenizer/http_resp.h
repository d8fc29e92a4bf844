/* http_resp.h - the head of every answer the tokenizer process sends, and whether its
 * connection stays open afterwards (HTTP/1.1 keep-alive).
 *
 * http_resp_head() writes the status line, Content-Type, the body's framing (Content-Length,
 * or chunked), the CORS headers (the request's Origin against --allowed-origins) and
 * Connection: keep-alive or close. All answers go through it (http_util.c's JSON and event
 * streams, /metrics, the CORS preflight), so what the head says and what the front end then
 * does with the connection (http_server.c) always agree.
 *
 * A connection stays open after an answer when
 *   - the client allows it (HTTP/1.1 without "Connection: close", or HTTP/1.0 with
 *     "Connection: keep-alive"), and the answer has a length (Content-Length, or chunked with
 *     its last chunk: not an HTTP/1.0 event stream, which ends with the close);
 *   - the request's body was read whole: an answer sent before it was (404, 401, a 503 when
 *     busy, a 413, a refused framing) closes the connection, since what follows on it cannot
 *     be trusted to start a request;
 *   - it is not a HEAD request (its answers carry a body here).
 * An open idle connection costs no thread: the event loop waits for its next request for
 * HTTP_KEEP_ALIVE_MS (http_server.h), then closes it.
 */
#ifndef CINDER_HTTP_RESP_H
#define CINDER_HTTP_RESP_H

#include "http_conn.h"

typedef struct {
    int keep_alive_ms;           /* a kept-open connection waits this long; 0: never keep alive */
    const char *const *origins;  /* --allowed-origins; "*" allows any */
    int n_origins;
} http_resp_opts;

/* Sets the policy (before the server starts; O and what it points to must outlive it). */
void http_resp_init(const http_resp_opts *o);

/* Writes the head of an answer: STATUS, CONTENT_TYPE, LENGTH bytes of body (-1: chunked;
 * -2: neither, the body ends with the close), CORS, Connection, then EXTRA (header lines
 * "Name: value\r\n", or NULL) and the blank line. */
void http_resp_head(http_conn *c, int status, const char *content_type, long long length, const char *extra);

/* CORS: the request's Origin is allowed (always, with "*"). */
int http_resp_origin_allowed(http_conn *c);

#endif
