/* test_req_parse.c - the /generate body parser (tokenizer/req_parse.c) on its own: defaults,
 * every parameter mapped to the slot's sampling parameters (greedy unless do_sample), stop
 * strings and stop token ids, n / best_of, min_new_tokens, return_details,
 * skip_special_tokens, null as absent, each kind of bad value and every unknown parameter
 * refused with a message naming the field; OpenAI's logit_bias (gen_req_parse_logit_bias).
 * (The e2e corpus and the fuzz target drive it through HTTP.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "../../tokenizer/req_parse.h"

static int parse(gen_req *r, const char *body, char *err)
{
    return gen_req_parse(r, body, strlen(body), 512, err, 256);
}

static void test_defaults(void **state)
{
    gen_req r;
    char err[256];
    assert_int_equal(parse(&r, "{\"inputs\":\"Once upon a time\"}", err), 0);
    assert_string_equal(r.inputs, "Once upon a time");
    assert_int_equal(r.n_inputs, 16);
    assert_int_equal(r.params.max_new_tokens, REQ_DEFAULT_MAX_NEW);
    assert_true(r.params.temperature == 0.0f);   /* greedy */
    assert_true(r.params.top_p == 1.0f && r.params.top_k == 0);
    assert_true(r.params.repetition_penalty == 1.0f);
    assert_int_equal(r.seed_given, 0);
    assert_int_equal(r.n_stop + r.n_stop_ids, 0);
    gen_req_free(&r);
}

static void test_all_parameters(void **state)
{
    gen_req r;
    char err[256];
    const char *body = "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":40,\"do_sample\":true,"
                       "\"temperature\":0.7,\"top_p\":0.9,\"top_k\":50,\"seed\":123,"
                       "\"ignore_eos\":true,\"repetition_penalty\":1.2,\"frequency_penalty\":0.5,"
                       "\"presence_penalty\":-0.5,\"stop_sequences\":[\"\\n\\n\",\"The end\"],"
                       "\"stop_token_ids\":[2,13]}}";
    assert_int_equal(parse(&r, body, err), 0);
    assert_int_equal(r.params.max_new_tokens, 40);
    assert_true(r.params.temperature == 0.7f && r.params.top_p == 0.9f);
    assert_int_equal(r.params.top_k, 50);
    assert_int_equal(r.seed_given, 1);
    assert_int_equal(r.params.seed, 123);
    assert_int_equal(r.params.ignore_eos, 1);
    assert_true(r.params.repetition_penalty == 1.2f && r.params.frequency_penalty == 0.5f &&
                r.params.presence_penalty == -0.5f);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop, "\n\n");
    assert_string_equal(r.stop + 3, "The end");
    assert_int_equal(r.n_stop_ids, 2);
    assert_int_equal(r.stop_ids[1], 13);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.params.min_tokens, 0);
    assert_int_equal(r.return_details + r.keep_special, 0);
    gen_req_free(&r);
    /* the rest: choices, min_new_tokens, details, special tokens kept */
    assert_int_equal(parse(&r, "{\"inputs\":\"x\",\"parameters\":{\"n\":3,\"best_of\":3,"
                               "\"min_new_tokens\":4,\"max_new_tokens\":4,\"return_details\":true,"
                               "\"skip_special_tokens\":false}}", err), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.params.min_tokens, 4);
    assert_int_equal(r.return_details, 1);
    assert_int_equal(r.keep_special, 1);
    gen_req_free(&r);
    /* temperature without do_sample is still greedy; one stop string may be a plain string */
    assert_int_equal(parse(&r, "{\"inputs\":\"x\",\"parameters\":{\"temperature\":0.7,"
                               "\"stop_sequences\":\"END\"}}", err), 0);
    assert_true(r.params.temperature == 0.0f);
    assert_int_equal(r.n_stop, 1);
    gen_req_free(&r);
}

static void test_null_is_absent(void **state)
{
    gen_req r;
    char err[256];
    assert_int_equal(parse(&r, "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":null,"
                               "\"seed\":null,\"stop_sequences\":null,\"top_k\":null}}", err), 0);
    assert_int_equal(r.params.max_new_tokens, REQ_DEFAULT_MAX_NEW);
    assert_int_equal(r.seed_given, 0);
    assert_int_equal(r.n_stop, 0);
    gen_req_free(&r);
    assert_int_equal(parse(&r, "{\"inputs\":\"x\",\"parameters\":null}", err), 0);
    gen_req_free(&r);
}

