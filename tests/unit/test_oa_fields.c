/* test_oa_fields.c - the OpenAI request-field audit (tokenizer/oa_fields.c) on its own: every
 * implemented field of each endpoint passes, no-op values of the others pass (user, store:
 * false, response_format text, tool_choice none/auto, logprobs false, vLLM's defaults), other
 * values are refused with a message and param naming the field, a field of the other endpoint
 * or of no schema is refused as unknown, and a name that is not UTF-8 is not echoed raw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "../../tokenizer/oa.h"

/* Checks BODY for CHAT; returns 0 or -1, the refused field's name in WHO (or ""). */
static int check(const char *body, int chat, char *err, char *who)
{
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    const char *param = NULL;
    err[0] = 0;
    int rc = oa_fields_check(j, chat, err, 256, &param);
    snprintf(who, 64, "%s", param ? param : "");
    cJSON_Delete(j);
    return rc;
}

static void test_accepted(void **state)
{
    char err[256], who[64];
    static const char *const cmpl[] = {
        "{\"model\":\"m\",\"prompt\":\"x\",\"max_tokens\":3,\"temperature\":0,\"top_p\":1,\"n\":2,"
        "\"best_of\":2,\"stop\":[\"a\"],\"seed\":1,\"stream\":false,\"presence_penalty\":0,"
        "\"frequency_penalty\":0,\"logit_bias\":{},\"logprobs\":2,\"echo\":false,\"user\":\"u\","
        "\"suffix\":\"\",\"top_k\":5,\"repetition_penalty\":1,\"stop_token_ids\":[],\"ignore_eos\":false,"
        "\"min_tokens\":1,\"include_stop_str_in_output\":true,\"skip_special_tokens\":true,"
        "\"truncate_prompt_tokens\":4,\"add_special_tokens\":true,\"return_tokens_as_token_ids\":false,"
        "\"request_id\":\"r\",\"use_beam_search\":false,\"length_penalty\":1,\"min_p\":0,"
        "\"spaces_between_special_tokens\":true,\"priority\":0,\"response_format\":{\"type\":\"text\"},"
        "\"guided_json\":null,\"allowed_token_ids\":[],\"prompt_logprobs\":null}",
    };
    static const char *const chat[] = {
        "{\"messages\":[],\"model\":\"m\",\"max_completion_tokens\":3,\"logprobs\":false,\"top_logprobs\":0,"
        "\"n\":1,\"response_format\":{\"type\":\"text\"},\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"none\","
        "\"parallel_tool_calls\":false,\"user\":\"u\",\"store\":false,\"metadata\":{\"k\":\"v\"},"
        "\"service_tier\":\"auto\",\"modalities\":[\"text\"],\"prompt_cache_key\":\"k\","
        "\"safety_identifier\":\"s\",\"stream_options\":{\"include_usage\":true},\"echo\":false,"
        "\"add_generation_prompt\":true,\"continue_final_message\":false,\"include_reasoning\":true,"
        "\"best_of\":1,\"function_call\":\"auto\",\"functions\":[],\"chat_template_kwargs\":{}}",
    };
    assert_int_equal(check(cmpl[0], 0, err, who), 0);
    assert_int_equal(check(chat[0], 1, err, who), 0);
}

static void test_refused(void **state)
{
    static const struct { int chat; const char *body, *name; } bad[] = {
        {1, "{\"response_format\":{\"type\":\"json_object\"}}", "response_format"},
        {1, "{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}", "response_format"},
        {0, "{\"response_format\":{\"type\":\"json_object\"}}", "response_format"},
        {1, "{\"tool_choice\":\"required\"}", "tool_choice"},
        {1, "{\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}", "tool_choice"},
        {1, "{\"functions\":[{\"name\":\"f\"}]}", "functions"},
        {1, "{\"store\":true}", "store"},
        {1, "{\"service_tier\":\"flex\"}", "service_tier"},
        {1, "{\"modalities\":[\"text\",\"audio\"]}", "modalities"},
        {1, "{\"audio\":{\"voice\":\"x\"}}", "audio"},
        {1, "{\"reasoning_effort\":\"low\"}", "reasoning_effort"},
        {1, "{\"user\":5}", "user"},
        {1, "{\"metadata\":{\"k\":1}}", "metadata"},
        {0, "{\"suffix\":\"end\"}", "suffix"},
        {0, "{\"use_beam_search\":true}", "use_beam_search"},
        {0, "{\"min_p\":0.05}", "min_p"},
        {0, "{\"priority\":1}", "priority"},
        {0, "{\"guided_regex\":\"a+\"}", "guided_regex"},
        {1, "{\"guided_choice\":[\"a\",\"b\"]}", "guided_choice"},
        {0, "{\"prompt_logprobs\":1}", "prompt_logprobs"},
        {0, "{\"allowed_token_ids\":[1,2]}", "allowed_token_ids"},
        {0, "{\"bad_words\":[\"x\"]}", "bad_words"},
        {0, "{\"spaces_between_special_tokens\":false}", "spaces_between_special_tokens"},
        {1, "{\"chat_template\":\"{{x}}\"}", "chat_template"},
        {1, "{\"best_of\":2}", "best_of"},
        {0, "{\"cache_salt\":\"s\"}", "cache_salt"},
        {0, "{\"return_token_ids\":true}", "return_token_ids"},
        /* fields of the other endpoint, and of none */
        {0, "{\"messages\":[]}", "messages"},
        {0, "{\"top_logprobs\":2}", "top_logprobs"},
        {1, "{\"prompt\":\"x\"}", "prompt"},
        {1, "{\"suffix\":\"\"}", "suffix"},
        {0, "{\"max_tokenz\":3}", "max_tokenz"},
        {1, "{\"Temperature\":1}", "Temperature"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256], who[64];
        if (check(bad[i].body, bad[i].chat, err, who) == 0)
            fail_msg("accepted (%s): %s", bad[i].chat ? "chat" : "completions", bad[i].body);
        if (!strstr(err, bad[i].name) || strcmp(who, bad[i].name))
            fail_msg("%s: error \"%s\" (param \"%s\") does not name %s", bad[i].body, err, who, bad[i].name);
    }
    /* a name that is not UTF-8: refused, not echoed raw, no param */
    char err[256], who[64];
    assert_int_equal(check("{\"a\xff\":1}", 0, err, who), -1);
    assert_non_null(strstr(err, "a?"));
    assert_string_equal(who, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests_name("oa_fields", tests, NULL, NULL);
}
