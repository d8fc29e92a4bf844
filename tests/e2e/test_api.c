/* test_api.c - the HTTP API around generation, over real HTTP against a real launch (with
 * --api-key, --allowed-origins and --served-model-name):
 *   auth        401 in OpenAI's shape without the key or with a wrong one, 200 with it;
 *               /health, /ping, /version, /metrics and CORS preflights open
 *   keep-alive  several requests (JSON, a stream, generation) on one connection; an answer
 *               sent before the body was read closes it, and so does HTTP/1.0
 *   CORS        the allowed Origin reflected on normal and streamed answers, an unknown one
 *               not; preflights answered (200) or refused (400)
 *   endpoints   /tokenize (text and chat messages, counting what the chat API bills),
 *               /detokenize, /version, /ping, GET /v1/models/{id}; refused fields named
 *   metrics     promtool check metrics clean (skipped, with a note, without promtool), every
 *               series labelled with the served name, the stage histograms counting each
 *               finished request
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"
#include "prom.h"

#define KEY "test-key-4f1c"
#define ORIGIN "http://app.example"
#define AUTH "Authorization: Bearer " KEY "\r\n"

static cluster C;

static int setup(void **state)
{
    return cluster_start(&C, "--api-key " KEY " --allowed-origins '[\"" ORIGIN "\"]' --served-model-name tiny "
                             CLUSTER_CHAT_TEMPLATE);
}

static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

/* METHOD PATH with extra header lines HDRS and BODY (may be NULL), one connection */
static void req(const char *method, const char *path, const char *hdrs, const char *body, http_resp *r)
{
    char raw[8192];
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n%s", method, path, hdrs ? hdrs : "", body ? strlen(body) : 0,
                     body ? body : "");
    http_raw(C.port, raw, (size_t)n, r);
}

/* The value of header NAME in R ("" when absent; a static buffer) */
static const char *header(const http_resp *r, const char *name)
{
    static char v[512];
    char pat[96];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *p = r->headers ? strcasestr(r->headers, pat) : NULL;
    v[0] = 0;
    if (p) {
        p += strlen(pat);
        p += strspn(p, " ");
        snprintf(v, sizeof v, "%.*s", (int)strcspn(p, "\r\n"), p);
    }
    return v;
}

static void expect_401(const char *method, const char *path, const char *hdrs, const char *body)
{
    http_resp r;
    req(method, path, hdrs, body, &r);
    printf("# %s %s -> %d %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, 401);
    cJSON *j = cJSON_Parse(r.body), *e = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), "invalid_api_key");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "type")), "invalid_request_error");
    assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
    assert_string_equal(header(&r, "WWW-Authenticate"), "Bearer");
    cJSON_Delete(j);
    http_resp_free(&r);
}

static void expect_status(const char *method, const char *path, const char *hdrs, const char *body, int status)
{
    http_resp r;
    req(method, path, hdrs, body, &r);
    if (r.status != status)
        printf("# %s %s -> %d %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, status);
    http_resp_free(&r);
}

static void test_auth(void **state)
{
    const char *gen = "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":2}}";
    expect_401("GET", "/v1/models", NULL, NULL);
    expect_401("GET", "/v1/models", "Authorization: Bearer wrong-key-4f1c\r\n", NULL);
    expect_401("GET", "/v1/models", "Authorization: Bearer " KEY "x\r\n", NULL);
    expect_401("GET", "/v1/models", "Authorization: " KEY "\r\n", NULL);
    expect_401("POST", "/v1/completions", NULL, "{\"prompt\":\"Once\",\"max_tokens\":2}");
    expect_401("POST", "/generate", NULL, gen);
    expect_401("POST", "/tokenize", NULL, "{\"prompt\":\"Once\"}");
    expect_401("GET", "/no/such/path", NULL, NULL);
    expect_status("GET", "/v1/models", AUTH, NULL, 200);
    expect_status("GET", "/v1/models", "authorization: bearer " KEY "\r\n", NULL, 200);
    expect_status("POST", "/generate", AUTH, gen, 200);
    expect_status("GET", "/no/such/path", AUTH, NULL, 404);
    const char *open_paths[] = {"/health", "/ping", "/version", "/metrics"};
    for (int i = 0; i < 4; i++)
        expect_status("GET", open_paths[i], NULL, NULL, 200);
    expect_status("POST", "/ping", NULL, NULL, 200);
}

