/* test_jinja.c - the Jinja interpreter (tokenizer/jinja.h) feature by feature: white space
 * control under trim_blocks / lstrip_blocks, expressions, filters, tests, methods, loops and
 * their variables, scoping, macros, namespace, raise_exception, Undefined, and its limits and
 * errors on hostile templates and data. Exactness against Jinja2 itself is checked by
 * tests/chat_oracle.py; the expected strings here are Jinja2's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tokenizer/jinja.h"

typedef struct {
    const jinja_tpl *t;
    const char *vars;
    const char *out;
    size_t n;
} job;

static void run_job(jctx *c, void *arg)
{
    job *j = arg;
    if (j->vars)
        jinja_set_json(c, "v", j->vars, strlen(j->vars));
    j->out = jinja_render(c, j->t, &j->n);
}

static char got[1 << 16];
static int code;

/* renders SRC with the variable v = VARS (JSON, may be NULL) under LIM; the text, or NULL
 * with code and got holding the error */
static const char *render_lim(const char *src, const char *vars, const jinja_limits *lim)
{
    char err[512];
    jinja_tpl *t = jinja_parse(src, strlen(src), err, sizeof err);
    if (!t) {
        code = JINJA_ESYNTAX;
        snprintf(got, sizeof got, "%s", err);
        return NULL;
    }
    jctx *c = jinja_ctx_new(lim);
    job j = {t, vars, NULL, 0};
    code = jinja_run(c, run_job, &j);
    if (code == 0)
        snprintf(got, sizeof got, "%.*s", (int)j.n, j.out);
    else
        snprintf(got, sizeof got, "%s", jinja_ctx_error(c));
    jinja_ctx_free(c);
    jinja_free(t);
    return code ? NULL : got;
}

static const char *render(const char *src, const char *vars) { return render_lim(src, vars, NULL); }

#define EXPECT(src, vars, want)                                                                    \
    do {                                                                                           \
        const char *r_ = render(src, vars);                                                        \
        if (!r_)                                                                                   \
            fail_msg("%s: error %d: %s", src, code, got);                                          \
        assert_string_equal(r_, want);                                                             \
    } while (0)

#define EXPECT_ERR(src, vars, want_code, part)                                                     \
    do {                                                                                           \
        if (render(src, vars))                                                                     \
            fail_msg("%s: rendered \"%s\", expected an error", src, got);                          \
        assert_int_equal(code, want_code);                                                         \
        if (!strstr(got, part))                                                                    \
            fail_msg("%s: error \"%s\" lacks \"%s\"", src, got, part);                             \
    } while (0)

static void test_whitespace(void **state)
{
    EXPECT("a\n  {% if true %}\n  b\n  {% endif %}\nc", NULL, "a\n  b\nc");      /* lstrip + trim */
    EXPECT("a {%- if true %} b {% endif -%} c", NULL, "a b c");
    EXPECT("a\n{%+ if true %}x{% endif +%}\ny", NULL, "a\nx\ny");
    EXPECT("  {{ 'v' }}  \n{# comment #}\nz", NULL, "  v  \nz");
    EXPECT("x\n", NULL, "x");                                                   /* trailing \n */
    EXPECT("{% raw %}{{ not code }}{% endraw %}", NULL, "{{ not code }}");
    EXPECT("a\r\nb\rc", NULL, "a\nb\nc");
}

