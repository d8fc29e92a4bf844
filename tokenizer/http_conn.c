/* http_conn.c - a connection's request as handlers read it, and its writes (see
 * http_conn.h). */
#include "http_conn.h"
#include "http_server.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

const char *http_method(const http_conn *c) { return c->method; }

const char *http_path(const http_conn *c) { return c->path ? c->path : ""; }

int http_is_10(const http_conn *c) { return c->major == 1 && c->minor == 0; }

const char *http_header(const http_conn *c, const char *name)
{
    for (int i = 0; i < c->n_ready; i++)
        if (!strcasecmp(c->hdr[i][0], name))
            return c->hdr[i][1];
    return NULL;
}

int http_write(http_conn *c, const void *p, size_t n)
{
    if (c->broken)
        return -1;
    if (c->on_loop) { /* queued in C->out, sent when the answer is complete */
        if (!text_append(&c->out, p, n))
            return 0;
        c->broken = 1;
        return -1;
    }
    const char *b = p;
    while (n > 0) { /* the socket is non-blocking (libuv's): wait for room with a deadline */
        ssize_t k = send(c->fd, b, n, MSG_NOSIGNAL);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        struct pollfd q = {c->fd, POLLOUT, 0};
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && poll(&q, 1, HTTP_WRITE_TIMEOUT_MS) == 1 &&
            !(q.revents & (POLLERR | POLLHUP)))
            continue;
        c->broken = 1; /* gone, or took nothing for HTTP_WRITE_TIMEOUT_MS */
        return -1;
    }
    return 0;
}

int http_printf(http_conn *c, const char *fmt, ...)
{
    char buf[1024], *p = buf;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= sizeof buf) {
        if (!(p = malloc((size_t)n + 1)))
            return -1;
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    int rc = http_write(c, p, (size_t)n);
    if (p != buf)
        free(p);
    return rc;
}

int http_write_chunk(http_conn *c, const void *p, size_t n)
{
    if (n == 0)
        return http_write(c, "0\r\n\r\n", 5);
    char *b = malloc(n + 24); /* one write: size line, data, CRLF (no small segments) */
    if (!b)
        return -1;
    int k = snprintf(b, 24, "%zx\r\n", n);
    memcpy(b + k, p, n);
    memcpy(b + k + n, "\r\n", 2);
    int rc = http_write(c, b, (size_t)k + n + 2);
    free(b);
    return rc;
}

int http_conn_gone(http_conn *c)
{
    struct pollfd p = {c->fd, POLLRDHUP, 0};
    return c->broken || (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)));
}
