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
#include "prom.h"

static cluster C;

static int setup(void **state) { return cluster_start(&C, CLUSTER_CHAT_TEMPLATE); }
static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
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
    double before = prom_value(r.body, "cinder_generation_tokens_total", NULL);
    double done = prom_value(r.body, "cinder_requests_total", "outcome=\"length\"");
    http_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        http_request(C.port, "POST", "/generate",
                     "{\"inputs\":\"The dog\",\"parameters\":{\"max_new_tokens\":7,\"ignore_eos\":true}}", &r);
        assert_int_equal(r.status, 200);
        http_resp_free(&r);
    }
    http_request(C.port, "GET", "/metrics", NULL, &r);
    assert_int_equal(prom_value(r.body, "cinder_generation_tokens_total", NULL), before + 21);
    assert_int_equal(prom_value(r.body, "cinder_requests_total", "outcome=\"length\""), done + 3);
    assert_int_equal(prom_value(r.body, "cinder_num_requests_running", NULL), 0);
    assert_true(prom_value(r.body, "cinder_kv_cache_blocks_free", NULL) ==
                prom_value(r.body, "cinder_kv_cache_blocks_capacity", NULL));
    assert_true(prom_value(r.body, "cinder_time_to_first_token_seconds_bucket", "le=\"+Inf\"") >= 3);
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
