/* test_serving_http.c - bench-serving's HTTP response and server-sent-events parsers
 * (bench/serving_http.c) on responses split at random places, as a socket delivers them:
 * chunked with random chunk sizes, Content-Length, body to the close, interim 100 responses;
 * malformed and truncated responses fail; SSE line endings, comments, multi-line data.
 * Random inputs, seed printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../bench/serving.h"

static sv_rng R;

typedef struct {
    sv_buf body;
    int n_events;
    sv_buf events; /* each event's data followed by '|' */
} sink;

static void on_body(void *ctx, const char *p, size_t n) { strbuf_add(&((sink *)ctx)->body, p, n); }

static void on_event(void *ctx, const char *d, size_t n)
{
    sink *s = ctx;
    s->n_events++;
    strbuf_add(&s->events, d, n);
    strbuf_add(&s->events, "|", 1);
}

static void sink_free(sink *s)
{
    sv_buf_free(&s->body);
    sv_buf_free(&s->events);
}

/* Feeds the N bytes of RAW in random pieces (1 byte up to the whole); the last result. */
static int feed_random(sv_http *h, const char *raw, size_t n)
{
    int rc = SV_HTTP_MORE;
    for (size_t i = 0; i < n && rc == SV_HTTP_MORE;) {
        size_t k = 1 + (size_t)sv_rng_int(&R, 0, sv_rng_int(&R, 0, 1) ? 8 : (int)(n - i));
        if (k > n - i)
            k = n - i;
        rc = sv_http_feed(h, raw + i, k);
        i += k;
    }
    return rc;
}

/* A random SSE body: N_EV events of random printable data, separators LF / CRLF / CR. */
static void random_sse(sv_buf *body, sv_buf *want, int n_ev)
{
    static const char *const eol[] = {"\n", "\r\n", "\r"};
    for (int e = 0; e < n_ev; e++) {
        const char *nl = eol[sv_rng_int(&R, 0, 2)];
        int len = sv_rng_int(&R, 0, 300);
        char data[301];
        for (int i = 0; i < len; i++)
            data[i] = (char)sv_rng_int(&R, 32, 126);
        data[len] = 0;
        if (sv_rng_int(&R, 0, 3) == 0) { /* a comment line first */
            strbuf_add(body, ": keep-alive", 12);
            strbuf_add(body, nl, strlen(nl));
        }
        int space = sv_rng_int(&R, 0, 1); /* "data: x" and "data:x" mean the same */
        strbuf_add(body, "data: ", space ? 6 : 5);
        strbuf_add(body, data, (size_t)len);
        strbuf_add(body, nl, strlen(nl));
        strbuf_add(body, nl, strlen(nl));
        int drop = !space && len && data[0] == ' '; /* without one, a leading space is the one dropped */
        strbuf_add(want, data + drop, (size_t)(len - drop));
        strbuf_add(want, "|", 1);
    }
}

static void test_chunked_random_splits(void **state)
{
    for (int trial = 0; trial < 200; trial++) {
        sv_buf body = {0}, want = {0}, raw = {0};
        int n_ev = sv_rng_int(&R, 1, 40);
        random_sse(&body, &want, n_ev);
        const char *hdr = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        strbuf_add(&raw, hdr, strlen(hdr));
        for (size_t i = 0; i < body.n;) {
            size_t k = (size_t)sv_rng_int(&R, 1, 700);
            if (k > body.n - i)
                k = body.n - i;
            char line[32];
            int m = snprintf(line, sizeof line, sv_rng_int(&R, 0, 1) ? "%zx\r\n" : "%zX;ext=1\r\n", k);
            strbuf_add(&raw, line, (size_t)m);
            strbuf_add(&raw, body.p + i, k);
            strbuf_add(&raw, "\r\n", 2);
            i += k;
        }
        strbuf_add(&raw, "0\r\nX-Trailer: 1\r\n\r\n", 20);
        sink s = {0};
        sv_sse sse;
        sv_sse_init(&sse, on_event, &s);
        sv_http h;
        sv_http_init(&h, on_body, &s);
        assert_int_equal(feed_random(&h, raw.p, raw.n), SV_HTTP_DONE);
        assert_int_equal(h.status, 200);
        assert_true(h.chunked);
        assert_int_equal(s.body.n, body.n);
        assert_memory_equal(s.body.p, body.p, body.n);
        /* the events, from the body fed in small pieces */
        for (size_t i = 0; i < s.body.n;) {
            size_t k = 1 + (size_t)sv_rng_int(&R, 0, 50);
            k = k > s.body.n - i ? s.body.n - i : k;
            sv_sse_feed(&sse, s.body.p + i, k);
            i += k;
        }
        assert_int_equal(s.n_events, n_ev);
        assert_int_equal(s.events.n, want.n);
        assert_memory_equal(s.events.p, want.p, want.n);
        sv_sse_free(&sse);
        sv_http_free(&h);
        sink_free(&s);
        sv_buf_free(&want);
        sv_buf_free(&body);
        sv_buf_free(&raw);
    }
}

