/* test_restart.c - every process killed with SIGKILL under load, then restarted (real
 * processes, real HTTP), and the promises of the shared-memory store checked:
 *   worker       the running requests go on (from the KV the holder kept; test_holder.c
 *                covers the recompute path) and finish with the same greedy text as without
 *                the kill
 *   detokenizer  streams go on with no text lost or repeated
 *   tokenizer    its requests are aborted, their slots and KV blocks freed once it is back
 *   router       in-flight requests end with a clear error, slots and KV are reclaimed,
 *                new requests are served
 *   --supervise  a process that dies is restarted without help
 *   worker, not restarted: the requests it held fail with 503 / an error event once
 *                --worker-wait has passed (no hang), and a later worker serves again
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

#define N_REQ 4
#define MAX_NEW 200

static cluster C;
static const char *prompts[N_REQ] = {"Once upon a time", "The little dog", "Tom and Sue", "The sky was"};

static int start(void **state) { return cluster_start(&C, ""); }
static int start_supervised(void **state) { return cluster_start(&C, "--supervise"); }
static int start_short_wait(void **state) { return cluster_start(&C, "--worker-wait 2"); }
static int stop(void **state)
{
    cluster_stop(&C);
    return 0;
}

typedef struct {
    int i, stream, status;
    char *text;     /* generated_text (or the stream's tokens joined) */
    int n_events;   /* stream: token events */
    char *body;
    char *error;    /* stream: the error event's message */
} job;

static void body_of(int i, char *out, size_t n)
{
    snprintf(out, n, "{\"inputs\":\"%s\",\"parameters\":{\"max_new_tokens\":%d,\"ignore_eos\":true}}",
             prompts[i], MAX_NEW);
}

static void *job_main(void *arg)
{
    job *j = arg;
    char body[256];
    body_of(j->i, body, sizeof body);
    http_resp r;
    http_request(C.port, "POST", j->stream ? "/generate_stream" : "/generate", body, &r);
    j->status = r.status;
    if (r.status != 200)
        printf("# job %d (%s): status %d %s\n", j->i, j->stream ? "stream" : "whole", r.status, r.body ? r.body : "");
    if (r.status == 200 && !j->stream) {
        cJSON *o = cJSON_Parse(r.body);
        cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "generated_text"), 0);
        j->text = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
        cJSON_Delete(o);
    } else if (r.status == 200) {
        size_t cap = r.body_len + 1, n = 0;
        j->text = calloc(1, cap);
        char *save = NULL;
        for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *e = cJSON_Parse(line + 5);
            cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "token"), "text");
            cJSON *err = cJSON_GetObjectItem(e, "error");
            if (err) {
                j->status = -2; /* the stream ended in an error event */
                free(j->error);
                j->error = cJSON_IsString(err) ? strdup(err->valuestring) : NULL;
            }
            if (cJSON_IsString(t) && cJSON_GetObjectItem(cJSON_GetObjectItem(e, "token"), "id")->valueint >= 0) {
                size_t k = strlen(t->valuestring);
                memcpy(j->text + n, t->valuestring, k);
                n += k;
                j->n_events++;
            }
            cJSON_Delete(e);
        }
    }
    j->body = r.body ? strdup(r.body) : NULL;
    http_resp_free(&r);
    return NULL;
}

/* The texts alone, with nothing killed. */
static char *reference[N_REQ];
static void references(void)
{
    for (int i = 0; i < N_REQ; i++) {
        if (reference[i])
            continue;
        job j = {.i = i};
        job_main(&j);
        assert_int_equal(j.status, 200);
        reference[i] = j.text;
        free(j.body);
    }
}

/* Runs the jobs, kills PROCESS once they are generating, restarts it. */
static void run_with_kill(job *jobs, const char *process, int restart)
{
    pthread_t th[N_REQ];
    double steps0 = cluster_stat(&C, "worker_steps");
    for (int i = 0; i < N_REQ; i++)
        pthread_create(&th[i], NULL, job_main, &jobs[i]);
    for (int k = 0; k < 200 && cluster_stat(&C, "worker_steps") < steps0 + 30; k++)
        usleep(10000); /* generating for a while */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "kill -KILL $(cat %s/%s.pid)", C.run_dir, process);
    assert_int_equal(system(cmd), 0);
    if (restart) {
        usleep(200000);
        assert_int_equal(cluster_restart(&C, process, "KILL"), 0);
    }
    for (int i = 0; i < N_REQ; i++)
        pthread_join(th[i], NULL);
}

static void wait_reclaimed(void)
{
    int active = -1;
    double free_blocks = -1, limit = -2;
    for (int k = 0; k < 300 && !(active == 0 && free_blocks == limit && limit > 0); k++) {
        usleep(20000);
        active = cluster_active_slots(&C);
        free_blocks = cluster_stat(&C, "n_free_blocks");
        limit = cluster_stat(&C, "kv_limit_blocks");
    }
    if (active != 0 || free_blocks != limit || limit <= 0) { /* what the server says, for the log */
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s; tail -n 5 %s/router.log "
                 "%s/worker.log %s/tokenizer.log; ss -xp | grep %s; gdb -p $(cat %s/worker.pid) -batch -ex 'thread apply all bt' 2>&1 | grep -E '^#|Thread' | head -40",
                 cluster_shm_stat_cmd(C.run_dir), C.run_dir, C.run_dir, C.run_dir, C.run_dir, C.run_dir);
        if (system(cmd) != 0)
            printf("# cannot read the server's state\n");
    }
    assert_int_equal(active, 0);
    assert_true(free_blocks == limit && limit > 0);
}

