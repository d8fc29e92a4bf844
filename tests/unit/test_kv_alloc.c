/* test_kv_alloc.c - the router's KV block allocator: random get/put never hands out a block
 * twice, refuses when empty, and returns every block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "../../router/kv_alloc.h"

static void test_kv_alloc(void **state)
{
    for (int it = 0; it < 20; it++) {
        int n = 1 + rand() % 500;
        kv_alloc a;
        assert_int_equal(kv_alloc_init(&a, n), 0);
        int32_t *held = malloc(sizeof(int32_t) * (size_t)n);
        char *used = calloc((size_t)n, 1);
        int n_held = 0;
        for (int op = 0; op < 5000; op++) {
            if (rand() % 2 && n_held > 0) {
                int k = rand() % n_held;
                used[held[k]] = 0;
                kv_alloc_put(&a, held[k]);
                held[k] = held[--n_held];
            } else {
                int32_t b = kv_alloc_get(&a);
                if (n_held == n) {
                    assert_int_equal(b, -1);
                    continue;
                }
                assert_true(b >= 0 && b < n);
                assert_false(used[b]);
                used[b] = 1;
                held[n_held++] = b;
            }
            assert_int_equal(a.n_free + n_held, n);
        }
        while (n_held > 0)
            kv_alloc_put(&a, held[--n_held]);
        assert_int_equal(a.n_free, n);
        free(held);
        free(used);
        kv_alloc_free(&a);
    }
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_alloc),
    };
    return cmocka_run_group_tests_name("kv_alloc", tests, NULL, NULL);
}
