/* test_router_proto.c - the real router process alone, driven over its ZeroMQ protocol by
 * this test playing tokenizer, worker and detokenizer.
 *
 * The fake worker checks every STEP it gets (token budget, block tables covering the tokens,
 * no block shared by two requests: no two prompts begin alike, so the prefix cache shares
 * none, never more blocks than the limit) and writes random
 * tokens into the slots as the real worker does. Covered: admission and chunking under load,
 * preemption (a low --new-token-ratio), abort mid-generation (blocks back at once), a worker
 * restart (requests recomputed from their tokens), and junk on the router's socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../../common/ipc.h"
#include "../../common/store.h"

#define N_SLOTS 48
#define BLOCK 4
#define EOS 2
#define BATCH_TOKENS 32

typedef struct {
    char run_dir[128], shm[64];
    store st;
    pid_t router;
    void *zctx, *to_router, *worker_in, *detok_in;
    uint32_t epoch;
    int kv_blocks, kv_limit;
    int finish[N_SLOTS];
    int n_prompt[N_SLOTS], max_new[N_SLOTS];
    int n_steps, max_blocks_used;
    int64_t eos_at[N_SLOTS]; /* output index at which the worker samples EOS, -1 never */
} rig;

static rig R;
static msg_any in;
static _Atomic int beating;   /* the rig's heartbeat thread runs while set */
static pthread_t beat_thread;

static void *beat_main(void *arg)
{
    while (beating) {
        store_heartbeat(&R.st, PROC_WORKER);
        usleep(50000);
    }
    return NULL;
}

static void rig_start(const char *extra_args, int kv_blocks, int kv_limit)
{
    memset(&R, 0, sizeof R);
    snprintf(R.run_dir, sizeof R.run_dir, "/tmp/cinder-router-proto.%d", (int)getpid());
    snprintf(R.shm, sizeof R.shm, "/cinder-router-proto-%d", (int)getpid());
    mkdir(R.run_dir, 0700);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", R.run_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 1,"
               " \"num_attention_heads\": 4, \"vocab_size\": 100, \"max_position_embeddings\": 512,"
               " \"eos_token_id\": %d}\n", EOS);
    fclose(f);
    store_layout l = {.n_slots = N_SLOTS, .max_seq_len = 512, .block_size = BLOCK, .vocab_size = 100};
    assert_int_equal(store_create(&R.st, R.shm, &l), 0);
    R.kv_blocks = kv_blocks;
    R.kv_limit = kv_limit;
    R.router = fork();
    if (R.router == 0) {
        char tokens[32], batch[32];
        snprintf(tokens, sizeof tokens, "%d", kv_limit * BLOCK);
        snprintf(batch, sizeof batch, "%d", BATCH_TOKENS);
        const char *bin = getenv("CINDER_BIN");
        char exe[256];
        snprintf(exe, sizeof exe, "%s/router", bin ? bin : "build/bin");
        execl(exe, "router", "--run-dir", R.run_dir, "--shm", R.shm, "--model-dir", R.run_dir,
              "--max-batch-tokens", batch, "--max-total-tokens", tokens, extra_args, (char *)NULL);
        _exit(127);
    }
    store_register(&R.st, PROC_WORKER); /* this process is the worker: its pid, its beats */
    beating = 1;
    assert_int_equal(pthread_create(&beat_thread, NULL, beat_main, NULL), 0);
    R.zctx = zmq_ctx_new();
    R.to_router = ipc_open(R.zctx, ZMQ_PUSH, R.run_dir, IPC_ROUTER, 0);
    R.worker_in = ipc_open(R.zctx, ZMQ_PULL, R.run_dir, IPC_WORKER, 0);
    R.detok_in = ipc_open(R.zctx, ZMQ_PULL, R.run_dir, IPC_DETOK, 0);
    assert_non_null(R.to_router);
    msg_worker_ready w = {.epoch = R.epoch = 1, .n_kv_blocks = kv_blocks, .max_batch_tokens = BATCH_TOKENS};
    assert_int_equal(ipc_send(R.to_router, MSG_WORKER_READY, &w), 0);
    for (int i = 0; i < N_SLOTS; i++)
        R.eos_at[i] = -1;
}

