/* http_parse.c - a request off a connection's bytes (see http_parse.h). */
#include "http_parse.h"
#include "http_util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define C_OF(p) ((http_conn *)(p)->data)

static int refuse(http_conn *c, int status, const char *msg)
{
    c->err = status;
    c->err_msg = msg;
    return -1;
}

/* appends N bytes of P to C's head[] */
static int head_put(http_conn *c, const char *p, size_t n)
{
    if (c->head.n + n + 1 > HTTP_MAX_HEAD)
        return refuse(c, 431, "the request line and headers are too large");
    return text_append(&c->head, p, n) ? refuse(c, 500, "out of memory") : 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = C_OF(p);
    c->begun = 1;
    http_server_deadline(c, HTTP_HEAD_DEADLINE_MS); /* the whole header from its first byte */
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) { return head_put(C_OF(p), at, n); }

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn *c = C_OF(p);
    if (c->hstate != 1) { /* a new header line (the parser hands a name over in pieces) */
        if (head_put(c, "", 1))
            return -1;
        if (c->n_hdr == HTTP_MAX_HEADERS)
            return refuse(c, 431, "too many header lines");
        c->hdr_off[c->n_hdr][0] = c->head.n;
        c->hdr_off[c->n_hdr][1] = SIZE_MAX;
        c->n_hdr++;
        c->hstate = 1;
    }
    return head_put(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn *c = C_OF(p);
    if (c->hstate != 2) {
        if (head_put(c, "", 1))
            return -1;
        c->hdr_off[c->n_hdr - 1][1] = c->head.n;
        c->hstate = 2;
    }
    return head_put(c, at, n);
}

/* HOST (LEN bytes; an IPv6 literal without its brackets) names this end of C */
static int host_is_local(const http_conn *c, const char *host, size_t len)
{
    if (len == 9 && !strncasecmp(host, "localhost", 9))
        return 1;
    struct sockaddr_storage a;
    socklen_t n = sizeof a;
    char mine[INET6_ADDRSTRLEN] = "";
    if (getsockname(c->fd, (struct sockaddr *)&a, &n))
        return 0;
    if (a.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, mine, sizeof mine);
    else if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, mine, sizeof mine);
    return strlen(mine) == len && !strncasecmp(mine, host, len);
}

/* The path of C's target (from head[0]) appended to head[]: its offset, or -1 when the
 * target is not a path on this server (C->foreign) */
static long target_path(http_conn *c, size_t n_url)
{
    const char *url = c->head.p;
    size_t off = 0, len = 0;
    if (url[0] == '/') {
        len = strcspn(url, "?#");
    } else {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, n_url, 0, &u) || !(u.field_set & (1 << UF_HOST)))
            return -1;
        int port = u.field_set & (1 << UF_PORT) ? u.port : 80;
        if (!http_server_port_is(c, port) ||
            !host_is_local(c, url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len))
            return -1;
        if (u.field_set & (1 << UF_PATH)) {
            off = u.field_data[UF_PATH].off;
            len = u.field_data[UF_PATH].len;
        }
    }
    char *copy = len ? strndup(url + off, len) : strdup("/"); /* head[] may move as it grows */
    long at = (long)c->head.n;
    int rc = !copy || head_put(c, copy, strlen(copy)) || head_put(c, "", 1);
    free(copy);
    return rc ? -2 : at;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = C_OF(p);
    size_t n_url = c->n_hdr ? c->hdr_off[0][0] - 1 : c->head.n;
    if (head_put(c, "", 1))
        return -1;
    long path = target_path(c, n_url);
    if (path == -2)
        return -1;
    c->foreign = path < 0;
    c->url = c->head.p;
    c->path = path < 0 ? "" : c->head.p + path;
    for (int i = 0; i < c->n_hdr; i++) {
        c->hdr[i][0] = c->head.p + c->hdr_off[i][0];
        c->hdr[i][1] = c->hdr_off[i][1] == SIZE_MAX ? "" : c->head.p + c->hdr_off[i][1];
    }
    c->n_ready = c->n_hdr;
    snprintf(c->method, sizeof c->method, "%s", http_method_str((enum http_method)p->method));
    c->major = p->http_major;
    c->minor = p->http_minor;
    c->chunked = (p->flags & F_CHUNKED) != 0;
    c->has_body = c->chunked || (p->content_length != ULLONG_MAX && p->content_length > 0);
    if (http_route_head(c)) { /* answered: the body (if any) is not read */
        c->answered = 1;
        if (c->has_body)
            http_parser_pause(p, 1);
        return 0;
    }
    if (c->has_body) {
        c->state = CONN_BODY;
        http_server_deadline(c, HTTP_BODY_DEADLINE_MS);
        http_server_flush(c); /* a 100 Continue */
    }
    return 0;
}

