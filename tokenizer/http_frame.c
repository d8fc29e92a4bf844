/* http_frame.c - request framing, version and target checks (see http_frame.h). */
#include "http_frame.h"
#include "http_server.h"

#include <string.h>
#include <strings.h>

/* Header value V without its trailing blanks: its length */
static size_t trimmed_len(const char *v)
{
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

static int refuse(http_conn *c, int status, const char *msg)
{
    c->must_close = 1; /* what follows on this connection cannot be trusted to start a request */
    return http_route_error(c, status, msg);
}

int http_frame_check(http_conn *c)
{
    const char *expect = http_header(c, "Expect");
    int n_te = 0;
    if (c->major == 0)
        return refuse(c, 400, "HTTP/0.9 requests are not supported");
    if (c->major != 1)
        return refuse(c, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    if (c->foreign)
        return refuse(c, 400, "the request target must be a path on this server");
    for (int i = 0; i < c->n_ready; i++)
        n_te += !strcasecmp(c->hdr[i][0], "Transfer-Encoding");
    if (n_te > 1)
        return refuse(c, 400, "more than one Transfer-Encoding header");
    if (n_te && http_is_10(c))
        return refuse(c, 400, "HTTP/1.0 has no Transfer-Encoding");
    /* HTTP/1.0 clients' expectations are ignored (RFC 9110 10.1.1) */
    if (expect && !http_is_10(c) && (trimmed_len(expect) != 12 || strncasecmp(expect, "100-continue", 12)))
        return refuse(c, 417, "only Expect: 100-continue is supported");
    return 0;
}

void http_frame_continue(http_conn *c)
{
    if (http_header(c, "Expect") && !http_is_10(c) && c->has_body)
        http_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25); /* http_frame_check let only this through */
}
