/* test_generate.c - end to end on the reference backend: the four real processes, real
 * ZeroMQ, real HTTP, the default model (stories15M).
 *
 * Covers /health, /generate with the golden greedy continuation, /generate_stream matching
 * /generate, 16 concurrent requests each equal to its text alone, stop sequences, malformed
 * and invalid requests (4xx with a JSON error, server keeps serving), a client that hangs up
 * mid-stream, and that every slot is returned at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

static cluster C;

#define GOLDEN ", there was a little girl named Lily. She loved to play outside in the sunshine. " \
               "One day, she saw a big, red ball in the sky."

static int setup(void **state)
{
    return cluster_start(&C, "");
}

static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

/* POSTs BODY to /generate; returns the parsed JSON (caller frees) and the status. */
static cJSON *generate(const char *body, int *status)
{
    http_resp r;
    http_request(C.port, "POST", "/generate", body, &r);
    *status = r.status;
    cJSON *j = r.body ? cJSON_Parse(r.body) : NULL;
    http_resp_free(&r);
    return j;
}

static char *generated_text(const char *body)
{
    int status;
    cJSON *j = generate(body, &status);
    assert_int_equal(status, 200);
    assert_non_null(j);
    cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0);
    assert_true(cJSON_IsString(t));
    char *s = strdup(t->valuestring);
    cJSON_Delete(j);
    return s;
}

static void test_health(void **state)
{
    http_resp r;
    http_request(C.port, "GET", "/health", NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_golden(void **state)
{
    int status;
    cJSON *j = generate("{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":40}}", &status);
    assert_int_equal(status, 200);
    const char *text = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0)->valuestring;
    printf("# golden: %s\n", text);
    assert_memory_equal(text, GOLDEN, strlen(GOLDEN));
    assert_int_equal(cJSON_GetObjectItem(j, "count_output_tokens")->valueint, 40);
    assert_string_equal(cJSON_GetObjectItem(j, "finish_reason")->valuestring, "length");
    assert_int_equal(cJSON_GetObjectItem(j, "prompt_tokens")->valueint, 5); /* BOS + 4 */
    cJSON_Delete(j);
}

static void test_stream_matches(void **state)
{
    const char *body = "{\"inputs\":\"The little dog\",\"parameters\":{\"max_new_tokens\":30}}";
    char *whole = generated_text(body);
    http_resp r;
    http_request(C.port, "POST", "/generate_stream", body, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "text/event-stream"));
    char joined[8192] = "";
    int n_events = 0, finished = 0;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        assert_memory_equal(line, "data:", 5);
        cJSON *e = cJSON_Parse(line + 5);
        assert_non_null(e);
        n_events++;
        cJSON *tok = cJSON_GetObjectItem(e, "token");
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(tok, "id")));
        strcat(joined, cJSON_GetObjectItem(tok, "text")->valuestring);
        if (cJSON_IsTrue(cJSON_GetObjectItem(e, "finished"))) {
            finished = 1;
            assert_string_equal(cJSON_GetObjectItem(e, "generated_text")->valuestring, whole);
            assert_string_equal(cJSON_GetObjectItem(e, "finish_reason")->valuestring, "length");
        } else {
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "generated_text")));
        }
        cJSON_Delete(e);
    }
    assert_int_equal(n_events, 30);
    assert_true(finished);
    assert_string_equal(joined, whole);
    http_resp_free(&r);
    free(whole);
}

#define N_CONC 16
typedef struct {
    char body[256];
    char *text;
} conc_req;

static void *conc_main(void *arg)
{
    conc_req *q = arg;
    int status;
    cJSON *j = generate(q->body, &status);
    cJSON *t = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0) : NULL;
    q->text = status == 200 && cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    cJSON_Delete(j);
    return NULL;
}

static void test_concurrent_equal_alone(void **state)
{
    static const char *starts[] = {"Once upon a time", "The cat", "Tom had a", "One day", "The sun",
                                   "A little bird", "Lily and Ben", "The big tree"};
    conc_req q[N_CONC];
    for (int i = 0; i < N_CONC; i++)
        snprintf(q[i].body, sizeof q[i].body, "{\"inputs\":\"%s\",\"parameters\":{\"max_new_tokens\":%d}}",
                 starts[i % 8], 20 + 5 * i);
    char *alone[N_CONC];
    for (int i = 0; i < N_CONC; i++)
        alone[i] = generated_text(q[i].body);
    pthread_t th[N_CONC];
    for (int i = 0; i < N_CONC; i++)
        pthread_create(&th[i], NULL, conc_main, &q[i]);
    for (int i = 0; i < N_CONC; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N_CONC; i++) {
        assert_non_null(q[i].text);
        assert_string_equal(q[i].text, alone[i]);
        free(q[i].text);
        free(alone[i]);
    }
}

