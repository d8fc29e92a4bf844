/* test_holder.c - the holder (README "Restarts") end to end on the CPU backend: real
 * processes, real HTTP, 32 concurrent requests (half streaming) of 64 to 68 greedy tokens each.
 *   worker SIGKILLed mid-generation, then restarted: /health is 503 until the new worker has
 *     attached; every text is identical to the uninterrupted run; /metrics shows the running
 *     requests resumed and zero recomputed tokens (no prompt prefilled again)
 *   holder restarted mid-generation: the weights and KV are gone, the worker follows it, and
 *     the running requests are recomputed from their tokens: the same texts again
 *   weights corrupted in the holder's memory while the worker is down: the holder's digest
 *     check before the new worker attaches finds it, loads the weights again, and the
 *     requests are recomputed: the same texts
 *   restart.sh worker --reload-weights: loaded again, recomputed, the same texts
 * Every slot and KV block is back after each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"
#include "load.h"

#define N_REQ 32
#define MAX_NEW 64

static cluster C;
#define SH(...) assert_int_equal(cluster_sh(__VA_ARGS__), 0)
static char *reference[N_REQ];
static const char *prompts[] = {"Once upon a time", "The little dog", "Tom and Sue", "The sky was",
                                "One day, a girl", "In the park", "The cat sat", "Ben had a"};

static int start(void **state) { return cluster_start(&C, ""); }
static int stop(void **state)
{
    cluster_stop(&C);
    return 0;
}

static void make_jobs(load_job *jobs)
{
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (load_job){.prompt = prompts[i % 8], .max_new = MAX_NEW + i % 5, .stream = i % 2};
}

static int health(void)
{
    http_resp r;
    http_request(C.port, "GET", "/health", NULL, &r);
    int s = r.status;
    http_resp_free(&r);
    return s;
}

/* The jobs' texts against the uninterrupted run's. */
static void check_texts(load_job *jobs)
{
    for (int i = 0; i < N_REQ; i++) {
        if (jobs[i].status != 200)
            printf("# job %d: status %d %s\n", i, jobs[i].status, jobs[i].error ? jobs[i].error : "");
        assert_int_equal(jobs[i].status, 200);
        assert_non_null(jobs[i].text);
        assert_string_equal(jobs[i].text, reference[i]);
    }
    load_free(jobs, N_REQ);
    assert_int_equal(load_wait_reclaimed(&C), 0);
}

static void test_reference(void **state)
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    load_run(&C, jobs, N_REQ);
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(jobs[i].status, 200);
        reference[i] = strdup(jobs[i].text);
    }
    load_free(jobs, N_REQ);
}

static void test_worker_kill_resumes(void **state)
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    double restarts0 = cluster_metric(&C, "cinder_worker_restarts_total");
    double resumed0 = cluster_metric(&C, "cinder_resumed_requests_total");
    double recomputed0 = cluster_metric(&C, "cinder_recomputed_tokens_total");
    void *run = load_start(&C, jobs, N_REQ);
    load_wait_steps(&C, 20);   /* every request admitted and decoding */
    double running = cluster_stat(&C, "n_running");
    SH("kill -KILL $(cat %s/worker.pid)", C.run_dir);
    usleep(150000);
    int down = health();
    assert_int_equal(cluster_restart(&C, "worker", "KILL"), 0);
    load_join(run);
    double resumed = cluster_metric(&C, "cinder_resumed_requests_total") - resumed0;
    double recomputed = cluster_metric(&C, "cinder_recomputed_tokens_total") - recomputed0;
    printf("# worker killed with %.0f running: /health %d while down; %.0f resumed, %.0f tokens "
           "recomputed\n", running, down, resumed, recomputed);
    SH("grep 'attached to the holder' %s/worker.log | tail -n 1", C.run_dir);
    assert_int_equal(down, 503);
    assert_true(running >= 32);
    assert_true(resumed > 0);
    assert_true(recomputed == 0);
    assert_true(cluster_metric(&C, "cinder_worker_restarts_total") == restarts0 + 1);
    SH("grep -q 'digest checked in .* intact' %s/holder.log", C.run_dir);
    check_texts(jobs);
}

/* Runs the jobs, does ACT once they are generating, and checks the texts and that the
 * running requests were recomputed. */
static void run_recomputed(void (*act)(void))
{
    static load_job jobs[N_REQ];
    make_jobs(jobs);
    double recomputed0 = cluster_metric(&C, "cinder_recomputed_tokens_total");
    double resumed0 = cluster_metric(&C, "cinder_resumed_requests_total");
    void *run = load_start(&C, jobs, N_REQ);
    load_wait_steps(&C, 20);
    act();
    load_join(run);
    double recomputed = cluster_metric(&C, "cinder_recomputed_tokens_total") - recomputed0;
    printf("# %.0f tokens recomputed\n", recomputed);
    assert_true(recomputed > 0);
    assert_true(cluster_metric(&C, "cinder_resumed_requests_total") == resumed0);
    check_texts(jobs);
}

static void restart_holder(void) { assert_int_equal(cluster_restart(&C, "holder", "KILL"), 0); }

static void corrupt_then_restart(void)
{
    SH("kill -KILL $(cat %s/worker.pid)", C.run_dir);
    usleep(100000);
    /* one weight of the holder's region (the first layer's norm) changed by a "fault" */
    SH("printf '\\377\\377\\377\\177' | dd of=/dev/shm$(sed -n 's/^SHM=//p' %s/run.env).hold "
       "bs=1 seek=$((288 * 32000 * 4 + 1000)) conv=notrunc status=none", C.run_dir);
    assert_int_equal(cluster_restart(&C, "worker", "KILL"), 0);
}

static void reload_worker(void)
{
    SH("scripts/restart.sh --run-dir %s --reload-weights worker", C.run_dir);
}

static void test_holder_restart_recomputes(void **state)
{
    run_recomputed(restart_holder);
    SH("grep -q 'new: any running requests are recomputed' %s/router.log", C.run_dir);
}

static void test_corrupt_weights_reloaded(void **state)
{
    run_recomputed(corrupt_then_restart);
    SH("grep 'MISMATCH' %s/holder.log && grep -q 'digest did not match' %s/holder.log", C.run_dir,
       C.run_dir);
}

static void test_reload_weights(void **state)
{
    run_recomputed(reload_worker);
    SH("grep -q 'asked for (--reload-weights)' %s/holder.log", C.run_dir);
    for (int i = 0; i < N_REQ; i++)
        free(reference[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_reference, start),
        cmocka_unit_test(test_worker_kill_resumes),
        cmocka_unit_test(test_holder_restart_recomputes),
        cmocka_unit_test(test_corrupt_weights_reloaded),
        cmocka_unit_test_teardown(test_reload_weights, stop),
    };
    return cmocka_run_group_tests_name("e2e_holder", tests, NULL, NULL);
}