/* Stops the router (also after a failed check: the teardown of every test). */
static int rig_stop(void **state)
{
    if (!R.router)
        return 0;
    beating = 0;
    pthread_join(beat_thread, NULL);
    int alive = kill(R.router, 0) == 0, status = 0;
    kill(R.router, SIGTERM);
    waitpid(R.router, &status, 0);
    R.router = 0;
    ipc_close(R.to_router);
    ipc_close(R.worker_in);
    ipc_close(R.detok_in);
    zmq_ctx_term(R.zctx);
    store_close(&R.st);
    store_unlink(R.shm);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", R.run_dir);
    if (system(cmd) != 0)
        return -1;
    /* it never crashed, and it stopped cleanly on SIGTERM */
    return alive && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static uint64_t next_id = 1;
static void submit(int slot, int n_prompt, int max_new)
{
    slot_hdr *h = store_slot(&R.st, slot);
    memset(h, 0, sizeof *h);
    for (int i = 0; i < n_prompt; i++)
        slot_tokens(&R.st, slot)[i] = 10 + rand() % 80;
    if (n_prompt >= 2) { /* no two prompts begin alike: no block is shared through the cache */
        slot_tokens(&R.st, slot)[0] = 10 + (int32_t)(next_id / 80 % 80);
        slot_tokens(&R.st, slot)[1] = 10 + (int32_t)(next_id % 80);
    }
    h->n_prompt = R.n_prompt[slot] = n_prompt;
    h->params.max_new_tokens = R.max_new[slot] = max_new;
    h->req_id = next_id++;
    R.finish[slot] = 0;
    atomic_store(&h->state, SLOT_ACTIVE);
    msg_new_req m = {slot, h->req_id};
    assert_int_equal(ipc_send(R.to_router, MSG_NEW_REQ, &m), 0);
}

static void drain_detok(void)
{
    while (ipc_recv(R.detok_in, &in) > 0) {
        assert_int_equal(in.type, MSG_DETOK);
        for (int i = 0; i < in.u.detok.n_seqs; i++) {
            const detok_seq *d = &in.u.detok.seqs[i];
            assert_int_equal(d->req_id, store_slot(&R.st, d->slot)->req_id);
            if (d->finish) {
                assert_int_equal(R.finish[d->slot], 0); /* exactly one final entry */
                R.finish[d->slot] = d->finish;
            }
        }
    }
}

/* Receives one STEP (within TIMEOUT_MS), checks it, runs it as the worker; 1 if there was one. */
static int worker_step(long timeout_ms)
{
    if (ipc_wait(R.worker_in, timeout_ms) <= 0)
        return 0;
    int rc = ipc_recv(R.worker_in, &in);
    assert_int_equal(rc, 1);
    assert_int_equal(in.type, MSG_STEP);
    const msg_step *m = &in.u.step;
    static int owner[4096];
    memset(owner, -1, sizeof owner);
    int tokens = 0, used = 0;
    for (int s = 0; s < N_SLOTS; s++) { /* every block table in the store: disjoint, in range */
        slot_hdr *h = store_slot(&R.st, s);
        int nb = atomic_load(&h->n_blocks);
        for (int b = 0; b < nb && atomic_load(&h->state) == SLOT_ACTIVE; b++) {
            int id = slot_blocks(&R.st, s)[b];
            assert_true(id >= 0 && id < R.kv_blocks);
            assert_int_equal(owner[id], -1);
            owner[id] = s;
            used++;
        }
    }
    assert_true(used <= R.kv_limit);
    if (used > R.max_blocks_used)
        R.max_blocks_used = used;
    for (int i = 0; i < m->n_seqs; i++) {
        const step_seq *q = &m->seqs[i];
        slot_hdr *h = store_slot(&R.st, q->slot);
        tokens += q->n_new;
        assert_true(atomic_load(&h->n_blocks) * BLOCK >= q->n_cached + q->n_new);
        if (q->sample) {
            int pos = q->n_cached + q->n_new;
            assert_true(pos - h->n_prompt < h->params.max_new_tokens);
            slot_tokens(&R.st, q->slot)[pos] = pos - h->n_prompt == R.eos_at[q->slot] ? EOS : 10 + rand() % 80;
            atomic_store(&h->n_tokens, pos + 1);
        }
    }
    assert_true(tokens <= BATCH_TOKENS);
    msg_step_done d = {.step_id = m->step_id, .status = 0, .epoch = R.epoch, .step_ms = 1};
    assert_int_equal(ipc_send(R.to_router, MSG_STEP_DONE, &d), 0);
    R.n_steps++;
    return 1;
}

static int all_finished(int n)
{
    for (int s = 0; s < n; s++)
        if (!R.finish[s])
            return 0;
    return 1;
}

static void run_until_finished(int n)
{
    uint64_t until = now_ms() + 60000;
    for (int k = 0; k < 20000 && !all_finished(n) && now_ms() < until; k++) {
        worker_step(200);
        drain_detok();
    }
    assert_true(all_finished(n));
}

static void check_counts(int n)
{
    for (int s = 0; s < n; s++) {
        int out = atomic_load(&store_slot(&R.st, s)->n_tokens) - R.n_prompt[s];
        if (R.eos_at[s] >= 0 && R.eos_at[s] < R.max_new[s]) {
            assert_int_equal(R.finish[s], FINISH_STOP);
        } else {
            assert_int_equal(R.finish[s], FINISH_LENGTH);
            assert_true(out >= R.max_new[s]); /* a pipelined extra token may follow */
        }
    }
}

static void test_load_admission_chunking(void **state)
{
    rig_start("--pipeline-depth=2", 200, 120);
    for (int s = 0; s < N_SLOTS; s++) {
        if (s % 7 == 3)
            R.eos_at[s] = rand() % 20;
        submit(s, 1 + rand() % 90, 1 + rand() % 40);
    }
    run_until_finished(N_SLOTS);
    check_counts(N_SLOTS);
    usleep(200000);
    assert_int_equal(atomic_load(&R.st.hdr->n_free_blocks), R.kv_limit); /* of the router's */
    assert_int_equal(atomic_load(&R.st.hdr->n_preempted), 0);
    printf("# %d steps, at most %d of %d blocks in use\n", R.n_steps, R.max_blocks_used, R.kv_limit);
}

static void test_preemption(void **state)
{
    rig_start("--new-token-ratio=0.05", 200, 60);
    for (int s = 0; s < N_SLOTS; s++)
        submit(s, 1 + rand() % 40, 20 + rand() % 60);
    run_until_finished(N_SLOTS);
    check_counts(N_SLOTS);
    usleep(200000);
    printf("# %llu preemptions\n", (unsigned long long)atomic_load(&R.st.hdr->n_preempted));
    assert_true(atomic_load(&R.st.hdr->n_preempted) > 0);
    assert_int_equal(atomic_load(&R.st.hdr->n_free_blocks), R.kv_limit); /* of the router's */
}

static void test_abort_and_junk(void **state)
{
    rig_start("--pipeline-depth=2", 100, 100);
    submit(0, 10, 300);
    for (int k = 0; k < 5; k++)
        assert_int_equal(worker_step(2000), 1);
    /* junk on the router's socket is dropped, the router keeps going */
    assert_true(zmq_send(R.to_router, "\x93\x01\xa1x", 4, 0) == 4);
    assert_true(zmq_send(R.to_router, "garbage", 7, 0) == 7);
    msg_abort a = {0, store_slot(&R.st, 0)->req_id};
    assert_int_equal(ipc_send(R.to_router, MSG_ABORT, &a), 0);
    int steps = 0;
    while (!R.finish[0] && steps < 10) {
        steps += worker_step(300);
        drain_detok();
    }
    assert_int_equal(R.finish[0], FINISH_ABORT);
    assert_true(steps <= 2); /* the steps already in flight */
    usleep(100000);
    assert_int_equal(atomic_load(&R.st.hdr->n_free_blocks), R.kv_limit);
    submit(1, 5, 3); /* still serving */
    run_until_finished(2);
}

static void test_worker_restart(void **state)
{
    rig_start("--pipeline-depth=2", 150, 150);
    for (int s = 0; s < 10; s++)
        submit(s, 5 + rand() % 30, 30);
    for (int k = 0; k < 8; k++)
        worker_step(2000);
    /* the worker dies with a step in flight; a new one registers (epoch 2) and reports in */
    while (ipc_wait(R.worker_in, 100) > 0)
        ipc_recv(R.worker_in, &in); /* lost with the old worker */
    store_register(&R.st, PROC_WORKER);
    assert_int_equal(atomic_load(&R.st.hdr->epoch[PROC_WORKER]), 2);
    msg_worker_ready w = {.epoch = R.epoch = 2, .n_kv_blocks = 150, .max_batch_tokens = BATCH_TOKENS};
    assert_int_equal(ipc_send(R.to_router, MSG_WORKER_READY, &w), 0);
    assert_true(ipc_wait(R.worker_in, 2000) > 0);
    assert_int_equal(ipc_recv(R.worker_in, &in), 1);
    for (int i = 0; i < in.u.step.n_seqs; i++) /* recomputed from the start */
        assert_int_equal(in.u.step.seqs[i].n_cached, 0);
    msg_step_done d = {.step_id = in.u.step.step_id, .epoch = 2};
    for (int i = 0; i < in.u.step.n_seqs; i++) {
        const step_seq *q = &in.u.step.seqs[i];
        if (q->sample) {
            int pos = q->n_cached + q->n_new;
            slot_tokens(&R.st, q->slot)[pos] = 11;
            atomic_store(&store_slot(&R.st, q->slot)->n_tokens, pos + 1);
        }
    }
    ipc_send(R.to_router, MSG_STEP_DONE, &d);
    run_until_finished(10);
    check_counts(10);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_load_admission_chunking, rig_stop),
        cmocka_unit_test_teardown(test_preemption, rig_stop),
        cmocka_unit_test_teardown(test_abort_and_junk, rig_stop),
        cmocka_unit_test_teardown(test_worker_restart, rig_stop),
    };
    return cmocka_run_group_tests_name("e2e_router_proto", tests, NULL, NULL);
}
