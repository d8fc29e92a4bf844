/* test_store.c - the shared-memory request store: sizes come from the header, the arrays of
 * every slot are disjoint and inside the mapping, a second mapping (another process: fork)
 * sees what the first wrote, a region with a wrong magic or version is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/store.h"

static void test_layout(void **state)
{
    char name[64];
    snprintf(name, sizeof name, "/cinder-test-store-%d", (int)getpid());
    for (int it = 0; it < 10; it++) {
        store_layout l = {.n_slots = 1 + (uint32_t)(rand() % 40), .max_seq_len = 1 + (uint32_t)(rand() % 3000),
                          .block_size = 1 + (uint32_t)(rand() % 64), .vocab_size = 32000};
        store s, s2;
        assert_int_equal(store_create(&s, name, &l), 0);
        assert_int_equal(s.hdr->n_slots, l.n_slots);
        assert_int_equal(s.hdr->max_blocks_per_seq, (l.max_seq_len + l.block_size - 1) / l.block_size);
        char *end = (char *)s.hdr + s.map_bytes;
        for (uint32_t i = 0; i < l.n_slots; i++) {
            char *blocks_end = (char *)(slot_blocks(&s, (int)i) + s.hdr->max_blocks_per_seq);
            assert_true(blocks_end <= end);
            if (i + 1 < l.n_slots)
                assert_true(blocks_end <= (char *)store_slot(&s, (int)i + 1));
            assert_int_equal(atomic_load(&store_slot(&s, (int)i)->state), SLOT_FREE);
        }
        /* another process writes, this one reads */
        int last = (int)l.n_slots - 1;
        pid_t pid = fork();
        if (pid == 0) {
            store c;
            if (store_open(&c, name))
                _exit(1);
            slot_tokens(&c, last)[l.max_seq_len - 1] = 4242;
            slot_blocks(&c, last)[c.hdr->max_blocks_per_seq - 1] = 77;
            atomic_store(&store_slot(&c, last)->n_tokens, 9);
            store_register(&c, PROC_WORKER);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(slot_tokens(&s, last)[l.max_seq_len - 1], 4242);
        assert_int_equal(slot_blocks(&s, last)[s.hdr->max_blocks_per_seq - 1], 77);
        assert_int_equal(atomic_load(&store_slot(&s, last)->n_tokens), 9);
        assert_false(store_alive(&s, PROC_WORKER)); /* it beat, but its process is gone */
        assert_int_equal(atomic_load(&s.hdr->epoch[PROC_WORKER]), 1);
        assert_false(store_alive(&s, PROC_ROUTER));
        store_register(&s, PROC_ROUTER);
        assert_true(store_alive(&s, PROC_ROUTER));
        /* a foreign or newer layout is refused */
        s.hdr->version = STORE_VERSION + 1;
        assert_true(store_open(&s2, name) < 0);
        s.hdr->version = STORE_VERSION;
        s.hdr->magic ^= 1;
        assert_true(store_open(&s2, name) < 0);
        s.hdr->magic ^= 1;
        assert_int_equal(store_open(&s2, name), 0);
        store_close(&s2);
        store_close(&s);
        assert_int_equal(store_unlink(name), 0);
    }
    store s;
    assert_true(store_open(&s, name) < 0); /* gone */
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