static void test_sse_rules(void **state)
{
    const char *text = "data:a\r\n\r\n: comment\n\ndata: b\ndata:  c\n\nevent: x\nid: 3\ndata\n\n"
                       "retry: 5\n\ndata: last\r\r";
    sink s = {0};
    sv_sse sse;
    sv_sse_init(&sse, on_event, &s);
    for (size_t i = 0; i < strlen(text); i++) /* byte by byte: CR LF split across feeds */
        sv_sse_feed(&sse, text + i, 1);
    assert_int_equal(s.n_events, 4);
    assert_string_equal(s.events.p, "a|b\n c||last|");
    sv_sse_free(&sse);
    sink_free(&s);
}

static int feed_all(const char *raw, sink *s, sv_http *h, int eof)
{
    sv_http_init(h, on_body, s);
    int rc = feed_random(h, raw, strlen(raw));
    if (rc == SV_HTTP_MORE && eof)
        rc = sv_http_eof(h);
    return rc;
}

static void test_framings(void **state)
{
    sink s = {0};
    sv_http h;
    assert_int_equal(feed_all("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloEXTRA", &s, &h, 0), SV_HTTP_DONE);
    assert_string_equal(s.body.p, "hello");
    sv_http_free(&h);
    sink_free(&s);
    /* no length, not chunked: the body ends with the connection */
    assert_int_equal(feed_all("HTTP/1.0 404 Not Found\nX: y\n\n{\"error\": 1}", &s, &h, 1), SV_HTTP_DONE);
    assert_int_equal(h.status, 404);
    assert_string_equal(s.body.p, "{\"error\": 1}");
    sv_http_free(&h);
    sink_free(&s);
    /* an interim 100 Continue, then the answer */
    assert_int_equal(feed_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno",
                              &s, &h, 0), SV_HTTP_DONE);
    assert_int_equal(h.status, 400);
    assert_string_equal(s.body.p, "no");
    sv_http_free(&h);
    sink_free(&s);
    assert_int_equal(feed_all("HTTP/1.1 204 No Content\r\n\r\n", &s, &h, 0), SV_HTTP_DONE);
    sv_http_free(&h);
    sink_free(&s);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "HTTP/2 200\r\n\r\n",                                               /* status line */
        "200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",                          /* header */
        "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",       /* chunk size */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", /* data past the size */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",      /* truncated */
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",                  /* truncated */
        "HTTP/1.1 200 O",                                                    /* truncated */
        "",                                                                  /* nothing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sink s = {0};
        sv_http h;
        int rc = feed_all(bad[i], &s, &h, 1);
        if (rc != SV_HTTP_ERR)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(h.err);
        sv_http_free(&h);
        sink_free(&s);
    }
    /* a line longer than any server sends */
    size_t n = 100000;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = 0;
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    sink s = {0};
    sv_http h;
    assert_int_equal(feed_all(big, &s, &h, 0), SV_HTTP_ERR);
    sv_http_free(&h);
    sink_free(&s);
    free(big);
}

int main(void)
{
    uint64_t seed = (uint64_t)time(NULL);
    printf("# seed %llu\n", (unsigned long long)seed);
    R.s = seed;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_random_splits),
        cmocka_unit_test(test_sse_rules),
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("serving_http", tests, NULL, NULL);
}
