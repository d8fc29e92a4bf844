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
    for (int slot = 0; slot < 32; slot++)   /* then the tokenizer's aborts */
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

/* ---- prefix caching */

static uint64_t put_prompt(int slot, const int32_t *toks, int n, int max_new)
{
    slot_hdr *h = store_slot(&st, slot);
    memset(h, 0, sizeof *h);
    memcpy(slot_tokens(&st, slot), toks, sizeof(int32_t) * (size_t)n);
    h->n_prompt = n;
    h->params.max_new_tokens = max_new;
    h->req_id = next_id++;
    atomic_store(&h->n_tokens, n);
    atomic_store(&h->state, SLOT_ACTIVE);
    return h->req_id;
}

/* Checks SLOT's output against what its prompt alone gives (the fake worker's tokens follow
 * from the prompt); returns how many tokens it generated. */
static int check_output(const sched *s, int slot)
{
    const slot_hdr *h = store_slot(&st, slot);
    const int32_t *tok = slot_tokens(&st, slot);
    int n = s->reqs[slot].n_tokens;
    uint64_t hh = 1;
    for (int p = 0; p < n; p++) {
        if (p >= h->n_prompt)
            assert_int_equal(tok[p], next_token(hh, 0));
        hh = hash_next(hh, tok[p]);
    }
    return n - h->n_prompt;
}

/* Steps until nothing is left; every request's output checked; returns the steps. */
static int run_to_end(sched *s, int *finish_of)
{
    int n = 0;
    while (sched_build_step(s, &step) > 0) {
        fake_worker(s, &step, -1);
        sched_step_done(s, &step, 0);
        drain(s, finish_of);
        check_blocks(s);
        assert_true(++n < 10000);
    }
    for (int slot = 0; slot < s->n_slots; slot++)
        if (finish_of[slot])
            check_output(s, slot);
    return n;
}

static int32_t base[3][600];
static void make_bases(void)
{
    for (int f = 0; f < 3; f++)
        for (int i = 0; i < 600; i++)
            base[f][i] = 10 + rand() % 80;
}

/* Requests whose prompts share prefixes (three families, suffixes of a two-token alphabet,
 * some prompts repeated), added, aborted and stopped at random while the scheduler runs with
 * DEPTH steps in flight; the worker restarts now and then (RESTARTS), sometimes staying
 * away a while. After every step: reference counts and shared counts exact (check_blocks),
 * the fake KV read is right (fake_worker); every request ends with its own prompt's output;
 * the prefix counters add up; at the end nothing is held. */
