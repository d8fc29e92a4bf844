/* test_bad_input.c - end to end: the real server (four processes, stories15M on the reference
 * backend) against a corpus of bad requests and badly behaved clients.
 *
 * The corpus is tests/data/bad_input: NAME.json files are POSTed to /generate as they are,
 * NAME.http files are sent raw (a whole HTTP exchange, bytes exact); the file name starts
 * with the status expected ("400-...", "4xx-..." for any 4xx, "200-..." for requests that
 * must be served). Every 4xx answer must carry a JSON {"error": ...}. Besides the corpus:
 * bodies around the 1 MiB limit, prompts at the edge of the context, and slow or silent
 * clients that must neither hang the server nor block others. Throughout, the four
 * processes must stay the same processes (nothing crashed or restarted), /health stays 200,
 * and at the end every slot and KV block is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../common/tok/tok.h"
#include "cluster.h"
#include "http_client.h"
#include "../../common/json_util.h"

#define CORPUS_DIR "tests/data/bad_input"
#define BODY_LIMIT (1 << 20)  /* the server's request body limit */
#define ANSWER_MS SCALED_MS(30000)      /* a bad request is answered within this */
#define SLOW_BOUND_MS SCALED_MS(25000)  /* a stalled client is answered or dropped within this */
#define PROMPT_MS SCALED_MS(10000)      /* other clients are served within this meanwhile */

static const char *const procs[] = {"tokenizer", "router", "worker", "detokenizer"};
static cluster C;
static pid_t pids[4];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pid_t read_pid(const char *proc)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pid", C.run_dir, proc);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return (pid_t)pid;
}

static int setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    if (cluster_start(&C, ""))
        return -1;
    for (int i = 0; i < 4; i++)
        pids[i] = read_pid(procs[i]);
    return 0;
}

static int teardown(void **state)
{
    cluster_stop(&C);
    return 0;
}

/* ---- raw exchanges with deadlines */

static int connect_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)C.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

typedef struct {
    int status;      /* HTTP status; -1: closed without an answer; -2: nothing by the deadline */
    char *body;      /* after the header block, raw (chunked bodies not decoded) */
    double ms;       /* until the answer was complete or the connection closed */
} answer;

/* 1 when BUF (N bytes) holds a whole answer with a Content-Length. */
static int answer_complete(const char *buf, size_t n)
{
    const char *sep = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
    return sep && cl && cl < sep && n >= (size_t)(sep + 4 - buf) + strtoull(cl + 17, NULL, 10);
}

/* Reads FD until a whole answer is in, the server closes it, or DEADLINE (ms, now_ms clock). */
static answer read_answer(int fd, double t0, double deadline)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    answer a = {-2, NULL, 0};
    for (;;) {
        int wait = (int)(deadline - now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (wait <= 0 || poll(&p, 1, wait) <= 0)
            break;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) {
            a.status = -1;
            break;
        }
        n += (size_t)r;
        buf[n] = 0;
        if (answer_complete(buf, n))
            break;
    }
    buf[n] = 0;
    a.ms = now_ms() - t0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep && sscanf(buf, "HTTP/1.%*d %d", &a.status) == 1)
        a.body = strdup(sep + 4);
    free(buf);
    return a;
}

/* Sends REQ (N bytes; send errors are ignored: the server may answer before reading it all)
 * and waits up to TIMEOUT_MS for the answer. */
static answer exchange(const void *req, size_t n, int timeout_ms)
{
    double t0 = now_ms();
    int fd = connect_local();
    if (fd < 0)
        return (answer){-1, NULL, 0};
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, (const char *)req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    answer a = read_answer(fd, t0, t0 + timeout_ms);
    close(fd);
    return a;
}

static answer post_generate(const char *body, size_t n, int timeout_ms)
{
    char head[256];
    int k = snprintf(head, sizeof head, "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", n);
    char *req = malloc((size_t)k + n);
    memcpy(req, head, (size_t)k);
    memcpy(req + k, body, n);
    answer a = exchange(req, (size_t)k + n, timeout_ms);
    free(req);
    return a;
}

/* 1 if BODY is {"error": "message"} or OpenAI's {"error": {"message": ...}} */
static int is_json_error(const char *body)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    int ok = (cJSON_IsString(e) && e->valuestring[0]) ||
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"));
    cJSON_Delete(j);
    return ok;
}

static int health_ok(void)
{
    http_resp r;
    http_request(C.port, "GET", "/health", NULL, &r);
    int ok = r.status == 200;
    http_resp_free(&r);
    return ok;
}