static void test_refused(void **state)
{
    static const struct { const char *body, *names; } bad[] = {
        {"[1,2]", "object"},
        {"{\"parameters\":{}}", "inputs"},
        {"{\"inputs\":7}", "inputs"},
        {"{\"inputs\":\"x\",\"parameters\":[]}", "parameters"},
        {"{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":0}}", "max_new_tokens"},
        {"{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":513}}", "max_new_tokens"},
        {"{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":2.5}}", "max_new_tokens"},
        {"{\"inputs\":\"x\",\"parameters\":{\"temperature\":-1}}", "temperature"},
        {"{\"inputs\":\"x\",\"parameters\":{\"top_p\":0}}", "top_p"},
        {"{\"inputs\":\"x\",\"parameters\":{\"do_sample\":\"yes\"}}", "do_sample"},
        {"{\"inputs\":\"x\",\"parameters\":{\"seed\":-3}}", "seed"},
        {"{\"inputs\":\"x\",\"parameters\":{\"repetition_penalty\":0}}", "repetition_penalty"},
        {"{\"inputs\":\"x\",\"parameters\":{\"stop_token_ids\":[1.5]}}", "stop_token_ids"},
        {"{\"inputs\":\"x\",\"parameters\":{\"stop_token_ids\":3}}", "stop_token_ids"},
        {"{\"inputs\":\"x\",\"parameters\":{\"stop_sequences\":[7]}}", "stop"},
        {"{\"inputs\":\"x\",\"parameters\":{\"n\":0}}", "n"},
        {"{\"inputs\":\"x\",\"parameters\":{\"n\":129}}", "n"},
        {"{\"inputs\":\"x\",\"parameters\":{\"best_of\":2}}", "best_of"},
        {"{\"inputs\":\"x\",\"parameters\":{\"n\":2,\"best_of\":3}}", "best_of"},
        {"{\"inputs\":\"x\",\"parameters\":{\"min_new_tokens\":-1}}", "min_new_tokens"},
        {"{\"inputs\":\"x\",\"parameters\":{\"min_new_tokens\":17}}", "min_new_tokens"},
        {"{\"inputs\":\"x\",\"parameters\":{\"return_details\":1}}", "return_details"},
        {"{\"inputs\":\"x\",\"parameters\":{\"skip_special_tokens\":\"no\"}}", "skip_special_tokens"},
        /* unknown parameters are refused by name, never ignored */
        {"{\"inputs\":\"x\",\"parameters\":{\"details\":true}}", "details"},
        {"{\"inputs\":\"x\",\"parameters\":{\"typical_p\":0.5}}", "typical_p"},
        {"{\"inputs\":\"x\",\"parameters\":{\"logit_bias\":{}}}", "logit_bias"},
        {"{\"inputs\":\"x\",\"stream\":true}", "stream"},
        {"{\"inputs\":\"x\",\"multimodal_params\":{}}", "multimodal_params"},
        {"{\"inputs\":\"x\"", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gen_req r;
        char err[256] = "";
        if (parse(&r, bad[i].body, err) == 0) {
            gen_req_free(&r);
            fail_msg("accepted: %s", bad[i].body);
        }
        assert_true(strlen(err) > 0);
        if (!strstr(err, bad[i].names))
            fail_msg("%s: error \"%s\" does not name %s", bad[i].body, err, bad[i].names);
    }
}

/* logit_bias: ids as strings below the vocabulary, biases in [-100, 100], a zero bias dropped,
 * a repeated id keeping its last value; anything else refused naming logit_bias. */
static void test_logit_bias(void **state)
{
    gen_req r;
    char err[256];
    memset(&r, 0, sizeof r);
    cJSON *v = cJSON_Parse("{\"29892\": -100, \"7\": 0, \"13\": 2.5, \"13\": 100, \"5\": 1, \"5\": 0}");
    assert_int_equal(gen_req_parse_logit_bias(&r, v, 32000, err, sizeof err), 0);
    cJSON_Delete(v);
    assert_int_equal(r.params.n_logit_bias, 2);
    assert_int_equal(r.params.bias_ids[0], 29892);
    assert_true(r.params.bias[0] == -100);
    assert_int_equal(r.params.bias_ids[1], 13);
    assert_true(r.params.bias[1] == 100);
    assert_int_equal(gen_req_parse_logit_bias(&r, NULL, 32000, err, sizeof err), 0);
    static const char *const bad[] = {"[1]", "{\"x\": 1}", "{\"-1\": 1}", "{\"32000\": 1}", "{\"1.5\": 1}",
                                      "{\"\": 1}", "{\"1\": 101}", "{\"1\": \"5\"}", "{\"1\": -100.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&r, 0, sizeof r);
        v = cJSON_Parse(bad[i]);
        err[0] = 0;
        if (gen_req_parse_logit_bias(&r, v, 32000, err, sizeof err) == 0)
            fail_msg("accepted logit_bias %s", bad[i]);
        assert_non_null(strstr(err, "logit_bias"));
        cJSON_Delete(v);
    }
    /* at most SAMPLING_MAX_LOGIT_BIAS entries */
    cJSON *many = cJSON_CreateObject();
    for (int i = 0; i <= SAMPLING_MAX_LOGIT_BIAS; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        cJSON_AddNumberToObject(many, key, 1);
    }
    memset(&r, 0, sizeof r);
    assert_int_equal(gen_req_parse_logit_bias(&r, many, 32000, err, sizeof err), -1);
    cJSON_DeleteItemFromObject(many, "0");
    memset(&r, 0, sizeof r);
    assert_int_equal(gen_req_parse_logit_bias(&r, many, 32000, err, sizeof err), 0);
    assert_int_equal(r.params.n_logit_bias, SAMPLING_MAX_LOGIT_BIAS);
    cJSON_Delete(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_parameters),
        cmocka_unit_test(test_null_is_absent),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests_name("req_parse", tests, NULL, NULL);
}