/* Sends RAW on FD and reads one whole answer */
static void exchange(int fd, const char *raw, http_resp *r)
{
    assert_int_equal(http_send_all(fd, raw, strlen(raw)), 0);
    http_await(fd, 20000, r);
}

static void test_keep_alive(void **state)
{
    int fd = http_connect(C.port);
    assert_true(fd >= 0);
    const char *body = "{\"model\":\"tiny\",\"prompt\":\"Once upon a time\",\"max_tokens\":5,\"stream\":true}";
    char stream[1024];
    snprintf(stream, sizeof stream, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" AUTH
             "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    const char *gen = "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":3}}";
    char generate[512];
    snprintf(generate, sizeof generate, "POST /generate HTTP/1.1\r\nHost: x\r\n" AUTH
             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", strlen(gen), gen);
    const char *exchanges[] = {"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", stream, generate,
                               "GET /v1/models HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n",
                               "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"};
    for (int i = 0; i < 5; i++) {
        http_resp r;
        exchange(fd, exchanges[i], &r);
        printf("# request %d on one connection: %d, Connection: %s\n", i + 1, r.status, header(&r, "Connection"));
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Connection"), "keep-alive");
        assert_string_equal(header(&r, "Keep-Alive"), "timeout=5");
        if (i == 1)
            assert_non_null(strstr(r.body, "data: [DONE]"));
        if (i == 2)
            assert_non_null(strstr(r.body, "\"count_output_tokens\":3"));
        http_resp_free(&r);
    }
    /* answered before its body was read (405): the connection closes */
    http_resp r;
    exchange(fd, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Connection"), "close");
    http_resp_free(&r);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 0); /* closed */
    close(fd);

    /* the client's wish: Connection: close, or HTTP/1.0 */
    fd = http_connect(C.port);
    exchange(fd, "GET /health HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Connection"), "close");
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    http_resp_free(&r);
    close(fd);
    fd = http_connect(C.port);
    exchange(fd, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", &r);
    assert_string_equal(header(&r, "Connection"), "close");
    assert_int_equal(recv(fd, &c, 1, 0), 0);
    http_resp_free(&r);
    close(fd);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Idle kept connections hold no thread (the event loop waits on them): more of them than
 * there are handler threads are all kept, /health is still answered at once, and an idle one
 * is closed after the keep-alive timeout. */
static void test_keep_alive_idle(void **state)
{
    enum { N = 270 }; /* more than the 256 handler threads */
    static int fds[N];
    int kept = 0, closed = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = http_connect(C.port);
        assert_true(fds[i] >= 0);
        http_resp r;
        exchange(fds[i], "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        kept += !strcmp(header(&r, "Connection"), "keep-alive");
        closed += !strcmp(header(&r, "Connection"), "close");
        http_resp_free(&r);
    }
    double t = now_s();
    http_resp r;
    req("GET", "/health", NULL, NULL, &r);
    double took = now_s() - t;
    printf("# %d connections: %d kept open, %d closed; then /health %d in %.0f ms\n", N, kept, closed, r.status,
           took * 1e3);
    assert_int_equal(r.status, 200);
    assert_true(took < 1.0);
    assert_int_equal(kept, N);
    assert_int_equal(closed, 0);
    http_resp_free(&r);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    /* an idle connection is closed by the server after keep_alive_timeout (5 s) */
    int fd = http_connect(C.port);
    exchange(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(header(&r, "Connection"), "keep-alive");
    http_resp_free(&r);
    t = now_s();
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    printf("# an idle kept connection closed after %.1f s\n", now_s() - t);
    assert_int_equal(k, 0);
    assert_true(now_s() - t > 4 && now_s() - t < 12);
    close(fd);
}

static void test_cors(void **state)
{
    http_resp r;
    req("POST", "/generate", AUTH "Origin: " ORIGIN "\r\n",
        "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":2}}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), ORIGIN);
    assert_string_equal(header(&r, "Vary"), "Origin");
    http_resp_free(&r);
    req("POST", "/v1/chat/completions", AUTH "Origin: " ORIGIN "\r\n",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2,\"stream\":true}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), ORIGIN);
    http_resp_free(&r);
    req("GET", "/v1/models", AUTH "Origin: http://other.example\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), "");
    assert_string_equal(header(&r, "Vary"), "Origin");
    http_resp_free(&r);
    req("GET", "/v1/models", "Origin: " ORIGIN "\r\n", NULL, &r); /* errors carry it too */
    assert_int_equal(r.status, 401);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), ORIGIN);
    http_resp_free(&r);
    /* preflights: no key needed (browsers send none) */
    req("OPTIONS", "/v1/chat/completions", "Origin: " ORIGIN "\r\nAccess-Control-Request-Method: POST\r\n"
        "Access-Control-Request-Headers: authorization, content-type\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Access-Control-Allow-Origin"), ORIGIN);
    assert_non_null(strstr(header(&r, "Access-Control-Allow-Methods"), "POST"));
    assert_string_equal(header(&r, "Access-Control-Allow-Headers"), "authorization, content-type");
    http_resp_free(&r);
    req("OPTIONS", "/v1/chat/completions", "Origin: http://other.example\r\nAccess-Control-Request-Method: POST\r\n",
        NULL, &r);
    assert_int_equal(r.status, 400);
    http_resp_free(&r);
}

