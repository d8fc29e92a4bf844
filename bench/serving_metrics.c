/* serving_metrics.c - bench-serving reads the server's prefix cache counters from /metrics
 * before and after a run (a blocking GET on its own connection, outside the timed run), so
 * the report can give the run's prefix cache hit rate: cinder's
 * cinder_prefix_cache_{queries,hits}_total or vLLM's vllm:prefix_cache_{queries,hits}_total
 * (prompt tokens looked up and found; vLLM labels its series, the first one counts).
 */
#include "serving.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_BODY (4 << 20)

/* The whole answer to GET PATH (headers and body), malloc'd, or NULL. */
static char *http_get(const char *host, int port, const char *path)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char ports[16], req[512];
    snprintf(ports, sizeof ports, "%d", port);
    if (getaddrinfo(host, ports, &hints, &res))
        return NULL;
    int fd = socket(res->ai_family, res->ai_socktype, 0);
    struct timeval tv = {5, 0};
    char *buf = NULL;
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, res->ai_addr, res->ai_addrlen))
        goto fail;
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path,
                     host, port);
    if (write(fd, req, (size_t)n) != n)
        goto fail;
    size_t len = 0, cap = 65536;
    if (!(buf = malloc(cap + 1)))
        goto fail;
    for (;;) {
        if (len == cap) {
            char *p = cap < MAX_BODY ? realloc(buf, 2 * cap + 1) : NULL;
            if (!p)
                goto fail;
            buf = p;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0)
            goto fail;
        if (k == 0)
            break;
        len += (size_t)k;
    }
    buf[len] = 0;
    close(fd);
    freeaddrinfo(res);
    return buf;
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return NULL;
}

/* The value of the first sample of NAME (NAME, or NAME{labels}, at a line's start), or -1. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) || (p[n] != ' ' && p[n] != '{'))
            continue;
        const char *v = p[n] == '{' ? strchr(p + n, '}') : p + n;
        if (v)
            return atof(v + 1);
    }
    return -1;
}

int sv_prefix_counters(const char *host, int port, double *queries, double *hits)
{
    char *text = http_get(host, port, "/metrics");
    *queries = *hits = -1;
    if (!text)
        return -1;
    static const char *const names[][2] = {
        {"cinder_prefix_cache_queries_total", "cinder_prefix_cache_hits_total"},
        {"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names && *queries < 0; i++) {
        *queries = sample(text, names[i][0]);
        *hits = sample(text, names[i][1]);
    }
    free(text);
    return *queries >= 0 && *hits >= 0 ? 0 : -1;
}