/* a chunk's size line: a body that this chunk would take past the limit is refused now */
static int on_chunk_header(http_parser *p)
{
    http_conn *c = C_OF(p);
    if (p->content_length > HTTP_MAX_BODY - c->body.n)
        return refuse(c, 413, http_body_error(-413));
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn *c = C_OF(p);
    size_t cap = c->body.cap;
    if (n > HTTP_MAX_BODY - c->body.n)
        return refuse(c, 413, http_body_error(-413));
    if (text_append(&c->body, at, n))
        return refuse(c, 500, "out of memory");
    if (c->body.cap > cap && http_server_hold_body(c, c->body.cap - cap))
        return refuse(c, 503, "the server holds too many request bodies; retry later");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = C_OF(p);
    c->body_done = 1;
    http_parser_pause(p, 1); /* one request at a time: what follows waits in C->in */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

void http_parse_reset(http_conn *c)
{
    text_free(&c->head);
    text_free(&c->body);
    char *in = c->in;
    size_t n_in = c->n_in;
    size_t keep = offsetof(http_conn, head);
    memset((char *)c + keep, 0, sizeof *c - keep);
    c->in = in;
    c->n_in = n_in;
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
}

/* status and message for a request the parser refused with E */
static int parse_error(http_conn *c, enum http_errno e, const char **msg)
{
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete && c->err) {
        *msg = c->err_msg;
        return c->err;
    }
    switch (e) {
    case HPE_HEADER_OVERFLOW: *msg = "the request line and headers are too large"; return 431;
    case HPE_INVALID_METHOD: *msg = "unknown request method"; return 400;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        *msg = "Content-Length must appear once, and never with Transfer-Encoding";
        return 400;
    case HPE_INVALID_CONTENT_LENGTH:
        if (c->chunked) { /* a chunk size past 2^64 */
            *msg = http_body_error(-413);
            return 413;
        }
        *msg = "Content-Length must be a decimal number";
        return 400;
    case HPE_INVALID_TRANSFER_ENCODING: *msg = "only Transfer-Encoding: chunked is supported"; return 400;
    case HPE_INVALID_CHUNK_SIZE: *msg = http_body_error(-400); return 400;
    default:
        snprintf(c->err_buf, sizeof c->err_buf, "malformed request: %s", http_errno_description(e));
        *msg = c->err_buf;
        return 400;
    }
}

void http_parse_feed(http_conn *c, const char *data, size_t n)
{
    size_t k = http_parser_execute(&c->p, &settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (e == HPE_PAUSED) {
        if (k < n && !c->must_close) { /* the next request's first bytes */
            char *in = realloc(c->in, c->n_in + n - k);
            if (in) {
                memcpy(in + c->n_in, data + k, n - k);
                c->in = in;
                c->n_in += n - k;
            }
        }
        http_server_request_ready(c);
    } else if (e != HPE_OK) {
        const char *msg;
        int status = parse_error(c, e, &msg);
        http_server_answer_error(c, status, msg);
    }
}
