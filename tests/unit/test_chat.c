/* test_chat.c - chat templates as the server uses them (tokenizer/chat.h): where the template
 * comes from (tokenizer_config.json as a string or a named list, chat_template.jinja,
 * --chat-template, none at all), the special tokens, and a request's handling: content
 * strings or text parts as the template takes them, tool call arguments parsed, tools and
 * chat_template_kwargs passed, add_generation_prompt / continue_final_message, and the 400
 * reasons (tool_choice, non-text parts, bad arguments, the template's raise_exception).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../tokenizer/chat.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/cinder-chat-test.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void clear_dir(void)
{
    char path[256];
    const char *names[] = {"tokenizer_config.json", "chat_template.jinja", "override.jinja"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

static char err[1024];

/* renders BODY with T; the text (static), or NULL with err */
static const char *chat(const chat_template *t, const char *body)
{
    static char out[8192];
    size_t n;
    char *p = chat_render(t, body, strlen(body), &n, err, sizeof err);
    if (!p)
        return NULL;
    snprintf(out, sizeof out, "%s", p);
    free(p);
    return out;
}

#define EXPECT(t, body, want)                                                                      \
    do {                                                                                           \
        const char *r_ = chat(t, body);                                                            \
        if (!r_)                                                                                   \
            fail_msg("%s: %s", body, err);                                                         \
        assert_string_equal(r_, want);                                                             \
    } while (0)

#define EXPECT_ERR(t, body, part)                                                                  \
    do {                                                                                           \
        const char *r_ = chat(t, body);                                                            \
        if (r_)                                                                                    \
            fail_msg("%s: rendered \"%s\", expected an error", body, r_);                          \
        if (!strstr(err, part))                                                                    \
            fail_msg("%s: error \"%s\" lacks \"%s\"", body, err, part);                            \
    } while (0)

static chat_template *load(const char *file)
{
    chat_template *t = NULL;
    if (chat_template_load(&t, dir, file, err, sizeof err))
        fail_msg("load: %s", err);
    return t;
}

static void test_sources(void **state)
{
    clear_dir();
    chat_template *t = NULL;
    write_file("tokenizer_config.json", "{\"bos_token\": \"<s>\"}");
    assert_int_equal(chat_template_load(&t, dir, NULL, err, sizeof err), 0);
    assert_null(t); /* no template: no chat API, and the reason */
    assert_non_null(strstr(err, "no chat template"));

    write_file("tokenizer_config.json", "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\","
                                        " \"chat_template\": \"A{{ bos_token }}{{ eos_token }}\"}");
    t = load(NULL);
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "A<s></s>");
    chat_template_free(t);

    write_file("chat_template.jinja", "B{{ messages[0].content }}");  /* wins over the config */
    t = load(NULL);
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "Bx");
    chat_template_free(t);

    char path[256];
    snprintf(path, sizeof path, "%s/override.jinja", dir);
    write_file("override.jinja", "C{{ add_generation_prompt }}");     /* --chat-template wins */
    t = load(path);
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "CTrue");
    chat_template_free(t);

    write_file("override.jinja", "{% if %}");
    assert_int_equal(chat_template_load(&t, dir, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 1"));

    clear_dir();
    write_file("tokenizer_config.json", "{\"chat_template\": [{\"name\": \"default\", \"template\": \"plain\"},"
                                        " {\"name\": \"tool_use\", \"template\": \"tools:{{ tools | length }}\"}]}");
    t = load(NULL);
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "plain");
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"function\","
              " \"function\": {\"name\": \"f\"}}]}", "tools:1");
    chat_template_free(t);
}

static void test_request(void **state)
{
    clear_dir();
    write_file("tokenizer_config.json",
               "{\"bos_token\": \"<s>\", \"additional_special_tokens\": [\"<x>\"], \"chat_template\": "
               "\"{% for m in messages %}[{{ m.role }}]{{ m.content }}{% if m.tool_calls %}"
               "{{ m.tool_calls[0].function.arguments | tojson }}{% endif %}{% endfor %}"
               "{% if add_generation_prompt %}[gen]{% endif %}{{ enable_thinking }}"
               "{{ additional_special_tokens[0] }}{% if messages[0].role == 'bad' %}"
               "{{ raise_exception('no bad roles') }}{% endif %}\"}");
    chat_template *t = load(NULL);
    EXPECT(t, "{\"messages\": [{\"role\": \"developer\", \"content\": \"d\"}, {\"role\": \"user\", \"content\":"
              " [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}]}",
           "[developer]d[user]a\nb[gen]<x>");
    EXPECT(t, "{\"messages\": [{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"1\","
              " \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1.0}\"}}]},"
              " {\"role\": \"tool\", \"content\": \"r\"}], \"add_generation_prompt\": false}",
           "[assistant]{\"x\": 1.0}[tool]r<x>");
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"chat_template_kwargs\":"
              " {\"enable_thinking\": false}}", "[user]q[gen]False<x>");
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"{{ 7 * 7 }}\"}]}", "[user]{{ 7 * 7 }}[gen]<x>");
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\":"
              " \"Once upon \"}], \"add_generation_prompt\": false, \"continue_final_message\": true}",
           "[user]q[assistant]Once upon ");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"bad\", \"content\": \"x\"}]}", "no bad roles");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}",
               "tool_choice");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\":"
                  " {\"url\": \"x\"}}]}]}", "content[0]");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\","
                  " \"arguments\": \"{not json\"}}]}]}", "arguments");
    EXPECT_ERR(t, "{\"messages\": []}", "non-empty");
    EXPECT_ERR(t, "{\"messages\": [{\"content\": \"x\"}]}", "role");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"continue_final_message\": true}",
               "cannot both");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"chat_template\": \"x\"}",
               "chat_template");
    EXPECT_ERR(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": {}}", "tools");
    chat_template_free(t);
}

/* a template that loops over content gets parts, a string included */
static void test_content_parts(void **state)
{
    clear_dir();
    write_file("chat_template.jinja", "{% for m in messages %}{% for p in m['content'] %}<{{ p.text }}>{% endfor %}"
                                      "{% endfor %}");
    chat_template *t = load(NULL);
    EXPECT(t, "{\"messages\": [{\"role\": \"user\", \"content\": \"s\"}, {\"role\": \"user\", \"content\":"
              " [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]},"
              " {\"role\": \"assistant\", \"content\": null}]}", "<s><a><b>");
    chat_template_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_content_parts),
    };
    return cmocka_run_group_tests_name("chat", tests, setup, teardown);
}