static void run_shared(int bs, float ratio, const char *policy, int depth, int caching, int restarts)
{
    char name[64];
    snprintf(name, sizeof name, "/cinder-test-sched-bs%d-%d", bs, (int)getpid());
    store_layout l = {.n_slots = 32, .max_seq_len = 512, .block_size = (uint32_t)bs, .vocab_size = 100};
    store saved = st;
    assert_int_equal(store_create(&st, name, &l), 0);
    store_unlink(name);
    int max_prompt = bs >= 64 ? 420 : 24 * bs < 120 ? 120 : 24 * bs;
    if (max_prompt > 420)
        max_prompt = 420;
    int peak_blocks = (max_prompt + 40 + bs - 1) / bs + 1;
    int n_kv = peak_blocks + rand() % (3 * peak_blocks);
    sched s;
    sched_opts o = {.max_batch_tokens = 16 + rand() % 200, .max_running = 2 + rand() % 20,
                    .new_token_ratio = ratio, .policy = policy_find(policy),
                    .no_prefix_caching = !caching};
    static msg_step ring[2];
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, n_kv), 0);
    uint64_t ids[32] = {0}, sum_q = 0, sum_h = 0;
    int finish_of[32], n_added = 0, n_active = 0, total = 60 + rand() % 40, head = 0, n_inflight = 0;
    int down = 0, n_restarts = 0, n_aborted = 0;
    int32_t toks[512];
    for (int it = 0; n_added < total || n_active > 0; it++) {
        assert_true(it < 200000);
        for (int slot = 0; slot < 32 && n_added < total; slot++) { /* arrivals */
            if (ids[slot] || rand() % 4)
                continue;
            int f = rand() % 3, len = 1 + rand() % max_prompt, share = rand() % 2 ? len : rand() % (len + 1);
            for (int i = 0; i < len; i++)
                toks[i] = i < share ? base[f][i] : 10 + rand() % 2;
            ids[slot] = put_prompt(slot, toks, len, 1 + rand() % 30);
            assert_int_equal(sched_add(&s, slot, ids[slot]), 0);
            n_added++;
            n_active++;
        }
        if (n_active > 0 && rand() % 25 == 0) { /* an abort or a stop string */
            int slot = rand() % 32;
            if (ids[slot] && sched_cancel(&s, slot, ids[slot], rand() % 2 ? FINISH_ABORT : FINISH_STOP))
                n_aborted++;
        }
        if (down && rand() % 3 == 0) { /* the worker is back */
            assert_int_equal(set_cap(&s, n_kv), 0);
            down = 0;
        } else if (restarts && !down && rand() % 120 == 0) { /* the worker dies: KV and steps lost */
            n_inflight = head = 0;
            down = rand() % 2;
            assert_int_equal(set_cap(&s, down ? 0 : n_kv), 0);
            n_restarts++;
        }
        while (n_inflight < depth && sched_build_step(&s, &ring[(head + n_inflight) % 2]) > 0) {
            const msg_step *m = &ring[(head + n_inflight) % 2];
            int tokens = 0;
            for (int i = 0; i < m->n_seqs; i++)
                tokens += m->seqs[i].n_new;
            assert_true(tokens <= o.max_batch_tokens);
            n_inflight++;
        }
        check_blocks(&s);
        if (n_inflight > 0) {
            fake_worker(&s, &ring[head], -1);
            sched_step_done(&s, &ring[head], 0);
            head = (head + 1) % 2;
            n_inflight--;
            check_blocks(&s);
        }
        memset(finish_of, 0, sizeof finish_of);
        drain(&s, finish_of);
        for (int slot = 0; slot < 32; slot++) {
            if (!finish_of[slot])
                continue;
            const sched_req *r = &s.reqs[slot];
            const slot_hdr *h = store_slot(&st, slot);
            int n_out = check_output(&s, slot);
            if (finish_of[slot] == FINISH_LENGTH)
                assert_int_equal(n_out, h->params.max_new_tokens);
            else
                assert_true(finish_of[slot] == FINISH_ABORT || finish_of[slot] == FINISH_STOP);
            int cached = atomic_load(&h->n_prompt_cached);
            assert_true(cached % bs == 0 && cached <= h->n_prompt - 1 && cached >= 0);
            assert_true(caching || cached == 0);
            if (r->cached_prompt >= 0) { /* it was admitted */
                assert_int_equal(cached, r->cached_prompt);
                sum_q += (uint64_t)h->n_prompt;
                sum_h += (uint64_t)cached;
            }
            atomic_store(&store_slot(&st, slot)->state, SLOT_FREE);
            ids[slot] = 0;
            n_active--;
        }
    }
    if (down)
        assert_int_equal(set_cap(&s, n_kv), 0);
    check_blocks(&s);
    assert_int_equal(s.n_running + s.n_waiting, 0);
    assert_int_equal(kv_alloc_available(&s.kv), s.kv_limit);
    assert_int_equal(s.n_shared, 0);
    if (caching) {
        assert_true(s.prefix_queries == sum_q && s.prefix_hits == sum_h);
        assert_true(sum_h > 0); /* the families share whole blocks */
    } else {
        assert_true(s.prefix_queries == 0 && s.prefix_hits == 0 && s.kv.n_cached == 0);
    }
    if (ratio >= 1.0f)
        assert_int_equal(s.n_preempted, 0); /* the estimate stays an upper bound with sharing */
    printf("# bs %d %s %s depth %d ratio %.1f: %d requests, %llu of %llu prompt tokens from the "
           "cache, %llu preempted, %llu evicted, %d aborted, %d restarts\n", bs, policy,
           caching ? "cache" : "no cache", depth, ratio, total, (unsigned long long)sum_h,
           (unsigned long long)sum_q, (unsigned long long)s.n_preempted,
           (unsigned long long)s.kv.n_evicted, n_aborted, n_restarts);
    sched_free(&s);
    store_close(&st);
    st = saved;
    kv_lost(1);
}

