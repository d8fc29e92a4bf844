/* http_util.c - civetweb helpers (see http_util.h). */
#include "http_util.h"
#include "http_conn.h"
#include "http_frame.h"
#include "http_resp.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void http_send_json(struct mg_connection *c, int status, const char *body, const char *extra)
{
    http_resp_head(c, status, "application/json", (long long)strlen(body), extra);
    mg_write(c, body, strlen(body));
}

void http_send_cjson(struct mg_connection *c, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    http_send_json(c, status, s ? s : "{}", status == 503 ? "Retry-After: 1\r\n" : NULL);
    cJSON_free(s);
    cJSON_Delete(j);
}

int http_send_error(struct mg_connection *c, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    http_send_cjson(c, status, o);
    return status;
}

long http_read_body(struct mg_connection *c, char **out)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    long long want = ri->content_length; /* -1 when chunked */
    if (want > HTTP_MAX_BODY)
        return -413;
    size_t cap = want >= 0 ? (size_t)want + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -500;
    if (want != 0) /* a client waiting for "100 Continue" before it sends the body */
        http_frame_continue(c);
    /* The whole body within HTTP_BODY_DEADLINE_MS, however it trickles in: the watchdog
     * ends a read blocked past it (civetweb's own timeout is per read, so a client sending a
     * byte now and then would hold this thread for ever). Without the socket, only between
     * reads. */
    http_deadline dl;
    http_deadline_arm(&dl, http_conn_fd(c), HTTP_BODY_DEADLINE_MS);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rc = 0;
    for (;;) {
        if (n > HTTP_MAX_BODY) {
            rc = -413;
            break;
        }
        if (n + 1 == cap) {
            if (want >= 0)
                break; /* all of Content-Length is here */
            char *p = realloc(buf, cap * 2);
            if (!p) {
                rc = -500;
                break;
            }
            buf = p;
            cap *= 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= HTTP_BODY_DEADLINE_MS) {
            rc = -408;
            break;
        }
        int r = mg_read(c, buf + n, cap - n - 1);
        if (r < 0) { /* a malformed chunk, the connection failed, or the deadline shut it */
            rc = -400;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (http_deadline_disarm(&dl) && (rc == 0 || rc == -400))
        rc = -408;
    if (rc == 0 && want >= 0 && n < (size_t)want) /* the client stopped sending */
        rc = -400;
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    http_resp_body_read();
    return (long)n;
}

const char *http_body_error(long rc)
{
    switch (rc) {
    case -408: return "the request body did not arrive in time";
    case -413: return "request body too large";
    case -500: return "out of memory";
    default: return "cannot read the body: it is incomplete, or its chunked encoding is malformed or has "
                    "chunk extensions (not supported)";
    }
}

/* HTTP/1.0 has no chunked encoding: the events go out raw and the close ends the answer */
static int is_http10(struct mg_connection *c)
{
    const char *v = mg_get_request_info(c)->http_version;
    return v && !strcmp(v, "1.0");
}

void http_sse_begin(struct mg_connection *c)
{
    /* HTTP/1.0: the events raw, and the close ends the answer */
    http_resp_head(c, 200, "text/event-stream", is_http10(c) ? -2 : -1, "Cache-Control: no-cache\r\n");
}

int http_sse_raw(struct mg_connection *c, const char *s, size_t n)
{
    if (is_http10(c))
        return n == 0 || mg_write(c, s, n) == (int)n ? 0 : -1;
    return mg_send_chunk(c, s, (unsigned)n) > 0 || n == 0 ? 0 : -1;
}

int http_sse_send(struct mg_connection *c, const char *prefix, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return -1;
    size_t np = strlen(prefix), ns = strlen(s);
    char *ev = malloc(np + ns + 3);
    int rc = -1;
    if (ev) {
        memcpy(ev, prefix, np);
        memcpy(ev + np, s, ns);
        memcpy(ev + np + ns, "\n\n", 2);
        rc = http_sse_raw(c, ev, np + ns + 2);
        free(ev);
    }
    cJSON_free(s);
    return rc;
}

int text_append(text_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

void text_free(text_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