static void test_expressions(void **state)
{
    EXPECT("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 10 / 4 }} {{ 1 + 2 * 3 }}", NULL,
           "3 -4 2 1024 2.5 7");
    EXPECT("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.0 }} {{ 1e-5 }} {{ 3 * 1.5 }}", NULL,
           "0.30000000000000004 1e+16 1.0 1e-05 4.5");
    EXPECT("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'b' > 'a' }} {{ 'x' in 'xyz' }} {{ 3 not in [1] }}", NULL,
           "True True True True True");
    EXPECT("{{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'k': (1,)} }} {{ \"it's\" ~ 1 }}", NULL,
           "None True [1, 'a', None] {'k': (1,)} it's1");
    EXPECT("{{ 'a' if false else 'b' }}[{{ 'x' if false }}] {{ 0 or 'y' }} {{ 1 and 2 }} {{ not 0 }}", NULL,
           "b[] y 2 True");
    EXPECT("{{ v.a[1:] }} {{ v.a[::-1] }} {{ 'héllo'[1:3] }} {{ v.a[-1] }} {{ v['a'][0] }}", "{\"a\":[1,2,3]}",
           "[2, 3] [3, 2, 1] él 3 1");
    EXPECT("{{ v['items'] }} {{ v.items() | list }}", "{\"items\":5}", "5 [('items', 5)]"); /* .items: the method */
}

static void test_filters_and_tests(void **state)
{
    EXPECT("{{ v | tojson }}", "{\"b\":1.0,\"a\":[\"é\\n\",null,true]}", "{\"b\": 1.0, \"a\": [\"é\\n\", null, true]}");
    EXPECT("{{ v | tojson(indent=2) }}", "{\"a\":[1]}", "{\n  \"a\": [\n    1\n  ]\n}");
    EXPECT("{{ v | map(attribute='n') | join(',') }} {{ v | selectattr('n', 'gt', 1) | list | length }}",
           "[{\"n\":1},{\"n\":2},{\"n\":3}]", "1,2,3 2");
    EXPECT("{{ '  x ' | trim }}|{{ 'ab' | upper }}|{{ 'hello world' | title }}|{{ 'a\nb' | indent(2) }}", NULL,
           "x|AB|Hello World|a\n  b");
    EXPECT("{{ ['b', 'A', 'a'] | unique | list }} {{ [3, 1] | sort }} {{ 2.5 | round }} {{ 'x' | int }}", NULL,
           "['b', 'A'] [1, 3] 2.0 0");
    EXPECT("{{ u is defined }} {{ none is none }} {{ 'x' is string }} {{ {} is mapping }} {{ 3 is odd }}", NULL,
           "False True True True True");
    EXPECT("{{ u | default('d') }} {{ '' | default('e', true) }} {{ u | length }} {{ u }}", NULL, "d e 0 ");
    EXPECT("{{ ' a  b '.split() }} {{ 'a,b'.split(',') }} {{ 'xay'.strip('xy') }} {{ 'ab'.startswith(('x', 'a')) }}",
           NULL, "['a', 'b'] ['a', 'b'] a True");
    EXPECT("{{ {'b': 2, 'a': 1} | dictsort }} {{ {'a': 1}.get('z', 0) }} {{ range(3) | list }}", NULL,
           "[('a', 1), ('b', 2)] 0 [0, 1, 2]");
}

static void test_loops_and_scopes(void **state)
{
    EXPECT("{% for x in v if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.last }} {% else %}none{% endfor %}",
           "[1,2,3]", "1/2False 2/2True ");
    EXPECT("{% for x in [] %}x{% else %}empty{% endfor %}", NULL, "empty");
    EXPECT("{% for x in v %}{{ loop.previtem | default('-') }}{{ loop.nextitem | default('-') }} {% endfor %}",
           "[1,2]", "-2 1- ");
    EXPECT("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 1 %}{{ x }},{% endfor %}{{ x }}", NULL,
           "12,12,1"); /* a loop body's set lasts one iteration */
    EXPECT("{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
           NULL, "6");
    EXPECT("{% for i in range(9) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
           NULL, "013");
    EXPECT("{% for k, x in {'a': 1}.items() %}{{ k }}={{ x }}{% endfor %}", NULL, "a=1");
    EXPECT("{% for n in v recursive %}{{ n.k }}{% if n.c %}({{ loop(n.c) }}){% endif %}{% endfor %}",
           "[{\"k\":\"a\",\"c\":[{\"k\":\"b\",\"c\":[]}]}]", "a(b)");
}

