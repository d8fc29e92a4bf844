/* test_http_queue.c - end to end: requests beyond the HTTP handler threads wait their turn
 * (tokenizer/http_pool.c's queue), against the real server (four processes, stories15M on the
 * reference backend, --http-threads 4 --http-queue 20).
 *
 *   - 24 concurrent requests (4 threads, 20 waiting): every one 200 with the text it gets
 *     alone; cinder_http_requests_waiting shows the queue meanwhile, /health answers at once;
 *   - past the bound: with 4 running and 20 waiting, more requests get 503 + Retry-After at
 *     once, and the 24 are still served;
 *   - clients that hang up while they wait: never run (no tokens generated for them, counted
 *     as aborts), the queue empties;
 *   - the tokenizer stopping while requests wait: each waiting one gets a 503;
 *   - --max-queue 3 (a launch of its own): 3 may wait for a thread, the next gets 503 at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"
#include "load.h"
#include "prom.h"

#define THREADS 4   /* --http-threads */
#define QUEUE 20    /* --http-queue */
#define N_ALL (THREADS + QUEUE)

static cluster C;

#define QUEUE_ARGS "--http-threads 4 --http-queue 20"

/* a launch of its own for each test, with the launch.sh arguments in *STATE */
static int start(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    return cluster_start(&C, *state);
}

static int stop(void **state)
{
    cluster_stop(&C);
    return 0;
}

static double waiting(void) { return cluster_metric(&C, "cinder_http_requests_waiting"); }
static double running(void) { return cluster_metric(&C, "cinder_num_requests_running"); }

/* Waits up to MS for the HTTP queue to hold N: 0, or -1 (printed) */
static int await_waiting(int n, int ms)
{
    double t0 = cluster_now_ms(), w = -1;
    while (cluster_now_ms() - t0 < ms && (w = waiting()) != n)
        usleep(5000);
    if (w != n)
        printf("# the HTTP queue holds %.0f, not %d, after %d ms\n", w, n, ms);
    return w == n ? 0 : -1;
}

/* Waits up to 5 s (scaled) for the handlers to hold N slots: every thread taken once N
 * counts the slots of THREADS requests */
static void await_slots(int n)
{
    double t0 = cluster_now_ms();
    while (cluster_now_ms() - t0 < SCALED_MS(5000) && cluster_active_slots(&C) != n)
        usleep(5000);
    assert_int_equal(cluster_active_slots(&C), n);
}

/* cinder_requests_total{outcome=OUTCOME} */
static double outcome_count(const char *outcome)
{
    http_resp r;
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    http_request(C.port, "GET", "/metrics", NULL, &r);
    double v = r.status == 200 ? prom_value(r.body, "cinder_requests_total", labels) : -1;
    http_resp_free(&r);
    return v;
}

/* GET /health: its status, *MS the time it took */
static int health(double *ms)
{
    double t0 = cluster_now_ms();
    http_resp r;
    http_request(C.port, "GET", "/health", NULL, &r);
    *ms = cluster_now_ms() - t0;
    int status = r.status;
    http_resp_free(&r);
    return status;
}

static const char *const prompts[] = {"Once upon a time", "One day", "Lily saw a dog", "The sun was",
                                      "Tom had a red ball", "In the park"};