static void expect_serving(void)
{
    job j = {.i = 0};
    for (int k = 0; k < 100; k++) { /* the restarted process may still be loading */
        http_resp r;
        http_request(C.port, "GET", "/health", NULL, &r);
        int ok = r.status == 200;
        http_resp_free(&r);
        if (ok)
            break;
        usleep(50000);
    }
    job_main(&j);
    assert_int_equal(j.status, 200);
    assert_string_equal(j.text, reference[0]);
    free(j.text);
    free(j.body);
}

static void test_worker_kill(void **state)
{
    references();
    job jobs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (job){.i = i, .stream = i % 2};
    run_with_kill(jobs, "worker", 1);
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(jobs[i].status, 200);
        assert_string_equal(jobs[i].text, reference[i]); /* resumed, same greedy text */
        if (jobs[i].stream)
            assert_int_equal(jobs[i].n_events, MAX_NEW);
        free(jobs[i].text);
        free(jobs[i].body);
    }
    wait_reclaimed();
}

static void test_detokenizer_kill(void **state)
{
    references();
    job jobs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (job){.i = i, .stream = 1};
    run_with_kill(jobs, "detokenizer", 1);
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(jobs[i].status, 200);
        assert_string_equal(jobs[i].text, reference[i]); /* nothing lost or repeated */
        assert_int_equal(jobs[i].n_events, MAX_NEW);
        free(jobs[i].text);
        free(jobs[i].body);
    }
    wait_reclaimed();
    expect_serving();
}

static void test_tokenizer_kill(void **state)
{
    references();
    job jobs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (job){.i = i, .stream = i % 2};
    run_with_kill(jobs, "tokenizer", 1);
    for (int i = 0; i < N_REQ; i++) { /* their connections died with the process */
        assert_true(jobs[i].status != 200 || (jobs[i].stream && jobs[i].n_events < MAX_NEW));
        free(jobs[i].text);
        free(jobs[i].body);
    }
    wait_reclaimed();
    expect_serving();
}

static void test_router_kill(void **state)
{
    references();
    job jobs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (job){.i = i, .stream = i % 2};
    run_with_kill(jobs, "router", 1);
    for (int i = 0; i < N_REQ; i++) { /* a clear error, not a hang */
        if (jobs[i].stream) {
            assert_int_equal(jobs[i].status, -2);
        } else {
            assert_int_equal(jobs[i].status, 503);
            assert_non_null(strstr(jobs[i].body, "router"));
        }
        free(jobs[i].text);
        free(jobs[i].body);
    }
    wait_reclaimed();
    expect_serving();
}

static void test_worker_dies_unrestarted(void **state)
{
    references();
    job jobs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        jobs[i] = (job){.i = i, .stream = i % 2};
    uint64_t t0 = (uint64_t)time(NULL);
    run_with_kill(jobs, "worker", 0);
    uint64_t waited = (uint64_t)time(NULL) - t0;
    for (int i = 0; i < N_REQ; i++) { /* a clear error after --worker-wait, not a hang */
        if (jobs[i].stream) {
            assert_int_equal(jobs[i].status, -2);
            assert_non_null(jobs[i].error);
            assert_non_null(strstr(jobs[i].error, "worker is down"));
            free(jobs[i].error);
        } else {
            assert_int_equal(jobs[i].status, 503);
            assert_non_null(strstr(jobs[i].body, "worker is down"));
        }
        free(jobs[i].text);
        free(jobs[i].body);
    }
    assert_true(waited <= (uint64_t)(2 + SCALED_MS(5000) / 1000)); /* --worker-wait 2 s, plus the requests themselves */
    assert_int_equal(cluster_restart(&C, "worker", "KILL"), 0);
    wait_reclaimed();
    expect_serving();
}

static void test_supervisor_restarts(void **state)
{
    references();
    const char *procs[] = {"worker", "detokenizer", "router", "tokenizer"};
    for (int p = 0; p < 4; p++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "kill -KILL $(cat %s/%s.pid)", C.run_dir, procs[p]);
        assert_int_equal(system(cmd), 0);
        usleep(700000); /* the supervisor sees the death and restarts it */
        expect_serving();
    }
    char log[512];
    snprintf(log, sizeof log, "grep -c restarting %s/supervisor.log | grep -qx 4", C.run_dir);
    assert_int_equal(system(log), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_kill, start, stop),
        cmocka_unit_test_setup_teardown(test_detokenizer_kill, start, stop),
        cmocka_unit_test_setup_teardown(test_tokenizer_kill, start, stop),
        cmocka_unit_test_setup_teardown(test_router_kill, start, stop),
        cmocka_unit_test_setup_teardown(test_worker_dies_unrestarted, start_short_wait, stop),
        cmocka_unit_test_setup_teardown(test_supervisor_restarts, start_supervised, stop),
    };
    int rc = cmocka_run_group_tests_name("e2e_restart", tests, NULL, NULL);
    for (int i = 0; i < N_REQ; i++)
        free(reference[i]);
    return rc;
}
