/* http_resp.c - answer heads: framing, CORS, keep-alive (see http_resp.h). */
#include "http_resp.h"
#include "http_server.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static http_resp_opts P;

void http_resp_init(const http_resp_opts *o) { P = *o; }

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

/* 1 when the connection may stay open after an answer of LENGTH (see http_resp.h); the
 * front end reads the decision from C */
static int keep_alive(http_conn *c, long long length)
{
    const char *conn = http_header(c, "Connection");
    int client = conn ? has_token(conn, "keep-alive") : c->major == 1 && c->minor == 1;
    c->keep = client && !c->must_close && P.keep_alive_ms > 0 && length != -2 &&
              (!c->has_body || c->body_done) && strcmp(c->method, "HEAD");
    if (!c->keep)
        c->must_close = 1;
    return c->keep;
}

int http_resp_origin_allowed(http_conn *c)
{
    const char *origin = http_header(c, "Origin");
    for (int i = 0; i < P.n_origins; i++)
        if (!strcmp(P.origins[i], "*") || (origin && !strcmp(P.origins[i], origin)))
            return 1;
    return 0;
}

/* CORS headers of every answer: any origin ("*"), or the request's when it is allowed */
static void cors_headers(http_conn *c, char *out, size_t n)
{
    const char *origin = http_header(c, "Origin");
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
    case 505: return "HTTP Version Not Supported";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void http_resp_head(http_conn *c, int status, const char *content_type, long long length,
                    const char *extra)
{
    char framing[64] = "", cors[400], alive[64];
    if (length >= 0)
        snprintf(framing, sizeof framing, "Content-Length: %lld\r\n", length);
    else if (length == -1)
        snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n");
    cors_headers(c, cors, sizeof cors);
    if (keep_alive(c, length))
        snprintf(alive, sizeof alive, "Connection: keep-alive\r\nKeep-Alive: timeout=%d\r\n",
                 (P.keep_alive_ms + 999) / 1000);
    else
        snprintf(alive, sizeof alive, "Connection: close\r\n");
    http_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s%s\r\n", status, reason_phrase(status),
                content_type, framing, cors, alive, extra ? extra : "");
}
