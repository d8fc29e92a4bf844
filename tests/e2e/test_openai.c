/* test_openai.c - the OpenAI-compatible API through the official OpenAI client library
 * (npm openai, run by node: tests/e2e/openai_client.mjs) against real processes, plus the
 * /metrics counters agreeing with what was served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "http_client.h"

static cluster C;

static int setup(void **state) { return cluster_start(&C, CLUSTER_CHAT_TEMPLATE); }
static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

static double metric(const char *text, const char *name)
{
    const char *p = text;
    size_t n = strlen(name);
    while ((p = strstr(p, name))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atof(p + n + 1);
        p += n;
    }
    return -1;
}

static void test_official_client(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "node tests/e2e/openai_client.mjs %d stories15M", C.port);
    assert_int_equal(system(cmd), 0);
}

static void test_metrics_count_what_was_served(void **state)
{
    http_resp r;
    http_request(C.port, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    double before = metric(r.body, "cinder_generation_tokens_total");
    double done = metric(r.body, "cinder_requests_total{outcome=\"length\"}");
    http_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        http_request(C.port, "POST", "/generate",
                     "{\"inputs\":\"The dog\",\"parameters\":{\"max_new_tokens\":7,\"ignore_eos\":true}}", &r);
        assert_int_equal(r.status, 200);
        http_resp_free(&r);
    }
    http_request(C.port, "GET", "/metrics", NULL, &r);
    assert_int_equal(metric(r.body, "cinder_generation_tokens_total"), before + 21);
    assert_int_equal(metric(r.body, "cinder_requests_total{outcome=\"length\"}"), done + 3);
    assert_int_equal(metric(r.body, "cinder_num_requests_running"), 0);
    assert_true(metric(r.body, "cinder_kv_cache_blocks_free") == metric(r.body, "cinder_kv_cache_blocks_total"));
    assert_non_null(strstr(r.body, "cinder_time_to_first_token_seconds_bucket{le=\"+Inf\"}"));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_official_client),
        cmocka_unit_test(test_metrics_count_what_was_served),
    };
    return cmocka_run_group_tests_name("e2e_openai", tests, setup, teardown);
}