static void test_macros(void **state)
{
    EXPECT("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}{{ m() }}", NULL, "1B23B");
    EXPECT("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", NULL, "<in>");
    EXPECT("{% filter upper %}ab{% endfilter %}{% set s %}x{{ 1 }}{% endset %}{{ s }}", NULL, "ABx1");
    EXPECT("{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", NULL, "3210");
}

static void test_errors(void **state)
{
    EXPECT_ERR("{{ raise_exception('Roles must alternate') }}", NULL, JINJA_ERAISE, "Roles must alternate");
    EXPECT_ERR("{{ u.x }}", NULL, JINJA_EERROR, "'u' is undefined");
    EXPECT_ERR("{{ 'a' + 1 }}", NULL, JINJA_EERROR, "concatenate");
    EXPECT_ERR("{{ 1 / 0 }}", NULL, JINJA_EERROR, "division by zero");
    EXPECT_ERR("{% for %}", NULL, JINJA_ESYNTAX, "line 1");
    EXPECT_ERR("{% if x %}", NULL, JINJA_ESYNTAX, "endif");
    EXPECT_ERR("{{ x | no_such_filter }}", NULL, JINJA_ESYNTAX, "no_such_filter");
    EXPECT_ERR("{% include 'x' %}", NULL, JINJA_ESYNTAX, "unknown tag");
    EXPECT_ERR("{{ [].append(1) }}", NULL, JINJA_EERROR, "unsafe");
    EXPECT_ERR("{{ v }}", "{\"a\": [1,]}", JINJA_EINPUT, "invalid JSON");
    EXPECT_ERR("{{ range(200000) | length }}", NULL, JINJA_EERROR, "Range too big");
    EXPECT("{{ 'x'.__class__ }}|{{ v.__class__ }}", "{}", "|"); /* the sandbox: no dunder attributes */
}

/* data is never code: a message holding template syntax prints as it is */
static void test_data_is_not_code(void **state)
{
    EXPECT("{{ v.content }}", "{\"content\": \"{{ raise_exception('x') }}{% for %}\"}",
           "{{ raise_exception('x') }}{% for %}");
}

static void test_limits(void **state)
{
    jinja_limits lim = jinja_default_limits();
    lim.max_iterations = 1000;
    if (render_lim("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", NULL, &lim))
        fail_msg("10000 iterations passed a limit of 1000");
    assert_int_equal(code, JINJA_ELIMIT);
    lim = jinja_default_limits();
    lim.max_output = 1000;
    if (render_lim("{% for i in range(2000) %}x{% endfor %}", NULL, &lim))
        fail_msg("2000 bytes passed a limit of 1000");
    assert_int_equal(code, JINJA_ELIMIT);
    lim = jinja_default_limits();
    lim.max_memory = 1 << 20;
    if (render_lim("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   NULL, &lim))
        fail_msg("a string doubling 40 times passed a 1 MiB memory limit");
    assert_int_equal(code, JINJA_ELIMIT);
    /* unbounded recursion and nesting end with an error */
    EXPECT_ERR("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, JINJA_ELIMIT, "deeper");
    char deep[4096] = "{{ ";
    for (int i = 0; i < 1000; i++)
        strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 1000; i++)
        strcat(deep, ")");
    strcat(deep, " }}");
    EXPECT_ERR(deep, NULL, JINJA_ESYNTAX, "nested");
    char nested[4200] = "";
    for (int i = 0; i < 1000; i++)
        strcat(nested, "[");
    for (int i = 0; i < 1000; i++)
        strcat(nested, "]");
    EXPECT_ERR("{{ v | tojson }}", nested, JINJA_ELIMIT, "deeper");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whitespace),       cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_filters_and_tests), cmocka_unit_test(test_loops_and_scopes),
        cmocka_unit_test(test_macros),           cmocka_unit_test(test_errors),
        cmocka_unit_test(test_data_is_not_code), cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests_name("jinja", tests, NULL, NULL);
}
