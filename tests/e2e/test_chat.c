/* test_chat.c - /v1/chat/completions renders the model's own chat template, end to end: the
 * default model (stories15M, whose tokenizer_config.json has none) refuses chat with 400
 * naming the cure (--chat-template) while completions work; a copy of it whose
 * tokenizer_config.json has a chat_template serves chat through that template - greedy chat
 * gives exactly what a completion of the rendered prompt gives - and the template's
 * raise_exception, tool_choice and message content holding template syntax behave as the
 * API says (README "Chat templates"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

static cluster C;
static char model_dir[64];

/* joins the messages' contents with spaces after BOS; no role markers, so a chat equals a
 * completion of the joined text */
#define TEMPLATE                                                                                   \
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'wizard' %}"                            \
    "{{ raise_exception('wizards are not welcome') }}{% endif %}{{ m.content }}"                   \
    "{% if not loop.last %} {% endif %}{% endfor %}"

static int start_plain(void **state) { return cluster_start(&C, ""); }

static int start_templated(void **state)
{
    snprintf(model_dir, sizeof model_dir, "/tmp/cinder-chat-model.%d", (int)getpid());
    char cmd[1024], cfg[8192], path[128];
    snprintf(cmd, sizeof cmd, "set -e; rm -rf %s; mkdir -p %s; m=$(cd models/stories15M && pwd);"
             "ln -s $m/config.json $m/model.safetensors $m/tokenizer.json %s/", model_dir, model_dir, model_dir);
    FILE *in = fopen("models/stories15M/tokenizer_config.json", "r");
    size_t n = in ? fread(cfg, 1, sizeof cfg - 1, in) : 0;
    if (in)
        fclose(in);
    cfg[n] = 0;
    if (system(cmd) != 0 || n == 0 || cfg[0] != '{')
        return -1;
    /* stories15M's tokenizer_config.json with a chat_template added */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    FILE *out = fopen(path, "w");
    if (!out)
        return -1;
    fprintf(out, "{\"chat_template\": \"%s\", %s", TEMPLATE, cfg + 1);
    fclose(out);
    snprintf(cmd, sizeof cmd, "--model-dir %s", model_dir);
    return cluster_start(&C, cmd);
}

static int stop(void **state)
{
    cluster_stop(&C);
    if (model_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", model_dir);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

static cJSON *post(const char *path, const char *body, int want_status)
{
    http_resp r;
    http_request(C.port, "POST", path, body, &r);
    if (r.status != want_status)
        fail_msg("%s %s: status %d, want %d: %.300s", path, body, r.status, want_status, r.body ? r.body : "");
    cJSON *j = cJSON_Parse(r.body);
    http_resp_free(&r);
    assert_non_null(j);
    return j;
}

static const char *error_message(const cJSON *j)
{
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message");
    return cJSON_IsString(m) ? m->valuestring : "";
}

static void test_no_template_refused(void **state)
{
    cJSON *j = post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", 400);
    assert_non_null(strstr(error_message(j), "no chat template"));
    assert_non_null(strstr(error_message(j), "--chat-template"));
    cJSON_Delete(j);
    j = post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2}", 200);
    cJSON_Delete(j);
}

static void expect_same(const char *chat_body, const char *prompt)
{
    char body[512];
    cJSON *a = post("/v1/chat/completions", chat_body, 200);
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":12,\"temperature\":0}", prompt);
    cJSON *b = post("/v1/completions", body, 200);
    const cJSON *ua = cJSON_GetObjectItem(a, "usage"), *ub = cJSON_GetObjectItem(b, "usage");
    assert_int_equal(cJSON_GetObjectItem(ua, "prompt_tokens")->valueint,
                     cJSON_GetObjectItem(ub, "prompt_tokens")->valueint);
    const char *ta = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "choices"), 0),
                                                             "message"), "content")->valuestring;
    const char *tb = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "choices"), 0), "text")->valuestring;
    assert_true(strlen(ta) > 0);
    assert_string_equal(ta, tb);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

static void test_model_template_used(void **state)
{
    expect_same("{\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}],\"max_tokens\":12,"
                "\"temperature\":0}", "Once upon a time");
    expect_same("{\"messages\":[{\"role\":\"system\",\"content\":\"Once upon\"},{\"role\":\"developer\","
                "\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},{\"role\":\"user\",\"content\":\"time\"}],"
                "\"max_tokens\":12,\"temperature\":0}", "Once upon a time");
    /* content is data, never template code */
    expect_same("{\"messages\":[{\"role\":\"user\",\"content\":\"{{ 6 * 7 }} {% if %}\"}],\"max_tokens\":12,"
                "\"temperature\":0}", "{{ 6 * 7 }} {% if %}");
}

static void test_template_errors(void **state)
{
    cJSON *j = post("/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400);
    assert_string_equal(error_message(j), "wizards are not welcome");
    cJSON_Delete(j);
    j = post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                     "\"tool_choice\":\"required\"}", 400);
    assert_non_null(strstr(error_message(j), "tool_choice"));
    cJSON_Delete(j);
    j = post("/v1/chat/completions", "{\"messages\":[]}", 400);
    assert_non_null(strstr(error_message(j), "messages"));
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_no_template_refused),
    };
    const struct CMUnitTest templated[] = {
        cmocka_unit_test(test_model_template_used),
        cmocka_unit_test(test_template_errors),
    };
    int failed = cmocka_run_group_tests_name("e2e_chat_no_template", plain, start_plain, stop);
    return failed + cmocka_run_group_tests_name("e2e_chat_model_template", templated, start_templated, stop);
}
