/* http_resp.c - answer heads: framing, CORS, keep-alive (see http_resp.h). */
#include "http_resp.h"
#include "http_conn.h"

#include <civetweb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static http_resp_opts P;
static atomic_int n_idle; /* connections kept open after an answer, waiting for a request */

/* per connection: a civetweb thread serves one connection at a time */
static __thread int body_read, must_close, counted_idle;
static __thread http_deadline discard;

void http_resp_init(const http_resp_opts *o) { P = *o; }

int http_resp_idle(void) { return atomic_load(&n_idle); }

static void idle_uncount(void)
{
    if (counted_idle) {
        atomic_fetch_sub(&n_idle, 1);
        counted_idle = 0;
    }
}

void http_resp_conn_begin(void)
{
    body_read = must_close = counted_idle = 0;
    memset(&discard, 0, sizeof discard);
}

void http_resp_request_begin(struct mg_connection *c)
{
    idle_uncount();
    http_deadline_disarm(&discard);
    body_read = must_close = 0;
}

void http_resp_conn_end(void)
{
    idle_uncount();
    http_deadline_disarm(&discard);
}

void http_resp_body_read(void) { body_read = 1; }

/* 1 when the comma-separated list V holds TOKEN (case-insensitive) */
static int has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (v && *v) {
        v += strspn(v, " \t,");
        size_t k = strcspn(v, ",");
        size_t len = k;
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (len == n && !strncasecmp(v, token, n))
            return 1;
        v += k;
    }
    return 0;
}

void http_resp_close(struct mg_connection *c)
{
    must_close = 1;
    /* civetweb 1.15 keeps a connection open unless the request's Connection header (looked
     * up in this same table) says otherwise; set it, or add it (http_frame_check refuses a
     * request whose headers fill the table, so there is room unless it is being refused) */
    struct mg_request_info *ri = (struct mg_request_info *)mg_get_request_info(c);
    if (!ri || ri->num_headers < 0 || ri->num_headers > MG_MAX_HEADERS)
        return; /* a request civetweb could not parse: it closes the connection itself */
    for (int i = 0; i < ri->num_headers; i++)
        if (!strcasecmp(ri->http_headers[i].name, "Connection")) {
            ri->http_headers[i].value = "close";
            return;
        }
    int k = ri->num_headers < MG_MAX_HEADERS ? ri->num_headers++ : MG_MAX_HEADERS - 1;
    ri->http_headers[k].name = "Connection";
    ri->http_headers[k].value = "close";
}

/* The request has a body (a length above 0, or a Transfer-Encoding) */
static int has_body(struct mg_connection *c)
{
    return mg_get_request_info(c)->content_length > 0 || mg_get_header(c, "Transfer-Encoding");
}

/* 1 when the connection may stay open after an answer of LENGTH (see http_resp.h) */
static int keep_alive(struct mg_connection *c, long long length)
{
    if (must_close || P.keep_alive_ms <= 0 || length == -2)
        return 0;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *conn = mg_get_header(c, "Connection");
    int client = conn ? has_token(conn, "keep-alive") : ri->http_version && !strcmp(ri->http_version, "1.1");
    if (!client)
        return 0;
    if (!body_read && has_body(c))
        return 0;
    int busy = P.busy ? atomic_load(P.busy) : 0;
    return counted_idle || atomic_load(&n_idle) + busy < P.max_held;
}

int http_resp_origin_allowed(struct mg_connection *c)
{
    const char *origin = mg_get_header(c, "Origin");
    for (int i = 0; i < P.n_origins; i++)
        if (!strcmp(P.origins[i], "*") || (origin && !strcmp(P.origins[i], origin)))
            return 1;
    return 0;
}

/* CORS headers of every answer: any origin ("*"), or the request's when it is allowed */
static void cors_headers(struct mg_connection *c, char *out, size_t n)
{
    const char *origin = mg_get_header(c, "Origin");
    int any = 0;
    for (int i = 0; i < P.n_origins; i++)
        any |= !strcmp(P.origins[i], "*");
    out[0] = 0;
    if (any)
        snprintf(out, n, "Access-Control-Allow-Origin: *\r\n");
    else if (origin && http_resp_origin_allowed(c) && !strpbrk(origin, "\r\n"))
        snprintf(out, n, "Access-Control-Allow-Origin: %.256s\r\nVary: Origin\r\n", origin);
    else if (P.n_origins) /* the answer depends on Origin: caches must keep them apart */
        snprintf(out, n, "Vary: Origin\r\n");
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void http_resp_head(struct mg_connection *c, int status, const char *content_type, long long length,
                    const char *extra)
{
    char framing[64] = "", cors[400], alive[64];
    if (length >= 0)
        snprintf(framing, sizeof framing, "Content-Length: %lld\r\n", length);
    else if (length == -1)
        snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n");
    cors_headers(c, cors, sizeof cors);
    if (keep_alive(c, length)) {
        snprintf(alive, sizeof alive, "Connection: keep-alive\r\nKeep-Alive: timeout=%d\r\n",
                 (P.keep_alive_ms + 999) / 1000);
        if (!counted_idle) { /* from now until its next request or its close */
            counted_idle = 1;
            atomic_fetch_add(&n_idle, 1);
        }
    } else {
        snprintf(alive, sizeof alive, "Connection: close\r\n");
        if (!body_read && has_body(c)) { /* civetweb drops the unread body first */
            http_deadline_disarm(&discard);
            http_deadline_arm(&discard, http_conn_fd(c), HTTP_DISCARD_MS);
        }
        http_resp_close(c);
        idle_uncount();
    }
    mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s%s\r\n", status, reason_phrase(status),
              content_type, framing, cors, alive, extra ? extra : "");
}
