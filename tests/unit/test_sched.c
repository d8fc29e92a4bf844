/* test_sched.c - the router's scheduler over a real shared-memory store, driven by a fake
 * worker that writes tokens into the slots as the real one does.
 *
 * Checks: chunked prefill splits prompts under the token budget and samples only after the
 * last chunk; admission never reserves more KV than the limit; randomized load completes
 * every request with the right count and returns every block; EOS and max_new_tokens stop;
 * cancel in the queue, in flight and after a worker restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../router/sched.h"

#define EOS 2

static store st;
static model_config cfg;
static msg_step step;
static msg_detok detok;

static int setup(void **state)
{
    char name[64];
    snprintf(name, sizeof name, "/cinder-test-sched-%d", (int)getpid());
    store_layout l = {.n_slots = 64, .max_seq_len = 512, .block_size = 4, .vocab_size = 100};
    if (store_create(&st, name, &l))
        return -1;
    store_unlink(name); /* stays mapped; nothing left behind */
    cfg.n_eos = 1;
    cfg.eos_ids[0] = EOS;
    cfg.max_seq_len = 512;
    return 0;
}

static int teardown(void **state)
{
    store_close(&st);
    return 0;
}

/* What the tokenizer does: fill a slot and mark it active. */
static uint64_t next_id = 1;
static uint64_t put_req(int slot, int n_prompt, int max_new)
{
    slot_hdr *h = store_slot(&st, slot);
    memset(h, 0, sizeof *h);
    for (int i = 0; i < n_prompt; i++)
        slot_tokens(&st, slot)[i] = 10 + rand() % 80;
    h->n_prompt = n_prompt;
    h->params.max_new_tokens = max_new;
    h->req_id = next_id++;
    atomic_store(&h->n_tokens, n_prompt);
    atomic_store(&h->state, SLOT_ACTIVE);
    return h->req_id;
}

/* What the worker does: check the block tables cover the step, write sampled tokens. */
static void fake_worker(sched *s, const msg_step *m, int eos_slot)
{
    for (int i = 0; i < m->n_seqs; i++) {
        const step_seq *q = &m->seqs[i];
        slot_hdr *h = store_slot(&st, q->slot);
        assert_true(atomic_load(&h->n_blocks) * 4 >= q->n_cached + q->n_new);
        if (q->sample) {
            int pos = q->n_cached + q->n_new;
            slot_tokens(&st, q->slot)[pos] = q->slot == eos_slot ? EOS : 10 + rand() % 80;
            atomic_store(&h->n_tokens, pos + 1);
        }
    }
}

static int drain(sched *s, int *finish_of)
{
    int n = 0;
    while (sched_take_outbox(s, &detok) > 0)
        for (int i = 0; i < detok.n_seqs; i++, n++)
            if (detok.seqs[i].finish)
                finish_of[detok.seqs[i].slot] = detok.seqs[i].finish;
    return n;
}

static void test_chunked_prefill(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 32, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 100, 0), 0);
    uint64_t id = put_req(0, 100, 3);
    assert_int_equal(sched_add(&s, 0, id), 0);
    int chunks[] = {32, 32, 32, 4}, finish_of[64] = {0};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(sched_build_step(&s, &step), 1);
        assert_int_equal(step.seqs[0].n_cached, 32 * k);
        assert_int_equal(step.seqs[0].n_new, chunks[k]);
        assert_int_equal(step.seqs[0].sample, k == 3);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
    }
    for (int k = 0; k < 2; k++) { /* decodes */
        assert_int_equal(sched_build_step(&s, &step), 1);
        assert_int_equal(step.seqs[0].n_new, 1);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
    }
    drain(&s, finish_of);
    assert_int_equal(finish_of[0], FINISH_LENGTH);
    assert_int_equal(sched_n_free_blocks(&s), 100);
    assert_int_equal(sched_build_step(&s, &step), 0);
    sched_free(&s);
}

