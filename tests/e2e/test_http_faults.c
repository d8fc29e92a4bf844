/* test_http_faults.c - end to end: clients that misbehave at the connection level, against
 * the real server (four processes, stories15M on the reference backend, --http-threads 32).
 *
 *   - clients that close their socket right after sending a non-streaming request: the work
 *     stops (few tokens generated) and the next request is served at once;
 *   - more clients than handler threads dripping their body (1 byte every half second,
 *     Content-Length or chunked): each gets 408 at the body deadline and its connection
 *     closes, and /health, /metrics and a new /generate are answered at once meanwhile;
 *   - more clients than handler threads dripping their headers (1 byte a second): /health and
 *     /generate are not delayed, and each dripper ends at the header deadline;
 *   - HTTP edges: chunk extensions (ignored, RFC 9112 7.1.1), a chunk size past the body
 *     limit (413 at once), pipelined requests on a kept-open connection, Expect:
 *     100-continue, HTTP/1.0 streams (no chunked encoding), absolute-form request targets.
 * Framing cases that need only a status (Content-Length with Transfer-Encoding, conflicting
 * Content-Lengths, ...) are in the bad-input corpus (tests/data/bad_input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

#define THREADS 32          /* --http-threads */
#define BODY_DEADLINE_MS 10000 /* the server's deadline on a whole request body */
#define HEAD_DEADLINE_MS 10000 /* ... and on a whole request header, from its first byte */

static cluster C;

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    return cluster_start(&C, "--http-threads 32");
}

static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Sends the N bytes of RAW on a new connection and awaits the answer for up to TIMEOUT_MS;
 * R as http_await fills it, *MS the time it took. */
static void exchange(const char *raw, size_t n, int timeout_ms, http_resp *r, double *ms)
{
    double t0 = now_ms();
    int fd = http_connect(C.port);
    memset(r, 0, sizeof *r);
    r->status = -1;
    if (fd >= 0) {
        http_send_all(fd, raw, n);
        http_await(fd, timeout_ms, r);
        close(fd);
    }
    if (ms)
        *ms = now_ms() - t0;
}

/* METHOD PATH with BODY (may be NULL), answered within TIMEOUT_MS: its status (-2: none) */
static int quick(const char *method, const char *path, const char *body, int timeout_ms, double *ms)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", method, path,
                     body ? strlen(body) : 0, body ? body : "");
    http_resp r;
    exchange(req, (size_t)n, timeout_ms, &r, ms);
    int status = r.status;
    http_resp_free(&r);
    return status;
}


static int is_json_error(const char *body)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    int ok = cJSON_IsString(e) || cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"));
    cJSON_Delete(j);
    return ok;
}

/* ---- clients that go away */

static void test_gone_clients_stop_generating(void **state)
{
    enum { N = 24, MAX_NEW = 240 };
    static const char body[] = "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":240,"
                               "\"ignore_eos\":true}}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    double before = cluster_metric(&C, "cinder_generation_tokens_total");
    for (int i = 0; i < N; i++) { /* send, and hang up at once */
        int fd = http_connect(C.port);
        assert_true(fd >= 0);
        http_send_all(fd, req, (size_t)n);
        close(fd);
    }
    usleep(300000);
    double ms;
    int status = quick("POST", "/generate", "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":4}}", 60000, &ms);
    for (int i = 0; i < 600 && cluster_active_slots(&C) != 0; i++)
        usleep(100000);
    double generated = cluster_metric(&C, "cinder_generation_tokens_total") - before - 4;
    printf("# %d abandoned requests generated %.0f tokens (%d if run to the end); the next request took "
           "%.0f ms\n", N, generated, N * MAX_NEW, ms);
    assert_int_equal(status, 200);
    assert_int_equal(cluster_active_slots(&C), 0);
    assert_true(generated < N * MAX_NEW / 4);
    assert_true(ms < 5000);
}

/* ---- clients that drip their body */

typedef struct {
    int fd, chunked;
    int status;       /* 0 while unanswered */
    double ms;        /* when the answer came */
    int json;
    int closed;       /* the server closed the connection after its answer */
} drip;