static void test_queued_requests_all_served(void **state)
{
    enum { MAX_NEW = 48 };
    load_job alone[6] = {0}, jobs[N_ALL] = {0};
    for (int i = 0; i < 6; i++) { /* one at a time: each prompt's own text */
        alone[i] = (load_job){.prompt = prompts[i], .max_new = MAX_NEW};
        load_run(&C, &alone[i], 1);
        assert_int_equal(alone[i].status, 200);
    }
    for (int i = 0; i < N_ALL; i++)
        jobs[i] = (load_job){.prompt = prompts[i % 6], .max_new = MAX_NEW, .stream = i % 2};
    void *h = load_start(&C, jobs, N_ALL);
    double most = 0, health_ms = 0, t0 = cluster_now_ms();
    int health_status = 0;
    while (cluster_now_ms() - t0 < SCALED_MS(3000)) { /* the queue at its longest, and /health then */
        double w = waiting();
        if (w > most)
            most = w;
        if (w >= QUEUE / 2 && !health_status)
            health_status = health(&health_ms);
        if (most > 0 && w == 0)
            break;
        usleep(2000);
    }
    load_join(h);
    int n_ok = 0;
    for (int i = 0; i < N_ALL; i++) {
        int same = jobs[i].status == 200 && jobs[i].text && !strcmp(jobs[i].text, alone[i % 6].text);
        if (!same)
            printf("# request %d: %d %s\n", i, jobs[i].status, jobs[i].error ? jobs[i].error : "");
        n_ok += same;
    }
    printf("# %d requests on %d threads: %d served with their own text; %.0f waited at most; /health %d "
           "in %.0f ms meanwhile\n", N_ALL, THREADS, n_ok, most, health_status, health_ms);
    assert_int_equal(n_ok, N_ALL);
    assert_true(most >= QUEUE / 2);
    assert_int_equal(health_status, 200);
    assert_true(health_ms < 1000);
    assert_int_equal(waiting(), 0);
    load_free(alone, 6);
    load_free(jobs, N_ALL);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

static void test_past_the_bound_503(void **state)
{
    enum { EXTRA = 6 };
    load_job jobs[N_ALL] = {0};
    for (int i = 0; i < N_ALL; i++)
        jobs[i] = (load_job){.prompt = prompts[i % 6], .max_new = 200};
    void *h = load_start(&C, jobs, N_ALL);
    assert_int_equal(await_waiting(QUEUE, SCALED_MS(5000)), 0);
    for (int i = 0; i < EXTRA; i++) {
        double t0 = cluster_now_ms();
        http_resp r;
        http_request(C.port, "POST", i % 2 ? "/v1/completions" : "/generate",
                     i % 2 ? "{\"prompt\":\"Once\",\"max_tokens\":2}" : "{\"inputs\":\"Once\"}", &r);
        double ms = cluster_now_ms() - t0;
        printf("# request past the bound: %d in %.0f ms: %s\n", r.status, ms, r.body ? r.body : "");
        assert_int_equal(r.status, 503);
        assert_true(r.headers && strcasestr(r.headers, "Retry-After:"));
        assert_non_null(strstr(r.body, "queue is full"));
        assert_true(ms < 1000);
        http_resp_free(&r);
    }
    load_join(h);
    int n_ok = 0;
    for (int i = 0; i < N_ALL; i++)
        n_ok += jobs[i].status == 200;
    printf("# %d of the %d in and waiting served\n", n_ok, N_ALL);
    assert_int_equal(n_ok, N_ALL);
    load_free(jobs, N_ALL);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

/* requests that ran to an answer (any finished one is observed in the e2e histogram, an
 * aborted one too; a dropped one never is) */
static double n_finished(void) { return cluster_metric(&C, "cinder_e2e_request_latency_seconds_count"); }

static void test_hangup_while_waiting(void **state)
{
    enum { N_GONE = 8, MAX_NEW = 100 };
    load_job jobs[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        jobs[i] = (load_job){.prompt = prompts[i], .max_new = MAX_NEW};
    double tokens0 = cluster_metric(&C, "cinder_generation_tokens_total"), aborts0 = outcome_count("abort");
    double finished0 = n_finished();
    void *h = load_start(&C, jobs, THREADS);
    await_slots(THREADS); /* the threads taken */
    static const char body[] = "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":200,"
                               "\"ignore_eos\":true}}";
    char req[512];
    int n = snprintf(req, sizeof req, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    int fds[N_GONE];
    for (int i = 0; i < N_GONE; i++) {
        fds[i] = http_connect(C.port);
        assert_true(fds[i] >= 0);
        assert_int_equal(http_send_all(fds[i], req, (size_t)n), 0);
    }
    int queued = await_waiting(N_GONE, SCALED_MS(3000));
    for (int i = 0; i < N_GONE; i++) /* hang up while they wait */
        close(fds[i]);
    load_join(h);
    assert_int_equal(queued, 0);
    int n_ok = 0;
    for (int i = 0; i < THREADS; i++)
        n_ok += jobs[i].status == 200;
    assert_int_equal(n_ok, THREADS);
    /* the served ones counted (metrics follow the answer), the queue taken, every slot back */
    for (int i = 0; i < 300 && n_finished() - finished0 < THREADS; i++)
        usleep(10000);
    assert_int_equal(await_waiting(0, SCALED_MS(3000)), 0);
    assert_int_equal(load_wait_reclaimed(&C), 0);
    usleep(300000); /* a dropped request that ran anyway would be counted by now */
    double generated = cluster_metric(&C, "cinder_generation_tokens_total") - tokens0;
    double aborts = outcome_count("abort") - aborts0, finished = n_finished() - finished0;
    printf("# %d requests dropped while waiting: %.0f finished (%d served), %.0f tokens generated (%d for "
           "those), %.0f aborts\n", N_GONE, finished, THREADS, generated, THREADS * MAX_NEW, aborts);
    assert_true(finished == THREADS);
    assert_true(generated == THREADS * MAX_NEW);
    assert_true(aborts == N_GONE);
    load_free(jobs, THREADS);
}

/* A connection that sent a /generate of N_CHOICES choices of 200 tokens (16: a thread busy
 * for seconds on the reference backend), unanswered yet */
static int send_long(int n_choices)
{
    char body[256], req[512];
    snprintf(body, sizeof body, "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":200,"
             "\"ignore_eos\":true,\"n\":%d}}", n_choices);
    int n = snprintf(req, sizeof req, "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    int fd = http_connect(C.port);
    assert_true(fd >= 0);
    assert_int_equal(http_send_all(fd, req, (size_t)n), 0);
    return fd;
}

/* the tokenizer stops (a restart) while requests wait: each gets a 503 */
static void test_stop_answers_waiting(void **state)
{
    enum { N_WAIT = 6 };
    int fds[THREADS];
    for (int i = 0; i < THREADS; i++) /* these run ... */
        fds[i] = send_long(16);
    await_slots(16 * THREADS);
    load_job jobs[N_WAIT] = {0};
    for (int i = 0; i < N_WAIT; i++)
        jobs[i] = (load_job){.prompt = prompts[i % 6], .max_new = 8};
    void *w = load_start(&C, jobs, N_WAIT);
    assert_int_equal(await_waiting(N_WAIT, SCALED_MS(3000)), 0); /* ... these wait */
    assert_int_equal(cluster_restart(&C, "tokenizer", "TERM"), 0);
    load_join(w);
    for (int i = 0; i < THREADS; i++)
        close(fds[i]);
    int n_503 = 0;
    for (int i = 0; i < N_WAIT; i++) {
        int ok = jobs[i].status == 503 && jobs[i].error && strstr(jobs[i].error, "stopping");
        if (!ok)
            printf("# waiting request %d: %d %s\n", i, jobs[i].status, jobs[i].error ? jobs[i].error : "");
        n_503 += ok;
    }
    printf("# the tokenizer stopped: %d of %d waiting requests got 503\n", n_503, N_WAIT);
    assert_int_equal(n_503, N_WAIT);
    load_free(jobs, N_WAIT);
    http_resp r; /* the new tokenizer serves */
    for (int i = 0; i < 100; i++) {
        http_request(C.port, "POST", "/generate", "{\"inputs\":\"Once\"}", &r);
        if (r.status == 200)
            break;
        http_resp_free(&r);
        usleep(100000);
    }
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

/* --max-queue counts the requests waiting for a thread with the router's queue */
static void test_max_queue_counts_waiting(void **state)
{
    enum { N_WAIT = 3 };
    int fds[THREADS];
    for (int i = 0; i < THREADS; i++) { /* the threads taken, all running: the router queues none */
        fds[i] = send_long(1);
        double t0 = cluster_now_ms();
        while (cluster_now_ms() - t0 < SCALED_MS(3000) && running() != i + 1)
            usleep(2000);
    }
    assert_true(running() == THREADS);
    load_job jobs[N_WAIT] = {0};
    for (int i = 0; i < N_WAIT; i++)
        jobs[i] = (load_job){.prompt = prompts[i], .max_new = 8};
    void *w = load_start(&C, jobs, N_WAIT);
    assert_int_equal(await_waiting(N_WAIT, SCALED_MS(3000)), 0);
    double waiting_all = cluster_metric(&C, "cinder_num_requests_waiting");
    http_resp r;
    http_request(C.port, "POST", "/generate", "{\"inputs\":\"Once\"}", &r);
    printf("# with %d waiting for a thread (%.0f waiting in all): %d %s\n", N_WAIT, waiting_all, r.status,
           r.body ? r.body : "");
    assert_int_equal(r.status, 503);
    assert_true(r.headers && strcasestr(r.headers, "Retry-After:"));
    http_resp_free(&r);
    assert_true(waiting_all == N_WAIT);
    load_join(w);
    for (int i = 0; i < N_WAIT; i++)
        assert_int_equal(jobs[i].status, 200);
    for (int i = 0; i < THREADS; i++) {
        http_await(fds[i], SCALED_MS(60000), &r);
        close(fds[i]);
        assert_int_equal(r.status, 200);
        http_resp_free(&r);
    }
    load_free(jobs, N_WAIT);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_queued_requests_all_served, start, stop, QUEUE_ARGS),
        cmocka_unit_test_prestate_setup_teardown(test_past_the_bound_503, start, stop, QUEUE_ARGS),
        cmocka_unit_test_prestate_setup_teardown(test_hangup_while_waiting, start, stop, QUEUE_ARGS),
        cmocka_unit_test_prestate_setup_teardown(test_stop_answers_waiting, start, stop, QUEUE_ARGS),
        cmocka_unit_test_prestate_setup_teardown(test_max_queue_counts_waiting, start, stop,
                                                 "--http-threads 4 --max-queue 3"),
    };
    if (getenv("CMOCKA_FILTER"))
        cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
    return cmocka_run_group_tests_name("e2e_http_queue", tests, NULL, NULL);
}