static void test_prefix_random_sharing(void **state)
{
    static const int sizes[] = {1, 4, 16, 256};
    make_bases();
    for (int i = 0; i < 4; i++) {
        int bs = sizes[i];
        run_shared(bs, 1.0f, "fcfs", 2, 1, 0);
        run_shared(bs, 1.0f, "lpm", 1, 1, 1);
        run_shared(bs, 0.3f, "lpm", 2, 1, 1);
        run_shared(bs, 0.3f, "spf", 2, 0, 1);
    }
}

/* A repeated prompt takes the cached blocks, at most n - 1 tokens: the whole prompt minus its
 * last block when it fills whole blocks; a longer one all of them. Both report it. */
static void test_prefix_reuse(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 256, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, 100), 0);
    int32_t p[48];
    for (int i = 0; i < 48; i++)
        p[i] = 10 + rand() % 80;
    int finish_of[64] = {0};
    assert_int_equal(sched_add(&s, 0, put_prompt(0, p, 40, 3)), 0);
    assert_int_equal(sched_build_step(&s, &step), 1);
    assert_int_equal(step.seqs[0].n_cached, 0);
    assert_int_equal(step.seqs[0].n_new, 40);
    fake_worker(&s, &step, -1);
    sched_step_done(&s, &step, 0);
    assert_int_equal(s.kv.n_cached, 10); /* cached as soon as the step returned */
    run_to_end(&s, finish_of);
    assert_int_equal(finish_of[0], FINISH_LENGTH);

    assert_int_equal(sched_add(&s, 1, put_prompt(1, p, 46, 2)), 0); /* longer: all 10 blocks */
    assert_int_equal(sched_build_step(&s, &step), 1);
    assert_int_equal(step.seqs[0].n_cached, 40);
    assert_int_equal(step.seqs[0].n_new, 6);
    fake_worker(&s, &step, -1);
    sched_step_done(&s, &step, 0);
    run_to_end(&s, finish_of);
    assert_int_equal(atomic_load(&store_slot(&st, 1)->n_prompt_cached), 40);

    assert_int_equal(sched_add(&s, 2, put_prompt(2, p, 40, 2)), 0); /* the same: 9 blocks */
    assert_int_equal(sched_build_step(&s, &step), 1);
    assert_int_equal(step.seqs[0].n_cached, 36);
    assert_int_equal(step.seqs[0].n_new, 4);
    assert_int_equal(step.seqs[0].sample, 1);
    fake_worker(&s, &step, -1);
    sched_step_done(&s, &step, 0);
    run_to_end(&s, finish_of);
    assert_int_equal(atomic_load(&store_slot(&st, 2)->n_prompt_cached), 36);
    /* all three outputs are the prompt's own */
    assert_memory_equal(slot_tokens(&st, 0) + 40, slot_tokens(&st, 2) + 40, 2 * sizeof(int32_t));

    sched_publish(&s);
    assert_int_equal(atomic_load(&st.hdr->prefix_queries), 40 + 46 + 40);
    assert_int_equal(atomic_load(&st.hdr->prefix_hits), 40 + 36);
    assert_int_equal(atomic_load(&st.hdr->n_free_blocks), 100); /* cached blocks count as free */
    assert_true(atomic_load(&st.hdr->n_cached_blocks) >= 11);
    check_blocks(&s);
    sched_free(&s);
}

/* Two requests with the same prompt at once: the second waits for the blocks the first is
 * computing (chunk by chunk) and computes only what is left. */
static void test_prefix_waits_for_in_flight(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 8, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, 100), 0);
    int32_t p[30];
    for (int i = 0; i < 30; i++)
        p[i] = 10 + rand() % 80;
    sched_add(&s, 3, put_prompt(3, p, 30, 4));
    sched_add(&s, 4, put_prompt(4, p, 30, 4));
    int finish_of[64] = {0}, first = -1;
    for (int k = 0; k < 40 && sched_build_step(&s, &step) > 0; k++) {
        for (int i = 0; i < step.n_seqs; i++)
            if (step.seqs[i].slot == 4 && first < 0) {
                first = k;
                assert_int_equal(step.seqs[i].n_cached, 28); /* 7 blocks from the cache */
                assert_int_equal(step.seqs[i].n_new, 2);
            }
        if (first < 0)
            assert_int_equal(s.n_running, 1);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        drain(&s, finish_of);
        check_blocks(&s);
    }
    assert_int_equal(first, 4); /* after the first's four prefill chunks */
    run_to_end(&s, finish_of);
    assert_int_equal(finish_of[3], FINISH_LENGTH);
    assert_int_equal(finish_of[4], FINISH_LENGTH);
    assert_memory_equal(slot_tokens(&st, 3) + 30, slot_tokens(&st, 4) + 30, 4 * sizeof(int32_t));
    sched_free(&s);
}

