/* fuzz_jinja.c - libFuzzer target: the Jinja interpreter (tokenizer/jinja.h) and the chat
 * request path (tokenizer/chat.h) on hostile input.
 *
 * Input: TEMPLATE \0 VARIABLES. The template is parsed; when it parses it renders with the
 * variables (JSON) under small limits. With an empty template part, the input after the NUL is
 * a chat request rendered by a fixed template that uses most features. Any bytes must give
 * text or an error code with a message, never a crash, a leak or a hang; text that comes
 * back is within the output limit; the request path's text is a C string of its length.
 */
#include <stdint.h>
#include <string.h>

#include "../../tokenizer/chat.h"
#include "../../tokenizer/jinja.h"
#include "fuzz_util.h"

static const char *const TEMPLATE =
    "{%- macro show(m) -%}{{ m.role | upper }}:{{ m.content if m.content is string else "
    "m.content | map(attribute='text') | join('/') }}{%- endmacro -%}"
    "{%- set ns = namespace(n=0, last='') -%}{{ bos_token }}"
    "{%- for m in messages if m.role != 'skip' -%}{%- set ns.n = ns.n + 1 -%}"
    "{%- if m.role == 'raise' %}{{ raise_exception('no: ' ~ m.content) }}{% endif -%}"
    "[{{ loop.index }}/{{ loop.length }}]{{ show(m) | trim }}{% if m.tool_calls %}"
    "{{ m.tool_calls | map(attribute='function') | list | tojson(indent=1) }}{% endif %}\n"
    "{%- endfor -%}{% if tools %}{{ tools | tojson }}{% endif %}{{ ns.n }}"
    "{%- if add_generation_prompt %}<gen>{% endif %}";

static chat_template *fixed;

typedef struct {
    const jinja_tpl *t;
    const char *vars;
    size_t n;
    size_t out_n;
} job;

static void render_job(jctx *c, void *arg)
{
    job *j = arg;
    if (j->n)
        jinja_set_json(c, "v", j->vars, j->n);
    jinja_render(c, j->t, &j->out_n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    const uint8_t *nul = memchr(data, 0, size);
    size_t n_tpl = nul ? (size_t)(nul - data) : size;
    const char *vars = nul ? (const char *)nul + 1 : "";
    size_t n_vars = nul ? size - n_tpl - 1 : 0;
    if (n_tpl == 0) {
        if (!fixed)
            fixed = chat_template_parse(TEMPLATE, err, sizeof err);
        FUZZ_CHECK(fixed != NULL);
        size_t len = 0;
        char *out = chat_render(fixed, vars, n_vars, &len, err, sizeof err);
        FUZZ_CHECK(out || err[0]);
        if (out)
            FUZZ_CHECK(strlen(out) <= len);
        free(out);
        return 0;
    }
    jinja_tpl *t = jinja_parse((const char *)data, n_tpl, err, sizeof err);
    if (!t) {
        FUZZ_CHECK(err[0] != 0);
        return 0;
    }
    jinja_limits lim = jinja_default_limits();
    lim.max_output = 1 << 16;
    lim.max_memory = 16 << 20;
    lim.max_iterations = 20000;
    lim.max_depth = 64;
    jctx *c = jinja_ctx_new(&lim);
    FUZZ_CHECK(c != NULL);
    job j = {t, vars, n_vars, 0};
    int rc = jinja_run(c, render_job, &j);
    if (rc == 0)
        FUZZ_CHECK(j.out_n <= lim.max_output);
    else
        FUZZ_CHECK(rc < 0 && jinja_ctx_error(c)[0] != 0);
    jinja_ctx_free(c);
    jinja_free(t);
    return 0;
}