/* POST PATH BODY with the key: its JSON answer (the caller frees), status in *STATUS */
static cJSON *post(const char *path, const char *body, int *status)
{
    http_resp r;
    req("POST", path, AUTH, body, &r);
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    if (r.status != 200)
        printf("# POST %s %s -> %d %s\n", path, body, r.status, r.body);
    http_resp_free(&r);
    return j;
}

static void test_tokenize(void **state)
{
    int st;
    cJSON *j = post("/tokenize", "{\"model\":\"tiny\",\"prompt\":\"Once upon a time\"}", &st);
    assert_int_equal(st, 200);
    int want[] = {1, 9038, 2501, 263, 931}; /* BOS, then Llama-2's pieces */
    cJSON *tokens = cJSON_GetObjectItem(j, "tokens");
    assert_int_equal(cJSON_GetArraySize(tokens), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(cJSON_GetArrayItem(tokens, i)->valueint, want[i]);
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(j, "max_model_len")->valueint, 256);
    cJSON_Delete(j);
    j = post("/tokenize", "{\"prompt\":\"Once upon a time\",\"add_special_tokens\":false}", &st);
    assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 4);
    cJSON_Delete(j);

    j = post("/detokenize", "{\"tokens\":[9038,2501,263,931]}", &st);
    assert_int_equal(st, 200);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "prompt")), "Once upon a time");
    cJSON_Delete(j);

    /* chat messages: the count the chat API bills for the same messages */
    const char *msgs = "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Tell me a story.\"}]";
    char body[512];
    snprintf(body, sizeof body, "{%s}", msgs);
    j = post("/tokenize", body, &st);
    assert_int_equal(st, 200);
    int count = cJSON_GetObjectItem(j, "count")->valueint;
    cJSON_Delete(j);
    snprintf(body, sizeof body, "{%s,\"max_tokens\":1}", msgs);
    j = post("/v1/chat/completions", body, &st);
    assert_int_equal(st, 200);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "model")), "tiny");
    printf("# chat: /tokenize counts %d, the chat answer bills %d\n", count,
           cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint, count);
    cJSON_Delete(j);

    /* refused by name, never ignored */
    const char *bad[][2] = {{"{\"prompt\":\"a\",\"return_token_strs\":true}", "return_token_strs"},
                            {"{\"prompt\":\"a\",\"truncate_prompt_tokens\":3}", "truncate_prompt_tokens"},
                            {"{\"prompt\":\"a\",\"messages\":[]}", "prompt"},
                            {"{\"prompt\":7}", "prompt"}};
    for (int i = 0; i < 4; i++) {
        j = post("/tokenize", bad[i][0], &st);
        assert_int_equal(st, 400);
        assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "error")), bad[i][1]));
        cJSON_Delete(j);
    }
    j = post("/tokenize", "{\"model\":\"other\",\"prompt\":\"a\"}", &st);
    assert_int_equal(st, 404);
    cJSON_Delete(j);
    const char *bad_ids[] = {"{\"tokens\":[1,32000]}", "{\"tokens\":[-1]}", "{\"tokens\":[1.5]}", "{\"tokens\":\"1\"}"};
    for (int i = 0; i < 4; i++) {
        j = post("/detokenize", bad_ids[i], &st);
        assert_int_equal(st, 400);
        cJSON_Delete(j);
    }
}