/* Admission counts a shared prefix once: a second request that shares 96 of its 100 tokens
 * with a running one fits in 40 blocks beside it (without the cache it must wait). */
static void test_prefix_admission_counts_shared_once(void **state)
{
    for (int caching = 1; caching >= 0; caching--) {
        sched s;
        sched_opts o = {.max_batch_tokens = 128, .max_running = 8, .no_prefix_caching = !caching};
        assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
        assert_int_equal(set_cap(&s, 40), 0); /* 160 tokens */
        int32_t p[100];
        for (int i = 0; i < 100; i++)
            p[i] = 10 + rand() % 80;
        sched_add(&s, 5, put_prompt(5, p, 100, 4));
        assert_int_equal(sched_build_step(&s, &step), 1);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        p[97] = p[98] = p[99] = 5;
        sched_add(&s, 6, put_prompt(6, p, 100, 4));
        assert_true(sched_build_step(&s, &step) > 0);
        assert_int_equal(s.n_running, caching ? 2 : 1);
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        int finish_of[64] = {0};
        drain(&s, finish_of);
        check_blocks(&s);
        run_to_end(&s, finish_of);
        assert_int_equal(finish_of[5], FINISH_LENGTH);
        assert_int_equal(finish_of[6], FINISH_LENGTH);
        assert_int_equal(s.n_preempted, 0);
        sched_free(&s);
    }
}

/* lpm admits the waiting request with the longest cached prefix first, the oldest among
 * equals; fcfs keeps arrival order. */
static void test_lpm_policy(void **state)
{
    static const char *const names[] = {"lpm", "fcfs"};
    for (int pol = 0; pol < 2; pol++) {
        sched s;
        sched_opts o = {.max_batch_tokens = 1000, .max_running = 1, .policy = policy_find(names[pol])};
        assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
        assert_int_equal(set_cap(&s, 100), 0);
        int32_t p[44], x[40], y[40];
        for (int i = 0; i < 44; i++)
            p[i] = 10 + rand() % 80;
        for (int i = 0; i < 40; i++) {
            x[i] = 10 + rand() % 80;
            y[i] = i < 20 ? p[i] : 10 + rand() % 80;
        }
        int finish_of[64] = {0};
        sched_add(&s, 30, put_prompt(30, p, 40, 1)); /* fills the cache */
        run_to_end(&s, finish_of);
        sched_add(&s, 31, put_prompt(31, x, 40, 1)); /* nothing cached */
        sched_add(&s, 32, put_prompt(32, y, 40, 1)); /* 20 tokens cached */
        sched_add(&s, 33, put_prompt(33, p, 44, 1)); /* 40 tokens cached */
        assert_int_equal(sched_cached_prefix(&s, 31), 0);
        assert_int_equal(sched_cached_prefix(&s, 32), 20);
        assert_int_equal(sched_cached_prefix(&s, 33), 40);
        int order[3];
        for (int k = 0; k < 3; k++) {
            assert_int_equal(sched_build_step(&s, &step), 1);
            order[k] = step.seqs[0].slot;
            fake_worker(&s, &step, -1);
            sched_step_done(&s, &step, 0);
            drain(&s, finish_of);
        }
        assert_int_equal(order[0], pol == 0 ? 33 : 31);
        assert_int_equal(order[1], 32);
        assert_int_equal(order[2], pol == 0 ? 31 : 33);
        sched_free(&s);
    }
}

