/* http_client.h - a small blocking HTTP/1.1 client for the end-to-end tests.
 *
 * One request per connection (Connection: close); decodes chunked bodies, so server-sent
 * event streams come back whole. Real sockets against the real server, nothing mocked.
 */
#ifndef CINDER_HTTP_CLIENT_H
#define CINDER_HTTP_CLIENT_H

#include <stddef.h>

typedef struct {
    int status;       /* HTTP status, or -1 if the exchange failed */
    char *headers;    /* raw header block, NUL-terminated */
    char *body;       /* decoded body, NUL-terminated */
    size_t body_len;
} http_resp;

/* Sends METHOD PATH with BODY (may be NULL) to 127.0.0.1:PORT; fills R (free with
 * http_resp_free). RAW, when not NULL, is sent instead of a well-formed request. */
int http_request(int port, const char *method, const char *path, const char *body, http_resp *r);
int http_raw(int port, const char *raw, size_t n, http_resp *r);
void http_resp_free(http_resp *r);

/* A connection to 127.0.0.1:PORT (blocking, 120 s receive timeout), or -1. */
int http_connect(int port);
/* Sends all N bytes of P on FD; 0 or -1. */
int http_send_all(int fd, const void *p, size_t n);
/* Reads an answer from FD until it is whole (by Content-Length, or its last chunk), the
 * server closes the connection, or TIMEOUT_MS pass; fills R like http_raw. R->status is -2 when nothing
 * complete came in time, -1 when the server closed without an answer. */
int http_await(int fd, int timeout_ms, http_resp *r);

/* Opens a connection, sends a streaming request and closes the socket after reading
 * N_BYTES of the response (a client that goes away mid-stream). */
int http_hangup_after(int port, const char *path, const char *body, size_t n_bytes);

#endif
