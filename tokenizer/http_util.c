/* http_util.c - HTTP helpers for the API files (see http_util.h). */
#include "http_util.h"
#include "http_server.h"
#include "http_resp.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void http_send_json(http_conn *c, int status, const char *body, const char *extra)
{
    http_resp_head(c, status, "application/json", (long long)strlen(body), extra);
    http_write(c, body, strlen(body));
}

void http_send_cjson(http_conn *c, int status, cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    http_send_json(c, status, s ? s : "{}", status == 503 ? "Retry-After: 1\r\n" : NULL);
    cJSON_free(s);
    cJSON_Delete(j);
}

int http_send_error(http_conn *c, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    http_send_cjson(c, status, o);
    return status;
}

long http_read_body(http_conn *c, char **out)
{
    char *body = c->body.p ? c->body.p : strdup("");
    if (!body)
        return -500;
    long n = (long)c->body.n;
    c->body = (text_buf){0}; /* the caller's now */
    *out = body;
    return n;
}

const char *http_body_error(long rc)
{
    switch (rc) {
    case -408: return "the request body did not arrive in time";
    case -413: return "request body too large";
    case -500: return "out of memory";
    default: return "cannot read the body: it is incomplete, or its chunked encoding is malformed";
    }
}

void http_sse_begin(http_conn *c)
{
    /* HTTP/1.0 has no chunked encoding: the events go out raw and the close ends the answer */
    http_resp_head(c, 200, "text/event-stream", http_is_10(c) ? -2 : -1, "Cache-Control: no-cache\r\n");
}

int http_sse_raw(http_conn *c, const char *s, size_t n)
{
    if (http_is_10(c))
        return n == 0 ? 0 : http_write(c, s, n);
    return http_write_chunk(c, s, n);
}

int http_sse_send(http_conn *c, const char *prefix, cJSON *j)
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
