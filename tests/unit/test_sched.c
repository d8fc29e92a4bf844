/* test_sched.c - the router's scheduler over a real shared-memory store, driven by a fake
 * worker that writes tokens into the slots as the real one does and keeps a fake KV cache:
 * each position of a block holds a hash of the tokens up to it, as real KV depends on all
 * of them. Before a step the fake worker checks that every position the sequence reads
 * (below its n_cached, shared blocks included) holds its own prefix's value; it writes only
 * blocks nobody else holds and that are not cached; its tokens follow from the KV it read,
 * so a request's output depends only on its prompt.
 *
 * Checks: chunked prefill splits prompts under the token budget and samples only after the
 * last chunk; randomized load (one or two steps in flight, every policy) never uses more KV
 * than the limit, completes every request with the right count and returns every block;
 * with a low new_token_ratio the same holds through preemption; LightLLM's estimate admits
 * what fits; EOS while a second step is in flight; cancel in the queue, in flight and after
 * a worker restart. Prefix caching: a randomized run of requests sharing prefixes (block
 * sizes 1 to 256, with adds, aborts, preemption, eviction and worker restarts interleaved)
 * keeps every block's reference count equal to the requests holding it, the free / held /
 * evictable partition and admission's shared counts exact, gives every request the output
 * its prompt alone gives and leaks nothing; a repeated prompt takes its cached blocks (at
 * most n - 1 tokens) and reports them; a request waits for the blocks another is computing;
 * shared blocks count once in admission; lpm picks the longest cached prefix; a worker
 * restart drops the cache.
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

static store st; /* block size 4; some tests swap in a store of another block size */
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

/* ---- the fake worker's KV: kv_mem[block * block_size + offset] */
static uint64_t *kv_mem;
static int kv_mem_blocks;

static void kv_lost(int n_blocks) /* a (re)started worker: nothing valid */
{
    free(kv_mem);
    kv_mem_blocks = n_blocks;
    kv_mem = malloc(sizeof *kv_mem * (size_t)(n_blocks > 0 ? n_blocks : 1) * st.hdr->block_size);
    memset(kv_mem, 0xab, sizeof *kv_mem * (size_t)(n_blocks > 0 ? n_blocks : 1) * st.hdr->block_size);
}

static uint64_t hash_next(uint64_t h, int32_t tok)
{
    h ^= (uint64_t)(uint32_t)tok + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xbf58476d1ce4e5b9ULL;
}

/* The token a sequence whose last position's KV is H samples. */
static int32_t next_token(uint64_t h, int eos)
{
    return eos ? EOS : 10 + (int32_t)((h >> 33) % 80);
}

/* What the worker does: check the block tables cover the step and the KV it reads, write
 * the KV of the new positions and the sampled tokens. */
static void fake_worker(sched *s, const msg_step *m, int eos_slot)
{
    int bs = (int)st.hdr->block_size;
    for (int i = 0; i < m->n_seqs; i++) {
        const step_seq *q = &m->seqs[i];
        slot_hdr *h = store_slot(&st, q->slot);
        const int32_t *tok = slot_tokens(&st, q->slot), *table = slot_blocks(&st, q->slot);
        int end = q->n_cached + q->n_new;
        assert_true(atomic_load(&h->n_blocks) * bs >= end);
        uint64_t hh = 1;
        for (int p = 0; p < end; p++) {
            hh = hash_next(hh, tok[p]);
            int32_t b = table[p / bs];
            assert_true(b >= 0 && b < kv_mem_blocks);
            uint64_t *cell = &kv_mem[(size_t)b * bs + p % bs];
            if (p < q->n_cached) {
                assert_true(*cell == hh); /* what it reads is its own prefix's KV */
            } else {
                /* never written while shared or cached */
                assert_int_equal(s->kv.ref[b], 1);
                assert_false(s->kv.cached[b]);
                *cell = hh;
            }
        }
        if (q->sample) {
            slot_tokens(&st, q->slot)[end] = next_token(hh, q->slot == eos_slot);
            atomic_store(&h->n_tokens, end + 1);
        }
    }
}