static void test_random_load_never_overcommits(void **state)
{
    for (int round = 0; round < 5; round++) {
        sched s;
        sched_opts o = {.max_batch_tokens = 16 + rand() % 64, .max_running = 4 + rand() % 30,
                        .max_total_tokens = 4 * (60 + rand() % 100)};
        assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
        assert_int_equal(sched_set_capacity(&s, 200, 0), 0);
        int finish_of[64] = {0}, max_new[64], n_prompt[64];
        for (int slot = 0; slot < 64; slot++) {
            n_prompt[slot] = 1 + rand() % 100;
            max_new[slot] = 1 + rand() % 60;
            assert_int_equal(sched_add(&s, slot, put_req(slot, n_prompt[slot], max_new[slot])), 0);
        }
        int eos_slot = rand() % 64, n_steps = 0;
        while (sched_build_step(&s, &step) > 0) {
            int tokens = 0;
            for (int i = 0; i < step.n_seqs; i++)
                tokens += step.seqs[i].n_new;
            assert_true(tokens <= o.max_batch_tokens);
            assert_true(step.n_seqs <= o.max_running);
            assert_true(s.reserved <= s.kv_limit);
            assert_true(200 - sched_n_free_blocks(&s) <= s.kv_limit);
            fake_worker(&s, &step, eos_slot);
            sched_step_done(&s, &step, 0);
            drain(&s, finish_of);
            assert_true(++n_steps < 100000);
        }
        for (int slot = 0; slot < 64; slot++) {
            int n = atomic_load(&store_slot(&st, slot)->n_tokens) - n_prompt[slot];
            if (slot == eos_slot) {
                assert_int_equal(finish_of[slot], FINISH_STOP);
                assert_int_equal(n, 1);
            } else {
                assert_int_equal(finish_of[slot], FINISH_LENGTH);
                assert_int_equal(n, max_new[slot]);
            }
        }
        assert_int_equal(sched_n_free_blocks(&s), 200);
        assert_int_equal(s.reserved, 0);
        sched_free(&s);
    }
}

static void test_cancel_paths(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 64, .max_running = 1};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 50, 0), 0);
    uint64_t a = put_req(1, 10, 50), b = put_req(2, 10, 50);
    sched_add(&s, 1, a);
    sched_add(&s, 2, b);
    int finish_of[64] = {0};
    assert_int_equal(sched_build_step(&s, &step), 1); /* only slot 1 runs */
    sched_cancel(&s, 2, b, FINISH_ABORT);              /* waiting: ends at once */
    drain(&s, finish_of);
    assert_int_equal(finish_of[2], FINISH_ABORT);
    sched_cancel(&s, 1, a + 1000, FINISH_ABORT);       /* stale id: ignored */
    sched_cancel(&s, 1, a, FINISH_ABORT);              /* in flight: ends when it returns */
    assert_int_equal(drain(&s, finish_of), 0);
    fake_worker(&s, &step, -1);
    sched_step_done(&s, &step, 0);
    drain(&s, finish_of);
    assert_int_equal(finish_of[1], FINISH_ABORT);
    assert_int_equal(sched_n_free_blocks(&s), 50);
    assert_int_equal(sched_build_step(&s, &step), 0);
    sched_free(&s);
}

static void test_worker_restart_recomputes(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 64, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 50, 0), 0);
    uint64_t a = put_req(3, 20, 10);
    sched_add(&s, 3, a);
    int finish_of[64] = {0};
    for (int k = 0; k < 4; k++) { /* prefill + 3 decodes */
        sched_build_step(&s, &step);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
    }
    drain(&s, finish_of);
    sched_build_step(&s, &step); /* in flight when the worker dies */
    assert_int_equal(sched_set_capacity(&s, 40, 0), 0);
    sched_step_done(&s, &step, 0); /* a late answer from the dead worker is ignored */
    assert_int_equal(sched_build_step(&s, &step), 1);
    assert_int_equal(step.seqs[0].n_cached, 0);
    assert_int_equal(step.seqs[0].n_new, 24); /* prompt + 4 generated, recomputed */
    assert_int_equal(step.seqs[0].sample, 1);
    sched_free(&s);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_random_load_never_overcommits),
        cmocka_unit_test(test_cancel_paths),
        cmocka_unit_test(test_worker_restart_recomputes),
    };
    return cmocka_run_group_tests_name("sched", tests, setup, teardown);
}