static void drip_answer(drip *d, double t0)
{
    http_resp r;
    http_await(d->fd, 2000, &r);
    d->status = r.status == -2 ? -1 : r.status;
    d->ms = now_ms() - t0;
    d->json = is_json_error(r.body);
    http_resp_free(&r);
    struct pollfd p = {d->fd, POLLIN, 0};
    char c;
    d->closed = poll(&p, 1, 2000) == 1 && recv(d->fd, &c, 1, 0) <= 0;
    close(d->fd);
    d->fd = -1;
}

/* /health, /metrics and a /generate while clients drip: each answered within FAST_MS */
typedef struct {
    int health, metrics, generate;
    double health_ms, metrics_ms, generate_ms;
} probes;

#define FAST_MS 1000

static void probe(probes *p)
{
    p->health = quick("GET", "/health", NULL, 3000, &p->health_ms);
    p->metrics = quick("GET", "/metrics", NULL, 3000, &p->metrics_ms);
    p->generate = quick("POST", "/generate", "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":4}}",
                        SCALED_MS(5000), &p->generate_ms);
    printf("# /health %d in %.0f ms, /metrics %d in %.0f ms, /generate %d in %.0f ms\n", p->health, p->health_ms,
           p->metrics, p->metrics_ms, p->generate, p->generate_ms);
}

static void assert_fast(const probes *p)
{
    assert_int_equal(p->health, 200);
    assert_int_equal(p->metrics, 200);
    assert_int_equal(p->generate, 200);
    assert_true(p->health_ms < FAST_MS && p->metrics_ms < FAST_MS);
    assert_true(p->generate_ms < SCALED_MS(FAST_MS));
}

/* Clients dripping (HEADS[i % N_HEADS], then BYTES[i % N_HEADS] every STEP_MS), more than
 * there are handler threads: probes at 1.5 s and 4 s must be fast; every dripper must get 408
 * with a JSON error between DEADLINE_MS - 1 s and DEADLINE_MS + 3 s, then the close. */
static void drip_many(const char *const *heads, const char *const *bytes, int n_heads, int step_ms, int deadline_ms)
{
    enum { N = THREADS + 8 };
    drip d[N];
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        d[i] = (drip){.fd = http_connect(C.port)};
        assert_true(d[i].fd >= 0);
        http_send_all(d[i].fd, heads[i % n_heads], strlen(heads[i % n_heads]));
    }
    int n_probed = 0, n_open = N;
    probes p[2];
    double last_drip = t0;
    while (n_open > 0 && now_ms() - t0 < deadline_ms + 15000) {
        if (now_ms() - last_drip >= step_ms) { /* one more byte each */
            last_drip = now_ms();
            for (int i = 0; i < N; i++)
                if (d[i].fd >= 0)
                    send(d[i].fd, bytes[i % n_heads], strlen(bytes[i % n_heads]), MSG_NOSIGNAL);
        }
        if (n_probed < 2 && now_ms() - t0 > (n_probed ? 4000 : 1500))
            probe(&p[n_probed++]);
        struct pollfd q[N];
        for (int i = 0; i < N; i++)
            q[i] = (struct pollfd){d[i].fd, POLLIN, 0}; /* fd -1 is skipped */
        if (poll(q, N, 50) > 0)
            for (int i = 0; i < N; i++)
                if (q[i].revents && d[i].fd >= 0) {
                    drip_answer(&d[i], t0);
                    n_open--;
                }
    }
    int n_fail = 0, n_408 = 0;
    for (int i = 0; i < N; i++) {
        int in_time = d[i].ms > deadline_ms - 1000 && d[i].ms < deadline_ms + 3000;
        n_408 += d[i].status == 408;
        if (!in_time || d[i].status != 408 || !d[i].json || !d[i].closed) {
            printf("# FAIL dripping client %d: %s %d after %.0f ms%s\n", i, d[i].fd >= 0 ? "still open," : "answered",
                   d[i].status, d[i].fd >= 0 ? now_ms() - t0 : d[i].ms, d[i].closed ? "" : ", not closed");
            n_fail++;
        }
        if (d[i].fd >= 0)
            close(d[i].fd);
    }
    printf("# %d dripping clients: %d got 408, %d failed\n", N, n_408, n_fail);
    assert_int_equal(n_probed, 2);
    assert_fast(&p[0]);
    assert_fast(&p[1]);
    assert_int_equal(n_fail, 0);
    assert_int_equal(n_408, N);
}

