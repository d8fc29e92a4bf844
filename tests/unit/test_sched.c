/* test_sched.c - the router's scheduler over a real shared-memory store, driven by a fake
 * worker that writes tokens into the slots as the real one does.
 *
 * Checks: chunked prefill splits prompts under the token budget and samples only after the
 * last chunk; randomized load (one or two steps in flight, both policies) never uses more KV
 * than the limit, completes every request with the right count and returns every block;
 * with a low new_token_ratio the same holds through preemption; LightLLM's estimate admits
 * what fits; EOS while a second step is in flight; cancel in the queue, in flight and after
 * a worker restart.
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
    assert_int_equal(s.kv.n_free, 100);
    assert_int_equal(sched_build_step(&s, &step), 0);
    sched_free(&s);
}

/* A router that was stopped handles every step done and abort at once, before it sends to
 * the detokenizer again: the outbox must hold one entry per slot, never overflow (it was
 * `check failed: s->n_outbox < s->n_slots` with 200 streams), keep finals, and report the
 * latest token counts. */
static void test_outbox_after_stall(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 256, .max_running = 64};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 64 * 40, 0), 0);
    uint64_t ids[64];
    for (int slot = 0; slot < 64; slot++) {
        ids[slot] = put_req(slot, 3, 50);
        assert_int_equal(sched_add(&s, slot, ids[slot]), 0);
    }
    for (int k = 0; k < 6; k++) {   /* six steps of all 64, nothing taken in between */
        assert_int_equal(sched_build_step(&s, &step), 64);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        assert_true(s.n_outbox <= 64);
    }
    for (int slot = 0; slot < 32; slot++)   /* then the front end's aborts */
        assert_int_equal(sched_cancel(&s, slot, ids[slot], FINISH_ABORT), 1);
    assert_int_equal(s.n_outbox, 64);
    int n = 0, n_final = 0;
    while (sched_take_outbox(&s, &detok) > 0)
        for (int i = 0; i < detok.n_seqs; i++, n++) {
            const detok_seq *e = &detok.seqs[i];
            assert_int_equal(e->req_id, ids[e->slot]);
            assert_int_equal(e->n_tokens, 3 + 6);
            assert_int_equal(e->finish, e->slot < 32 ? FINISH_ABORT : FINISH_NONE);
            n_final += e->finish != FINISH_NONE;
        }
    assert_int_equal(n, 64);
    assert_int_equal(n_final, 32);
    assert_int_equal(s.n_outbox, 0);
    sched_free(&s);
}

/* Random requests to completion with DEPTH steps in flight; checks every invariant. */
static void run_load(int depth, float ratio, const char *policy)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 16 + rand() % 64, .max_running = 4 + rand() % 30,
                    .max_total_tokens = 4 * (60 + rand() % 100), .new_token_ratio = ratio,
                    .policy = policy_find(policy)};
    static msg_step ring[2];
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 200, 0), 0);
    int finish_of[64] = {0}, max_new[64], n_prompt[64];
    for (int slot = 0; slot < 64; slot++) {
        n_prompt[slot] = 1 + rand() % 100;
        max_new[slot] = 1 + rand() % 60;
        assert_int_equal(sched_add(&s, slot, put_req(slot, n_prompt[slot], max_new[slot])), 0);
    }
    int eos_slot = rand() % 64, n_steps = 0, head = 0, n_inflight = 0;
    for (;;) {
        while (n_inflight < depth && sched_build_step(&s, &ring[(head + n_inflight) % 2]) > 0) {
            const msg_step *m = &ring[(head + n_inflight) % 2];
            int tokens = 0;
            for (int i = 0; i < m->n_seqs; i++)
                tokens += m->seqs[i].n_new;
            assert_true(tokens <= o.max_batch_tokens);
            assert_true(m->n_seqs <= o.max_running);
            assert_true(200 - s.kv.n_free <= s.kv_limit);
            n_inflight++;
        }
        if (n_inflight == 0)
            break;
        fake_worker(&s, &ring[head], eos_slot); /* the worker runs steps in order */
        sched_step_done(&s, &ring[head], 0);
        head = (head + 1) % 2;
        n_inflight--;
        drain(&s, finish_of);
        assert_true(++n_steps < 100000);
    }
    for (int slot = 0; slot < 64; slot++) {
        int n = s.reqs[slot].n_tokens - n_prompt[slot];
        if (slot == eos_slot) {
            assert_int_equal(finish_of[slot], FINISH_STOP);
            assert_int_equal(n, 1);
        } else {
            assert_int_equal(finish_of[slot], FINISH_LENGTH);
            assert_int_equal(n, max_new[slot]);
        }
    }
    assert_int_equal(s.kv.n_free, 200);
    assert_int_equal(s.n_running + s.n_waiting, 0);
    if (ratio >= 1.0f)
        assert_int_equal(s.n_preempted, 0); /* the exact estimate never runs out */
    sched_free(&s);
}

