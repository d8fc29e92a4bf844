/* load.c - concurrent generate requests for the end-to-end fault tests (see load.h). */
#include "load.h"
#include "http_client.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const cluster *c;
    load_job *job;
    pthread_t th;
} runner;

typedef struct {
    int n;
    runner *r;
} load_handle;

static char *json_error(cJSON *o)
{
    cJSON *e = cJSON_GetObjectItem(o, "error");
    if (cJSON_IsObject(e))   /* OpenAI's {"error": {"message": ...}} */
        e = cJSON_GetObjectItem(e, "message");
    return cJSON_IsString(e) ? strdup(e->valuestring) : NULL;
}

static void parse_stream(load_job *j, char *body, size_t len)
{
    j->text = calloc(1, len + 1);
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "data:", 5))
            continue;
        cJSON *e = cJSON_Parse(line + 5);
        if (cJSON_GetObjectItem(e, "error")) {
            j->status = -2;
            free(j->error);
            j->error = json_error(e);
        }
        cJSON *tok = cJSON_GetObjectItem(e, "token");
        cJSON *t = cJSON_GetObjectItem(tok, "text"), *id = cJSON_GetObjectItem(tok, "id");
        if (cJSON_IsString(t) && cJSON_IsNumber(id) && id->valueint >= 0) {
            size_t k = strlen(t->valuestring);
            memcpy(j->text + n, t->valuestring, k);
            n += k;
            j->n_events++;
        }
        cJSON_Delete(e);
    }
}

static void *job_main(void *arg)
{
    runner *r = arg;
    load_job *j = r->job;
    cJSON *ps = cJSON_CreateString(j->prompt);
    char *prompt = cJSON_PrintUnformatted(ps), body[1024];
    cJSON_Delete(ps);
    snprintf(body, sizeof body,
             "{\"inputs\":%s,\"parameters\":{\"max_new_tokens\":%d,\"ignore_eos\":true}}", prompt,
             j->max_new);
    free(prompt);
    http_resp hr;
    http_request(r->c->port, "POST", j->stream ? "/generate_stream" : "/generate", body, &hr);
    j->status = hr.status;
    if (hr.status == 200 && j->stream) {
        parse_stream(j, hr.body, hr.body_len);
    } else if (hr.body) {
        cJSON *o = cJSON_Parse(hr.body);
        cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "generated_text"), 0);
        j->text = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
        j->error = json_error(o);
        cJSON_Delete(o);
    }
    http_resp_free(&hr);
    return NULL;
}

void *load_start(const cluster *c, load_job *jobs, int n)
{
    load_handle *h = calloc(1, sizeof *h);
    h->n = n;
    h->r = calloc((size_t)n, sizeof *h->r);
    for (int i = 0; i < n; i++) {
        h->r[i] = (runner){c, &jobs[i], 0};
        if (pthread_create(&h->r[i].th, NULL, job_main, &h->r[i])) {
            fprintf(stderr, "load: cannot start job %d\n", i);
            jobs[i].status = -1;
            h->r[i].th = 0;
        }
    }
    return h;
}

void load_join(void *handle)
{
    load_handle *h = handle;
    for (int i = 0; i < h->n; i++)
        if (h->r[i].th)
            pthread_join(h->r[i].th, NULL);
    free(h->r);
    free(h);
}

void load_run(const cluster *c, load_job *jobs, int n) { load_join(load_start(c, jobs, n)); }

void load_free(load_job *jobs, int n)
{
    for (int i = 0; i < n; i++) {
        free(jobs[i].text);
        free(jobs[i].error);
        jobs[i].text = jobs[i].error = NULL;
    }
}

int load_wait_reclaimed(const cluster *c)
{
    int active = -1;
    double free_blocks = -1, limit = -2;
    for (int k = 0; k < 300 && !(active == 0 && free_blocks == limit && limit > 0); k++) {
        usleep(20000);
        active = cluster_active_slots(c);
        free_blocks = cluster_stat(c, "n_free_blocks");
        limit = cluster_stat(c, "kv_limit_blocks");
    }
    if (active == 0 && free_blocks == limit && limit > 0)
        return 0;
    printf("# not reclaimed: %d active slots, %.0f of %.0f KV blocks free\n", active, free_blocks,
           limit);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tail -n 5 %s/router.log %s/tokenizer.log", c->run_dir, c->run_dir);
    if (system(cmd) != 0)
        printf("# cannot read the logs\n");
    return -1;
}

void load_wait_steps(const cluster *c, int n)
{
    double s0 = cluster_stat(c, "worker_steps");
    for (int k = 0; k < 200 && cluster_stat(c, "worker_steps") < s0 + n; k++)
        usleep(10000);
}
