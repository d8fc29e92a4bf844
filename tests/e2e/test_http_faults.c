/* test_http_faults.c - end to end: clients that misbehave at the connection level, against
 * the real server (four processes, stories15M on the reference backend, --http-threads 32).
 *
 *   - clients that close their socket right after sending a non-streaming request: the work
 *     stops (few tokens generated) and the next request is served at once;
 *   - clients that drip their body (1 byte every half second, Content-Length or chunked),
 *     one per HTTP thread: each ends within the body deadline (408) or is refused at once
 *     (503 + Retry-After), and /health, /metrics and a new /generate are answered meanwhile;
 *   - HTTP edges: Expect: 100-continue, HTTP/1.0 streams (no chunked encoding), absolute-form
 *     request targets.
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
    int json, retry_after;
} drip;

static void drip_answer(drip *d, double t0)
{
    http_resp r;
    http_await(d->fd, 2000, &r);
    d->status = r.status == -2 ? -1 : r.status;
    d->ms = now_ms() - t0;
    d->json = is_json_error(r.body);
    d->retry_after = r.headers && strcasestr(r.headers, "\r\nRetry-After:") != NULL;
    http_resp_free(&r);
    close(d->fd);
    d->fd = -1;
}

static void test_dripping_bodies(void **state)
{
    enum { N = THREADS };
    drip d[N];
    double t0 = now_ms();
    for (int i = 0; i < N; i++) {
        d[i] = (drip){.fd = http_connect(C.port), .chunked = i % 4 == 3};
        assert_true(d[i].fd >= 0);
        const char *head = d[i].chunked
                               ? "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
                               : "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n{";
        http_send_all(d[i].fd, head, strlen(head));
    }
    int probed = 0, health = -2, metrics = -2, generate = -2, n_open = N;
    double health_ms = 0, metrics_ms = 0, generate_ms = 0, last_drip = t0;
    while (n_open > 0 && now_ms() - t0 < BODY_DEADLINE_MS + 15000) {
        if (now_ms() - last_drip >= 500) { /* one more byte each */
            last_drip = now_ms();
            for (int i = 0; i < N; i++)
                if (d[i].fd >= 0)
                    send(d[i].fd, d[i].chunked ? "1\r\n \r\n" : " ", d[i].chunked ? 6 : 1, MSG_NOSIGNAL);
        }
        if (!probed && now_ms() - t0 > 1500) { /* every request thread is taken by now */
            probed = 1;
            health = quick("GET", "/health", NULL, 3000, &health_ms);
            metrics = quick("GET", "/metrics", NULL, 3000, &metrics_ms);
            generate = quick("POST", "/generate", "{\"inputs\":\"Once\"}", 3000, &generate_ms);
        }
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){d[i].fd, POLLIN, 0}; /* fd -1 is skipped */
        if (poll(p, N, 50) > 0)
            for (int i = 0; i < N; i++)
                if (p[i].revents && d[i].fd >= 0) {
                    drip_answer(&d[i], t0);
                    n_open--;
                }
    }
    printf("# while %d clients dripped: /health %d in %.0f ms, /metrics %d in %.0f ms, /generate %d in %.0f ms\n",
           N, health, health_ms, metrics, metrics_ms, generate, generate_ms);
    int n_fail = 0, n_408 = 0, n_503 = 0;
    for (int i = 0; i < N; i++) {
        int refused = d[i].status == 503 && d[i].retry_after && d[i].ms < 2000;
        int timed_out = d[i].status == 408 && d[i].ms > BODY_DEADLINE_MS - 1000 && d[i].ms < BODY_DEADLINE_MS + 4000;
        n_408 += timed_out;
        n_503 += refused;
        if ((!refused && !timed_out) || !d[i].json) {
            printf("# FAIL dripping client %d (%s): %s %d after %.0f ms\n", i, d[i].chunked ? "chunked" : "Content-Length",
                   d[i].fd >= 0 ? "still open," : "answered", d[i].status, d[i].fd >= 0 ? now_ms() - t0 : d[i].ms);
            n_fail++;
        }
        if (d[i].fd >= 0)
            close(d[i].fd);
    }
    printf("# %d timed out (408), %d refused at once (503)\n", n_408, n_503);
    assert_int_equal(health, 200);
    assert_int_equal(metrics, 200);
    assert_true(generate == 503 || generate == 200);
    assert_int_equal(n_fail, 0);
    assert_true(n_408 >= N - 8 && n_503 >= 1);
    assert_int_equal(quick("POST", "/generate", "{\"inputs\":\"Once\"}", 30000, NULL), 200);
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
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_http10_stream),
        cmocka_unit_test(test_absolute_form),
    };
    if (getenv("CMOCKA_FILTER")) /* e.g. CMOCKA_FILTER='test_http10*' */
        cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
    return cmocka_run_group_tests_name("e2e_http_faults", tests, setup, teardown);
}
