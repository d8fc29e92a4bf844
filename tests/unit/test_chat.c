/* test_chat.c - chat templates against Jinja2's renderings (tests/data/tok/chat.jsonl, from
 * scripts/gen_chat_golden.py): Llama-3 base and instruct, Llama-2-chat, Mistral v0.1/v0.2,
 * with system prompts, multi-turn, white space to strip, Unicode, role errors. Also template
 * recognition from tokenizer_config.json, the plain fallback, and unrecognised templates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../tokenizer/chat.h"

static FILE *open_data(const char *rel)
{
    FILE *f = fopen(rel, "r");
    if (f)
        return f;
    char exe[1024], path[2048];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return NULL;
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (s)
            *s = 0;
    }
    snprintf(path, sizeof path, "%s/%s", exe, rel);
    return fopen(path, "r");
}

static void test_golden(void **state)
{
    (void)state;
    FILE *f = open_data("tests/data/tok/chat.jsonl");
    if (!f)
        fail_msg("tests/data/tok/chat.jsonl is missing");
    char *line = NULL, err[256];
    size_t cap = 0;
    int n = 0, n_err = 0, n_bad = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const char *name = cJSON_GetObjectItem(j, "name")->valuestring;
        chat_template ct;
        assert_int_equal(chat_template_parse(&ct, cJSON_GetObjectItem(j, "template")->valuestring,
                                             cJSON_GetObjectItem(j, "bos")->valuestring,
                                             cJSON_GetObjectItem(j, "eos")->valuestring, err,
                                             sizeof err), 0);
        const cJSON *msgs = cJSON_GetObjectItem(j, "messages"), *m;
        chat_msg cm[16];
        int k = 0;
        cJSON_ArrayForEach(m, msgs) {
            cm[k].role = cJSON_GetObjectItem(m, "role")->valuestring;
            cm[k++].content = cJSON_GetObjectItem(m, "content")->valuestring;
        }
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(j, "gen"));
        const cJSON *want = cJSON_GetObjectItem(j, "out");
        char out[4096];
        int64_t len = chat_apply(&ct, cm, k, gen, out, sizeof out);
        if (!want) {
            n_err++;
            if (len != CHAT_EROLES && n_bad++ < 10)
                fprintf(stderr, "%s line %d: expected a role error, got %lld\n", name, n + 1,
                        (long long)len);
        } else if (len < 0 || (size_t)len != strlen(want->valuestring) ||
                   strcmp(out, want->valuestring) != 0) {
            if (n_bad++ < 10)
                fprintf(stderr, "%s line %d:\n  got  \"%s\"\n  want \"%s\"\n", name, n + 1,
                        len < 0 ? "(error)" : out, want->valuestring);
        }
        n++;
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    printf("chat: %d renderings (%d errors expected), %d mismatches\n", n, n_err, n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n >= 100 && n_err > 0);
}

static void test_small_buffer(void **state)
{
    (void)state;
    chat_template ct;
    char err[256], out[8];
    assert_int_equal(chat_template_parse(&ct, "[INST] <<SYS>>", "<s>", "</s>", err, sizeof err), 0);
    assert_int_equal(ct.kind, CHAT_LLAMA2);
    chat_msg m[] = {{"user", "Hello"}};
    const char *want = "<s>[INST] Hello [/INST]";
    assert_int_equal(chat_apply(&ct, m, 1, 1, out, sizeof out), (int64_t)strlen(want));
    assert_memory_equal(out, want, sizeof out - 1);
    assert_int_equal(out[sizeof out - 1], 0);
}

static void test_plain_and_unknown(void **state)
{
    (void)state;
    chat_template ct;
    char err[256], out[256];
    assert_int_equal(chat_template_parse(&ct, NULL, "<s>", "</s>", err, sizeof err), 0);
    assert_int_equal(ct.kind, CHAT_PLAIN);
    chat_msg m[] = {{"system", "Once upon"}, {"user", "a time"}};
    assert_int_equal(chat_apply(&ct, m, 2, 1, out, sizeof out), 17);
    assert_string_equal(out, "Once upon\n\na time");
    const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
                         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    assert_int_equal(chat_template_parse(&ct, chatml, "", "", err, sizeof err), -1);
    assert_non_null(strstr(err, "unrecognised"));
    assert_int_equal(chat_template_parse(&ct, "<|start_header_id|> Cutting Knowledge Date", "", "",
                                         err, sizeof err), -1);
    assert_non_null(strstr(err, "Llama-3.1"));
}

static void test_load_config(void **state)
{
    (void)state;
    char path[] = "/tmp/cinder_chat_XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *cfg = "{\"bos_token\":{\"content\":\"<s>\"},\"eos_token\":\"</s>\",\"chat_template\":"
                      "[{\"name\":\"tool_use\",\"template\":\"x\"},{\"name\":\"default\",\"template\":"
                      "\"{{ bos_token }}[INST] {{ eos_token }}\"}]}";
    assert_int_equal(write(fd, cfg, strlen(cfg)), (ssize_t)strlen(cfg));
    close(fd);
    chat_template ct;
    assert_int_equal(chat_template_load(&ct, path, err, sizeof err), 0);
    assert_int_equal(ct.kind, CHAT_MISTRAL);
    assert_string_equal(ct.bos, "<s>");
    assert_string_equal(ct.eos, "</s>");
    unlink(path);
    assert_int_equal(chat_template_load(&ct, path, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_plain_and_unknown),
        cmocka_unit_test(test_load_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
