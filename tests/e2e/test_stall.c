/* test_stall.c - a router that falls behind (SIGSTOP, then SIGCONT) under load degrades
 * service but never crashes, corrupts or leaks (issue 18, items 1 and 2):
 *   short stall (2 s, 200 streams): nothing fails; every stream gets all its tokens, with the
 *     same greedy text as alone (the router handled the steps and aborts that piled up at
 *     once: its outbox overflowed before);
 *   long stall (7 s > STORE_HUNG_MS, 80 streams): the tokenizer gives up on the requests
 *     (an error event, not a hang), and once the router continues every slot and KV block
 *     comes back (they leaked for good before) and new requests are served.
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
#include "load.h"

#define MAX_NEW 60
#define N_PROMPTS 4

static cluster C;
static const char *prompts[N_PROMPTS] = {"Once upon a time", "The little dog", "Tom and Sue",
                                         "The sky was"};
static char *reference[N_PROMPTS];

static int start(void **state) { return cluster_start(&C, "--slots 256 --max-total-tokens 65536"); }
static int stop(void **state)
{
    cluster_stop(&C);
    return 0;
}

static void references(void)
{
    load_job j[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++)
        j[i] = (load_job){.prompt = prompts[i], .max_new = MAX_NEW, .stream = 1};
    load_run(&C, j, N_PROMPTS);
    for (int i = 0; i < N_PROMPTS; i++) {
        assert_int_equal(j[i].status, 200);
        reference[i] = j[i].text;
        j[i].text = NULL;
    }
    load_free(j, N_PROMPTS);
}

static void router_signal(const char *sig)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "kill -%s $(cat %s/router.pid)", sig, C.run_dir);
    assert_int_equal(system(cmd), 0);
}

/* N streams; the router stopped for STALL_MS once they generate. */
static load_job *run_stalled(int n, int stall_ms)
{
    load_job *jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++)
        jobs[i] = (load_job){.prompt = prompts[i % N_PROMPTS], .max_new = MAX_NEW, .stream = 1};
    void *h = load_start(&C, jobs, n);
    load_wait_steps(&C, 5);
    router_signal("STOP");
    usleep((useconds_t)stall_ms * 1000);
    router_signal("CONT");
    load_join(h);
    return jobs;
}

static void expect_serving(void)
{
    load_job j = {.prompt = prompts[0], .max_new = MAX_NEW, .stream = 0};
    load_run(&C, &j, 1);
    assert_int_equal(j.status, 200);
    assert_string_equal(j.text, reference[0]);
    load_free(&j, 1);
}

static void test_short_stall(void **state)
{
    references();
    enum { N = 200 };
    load_job *jobs = run_stalled(N, 2000);
    int n_ok = 0;
    for (int i = 0; i < N; i++) {
        if (jobs[i].status != 200 || jobs[i].n_events != MAX_NEW)
            printf("# job %d: status %d, %d events, %s\n", i, jobs[i].status, jobs[i].n_events,
                   jobs[i].error ? jobs[i].error : "");
        n_ok += jobs[i].status == 200 && jobs[i].n_events == MAX_NEW &&
                !strcmp(jobs[i].text, reference[i % N_PROMPTS]);
    }
    load_free(jobs, N);
    free(jobs);
    assert_int_equal(n_ok, N);
    assert_int_equal(load_wait_reclaimed(&C), 0);
    expect_serving();
}

static void test_long_stall(void **state)
{
    references();
    enum { N = 80 };
    load_job *jobs = run_stalled(N, 7000);
    int n_done = 0, n_err = 0;
    for (int i = 0; i < N; i++) {   /* each ended: complete, or with a clear error event */
        if (jobs[i].status == 200 && jobs[i].n_events == MAX_NEW)
            n_done++;
        else if (jobs[i].status == -2 && jobs[i].error && strstr(jobs[i].error, "router"))
            n_err++;
        else
            printf("# job %d: status %d, %d events, %s\n", i, jobs[i].status, jobs[i].n_events,
                   jobs[i].error ? jobs[i].error : "");
    }
    printf("# %d completed, %d failed with the router's error\n", n_done, n_err);
    load_free(jobs, N);
    free(jobs);
    assert_int_equal(n_done + n_err, N);
    assert_int_equal(load_wait_reclaimed(&C), 0);   /* the slots leaked for good before */
    expect_serving();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_short_stall, start, stop),
        cmocka_unit_test_setup_teardown(test_long_stall, start, stop),
    };
    int rc = cmocka_run_group_tests_name("e2e_stall", tests, NULL, NULL);
    for (int i = 0; i < N_PROMPTS; i++)
        free(reference[i]);
    return rc;
}
