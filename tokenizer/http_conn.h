/* http_conn.h - what civetweb 1.15 does not expose about a connection, for the request path:
 * its socket, whether the client has gone away, and a deadline on reading a request body.
 *
 * civetweb keeps the socket in its private struct mg_connection; http_conn_fd() finds it by
 * the peer address and port that mg_get_request_info() reports (getpeername() on the
 * process's descriptors; a TCP connection's address pair is unique while it is open).
 */
#ifndef CINDER_HTTP_CONN_H
#define CINDER_HTTP_CONN_H

#include <stdint.h>

struct mg_connection;

/* The socket of connection C, or -1 if it cannot be found. Cached for the connection. */
int http_conn_fd(const struct mg_connection *c);

/* 1 when the client at FD has closed its end (or reset the connection): nobody will read an
 * answer. A client that only shut down its sending side (a half-close) counts as gone too. */
int http_conn_gone(int fd);

/* A deadline on reading from a socket: when it passes, a watchdog thread shuts the socket's
 * receiving side (shutdown SHUT_RD), so a read blocked inside civetweb returns at once; the
 * sending side stays open for the answer. */
typedef struct http_deadline {
    struct http_deadline *prev, *next;
    int fd;
    uint64_t at_us;   /* CLOCK_MONOTONIC */
    int armed, fired;
} http_deadline;

/* Arms D for FD, MS milliseconds from now (nothing when FD < 0). */
void http_deadline_arm(http_deadline *d, int fd, int ms);
/* Disarms D; 1 if the deadline passed and the socket's receiving side was shut. */
int http_deadline_disarm(http_deadline *d);

#endif