/* A worker restart loses the KV: the cache is dropped and the same prompt is computed again. */
static void test_prefix_dropped_on_restart(void **state)
{
    sched s;
    sched_opts o = {.max_batch_tokens = 256, .max_running = 8};
    assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
    assert_int_equal(set_cap(&s, 100), 0);
    int32_t p[40];
    for (int i = 0; i < 40; i++)
        p[i] = 10 + rand() % 80;
    int finish_of[64] = {0};
    sched_add(&s, 7, put_prompt(7, p, 40, 2));
    run_to_end(&s, finish_of);
    assert_true(s.kv.n_cached > 0);
    assert_int_equal(set_cap(&s, 100), 0);
    assert_int_equal(s.kv.n_cached, 0);
    sched_add(&s, 8, put_prompt(8, p, 40, 2));
    assert_int_equal(sched_build_step(&s, &step), 1);
    assert_int_equal(step.seqs[0].n_cached, 0);
    assert_int_equal(step.seqs[0].n_new, 40);
    fake_worker(&s, &step, -1);
    sched_step_done(&s, &step, 0);
    run_to_end(&s, finish_of);
    assert_int_equal(atomic_load(&store_slot(&st, 8)->n_prompt_cached), 0);
    sched_free(&s);
}


/* The holder kept the KV: a worker lost with two steps in flight (the first had written its
 * KV and token, the second had not run) comes back, and the request goes on from its
 * completed positions with its blocks and the prefix cache kept; the same with the KV lost
 * (or another capacity) recomputes it. */
static void test_worker_restart_resumes(void **state)
{
    for (int mode = 0; mode < 3; mode++) {   /* kept; lost; kept but another capacity */
        sched s;
        sched_opts o = {.max_batch_tokens = 64, .max_running = 8};
        assert_int_equal(sched_init(&s, &st, &cfg, &o), 0);
        assert_int_equal(set_cap(&s, 50), 0);
        uint64_t restarts0 = s.n_worker_restarts, resumed0 = s.n_resumed, recomputed0 = s.n_recomputed;
        int finish_of[64] = {0};
        sched_add(&s, 3, put_req(3, 20, 12));
        for (int k = 0; k < 4; k++) { /* prefill + 3 decodes: 23 positions complete */
            sched_build_step(&s, &step);
            fake_worker(&s, &step, -1);
            sched_step_done(&s, &step, 0);
        }
        static msg_step second;
        assert_int_equal(sched_build_step(&s, &step), 1);   /* runs, never answered */
        assert_int_equal(sched_build_step(&s, &second), 1); /* never runs */
        fake_worker(&s, &step, -1);
        int n_blocks = s.reqs[3].n_blocks, n_cached_blocks = s.kv.n_cached;
        assert_true(n_cached_blocks > 0);
        sched_worker_lost(&s);
        assert_int_equal(sched_build_step(&s, &step), 0);   /* nothing runs meanwhile */
        if (mode == 1)
            kv_lost(50);
        assert_int_equal(sched_worker_back(&s, mode == 2 ? 40 : 50, 0, mode != 1), 0);
        if (mode == 2)
            kv_lost(40);
        assert_int_equal(sched_build_step(&s, &step), 1);
        assert_int_equal(s.n_worker_restarts, restarts0 + 1);
        if (mode == 0) {   /* the lost step again: its position written a second time */
            assert_int_equal(step.seqs[0].n_cached, 23);
            assert_int_equal(step.seqs[0].n_new, 1);
            assert_int_equal(s.reqs[3].n_blocks, n_blocks);
            assert_int_equal(s.kv.n_cached, n_cached_blocks);
            assert_int_equal(s.n_resumed, resumed0 + 1);
            assert_int_equal(s.n_recomputed, recomputed0);
        } else {           /* recomputed: prompt and the 3 tokens whose steps returned */
            assert_int_equal(step.seqs[0].n_cached, 0);
            assert_int_equal(step.seqs[0].n_new, 24);
            assert_int_equal(s.n_resumed, resumed0);
            assert_int_equal(s.n_recomputed, recomputed0 + 23);
        }
        fake_worker(&s, &step, -1);
        sched_step_done(&s, &step, 0);
        run_to_end(&s, finish_of);
        assert_int_equal(finish_of[3], FINISH_LENGTH);
        assert_int_equal(check_output(&s, 3), 12);
        sched_free(&s);
    }
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
        cmocka_unit_test(test_worker_restart_resumes),
        cmocka_unit_test(test_prefix_reuse),
        cmocka_unit_test(test_prefix_waits_for_in_flight),
        cmocka_unit_test(test_prefix_admission_counts_shared_once),
        cmocka_unit_test(test_lpm_policy),
        cmocka_unit_test(test_prefix_dropped_on_restart),
        cmocka_unit_test(test_prefix_random_sharing),
    };
    return cmocka_run_group_tests_name("sched", tests, setup, teardown);
}
