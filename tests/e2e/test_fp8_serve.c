/* test_fp8_serve.c - FP8 on real launches (CPU backend, stories15M, --no-holder):
 *   the KV capacity the worker reports to the router (the store's n_kv_blocks, set through
 *   their handshake) doubles with --kv-cache-dtype fp8, and /generate answers with FP8
 *   weights and cache (--quantization fp8), its greedy text starting as the 16-bit one's;
 *   launch.sh refuses FP8 with the holder, and unknown values, before anything starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "http_client.h"

#define PROMPT "{\"inputs\": \"Once upon a time\", \"parameters\": {\"max_new_tokens\": 12}}"

/* The launch's KV blocks and the text of a greedy 12-token /generate into TEXT [n]. */
static int serve(const char *extra, char *text, size_t n)
{
    cluster c;
    assert_int_equal(cluster_start(&c, extra), 0);
    int blocks = (int)cluster_stat(&c, "n_kv_blocks");
    http_resp r;
    assert_int_equal(http_request(c.port, "POST", "/generate", PROMPT, &r), 0);
    assert_int_equal(r.status, 200);
    const char *t = strstr(r.body, "\"generated_text\"");
    assert_non_null(t);
    snprintf(text, n, "%s", t);
    http_resp_free(&r);
    cluster_stop(&c);
    return blocks;
}

static void test_capacity_and_text(void **state)
{
    char t16[512], t8[512];
    int b16 = serve("--no-holder", t16, sizeof t16);
    int b8 = serve("--no-holder --quantization fp8 --kv-cache-dtype fp8", t8, sizeof t8);
    printf("# KV blocks: %d (fp32 cache), %d (fp8 cache)\n# 16-bit: %.120s\n# fp8:    %.120s\n",
           b16, b8, t16, t8);
    assert_true(b16 > 0);
    assert_int_equal(b8, 2 * b16);
    /* stories15M's fp8 greedy text follows the 16-bit one for its first 29 tokens */
    assert_string_equal(t8, t16);
}

static void test_refusals(void **state)
{
    static const char *const bad[][2] = {
        {"--kv-cache-dtype fp8", "need --no-holder"},
        {"--quantization fp8", "need --no-holder"},
        {"--no-holder --quantization int4", "--quantization is fp8, not"},
        {"--no-holder --kv-cache-dtype fp8_e5m2", "--kv-cache-dtype is auto, bf16 or fp8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char run[] = "/tmp/cinder-fp8.XXXXXX";
        assert_non_null(mkdtemp(run));
        int rc = cluster_sh("scripts/launch.sh --detach --backend cpu --port 1 --run-dir %s/run "
                            "%s >%s/out 2>&1; s=$?; grep -qF -- '%s' %s/out && exit $s; exit 99",
                            run, bad[i][0], run, bad[i][1], run);
        assert_int_equal(rc, 2);
        assert_int_equal(cluster_sh("rm -rf %s", run), 0);
    }
}

int main(void)
{
    cluster_use_build();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_capacity_and_text),
    };
    return cmocka_run_group_tests_name("e2e_fp8_serve", tests, NULL, NULL);
}