static void test_models_version_ping(void **state)
{
    http_resp r;
    req("GET", "/v1/models/tiny", AUTH, NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")), "tiny");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "object")), "model");
    cJSON_Delete(j);
    http_resp_free(&r);
    req("GET", "/v1/models/stories15M", AUTH, NULL, &r); /* the directory's name is not served */
    assert_int_equal(r.status, 404);
    j = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")),
                        "model_not_found");
    cJSON_Delete(j);
    http_resp_free(&r);
    req("GET", "/version", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(j, "version"));
    assert_true(v && *v);
    cJSON_Delete(j);
    http_resp_free(&r);
    req("GET", "/ping", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    http_resp_free(&r);
    expect_status("DELETE", "/ping", NULL, NULL, 405);
}

static void test_metrics(void **state)
{
    http_resp r;
    req("GET", "/metrics", NULL, NULL, &r);
    double done0 = prom_value(r.body, "cinder_request_success_total", "finished_reason=\"length\"");
    double queue0 = prom_value(r.body, "cinder_request_queue_time_seconds_count", NULL);
    double decode0 = prom_value(r.body, "cinder_request_decode_time_seconds_count", NULL);
    double gen0 = prom_value(r.body, "cinder_request_generation_tokens_sum", NULL);
    http_resp_free(&r);
    int st;
    for (int i = 0; i < 3; i++)
        cJSON_Delete(post("/generate", "{\"inputs\":\"The cat\",\"parameters\":{\"max_new_tokens\":6,\"ignore_eos\":true}}",
                          &st));
    req("GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(prom_value(r.body, "cinder_request_success_total", "finished_reason=\"length\"") == done0 + 3);
    assert_true(prom_value(r.body, "cinder_request_queue_time_seconds_count", NULL) == queue0 + 3);
    assert_true(prom_value(r.body, "cinder_request_prefill_time_seconds_count", NULL) >= queue0 + 3);
    assert_true(prom_value(r.body, "cinder_request_decode_time_seconds_count", NULL) == decode0 + 3);
    assert_true(prom_value(r.body, "cinder_request_generation_tokens_sum", NULL) == gen0 + 18);
    assert_true(prom_value(r.body, "cinder_kv_cache_usage_perc", NULL) == 0);
    /* every sample names the served model */
    int n_samples = 0, unlabelled = 0;
    for (const char *l = r.body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '#' || *l == '\n')
            continue;
        n_samples++;
        const char *eol = strchr(l, '\n'), *lab = strstr(l, "model_name=\"tiny\"");
        unlabelled += !lab || (eol && lab > eol);
    }
    printf("# %d samples, %d without model_name=\"tiny\"\n", n_samples, unlabelled);
    assert_true(n_samples > 100);
    assert_int_equal(unlabelled, 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/cinder-metrics.%d", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(r.body, f);
    fclose(f);
    http_resp_free(&r);
    if (system("command -v promtool > /dev/null")) {
        printf("# skipped: promtool is not installed (Debian package prometheus; scripts/setup.sh installs it)\n");
        unlink(path);
        skip();
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_keep_alive_idle),
        cmocka_unit_test(test_cors),        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_models_version_ping), cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests_name("e2e_api", tests, setup, teardown);
}
