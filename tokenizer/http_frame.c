/* http_frame.c - request framing and target checks civetweb 1.15 leaves to us (see
 * http_frame.h). RFC 9112 section 6 is the reference: a request whose body length is
 * ambiguous is refused, so that no proxy in front of us reads it differently (smuggling).
 */
#include "http_frame.h"
#include "api.h"
#include "http_resp.h"
#include "http_util.h"

#include <civetweb.h>
#include <string.h>
#include <strings.h>

/* per request (reset by http_frame_check); a civetweb thread serves one connection at a time */
static __thread int answered, continued;

static int is_http10(const struct mg_request_info *ri)
{
    return ri->http_version && !strcmp(ri->http_version, "1.0");
}

/* Header value V without its trailing blanks: its length */
static size_t trimmed_len(const char *v)
{
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n;
}

/* Content-Length value V (1*DIGIT) as its digits without leading zeros: 0 with *P, *N set,
 * or -1 when V is no plain decimal number ("+5", "5, 5", "5x" are refused) */
static int cl_digits(const char *v, const char **p, size_t *n)
{
    size_t len = trimmed_len(v);
    if (!len)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return -1;
    while (len > 1 && *v == '0') {
        v++;
        len--;
    }
    *p = v;
    *n = len;
    return 0;
}

static int refuse(struct mg_connection *c, int status, const char *msg)
{
    const char *uri = mg_get_request_info(c)->local_uri;
    answered = 1;
    http_resp_close(c); /* what follows on this connection cannot be trusted to start a request */
    return (uri && !strncmp(uri, "/v1/", 4) ? api_openai_error : http_send_error)(c, status, msg);
}

int http_frame_check(struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *cl = NULL, *expect = NULL;
    size_t cl_n = 0;
    int n_cl = 0, n_te = 0;
    answered = continued = 0; /* a new request on this connection */
    if (ri->num_headers >= MG_MAX_HEADERS) /* civetweb ignores the lines past these */
        return refuse(c, 431, "too many header lines");
    for (int i = 0; i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *v = ri->http_headers[i].value;
        if (!strcasecmp(name, "Content-Length")) {
            const char *p;
            size_t n;
            if (cl_digits(v, &p, &n))
                return refuse(c, 400, "Content-Length must be a decimal number");
            if (n_cl++ && (n != cl_n || memcmp(p, cl, n)))
                return refuse(c, 400, "conflicting Content-Length headers");
            cl = p;
            cl_n = n;
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            n_te++;
        } else if (!strcasecmp(name, "Expect")) {
            expect = v;
        }
    }
    if (n_te && n_cl)
        return refuse(c, 400, "a request must not have both Content-Length and Transfer-Encoding");
    if (n_te > 1)
        return refuse(c, 400, "more than one Transfer-Encoding header");
    if (n_te && is_http10(ri))
        return refuse(c, 400, "HTTP/1.0 has no Transfer-Encoding");
    /* HTTP/1.0 clients' expectations are ignored (RFC 9110 10.1.1) */
    if (expect && !is_http10(ri) &&
        (trimmed_len(expect) != 12 || strncasecmp(expect, "100-continue", 12)))
        return refuse(c, 417, "only Expect: 100-continue is supported");
    return 0;
}

void http_frame_conn_begin(void)
{
    answered = 0;
    continued = 0;
}

void http_frame_answered(void) { answered = 1; }

void http_frame_conn_end(const struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (answered || !ri || !ri->request_uri || !ri->http_version || ri->local_uri)
        return;
    /* The socket is still open here: the answer goes out before civetweb closes it. */
    answered = 1;
    http_resp_close((struct mg_connection *)c);
    http_send_error((struct mg_connection *)c, 400, "the request target must be a path on this server");
}

void http_frame_continue(struct mg_connection *c)
{
    const char *e = mg_get_header(c, "Expect");
    if (continued || !e || is_http10(mg_get_request_info(c)))
        return;
    continued = 1; /* http_frame_check let only 100-continue through */
    mg_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}
