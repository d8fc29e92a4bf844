/* cmd_chat_template.c - build/bin/chat-template: renders a chat template as the server does,
 * to see the prompt a request becomes, and for the oracle tests against Jinja2.
 *
 *   chat-template (--model-dir DIR | --chat-template FILE) [--vars] [--now EPOCH] < IN
 *       IN: a /v1/chat/completions request body (messages, tools, add_generation_prompt ...);
 *       prints the prompt. --vars: IN is the template's variables as they are, without the
 *       request handling (chat.h). --now: strftime_now's clock.
 *   chat-template --batch < LINES
 *       each line {"template": SOURCE, "vars": "JSON OBJECT TEXT", "now": EPOCH} (the variables
 *       as text, read by the interpreter's own JSON reader: 1.0 stays a float); prints one line each:
 *       {"text": PROMPT} or {"error": MESSAGE}
 *
 * Exit status: 0, 1 when rendering failed (the message on stderr), 2 on bad usage.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "../common/strbuf.h"

static char *read_stdin(size_t *n)
{
    strbuf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (strbuf_add(&b, chunk, k))
            return NULL;
    if (strbuf_add(&b, "", 0))
        return NULL;
    *n = b.n;
    return b.p;
}

static int batch(void)
{
    char *line = NULL, err[1024];
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, stdin)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)k), *o = cJSON_CreateObject();
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "template");
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(j, "vars");
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(j, "now");
        const char *vtext = cJSON_IsString(vars) ? vars->valuestring : NULL;
        chat_template *t = cJSON_IsString(src) ? chat_template_parse(src->valuestring, err, sizeof err) : NULL;
        if (!cJSON_IsString(src) || !vtext)
            snprintf(err, sizeof err, "a line needs \"template\" and \"vars\"");
        char *out = NULL;
        size_t n = 0;
        if (t && vtext)
            out = chat_render_vars(t, vtext, strlen(vtext), cJSON_IsNumber(now) ? (long long)now->valuedouble : 0,
                                   &n, err, sizeof err);
        if (out && strlen(out) == n)
            cJSON_AddStringToObject(o, "text", out);
        else
            cJSON_AddStringToObject(o, "error", out ? "the prompt holds a NUL byte" : err);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        free(out);
        chat_template_free(t);
        cJSON_Delete(o);
        cJSON_Delete(j);
    }
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_dir = NULL, *file = NULL;
    int vars = 0, is_batch = 0;
    long long now = 0;
    static const struct option opts[] = {
        {"model-dir", 1, 0, 'm'}, {"chat-template", 1, 0, 't'}, {"vars", 0, 0, 'v'},
        {"now", 1, 0, 'n'}, {"batch", 0, 0, 'b'}, {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': model_dir = optarg; break;
        case 't': file = optarg; break;
        case 'v': vars = 1; break;
        case 'n': now = atoll(optarg); break;
        case 'b': is_batch = 1; break;
        default: goto usage;
        }
    }
    if (is_batch)
        return batch();
    if (!model_dir && !file)
        goto usage;
    char err[1024];
    chat_template *t;
    if (chat_template_load(&t, model_dir, file, err, sizeof err) || !t) {
        fprintf(stderr, "chat-template: %s\n", err);
        return 1;
    }
    size_t n, len;
    char *in = read_stdin(&n), *out = NULL;
    if (in)
        out = vars ? chat_render_vars(t, in, n, now, &len, err, sizeof err) : chat_render(t, in, n, &len, err, sizeof err);
    if (out)
        fwrite(out, 1, len, stdout);
    else
        fprintf(stderr, "chat-template: %s\n", in ? err : "out of memory");
    free(in);
    free(out);
    chat_template_free(t);
    return out ? 0 : 1;
usage:
    fprintf(stderr, "usage: chat-template (--model-dir DIR | --chat-template FILE) [--vars] [--now EPOCH] < IN\n"
                    "       chat-template --batch < LINES\n");
    return 2;
}