static void test_random_load_never_overcommits(void **state)
{
    for (int round = 0; round < 5; round++) {
        run_load(1, 1.0f, "fcfs");
        run_load(2, 1.0f, "fcfs");
        run_load(2, 1.0f, "spf");
    }
}

static void test_random_load_with_preemption(void **state)
{
    for (int round = 0; round < 5; round++) {
        run_load(1, 0.1f, "fcfs");
        run_load(2, 0.2f, "spf");
    }
}

/* LightLLM's estimate admits more than summing every request's peak would: requests that
 * end early free room for the ones that end late. */
static void test_admission_estimate(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 1000, .max_running = 64};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 40, 0), 0); /* 160 tokens */
    /* peaks 4+100, 4+4, 4+4, 4+4: sum 128 tokens = 32 blocks + 4 slack = 36 <= 40 fits;
     * a fifth with peak 4+100 cannot (two long ones need 208 tokens) */
    uint64_t ids[5];
    int max_new[5] = {100, 4, 4, 4, 100};
    for (int i = 0; i < 5; i++) {
        ids[i] = put_req(10 + i, 4, max_new[i]);
        sched_add(&s, 10 + i, ids[i]);
    }
    sched_build_step(&s, &step);
    assert_int_equal(s.n_running, 4);
    assert_int_equal(s.n_waiting, 1);
    sched_free(&s);
}

static void test_spf_policy(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 1000, .max_running = 1, .policy = policy_find("spf")};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 100, 0), 0);
    int lens[4] = {50, 7, 30, 7};
    for (int i = 0; i < 4; i++)
        sched_add(&s, 20 + i, put_req(20 + i, lens[i], 1));
    int order[4], finish_of[64] = {0};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(sched_build_step(&s, &step), 1);
        order[k] = step.seqs[0].slot;
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        drain(&s, finish_of);
    }
    assert_int_equal(order[0], 21); /* shortest, oldest first among equals */
    assert_int_equal(order[1], 23);
    assert_int_equal(order[2], 22);
    assert_int_equal(order[3], 20);
    sched_free(&s);
}

/* With two steps in flight, a request that hits EOS in the first is finished (blocks freed,
 * final entry sent) only after the second returns, and its extra token is dropped. */
static void test_pipelined_eos(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 64, .max_running = 8};
    static msg_step a, b;
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(sched_set_capacity(&s, 50, 0), 0);
    uint64_t id = put_req(5, 6, 20);
    sched_add(&s, 5, id);
    int finish_of[64] = {0};
    sched_build_step(&s, &a); /* prefill, samples token 7 */
    fake_worker(&s, &a, -1);
    sched_step_done(&s, &a, 0);
    drain(&s, finish_of);
    assert_int_equal(sched_build_step(&s, &a), 1); /* decode -> EOS */
    assert_int_equal(sched_build_step(&s, &b), 1); /* next decode, built before a returns */
    assert_int_equal(b.seqs[0].n_cached, a.seqs[0].n_cached + 1);
    fake_worker(&s, &a, 5);
    sched_step_done(&s, &a, 0);
    assert_int_equal(drain(&s, finish_of), 0); /* not yet: b still carries it */
    assert_int_equal(sched_build_step(&s, &a), 0); /* nothing more for it */
    fake_worker(&s, &b, -1);
    sched_step_done(&s, &b, 0);
    drain(&s, finish_of);
    assert_int_equal(finish_of[5], FINISH_STOP);
    assert_int_equal(s.reqs[5].n_tokens, 8); /* the EOS is the last accepted token */
    assert_int_equal(s.kv.n_free, 50);
    sched_free(&s);
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
    assert_int_equal(s.kv.n_free, 50);
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
        cmocka_unit_test(test_outbox_after_stall),
        cmocka_unit_test(test_random_load_never_overcommits),
        cmocka_unit_test(test_random_load_with_preemption),
        cmocka_unit_test(test_admission_estimate),
        cmocka_unit_test(test_spf_policy),
        cmocka_unit_test(test_pipelined_eos),
        cmocka_unit_test(test_cancel_paths),
        cmocka_unit_test(test_worker_restart_recomputes),
    };
    return cmocka_run_group_tests_name("sched", tests, setup, teardown);
}