/* Seeded sampling repeats itself, and is sampling: it differs from greedy for some seed, and
 * two seeds give two texts (so do_sample and seed cannot be silently ignored). */
static void test_sampling_seeded(void **state)
{
    char body[512], *greedy = generated_text("{\"inputs\":\"Once upon a time\",\"parameters\":"
                                             "{\"max_new_tokens\":24}}");
    char *text[4];
    int n_differ_greedy = 0;
    for (int seed = 0; seed < 4; seed++) {
        snprintf(body, sizeof body, "{\"inputs\":\"Once upon a time\",\"parameters\":{"
                 "\"max_new_tokens\":24,\"do_sample\":true,\"temperature\":1.2,\"top_p\":0.95,"
                 "\"top_k\":40,\"seed\":%d}}", 7 + seed);
        text[seed] = generated_text(body);
        char *again = generated_text(body);
        assert_string_equal(text[seed], again); /* same seed, same text */
        free(again);
        n_differ_greedy += strcmp(text[seed], greedy) != 0;
    }
    assert_true(n_differ_greedy > 0);
    assert_true(strcmp(text[0], text[1]) || strcmp(text[0], text[2]) || strcmp(text[0], text[3]));
    for (int seed = 0; seed < 4; seed++)
        free(text[seed]);
    free(greedy);
}

static void test_stop_sequence(void **state)
{
    int status;
    cJSON *j = generate("{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":40,"
                        "\"stop_sequences\":[\"Lily\"]}}", &status);
    assert_int_equal(status, 200);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0)->valuestring,
                        ", there was a little girl named ");
    assert_string_equal(cJSON_GetObjectItem(j, "finish_reason")->valuestring, "stop");
    cJSON_Delete(j);
}

static void test_stop_token_ids(void **state)
{
    int status; /* greedy: ", there was a little girl" = 29892 727 471 263 2217 7826 */
    cJSON *j = generate("{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":40,"
                        "\"stop_token_ids\":[7826, 31999]}}", &status);
    assert_int_equal(status, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "count_output_tokens")->valueint, 6);
    assert_string_equal(cJSON_GetObjectItem(j, "finish_reason")->valuestring, "stop");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "generated_text"), 0)->valuestring,
                        ", there was a little girl");
    cJSON_Delete(j);
}

static void expect_error(const char *method, const char *path, const char *body, int want)
{
    http_resp r;
    http_request(C.port, method, path, body, &r);
    assert_int_equal(r.status, want);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
    http_resp_free(&r);
}

static void test_bad_requests(void **state)
{
    expect_error("POST", "/generate", "{\"inputs\": \"Once upon", 400);
    expect_error("POST", "/generate", "not json at all", 400);
    expect_error("POST", "/generate", "[1,2,3]", 400);
    expect_error("POST", "/generate", "{\"inputs\": 42}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":0}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":\"5\"}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"temperature\":-1}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"top_p\":0}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"stop_sequences\":[1]}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"stop_token_ids\":[1.5]}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"x\",\"parameters\":{\"stop_token_ids\":7}}", 400);
    expect_error("POST", "/generate", "{\"inputs\":\"\\ud800 lone surrogate\"}", 400);
    expect_error("GET", "/generate", NULL, 405);
    expect_error("GET", "/nowhere", NULL, 404);
    /* a prompt longer than the 256-token context */
    char big[8192] = "{\"inputs\":\"";
    for (int i = 0; i < 400; i++)
        strcat(big, "dog ");
    strcat(big, "\"}");
    expect_error("POST", "/generate", big, 400);
    /* still serving */
    char *t = generated_text("{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":5}}");
    assert_true(strlen(t) > 0);
    free(t);
}

static void test_hangup_frees_slot(void **state)
{
    assert_int_equal(http_hangup_after(C.port, "/generate_stream",
                                       "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":200,"
                                       "\"ignore_eos\":true}}", 200), 0);
    int active = -1;
    for (int i = 0; i < 100 && active != 0; i++) {
        usleep(50000);
        active = cluster_active_slots(&C);
    }
    assert_int_equal(active, 0);
}

static void test_no_leaked_slots(void **state)
{
    int active = -1;
    for (int i = 0; i < 40 && active != 0; i++) {
        active = cluster_active_slots(&C);
        if (active)
            usleep(50000);
    }
    assert_int_equal(active, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_stream_matches),
        cmocka_unit_test(test_concurrent_equal_alone),
        cmocka_unit_test(test_sampling_seeded),
        cmocka_unit_test(test_stop_sequence),
        cmocka_unit_test(test_stop_token_ids),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_hangup_frees_slot),
        cmocka_unit_test(test_no_leaked_slots),
    };
    return cmocka_run_group_tests_name("e2e_generate", tests, setup, teardown);
}