/* 1 if the four processes are the ones started by setup and alive */
static int same_processes(void)
{
    for (int i = 0; i < 4; i++)
        if (pids[i] <= 0 || read_pid(procs[i]) != pids[i] || kill(pids[i], 0) != 0)
            return 0;
    return 1;
}

/* Checks answer A against the status WANT ("400", "4xx", "200"); prints and counts a miss. */
static int check(const char *name, const char *want, const answer *a)
{
    char got[16];
    snprintf(got, sizeof got, "%d", a->status);
    int match = want[1] == 'x' ? a->status / 100 == want[0] - '0' : !strncmp(got, want, 3);
    const char *why = !match ? "status" : a->status >= 400 && !is_json_error(a->body) ? "no JSON error" : NULL;
    if (why)
        printf("# FAIL %s: %s (want %.3s, got %d after %.0f ms): %.160s\n", name, why, want, a->status, a->ms,
               a->body ? a->body : "");
    return why != NULL;
}

/* ---- the corpus */


static int corpus_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && (!strcmp(d->d_name + n - 5, ".json") || !strcmp(d->d_name + n - 5, ".http"));
}

static void test_corpus(void **state)
{
    struct dirent **ents;
    int n = scandir(CORPUS_DIR, &ents, corpus_file, alphasort), n_fail = 0;
    assert_true(n >= 100);
    for (int i = 0; i < n; i++) {
        char path[512];
        const char *name = ents[i]->d_name;
        snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, name);
        size_t len = 0;
        char *data = file_read_all(path, &len, NULL, 0);
        assert_non_null(data);
        answer a = strstr(name, ".json") ? post_generate(data, len, ANSWER_MS) : exchange(data, len, ANSWER_MS);
        n_fail += check(name, name, &a);
        if (!health_ok() || !same_processes()) {
            printf("# FAIL %s: the server is down or a process was replaced after it\n", name);
            n_fail++;
            assert_true(health_ok());
        }
        free(a.body);
        free(data);
        free(ents[i]);
    }
    free(ents);
    printf("# %d corpus cases, %d failed\n", n, n_fail);
    assert_int_equal(n_fail, 0);
}

/* ---- sizes: the body limit, the context */

/* {"inputs": "<pad x N>"} of exactly LEN bytes */
static char *body_of_len(size_t len)
{
    static const char head[] = "{\"inputs\": \"", tail[] = "\"}";
    char *b = malloc(len + 1);
    memcpy(b, head, sizeof head - 1);
    for (size_t i = sizeof head - 1; i < len - (sizeof tail - 1); i++)
        b[i] = "Once upon a time "[i % 17];
    memcpy(b + len - (sizeof tail - 1), tail, sizeof tail);
    return b;
}

static void test_body_limit(void **state)
{
    int n_fail = 0;
    /* at the limit: read and parsed (a prompt far over the context: 400, not 413) */
    char *at = body_of_len(BODY_LIMIT), *over = body_of_len(BODY_LIMIT + 1);
    answer a = post_generate(at, BODY_LIMIT, ANSWER_MS);
    n_fail += check("body of exactly 1 MiB", "400", &a);
    free(a.body);
    a = post_generate(over, BODY_LIMIT + 1, ANSWER_MS);
    n_fail += check("body of 1 MiB + 1", "413", &a);
    free(a.body);
    /* the same bodies chunked: no Content-Length to check up front */
    char *req = malloc(2 * BODY_LIMIT);
    int k = sprintf(req, "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < BODY_LIMIT + 1; off += 60000) {
        size_t m = BODY_LIMIT + 1 - off < 60000 ? BODY_LIMIT + 1 - off : 60000;
        k += sprintf(req + k, "%zx\r\n", m);
        memcpy(req + k, over + off, m);
        k += (int)m;
        k += sprintf(req + k, "\r\n");
    }
    k += sprintf(req + k, "0\r\n\r\n");
    a = exchange(req, (size_t)k, ANSWER_MS);
    n_fail += check("chunked body of 1 MiB + 1", "413", &a);
    free(a.body);
    /* a large prompt under the limit is refused quickly, not tokenized at leisure */
    char *large = body_of_len(BODY_LIMIT - 100000);
    a = post_generate(large, BODY_LIMIT - 100000, ANSWER_MS);
    free(large);
    n_fail += check("900 KB body", "400", &a);
    if (a.ms > PROMPT_MS) {
        printf("# FAIL 900 KB body: %.0f ms\n", a.ms);
        n_fail++;
    }
    free(a.body);
    free(req);
    free(at);
    free(over);
    assert_true(same_processes());
    assert_int_equal(n_fail, 0);
}

