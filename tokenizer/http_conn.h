/* http_conn.h - one client connection and its current request, as the route handlers see it
 * (http.c, api_*.c, serve.c). The front end (http_server.c) fills it: the request line, the
 * headers and the whole body are in memory before any handler runs.
 *
 * Writes go out two ways. On the event loop (cheap routes and errors answered there) they
 * are queued and sent once the answer is complete, without blocking the loop. On a handler
 * thread (http_pool.c) they are sent at once, each waiting at most HTTP_WRITE_TIMEOUT_MS for
 * the client to take the bytes: a client that stops reading costs a thread for that long,
 * then the connection is marked broken and every later write fails at once.
 */
#ifndef CINDER_HTTP_CONN_H
#define CINDER_HTTP_CONN_H

#include <stddef.h>

typedef struct http_conn http_conn;

/* A write on a handler thread waits this long for the client to take the bytes. */
#define HTTP_WRITE_TIMEOUT_MS 10000

const char *http_method(const http_conn *c);   /* "GET", "POST", ... */
/* The target's path without its query ("/generate"); for an absolute-form target addressed
 * to this server, its path part. */
const char *http_path(const http_conn *c);
int http_is_10(const http_conn *c);            /* an HTTP/1.0 client */
/* The value of the first header NAME (case-insensitive), or NULL. */
const char *http_header(const http_conn *c, const char *name);

/* Sends (or queues, on the loop) the N bytes of P: 0, or -1 when the client is gone or took
 * nothing for HTTP_WRITE_TIMEOUT_MS. */
int http_write(http_conn *c, const void *p, size_t n);
int http_printf(http_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One chunk of a chunked answer (N == 0: the last chunk): 0 or -1. */
int http_write_chunk(http_conn *c, const void *p, size_t n);

/* 1 when the client has closed its end or reset the connection: nobody will read an answer
 * (a half-close counts too). For handlers: the loop does not read while they run. */
int http_conn_gone(http_conn *c);

#endif
