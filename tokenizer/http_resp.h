/* http_resp.h - the head of every answer the tokenizer process sends, and whether its
 * connection stays open afterwards (HTTP/1.1 keep-alive).
 *
 * http_resp_head() writes the status line, Content-Type, the body's framing (Content-Length,
 * or chunked), the CORS headers (the request's Origin against --allowed-origins) and
 * Connection: keep-alive or close. All answers go through it (http_util.c's JSON and event
 * streams, /metrics, the CORS preflight), so what the head says and what civetweb then does
 * with the connection always agree.
 *
 * A connection stays open after an answer when
 *   - the client allows it (HTTP/1.1 without "Connection: close", or HTTP/1.0 with
 *     "Connection: keep-alive"), and the answer has a length (Content-Length, or chunked with
 *     its last chunk: not an HTTP/1.0 event stream, which ends with the close);
 *   - the request's body was read whole (http_resp_body_read()): an answer sent before the
 *     body was read (404, 401, a 503 when busy, a refused framing) closes the connection,
 *     since what follows on it cannot be trusted to start a request. civetweb reads and drops
 *     such an unread body before closing; a deadline (HTTP_DISCARD_MS) bounds that, so a
 *     client dripping a body it was already answered for cannot hold a thread;
 *   - threads allow it: each open idle connection holds a civetweb thread until its next
 *     request or keep_alive_timeout_ms (civetweb's deadline for that request's arrival and
 *     headers). Connections are kept only while those idle ones plus the threads inside
 *     generation requests stay under the generation limit (http.c), so together they never
 *     take the reserve that /health and /metrics rely on.
 * Otherwise the answer says "Connection: close" and civetweb is made to close
 * (http_resp_close()).
 */
#ifndef CINDER_HTTP_RESP_H
#define CINDER_HTTP_RESP_H

#include <stdatomic.h>

struct mg_connection;

/* An answer sent before its request's body was read: civetweb may read and drop the rest
 * of the body for at most this long, then the connection is cut. */
#define HTTP_DISCARD_MS 2000

typedef struct {
    int keep_alive_ms;           /* civetweb's keep_alive_timeout_ms; 0: never keep alive */
    const char *const *origins;  /* --allowed-origins; "*" allows any */
    int n_origins;
    const atomic_int *busy;      /* threads inside generation requests (http.c) */
    int max_held;                /* busy + idle kept connections stay under this */
} http_resp_opts;

/* Sets the policy (before the server starts; O and what it points to must outlive it). */
void http_resp_init(const http_resp_opts *o);

/* civetweb callbacks: a connection begins on this thread, a request's headers arrived,
 * the connection ends. */
void http_resp_conn_begin(void);
void http_resp_request_begin(struct mg_connection *c);
void http_resp_conn_end(void);

/* The request's body was read whole (http_read_body). */
void http_resp_body_read(void);
/* The connection must close after this answer: its head says so, and civetweb's own
 * keep-alive decision (which obeys the request's Connection header) is made to agree. */
void http_resp_close(struct mg_connection *c);

/* Writes the head of an answer: STATUS, CONTENT_TYPE, LENGTH bytes of body (-1: chunked;
 * -2: neither, the body ends with the close), CORS, Connection, then EXTRA (header lines
 * "Name: value\r\n", or NULL) and the blank line. */
void http_resp_head(struct mg_connection *c, int status, const char *content_type, long long length,
                    const char *extra);

/* CORS: the request's Origin is allowed (always, with "*"). */
int http_resp_origin_allowed(struct mg_connection *c);

/* Connections held open between requests now. */
int http_resp_idle(void);

#endif
