/* test_backend_opts.c - the backend's flags as the worker, the holder and the forward
 * benchmark parse them (worker/backend_opts.c): the CUDA switches' values and defaults,
 * --prefill-attn's two values, and bad values refused with -1 (never silently ignored).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../worker/backend.h"

static void test_defaults(void **state)
{
    (void)state;
    backend_opts o;
    backend_opts_init(&o);
    assert_string_equal(o.backend, "auto");
    assert_int_equal(o.portable_attn, 0);   /* the Hopper prefill attention where it applies */
    assert_int_equal(o.pdl, 0);
    assert_int_equal(o.gemv_max_tokens, 0);
}

static void test_prefill_attn(void **state)
{
    (void)state;
    backend_opts o;
    backend_opts_init(&o);
    assert_int_equal(backend_opts_parse(&o, "prefill-attn", "portable"), 1);
    assert_int_equal(o.portable_attn, 1);
    assert_int_equal(backend_opts_parse(&o, "prefill-attn", "auto"), 1);
    assert_int_equal(o.portable_attn, 0);
    assert_int_equal(backend_opts_parse(&o, "prefill-attn", "hopper"), -1);
    assert_int_equal(backend_opts_parse(&o, "prefill-attn", ""), -1);
    assert_int_equal(backend_opts_parse(&o, "prefill-attn", NULL), -1);
    assert_int_equal(o.portable_attn, 0);
}

static void test_other_switches(void **state)
{
    (void)state;
    backend_opts o;
    backend_opts_init(&o);
    assert_int_equal(backend_opts_parse(&o, "pdl", "0"), 1);
    assert_int_equal(o.pdl, -1);   /* 0 on the command line: no early-launch site */
    assert_int_equal(backend_opts_parse(&o, "pdl", "4"), -1);
    assert_int_equal(backend_opts_parse(&o, "gemv-max-tokens", "0"), 1);
    assert_int_equal(o.gemv_max_tokens, -1);
    assert_int_equal(backend_opts_parse(&o, "gemv-max-tokens", "9"), -1);
    assert_int_equal(backend_opts_parse(&o, "dtype", "fp16"), 1);
    assert_int_equal(o.fp16, 1);
    assert_int_equal(backend_opts_parse(&o, "dtype", "bogus"), -1);
    assert_int_equal(backend_opts_parse(&o, "no-such-flag", "1"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_prefill_attn),
        cmocka_unit_test(test_other_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