/* A prompt of exactly N_TOKENS tokens (BOS included) for the default model's tokenizer. */
static char *prompt_of_tokens(const tok *t, int n_tokens)
{
    size_t cap = 16 * (size_t)n_tokens + 64, len = 0;
    char *p = calloc(1, cap);
    while (tok_encode(t, p, len, 1, NULL, 0) < n_tokens)
        len += (size_t)sprintf(p + len, "%s", len ? " dog" : "dog");
    assert_int_equal(tok_encode(t, p, len, 1, NULL, 0), n_tokens);
    return p;
}

static void test_context_edge(void **state)
{
    char err[256], body[8192];
    tok *t = tok_load("models/stories15M/tokenizer.json", err, sizeof err);
    assert_non_null(t);
    int ctx = (int)cluster_stat(&C, "max_seq_len");
    assert_true(ctx > 8);
    /* ctx - 1 prompt tokens leave room for one new token; ctx leave none */
    for (int n = ctx - 1; n <= ctx; n++) {
        char *p = prompt_of_tokens(t, n);
        snprintf(body, sizeof body, "{\"inputs\": \"%s\", \"parameters\": {\"max_new_tokens\": 8}}", p);
        answer a = post_generate(body, strlen(body), ANSWER_MS);
        assert_int_equal(check(n < ctx ? "prompt of context - 1 tokens" : "prompt of context tokens",
                               n < ctx ? "200" : "400", &a), 0);
        if (n < ctx) {
            cJSON *j = cJSON_Parse(a.body);
            assert_non_null(j);
            assert_int_equal(cJSON_GetObjectItem(j, "prompt_tokens")->valueint, ctx - 1);
            assert_int_equal(cJSON_GetObjectItem(j, "count_output_tokens")->valueint, 1);
            cJSON_Delete(j);
        }
        free(a.body);
        free(p);
    }
    tok_free(t);
}

/* ---- null means absent */

/* POSTs BODY to PATH; the number at PATH1.PATH2 of the 200 answer (-1 if the status or
 * the field is not there). */
static double served_count(const char *path, const char *body, const char *k1, const char *k2)
{
    http_resp r;
    http_request(C.port, "POST", path, body, &r);
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k1);
    if (k2)
        v = cJSON_GetObjectItemCaseSensitive(v, k2);
    double n = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (n < 0)
        printf("# %s %s: status %d: %.200s\n", path, body, r.status, r.body ? r.body : "");
    cJSON_Delete(j);
    http_resp_free(&r);
    return n;
}

/* Every optional field given as null is as if absent, in both APIs: the max_tokens next to
 * a null max_completion_tokens applies, nulls elsewhere take the defaults. */
static void test_null_means_absent(void **state)
{
    double n = served_count("/v1/chat/completions",
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                            "\"max_completion_tokens\":null,\"max_tokens\":3,\"ignore_eos\":true}",
                            "usage", "completion_tokens");
    assert_true(n >= 1 && n <= 3);
    n = served_count("/v1/completions",
                     "{\"prompt\":\"Once\",\"max_tokens\":3,\"model\":null,\"temperature\":null,"
                     "\"top_p\":null,\"top_k\":null,\"n\":null,\"best_of\":null,\"echo\":null,\"stop\":null,"
                     "\"seed\":null,\"stream\":null,\"stream_options\":null,\"presence_penalty\":null,"
                     "\"frequency_penalty\":null,\"repetition_penalty\":null,\"ignore_eos\":null,"
                     "\"stop_token_ids\":null,\"logprobs\":null,\"user\":null,\"max_completion_tokens\":null}",
                     "usage", "completion_tokens");
    assert_true(n >= 1 && n <= 3);
    n = served_count("/v1/chat/completions",
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":null},"
                     "{\"role\":\"user\",\"content\":\"Go on\"}],\"max_tokens\":2,\"stream\":null,"
                     "\"stream_options\":{\"include_usage\":null}}",
                     "usage", "completion_tokens");
    assert_true(n >= 1 && n <= 2);
    n = served_count("/generate",
                     "{\"inputs\":\"Once\",\"parameters\":{\"max_new_tokens\":null,\"do_sample\":null,"
                     "\"temperature\":null,\"top_p\":null,\"top_k\":null,\"seed\":null,\"ignore_eos\":null,"
                     "\"stop_sequences\":null,\"stop_token_ids\":null,\"repetition_penalty\":null,"
                     "\"frequency_penalty\":null,\"presence_penalty\":null}}",
                     "count_output_tokens", NULL);
    assert_true(n >= 1 && n <= 16); /* the default max_new_tokens */
}

/* ---- clients that stall */

typedef struct {
    const char *name;
    const char *send;   /* what the client sends before going quiet */
    int want_answer;    /* 1: must end with a 4xx JSON error; 0: a close (or any 4xx) will do */
    answer a;
} stall;