/* Every block's reference count equals the running requests that hold it; the free stack,
 * the LRU list and the held blocks partition the blocks; admission's shared counts are
 * those of the tables. */
static void check_blocks(const sched *s)
{
    int n = s->kv.n_blocks, bs = s->block_size;
    assert_int_equal(n, s->kv_limit);
    int *holders = calloc((size_t)n + 1, sizeof *holders), *takers = calloc((size_t)n + 1, sizeof *takers);
    for (int slot = 0; slot < s->n_slots; slot++) {
        const sched_req *r = &s->reqs[slot];
        const int32_t *table = slot_blocks(s->st, slot);
        if (r->state != REQ_RUNNING) {
            assert_int_equal(r->n_blocks, 0);
            continue;
        }
        assert_true(r->n_taken <= r->n_blocks && r->n_cached <= r->proj_cached);
        assert_true(r->proj_cached <= r->n_blocks * bs);
        for (int i = 0; i < r->n_blocks; i++) {
            assert_true(table[i] >= 0 && table[i] < n);
            holders[table[i]]++;
            if (i < r->n_taken)
                takers[table[i]]++;
        }
        int lent = 0;
        for (int i = 0; i < r->n_blocks; i++)
            lent += s->owner[table[i]] == slot && s->n_sharers[table[i]] > 0;
        assert_int_equal(r->n_lent, lent);
    }
    int n_free = 0, n_lru = 0, n_shared = 0;
    for (int b = 0; b < n; b++) {
        assert_int_equal(s->kv.ref[b], holders[b]);
        assert_int_equal(s->n_sharers[b], takers[b]);
        n_shared += takers[b] > 0;
        n_free += !holders[b] && !s->kv.cached[b];
        n_lru += !holders[b] && s->kv.cached[b];
        if (s->owner[b] >= 0) { /* an owner holds what it owns */
            const int32_t *t = slot_blocks(s->st, s->owner[b]);
            int found = 0;
            for (int i = 0; i < s->reqs[s->owner[b]].n_blocks; i++)
                found |= t[i] == b;
            assert_true(found && s->kv.cached[b]);
        }
    }
    assert_int_equal(s->kv.n_free, n_free);
    assert_int_equal(s->kv.n_lru, n_lru);
    assert_int_equal(s->n_shared, n_shared);
    free(holders);
    free(takers);
}

/* A worker reports N_BLOCKS: the scheduler starts over, the fake KV is lost. */
static int set_cap(sched *s, int n_blocks)
{
    kv_lost(n_blocks);
    return sched_set_capacity(s, n_blocks, 0);
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
    assert_int_equal(set_cap(&s, 100), 0);
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
    assert_int_equal(kv_alloc_available(&s.kv), 100);
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
    assert_int_equal(set_cap(&s, 64 * 40), 0);
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
    assert_int_equal(set_cap(&s, 200), 0);
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
            check_blocks(&s);
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
    assert_int_equal(kv_alloc_available(&s.kv), s.kv_limit);
    check_blocks(&s);
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
        run_load(2, 1.0f, "lpm");
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
    assert_int_equal(set_cap(&s, 40), 0); /* 160 tokens */
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
    assert_int_equal(set_cap(&s, 100), 0);
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
    assert_int_equal(set_cap(&s, 50), 0);
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
    assert_int_equal(kv_alloc_available(&s.kv), 50);
    sched_free(&s);
}

static void test_cancel_paths(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 64, .max_running = 1};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, 50), 0);
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
    assert_int_equal(kv_alloc_available(&s.kv), 50);
    assert_int_equal(sched_build_step(&s, &step), 0);
    sched_free(&s);
}

static void test_worker_restart_recomputes(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 64, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, 50), 0);
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
    assert_int_equal(set_cap(&s, 40), 0);
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
