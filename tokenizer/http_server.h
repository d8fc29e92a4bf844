/* http_server.h - the tokenizer's HTTP front end inside: one libuv event loop thread that
 * accepts, reads and parses every connection (http_parser), and a bounded pool of handler
 * threads (http_pool.c) for requests that do real work. Private to tokenizer/http*.c.
 *
 * Why not a thread per connection (civetweb, which this replaced): a client that drips its
 * headers or body, or says nothing, costs a few hundred bytes and a timer here, not a thread;
 * the whole header and the whole body each have a deadline; and /health, /metrics and errors
 * are answered on the loop itself, so they never wait for a handler thread.
 *
 * A connection's life: HEAD (reading the request line and headers; a new or kept-open
 * connection waits for its first byte, then the whole header has HTTP_HEAD_DEADLINE_MS) ->
 * http_route_head() decides on the loop: answered there (WRITING, then the next request or
 * the close), or BODY (the whole body within HTTP_BODY_DEADLINE_MS, at most HTTP_MAX_BODY,
 * 413 as soon as a Content-Length or a chunk size says more) -> HANDLER (a pool thread runs
 * http_route_run(), at once or after waiting its turn in the pool's queue; the loop does not
 * read the socket meanwhile) -> back on the loop through an async handle: the next request
 * (bytes pipelined behind the last are kept) or the close.
 * A close after an answer shuts the sending side and drops what the client still sends for
 * up to HTTP_DISCARD_MS (LINGER), so the client reads the answer instead of a reset.
 *
 * Waiting for a handler: a request whose body is in when every thread is taken joins the
 * pool's FIFO queue, at most max_waiting of them (--http-queue) and fewer when may_wait says
 * so (--max-queue counts them with the router's); past that, 503 + Retry-After at once (before
 * the body when the headers already find it so). What a waiting request holds is bounded:
 * its connection (HTTP_MAX_CONNS) and its body (HTTP_BODY_BUDGET, counted until the answer is
 * out). One whose client hangs up while it waits is dropped when a thread takes it, never run
 * (http_route_run checks). One taken while the router or the worker is gone gets its 503 at
 * once (serve.c), and at the stop the queue is handed back to the loop, which answers each
 * waiting request 503 before it closes the connections: none waits without end.
 * A request that waited finds a free slot when a thread takes it, without waiting for one:
 * the threads are at most the request slots (main.c cuts --http-threads to them) and a
 * request gives its slots back before its thread takes the next. Only a request of n choices
 * needs n slots, and gets 503 when fewer are free (as before).
 */
#ifndef CINDER_HTTP_SERVER_H
#define CINDER_HTTP_SERVER_H

#include "http_conn.h"
#include "http_util.h"

#include <http_parser.h>
#include <uv.h>

#define HTTP_MAX_HEADERS 64          /* header lines of a request: more get 431 */
#define HTTP_MAX_HEAD (32 << 10)     /* request line and headers: more get 431 */
#define HTTP_HEAD_DEADLINE_MS 10000  /* the whole header, from its first byte (408 after) */
#define HTTP_KEEP_ALIVE_MS 5000      /* a kept-open connection waits this long for a request */
#define HTTP_DISCARD_MS 2000         /* input dropped after a closing answer, at most this long */
#define HTTP_BODY_BUDGET (256 << 20) /* request bodies held in memory at once, all connections */

enum { CONN_HEAD, CONN_BODY, CONN_WAIT, CONN_HANDLER, CONN_WRITING, CONN_LINGER, CONN_CLOSING };

typedef struct http_server http_server;

struct http_conn {
    uv_tcp_t tcp;                    /* loop thread only (data: this) */
    uv_timer_t timer;                /* the deadline of the current state */
    uv_shutdown_t shut;
    http_parser p;
    http_server *srv;
    http_conn *prev, *next;          /* the server's connections */
    http_conn *queue_next;           /* the pool's queue, the server's returned list */
    int fd, state, n_open_handles;
    char *in;                        /* bytes read past the last request (pipelined) */
    size_t n_in;
    size_t n_counted;                /* body bytes held against HTTP_BODY_BUDGET */
    int broken, on_loop, n_writes;   /* a write failed; writes are queued; loop writes out */
    text_buf out;                    /* queued on the loop */
    /* the request (from here on: cleared for each request, http_parse_reset) */
    text_buf head;                   /* the line and headers, NUL-terminated strings */
    int hstate;                      /* 0: in the URL, 1: a header name, 2: its value */
    int n_hdr;
    size_t hdr_off[HTTP_MAX_HEADERS][2];
    const char *hdr[HTTP_MAX_HEADERS][2]; /* set when the headers are complete */
    int n_ready;                     /* entries of hdr[] set */
    const char *url, *path;
    char method[16];
    int major, minor, begun, has_body, chunked, body_done, foreign;
    text_buf body;                   /* NUL-terminated; the handler takes it */
    int route;                       /* http.c's, for the handler */
    int err;                         /* status when a parser callback refused the request */
    const char *err_msg;
    char err_buf[128];
    int answered, keep, must_close;  /* the answer: written; the connection stays open */
};

typedef struct {
    const char *host;
    int port;
    int n_threads;                   /* handler threads */
    int max_waiting;                 /* requests queued for a thread at most (0: none wait) */
    /* NULL, or whether one more request may wait for a thread, N_WAITING already do */
    int (*may_wait)(int n_waiting);
} http_server_opts;

/* Listens and starts the loop and the handler threads; NULL on failure (logged). */
http_server *http_server_start(const http_server_opts *o);
/* Stops accepting, closes every connection, waits up to WAIT_MS for handlers to return:
 * 0, or -1 when some still run (they must not lose what they use: do not free it). */
int http_server_stop(http_server *s, int wait_ms);

/* A request that wants a handler now would be refused: every thread is taken and no more
 * may wait. */
int http_server_busy(const http_server *s);
/* Requests waiting for a handler thread. */
int http_server_waiting(const http_server *s);

/* For http_parse.c and http_conn.c, on the loop thread: */
void http_server_read(http_conn *c);           /* (re)starts reading C */
void http_server_deadline(http_conn *c, int ms); /* C's header or body must be in within MS */
void http_server_flush(http_conn *c);          /* sends what is queued on C */
void http_server_request_ready(http_conn *c);  /* the parser stopped after a request */
void http_server_answer_error(http_conn *c, int status, const char *msg); /* and close */
int http_server_port_is(const http_conn *c, int port); /* C came in on PORT */
/* N more bytes of request body held for C: 0, or -1 past HTTP_BODY_BUDGET (all connections) */
int http_server_hold_body(http_conn *c, size_t n);

/* Routing (http.c). On the loop, once C's headers are complete: 0 when a handler must run
 * (after the body), else the answer has been written (queued) on C. */
int http_route_head(http_conn *c);
/* On a handler thread: C's request, its body read whole. */
void http_route_run(http_conn *c);
/* On the loop: an error answer in the shape of C's path (OpenAI's under /v1/). */
int http_route_error(http_conn *c, int status, const char *msg);
/* On the loop: C's body is read but every handler thread is taken and the queue is full
 * (503, Retry-After). */
int http_route_busy(http_conn *c);

#endif
