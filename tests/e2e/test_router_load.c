/* test_router_load.c - the router under load on the reference backend (real processes).
 *
 * With --max-total-tokens 2048 on stories15M, 64 concurrent greedy requests of up to 100 new
 * tokens cannot all fit: they queue, all complete, and each gets exactly the text it gets
 * alone, while /health stays up. Then the same with --new-token-ratio 0.2, which admits too
 * much on purpose so that requests are preempted and recomputed: same texts. A client that
 * hangs up mid-stream has its KV blocks back within a couple of iterations, and a full
 * queue answers 503 with Retry-After.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

#define N_REQ 64
static char *alone[N_REQ];
static char bodies[N_REQ][256];

static char *generate_text(const cluster *c, const char *body)
{
    http_resp r;
    http_request(c->port, "POST", "/generate", body, &r);
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    cJSON *t = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0) : NULL;
    char *s = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(j);
    http_resp_free(&r);
    return s;
}

typedef struct {
    const cluster *c;
    int i;
    char *text;
} job;

static void *job_main(void *arg)
{
    job *j = arg;
    j->text = generate_text(j->c, bodies[j->i]);
    return NULL;
}

static _Atomic int load_running;   /* the health thread polls while set */
static int health_failures;
static void *health_main(void *arg)
{
    const cluster *c = arg;
    while (load_running) {
        http_resp r;
        http_request(c->port, "GET", "/health", NULL, &r);
        health_failures += r.status != 200;
        http_resp_free(&r);
        usleep(100000);
    }
    return NULL;
}

/* Sends all requests at once on C; every text must equal its text alone. */
static void run_concurrent(const cluster *c)
{
    static job jobs[N_REQ];
    pthread_t th[N_REQ], health;
    load_running = 1;
    health_failures = 0;
    pthread_create(&health, NULL, health_main, (void *)c);
    for (int i = 0; i < N_REQ; i++) {
        jobs[i] = (job){c, i, NULL};
        pthread_create(&th[i], NULL, job_main, &jobs[i]);
    }
    for (int i = 0; i < N_REQ; i++)
        pthread_join(th[i], NULL);
    load_running = 0;
    pthread_join(health, NULL);
    for (int i = 0; i < N_REQ; i++) {
        assert_non_null(jobs[i].text);
        assert_string_equal(jobs[i].text, alone[i]);
        free(jobs[i].text);
    }
    assert_int_equal(health_failures, 0);
    assert_int_equal(cluster_active_slots(c), 0);
    assert_int_equal(cluster_stat(c, "n_free_blocks"), cluster_stat(c, "kv_limit_blocks"));
}

static cluster LC; /* each test's launch, stopped by the teardown even when a check fails */
static int stop_lc(void **state)
{
    cluster_stop(&LC);
    return 0;
}
static int start_2048(void **state) { return cluster_start(&LC, "--max-total-tokens 2048"); }
static int start_ratio(void **state) { return cluster_start(&LC, "--max-total-tokens 2048 --new-token-ratio 0.2"); }
static int start_queue(void **state) { return cluster_start(&LC, "--max-total-tokens 512 --max-queue 2"); }

static void test_64_concurrent_in_2048_tokens(void **state)
{
    static const char *starts[] = {"Once upon a time", "The cat sat", "Tom had a red", "One day",
                                   "The sun was hot", "A little bird", "Lily and Ben", "The big tree"};
    cluster c = LC;
    srand(1234);
    for (int i = 0; i < N_REQ; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"inputs\":\"%s\",\"parameters\":{\"max_new_tokens\":%d}}",
                 starts[i % 8], 1 + rand() % 100);
        alone[i] = generate_text(&c, bodies[i]);
        assert_non_null(alone[i]);
    }
    run_concurrent(&c);
    printf("# preempted with the exact estimate: %.0f\n", cluster_stat(&c, "n_preempted"));
}

static void test_preemption_keeps_texts(void **state)
{
    cluster c = LC;
    run_concurrent(&c);
    double n = cluster_stat(&c, "n_preempted");
    printf("# preempted with new_token_ratio 0.2: %.0f\n", n);
    assert_true(n > 0);
    for (int i = 0; i < N_REQ; i++)
        free(alone[i]);
}

static void test_hangup_returns_blocks(void **state)
{
    cluster c = LC;
    /* read the first events, then go away mid-stream */
    assert_int_equal(http_hangup_after(c.port, "/generate_stream",
                                       "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":200,"
                                       "\"ignore_eos\":true}}", 300), 0);
    double steps_at_hangup = cluster_stat(&c, "worker_steps");
    double limit = cluster_stat(&c, "kv_limit_blocks"), free_blocks = -1;
    for (int i = 0; i < 200 && free_blocks != limit; i++) {
        usleep(10000);
        free_blocks = cluster_stat(&c, "n_free_blocks");
    }
    double steps_after = cluster_stat(&c, "worker_steps");
    printf("# blocks back %.0f iterations after the hangup was seen\n", steps_after - steps_at_hangup);
    assert_true(free_blocks == limit);
    assert_true(steps_after - steps_at_hangup <= 4); /* the step that failed to write, one in flight */
    assert_true(steps_after < 100);                  /* far from the 200 it asked for */
    assert_int_equal(cluster_active_slots(&c), 0);
}

static void test_queue_limit(void **state)
{
    cluster c = LC;
    static job jobs[12];
    pthread_t th[12];
    snprintf(bodies[0], sizeof bodies[0],
             "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":200,\"ignore_eos\":true}}");
    for (int i = 0; i < 12; i++) { /* spaced so the router admits what fits in between */
        jobs[i] = (job){&c, 0, NULL};
        pthread_create(&th[i], NULL, job_main, &jobs[i]);
        usleep(SCALED_MS(30) * 1000);
    }
    /* two fit in 512 tokens of KV, two wait: the queue is full (settled within a deadline:
       under a sanitizer the last admissions may still be on their way) */
    for (int k = 0; k < SCALED_MS(2000) / 10; k++) {
        if (cluster_stat(&c, "n_running") == 2 && cluster_stat(&c, "n_waiting") == 2)
            break;
        usleep(10000);
    }
    assert_int_equal(cluster_stat(&c, "n_running"), 2);
    assert_int_equal(cluster_stat(&c, "n_waiting"), 2);
    http_resp r;
    http_request(c.port, "POST", "/generate", bodies[0], &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strcasestr(r.headers, "Retry-After:"));
    assert_non_null(strstr(r.body, "\"error\""));
    http_resp_free(&r);
    int n_ok = 0;
    for (int i = 0; i < 12; i++) {
        pthread_join(th[i], NULL);
        n_ok += jobs[i].text != NULL;
        free(jobs[i].text);
    }
    assert_int_equal(n_ok, 4); /* two ran, two waited, the rest were turned away */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_64_concurrent_in_2048_tokens, start_2048, stop_lc),
        cmocka_unit_test_setup_teardown(test_preemption_keeps_texts, start_ratio, stop_lc),
        cmocka_unit_test_setup_teardown(test_hangup_returns_blocks, start_2048, stop_lc),
        cmocka_unit_test_setup_teardown(test_queue_limit, start_queue, stop_lc),
    };
    return cmocka_run_group_tests_name("e2e_router_load", tests, NULL, NULL);
}