static void test_dripping_bodies(void **state)
{
    static const char *const heads[] = {
        "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n{",
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n{",
        "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
    };
    static const char *const bytes[] = {" ", " ", "1\r\n \r\n"};
    drip_many(heads, bytes, 3, 500, BODY_DEADLINE_MS);
    assert_int_equal(quick("POST", "/generate", "{\"inputs\":\"Once\"}", 30000, NULL), 200);
}

static void test_dripping_headers(void **state)
{
    static const char *const heads[] = {
        "POST /generate HTTP/1.1\r\nHost: x\r\nX-Drip: ",
        "GET /health HTTP/1.1\r\nX-Drip: ",
    };
    static const char *const bytes[] = {"a", "a"};
    drip_many(heads, bytes, 2, 1000, HEAD_DEADLINE_MS);
}

/* ---- HTTP edges */

static const char gen_body[] = "{\"inputs\": \"Once upon a time\", \"parameters\": {\"max_new_tokens\": 3}}";

/* the answer of /generate with GEN_BODY sent with Content-Length */
static char *plain_answer(void)
{
    char req[512];
    int n = snprintf(req, sizeof req, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(gen_body), gen_body);
    http_resp r;
    exchange(req, (size_t)n, 30000, &r, NULL);
    assert_int_equal(r.status, 200);
    char *text = strdup(r.body);
    http_resp_free(&r);
    return text;
}

/* RFC 9112 7.1.1: a recipient MUST ignore unrecognized chunk extensions */
static void test_chunk_extension(void **state)
{
    char req[512];
    int n = snprintf(req, sizeof req, "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "%zx;foo=bar\r\n%s\r\n0;last=\"yes\"\r\n\r\n", strlen(gen_body), gen_body);
    http_resp r;
    exchange(req, (size_t)n, 30000, &r, NULL);
    char *want = plain_answer();
    printf("# chunk extensions: %d %s\n", r.status, r.body ? r.body : "");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
    free(want);
    http_resp_free(&r);
}

/* a chunk size past the body limit: 413 at once, not when the bytes have come */
static void test_huge_chunk(void **state)
{
    static const char *const sizes[] = {"ffffffff", "100001", "fffffffffffffffffffffffff"};
    for (int i = 0; i < 3; i++) {
        double t0 = now_ms();
        int fd = http_connect(C.port);
        assert_true(fd >= 0);
        char head[256];
        int n = snprintf(head, sizeof head, "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                            "%s\r\n{\"inputs\"", sizes[i]);
        http_send_all(fd, head, (size_t)n);
        http_resp r;
        for (int k = 0; k < 10; k++) { /* a trickle follows; the answer must not wait for it */
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 100) == 1)
                break;
            send(fd, " ", 1, MSG_NOSIGNAL);
        }
        http_await(fd, 15000, &r);
        double ms = now_ms() - t0;
        char c;
        ssize_t k = recv(fd, &c, 1, 0);
        close(fd);
        printf("# chunk size %s: %d after %.0f ms, then %s\n", sizes[i], r.status, ms, k == 0 ? "closed" : "open");
        assert_int_equal(r.status, 413);
        assert_true(is_json_error(r.body));
        assert_true(ms < 1000);
        assert_int_equal(k, 0);
        http_resp_free(&r);
    }
}

