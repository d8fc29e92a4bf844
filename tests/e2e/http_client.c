/* http_client.c - blocking HTTP/1.1 client for the end-to-end tests (see http_client.h). */
#include "http_client.h"
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {120 * cluster_time_scale(), 0}; /* a slower build waits longer */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static char *read_all(int fd, size_t *n)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) /* a signal (the tests' child processes) */
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

/* Decodes a chunked body in place; returns its length. */
static size_t dechunk(char *p, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(p + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        if (!crlf || sz == 0)
            break;
        in = (size_t)(crlf + 2 - p);
        if (in + sz > n)
            sz = n - in;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz + 2;
    }
    p[out] = 0;
    return out;
}

static int parse_resp(char *buf, size_t n, http_resp *r)
{
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = -1;
        free(buf);
        return -1;
    }
    *sep = 0;
    r->headers = buf;
    size_t body_n = n - (size_t)(sep + 4 - buf);
    r->body = malloc(body_n + 1);
    memcpy(r->body, sep + 4, body_n);
    r->body[body_n] = 0;
    r->body_len = strcasestr(buf, "transfer-encoding: chunked") ? dechunk(r->body, body_n) : body_n;
    return 0;
}

int http_raw(int port, const char *raw, size_t n, http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    size_t got;
    char *buf = send_all(fd, raw, n) ? NULL : read_all(fd, &got);
    close(fd);
    return buf ? parse_resp(buf, got, r) : -1;
}

int http_request(int port, const char *method, const char *path, const char *body, http_resp *r)
{
    size_t nb = body ? strlen(body) : 0;
    char *req = malloc(nb + 512);
    int n = sprintf(req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                    method, path, nb);
    memcpy(req + n, body ? body : "", nb);
    int rc = http_raw(port, req, (size_t)n + nb, r);
    free(req);
    return rc;
}

void http_resp_free(http_resp *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int http_hangup_after(int port, const char *path, const char *body, size_t n_bytes)
{
    int fd = connect_local(port);
    if (fd < 0)
        return -1;
    char head[512];
    int n = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n",
                     path, strlen(body));
    int rc = send_all(fd, head, (size_t)n) || send_all(fd, body, strlen(body)) ? -1 : 0;
    char buf[256];
    size_t got = 0;
    while (!rc && got < n_bytes) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            got += (size_t)r;
    }
    close(fd);
    return rc;
}

int http_connect(int port) { return connect_local(port); }

int http_send_all(int fd, const void *p, size_t n) { return send_all(fd, p, n); }

/* 1 when BUF (N bytes) holds a whole answer: its Content-Length, or its last chunk */
static int whole_answer(const char *buf, size_t n)
{
    const char *sep = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
    const char *te = strcasestr(buf, "\r\nTransfer-Encoding: chunked");
    if (sep && te && te < sep)
        return n >= (size_t)(sep + 4 - buf) + 5 &&
               (!strcmp(buf + n - 5, "0\r\n\r\n") && (n - 5 == (size_t)(sep + 4 - buf) || buf[n - 6] == '\n'));
    return sep && cl && cl < sep && n >= (size_t)(sep + 4 - buf) + strtoull(cl + 17, NULL, 10);
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int http_await(int fd, int timeout_ms, http_resp *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    long long end = ms_now() + timeout_ms;
    int closed = 0;
    buf[0] = 0;
    while (!whole_answer(buf, n)) {
        struct pollfd p = {fd, POLLIN, 0};
        long long wait = end - ms_now();
        if (wait <= 0 || poll(&p, 1, (int)wait) <= 0)
            break;
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            closed = 1;
            break;
        }
        n += (size_t)k;
        buf[n] = 0;
    }
    if (!whole_answer(buf, n) && !closed) {
        free(buf);
        r->status = -2;
        return -1;
    }
    return parse_resp(buf, n, r); /* status -1 when nothing parseable came before the close */
}
