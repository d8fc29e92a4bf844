/* test_http_faults.c - end to end: clients that misbehave at the connection level, against
 * the real server (four processes, stories15M on the reference backend, --http-threads 32).
 *
 *   - clients that close their socket right after sending a non-streaming request: the work
 *     stops (few tokens generated) and the next request is served at once.
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

static double metric(const char *name)
{
    http_resp r;
    http_request(C.port, "GET", "/metrics", NULL, &r);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p && (p = strstr(p, name)); p += n)
        if ((p == r.body || p[-1] == '\n') && p[n] == ' ') {
            v = atof(p + n + 1);
            break;
        }
    http_resp_free(&r);
    return v;
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
    double before = metric("cinder_generation_tokens_total");
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
    double generated = metric("cinder_generation_tokens_total") - before - 4;
    printf("# %d abandoned requests generated %.0f tokens (%d if run to the end); the next request took "
           "%.0f ms\n", N, generated, N * MAX_NEW, ms);
    assert_int_equal(status, 200);
    assert_int_equal(cluster_active_slots(&C), 0);
    assert_true(generated < N * MAX_NEW / 4);
    assert_true(ms < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gone_clients_stop_generating),
    };
    if (getenv("CMOCKA_FILTER")) /* e.g. CMOCKA_FILTER='test_http10*' */
        cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
    return cmocka_run_group_tests_name("e2e_http_faults", tests, setup, teardown);
}