/* requests sent back to back on one kept-open connection are answered in order */
static void test_pipelining(void **state)
{
    static const char tok[] = "{\"prompt\":\"Once upon a time\"}";
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
                     "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n"
                     "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     strlen(gen_body), gen_body, strlen(tok), tok);
    char *want = plain_answer();
    int fd = http_connect(C.port);
    assert_true(fd >= 0);
    http_send_all(fd, req, (size_t)n);
    char buf[16384];
    size_t got = 0;
    double t0 = now_ms();
    for (;;) { /* to the close after the last answer */
        struct pollfd p = {fd, POLLIN, 0};
        if (got + 1 >= sizeof buf || now_ms() - t0 > 30000 || poll(&p, 1, 1000) < 0)
            break;
        ssize_t k = recv(fd, buf + got, sizeof buf - got - 1, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = 0;
    close(fd);
    const char *p = buf, *seen[4];
    int n_ok = 0;
    while (n_ok < 4 && (p = strstr(p, "HTTP/1.1 200 OK\r\n")))
        seen[n_ok++] = p++;
    printf("# 4 pipelined requests: %d answers 200, %zu bytes\n", n_ok, got);
    assert_int_equal(n_ok, 4);
    assert_null(strstr(p, "HTTP/1.1 "));
    assert_non_null(strstr(seen[0], want)); /* in order */
    assert_true(strstr(seen[0], want) < seen[1]);
    assert_true(strstr(seen[1], "{\"status\":\"ok\"}") < seen[2]);
    assert_true(strstr(seen[2], "\"tokens\"") < seen[3]);
    assert_non_null(strstr(seen[3], "\"version\""));
    free(want);
}

/* ---- HTTP edges */

static void test_expect_continue(void **state)
{
    static const char body[] = "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":2}}";
    char head[256];
    int n = snprintf(head, sizeof head, "POST /generate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                        "Content-Length: %zu\r\n\r\n", strlen(body));
    int fd = http_connect(C.port);
    assert_true(fd >= 0);
    http_send_all(fd, head, (size_t)n);
    struct pollfd p = {fd, POLLIN, 0};
    char interim[64] = "";
    if (poll(&p, 1, 3000) == 1)
        recv(fd, interim, sizeof interim - 1, 0);
    printf("# interim answer: %.25s\n", interim);
    assert_memory_equal(interim, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    http_send_all(fd, body, strlen(body));
    http_resp r;
    http_await(fd, 30000, &r);
    close(fd);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    /* a body that would be refused anyway: the final status at once, no 100 */
    const char *big = "POST /generate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n";
    double ms;
    exchange(big, strlen(big), 3000, &r, &ms);
    assert_int_equal(r.status, 413);
    assert_true(is_json_error(r.body));
    http_resp_free(&r);
    /* an expectation we cannot meet */
    const char *odd = "POST /generate HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}";
    exchange(odd, strlen(odd), 3000, &r, &ms);
    assert_int_equal(r.status, 417);
    assert_true(is_json_error(r.body));
    http_resp_free(&r);
}

/* HTTP/1.0 has no chunked encoding: events go out raw and the close ends the answer */
static void test_http10_stream(void **state)
{
    static const char *const reqs[][2] = {
        {"/generate_stream", "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":3}}"},
        {"/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":3,\"stream\":true}"},
    };
    for (int i = 0; i < 2; i++) {
        char req[512];
        int n = snprintf(req, sizeof req, "POST %s HTTP/1.0\r\nContent-Length: %zu\r\n\r\n%s", reqs[i][0],
                         strlen(reqs[i][1]), reqs[i][1]);
        http_resp r;
        exchange(req, (size_t)n, 30000, &r, NULL);
        printf("# HTTP/1.0 %s: %d, %zu bytes to the close\n", reqs[i][0], r.status, r.body_len);
        assert_int_equal(r.status, 200);
        assert_null(strcasestr(r.headers, "Transfer-Encoding"));
        assert_int_equal(strncmp(r.body, "data:", 5), 0);
        assert_non_null(strstr(r.body, i == 0 ? "\"finished\":true" : "data: [DONE]\n\n"));
        http_resp_free(&r);
    }
}

static void test_absolute_form(void **state)
{
    static const char body[] = "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":2}}";
    char req[512];
    http_resp r;
    /* addressed to this server: served */
    int n = snprintf(req, sizeof req, "POST http://127.0.0.1:%d/generate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                      "Content-Length: %zu\r\n\r\n%s", C.port, C.port, strlen(body), body);
    exchange(req, (size_t)n, 30000, &r, NULL);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    /* addressed elsewhere (a proxy request): refused with an answer, not dropped */
    n = snprintf(req, sizeof req, "POST http://example.com/generate HTTP/1.1\r\nHost: example.com\r\n"
                                  "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    exchange(req, (size_t)n, 30000, &r, NULL);
    assert_int_equal(r.status, 400);
    assert_true(is_json_error(r.body));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gone_clients_stop_generating),
        cmocka_unit_test(test_dripping_bodies),
        cmocka_unit_test(test_dripping_headers),
        cmocka_unit_test(test_chunk_extension),
        cmocka_unit_test(test_huge_chunk),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_http10_stream),
        cmocka_unit_test(test_absolute_form),
    };
    if (getenv("CMOCKA_FILTER")) /* e.g. CMOCKA_FILTER='test_http10*' */
        cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
    return cmocka_run_group_tests_name("e2e_http_faults", tests, setup, teardown);
}