static void *stall_main(void *arg)
{
    stall *s = arg;
    double t0 = now_ms();
    int fd = connect_local();
    if (fd < 0) {
        s->a.status = -3;
        return NULL;
    }
    if (*s->send)
        send(fd, s->send, strlen(s->send), MSG_NOSIGNAL);
    s->a = read_answer(fd, t0, t0 + SLOW_BOUND_MS + 5000);
    close(fd);
    return NULL;
}

static void test_stalled_clients(void **state)
{
    stall s[] = {
        {"silent client", "", 0, {0}},
        {"half a request line", "POST /gen", 0, {0}},
        {"headers never end", "POST /generate HTTP/1.1\r\nHost: x\r\n", 0, {0}},
        {"body shorter than Content-Length",
         "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\": \"Once\"}", 1, {0}},
        {"chunked body never ends",
         "POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"inp\r\n", 1, {0}},
    };
    enum { N_STALL = sizeof s / sizeof *s, N_IDLE = 32 };
    pthread_t th[N_STALL];
    for (int i = 0; i < N_STALL; i++)
        pthread_create(&th[i], NULL, stall_main, &s[i]);
    int idle[N_IDLE]; /* more clients that connect and say nothing */
    for (int i = 0; i < N_IDLE; i++)
        idle[i] = connect_local();
    usleep(200000);
    /* meanwhile other clients are served */
    const char *ok = "{\"inputs\": \"Once upon a time\", \"parameters\": {\"max_new_tokens\": 4}}";
    answer a = post_generate(ok, strlen(ok), PROMPT_MS);
    int n_fail = check("a request while clients stall", "200", &a);
    free(a.body);
    for (int i = 0; i < N_STALL; i++) {
        pthread_join(th[i], NULL);
        answer *r = &s[i].a;
        int fine = s[i].want_answer ? r->status / 100 == 4 && is_json_error(r->body)
                                    : r->status == -1 || (r->status / 100 == 4 && is_json_error(r->body));
        if (!fine || r->ms > SLOW_BOUND_MS) {
            printf("# FAIL %s: %s after %.0f ms (want %s within %d ms)\n", s[i].name,
                   r->status == -2 ? "still open" : r->status == -1 ? "closed without an answer" : "answered",
                   r->ms, s[i].want_answer ? "a 4xx JSON error" : "a close or a 4xx", SLOW_BOUND_MS);
            n_fail++;
        }
        printf("# %s: %s after %.0f ms\n", s[i].name, r->status == -1 ? "closed" : "answered", r->ms);
        free(r->body);
    }
    for (int i = 0; i < N_IDLE; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    assert_true(health_ok());
    assert_true(same_processes());
    assert_int_equal(n_fail, 0);
}

/* A client that sends half a body and goes away, then one that goes away mid-stream: the
 * server keeps serving (the final test checks that nothing leaked). */
static void test_clients_going_away(void **state)
{
    for (int i = 0; i < 8; i++) {
        int fd = connect_local();
        assert_true(fd >= 0);
        const char *req = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"inputs\": \"Once up";
        send(fd, req, strlen(req), MSG_NOSIGNAL);
        close(fd);
        http_hangup_after(C.port, "/generate_stream",
                          "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":64}}", 64 + 8 * i);
    }
    assert_true(health_ok());
    assert_true(same_processes());
}

/* ---- nothing crashed, nothing leaked */

static void test_nothing_leaked(void **state)
{
    assert_true(same_processes());
    assert_true(health_ok());
    double active = -1, free_blocks = -1, limit = -1;
    for (int i = 0; i < 100; i++) {
        active = cluster_stat(&C, "active_slots");
        free_blocks = cluster_stat(&C, "n_free_blocks");
        limit = cluster_stat(&C, "kv_limit_blocks");
        if (active == 0 && free_blocks == limit)
            break;
        usleep(100000);
    }
    printf("# active slots %.0f, free KV blocks %.0f of %.0f\n", active, free_blocks, limit);
    assert_true(active == 0);
    assert_true(limit > 0 && free_blocks == limit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_context_edge),
        cmocka_unit_test(test_null_means_absent),
        cmocka_unit_test(test_stalled_clients),
        cmocka_unit_test(test_clients_going_away),
        cmocka_unit_test(test_nothing_leaked),
    };
    if (getenv("CMOCKA_FILTER")) /* e.g. CMOCKA_FILTER='test_null*' runs only those */
        cmocka_set_test_filter(getenv("CMOCKA_FILTER"));
    return cmocka_run_group_tests_name("e2e_bad_input", tests, setup, teardown);
}
