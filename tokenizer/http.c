/* http.c - routes the tokenizer process's HTTP requests to the APIs.
 *
 *   GET  /health                200 when all four processes are up, else 503
 *   GET|POST /ping              the same, empty (vLLM's, SageMaker's)
 *   GET  /version               {"version"}
 *   GET  /metrics               Prometheus text (metrics.c)
 *   POST /generate              LightLLM API (api_generate.c)
 *   POST /generate_stream       the same, server-sent events
 *   POST /tokenize, /detokenize vLLM's (api_tokenize.c)
 *   POST /v1/completions        OpenAI API (api_openai.c)
 *   POST /v1/chat/completions
 *   GET  /v1/models, /v1/models/{id}   (api_models.c)
 *   OPTIONS (any path)          CORS preflight
 *
 * The front end (http_server.c) parses every request on one event loop thread and calls
 * http_route_head() there once the headers are in: framing checks, CORS preflights, 401, 404,
 * 405, /health, /ping, /version, /metrics and /v1/models are answered on the loop itself, so
 * they never wait for a handler thread however busy those are. Generation and tokenization
 * requests have their body read whole (413 at once past HTTP_MAX_BODY), then run on one of
 * --http-threads handler threads (http_route_run()); when all are taken they wait their turn
 * in a FIFO queue of at most --http-queue requests (and, with --max-queue N, only while fewer
 * than N requests wait here and in the router's queue together); past that they get 503 +
 * Retry-After at once. A waiting request whose client hangs up is dropped when its turn
 * comes (counted as an abort), never run (http_server.h says more, slots included). Every
 * client error is a 4xx with a JSON message; nothing a client sends can crash the process.
 * With an API key (--api-key, or the environment's CINDER_API_KEY / VLLM_API_KEY) every
 * route but /health, /ping, /version, /metrics and CORS preflights needs "Authorization:
 * Bearer KEY" (compared in constant time), else 401 in OpenAI's error shape. Every answer
 * carries the CORS headers and says whether the connection stays open (http_resp.h: HTTP/1.1
 * keep-alive).
 *
 * Slow clients (http_server.h): the whole header within HTTP_HEAD_DEADLINE_MS of its first
 * byte, the whole body within HTTP_BODY_DEADLINE_MS (408 after either), an idle kept-open
 * connection closed after HTTP_KEEP_ALIVE_MS; none of them holds a thread meanwhile.
 */
#include "http.h"
#include "../common/log.h"
#include "api.h"
#include "http_frame.h"
#include "http_resp.h"
#include "http_server.h"
#include "http_util.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static api_ctx A;
static const char *api_key; /* NULL: none */
static char health_extra[128]; /* X-Cinder-Launch: ID */

static int handle_metrics(http_conn *c, tokenizer *f)
{
    char *text = metrics_render(&f->st, http_server_waiting(c->srv));
    if (!text)
        return http_send_error(c, 500, "out of memory");
    size_t n = strlen(text);
    http_resp_head(c, 200, "text/plain; version=0.0.4", (long long)n, NULL);
    http_write(c, text, n);
    free(text);
    return 200;
}

enum { R_HEALTH, R_PING, R_VERSION, R_METRICS, R_GENERATE, R_GENERATE_STREAM, R_TOKENIZE, R_DETOKENIZE,
       R_COMPLETIONS, R_CHAT, R_MODELS, R_MODEL };

typedef struct {
    const char *path, *methods; /* R_MODEL: a path prefix */
    int openai;   /* errors in OpenAI's shape */
    int open;     /* answered without the API key */
    int body;     /* reads a body: runs on a handler thread */
} route;

static const route routes[] = {
    [R_HEALTH] = {"/health", "GET", 0, 1, 0},           [R_PING] = {"/ping", "GET, POST", 0, 1, 0},
    [R_VERSION] = {"/version", "GET", 0, 1, 0},         [R_METRICS] = {"/metrics", "GET", 0, 1, 0},
    [R_GENERATE] = {"/generate", "POST", 0, 0, 1},      [R_GENERATE_STREAM] = {"/generate_stream", "POST", 0, 0, 1},
    [R_TOKENIZE] = {"/tokenize", "POST", 0, 0, 1},      [R_DETOKENIZE] = {"/detokenize", "POST", 0, 0, 1},
    [R_COMPLETIONS] = {"/v1/completions", "POST", 1, 0, 1}, [R_CHAT] = {"/v1/chat/completions", "POST", 1, 0, 1},
    [R_MODELS] = {"/v1/models", "GET", 1, 0, 0},        [R_MODEL] = {"/v1/models/", "GET", 1, 0, 0},
};
#define N_ROUTES ((int)(sizeof routes / sizeof *routes))

static int route_of(const char *uri)
{
    for (int i = 0; i < N_ROUTES; i++)
        if (i == R_MODEL ? !strncmp(uri, routes[i].path, strlen(routes[i].path)) && uri[strlen(routes[i].path)]
                         : !strcmp(uri, routes[i].path))
            return i;
    return -1;
}

/* METHOD is one of the comma-separated LIST */
static int method_in(const char *method, const char *list)
{
    size_t n = strlen(method);
    for (const char *p = list; (p = strstr(p, method)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

/* Bytes A and B are equal; the time taken depends on B's length only (B: the key). */
static int equal_ct(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < nb; i++)
        d |= (unsigned char)(b[i] ^ (i < na ? a[i] : 0));
    return d == 0;
}

/* The request carries "Authorization: Bearer <the key>" */
static int authorized(http_conn *c)
{
    const char *h = http_header(c, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return equal_ct(h, api_key);
}

static int unauthorized(http_conn *c)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", "a valid API key is required: Authorization: Bearer KEY");
    cJSON_AddStringToObject(e, "type", "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", "invalid_api_key");
    char *s = cJSON_PrintUnformatted(j);
    http_send_json(c, 401, s ? s : "{}", "WWW-Authenticate: Bearer\r\n");
    cJSON_free(s);
    cJSON_Delete(j);
    return 401;
}

/* OPTIONS with Origin and Access-Control-Request-Method: 200 with what may follow, or 400
 * for an origin not in --allowed-origins (as vLLM's CORS middleware) */
static int preflight(http_conn *c)
{
    if (!http_resp_origin_allowed(c))
        return http_send_error(c, 400, "disallowed CORS origin");
    const char *want = http_header(c, "Access-Control-Request-Headers"); /* all are allowed */
    char extra[1024];
    int n = snprintf(extra, sizeof extra, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                     "Access-Control-Max-Age: 600\r\n");
    if (want && *want && strlen(want) < 512)
        snprintf(extra + n, sizeof extra - (size_t)n, "Access-Control-Allow-Headers: %s\r\n", want);
    http_resp_head(c, 200, "text/plain", 0, extra);
    return 200;
}

/* the error function of path URI: OpenAI's shape under /v1/ */
static int (*error_of(const char *uri, int k))(http_conn *, int, const char *)
{
    if (k >= 0)
        return routes[k].openai ? api_openai_error : http_send_error;
    return strncmp(uri, "/v1/", 4) ? http_send_error : api_openai_error;
}

int http_route_error(http_conn *c, int status, const char *msg)
{
    const char *uri = http_path(c);
    return error_of(uri, route_of(uri))(c, status, msg);
}

int http_route_busy(http_conn *c)
{
    if (c->route != R_TOKENIZE && c->route != R_DETOKENIZE)
        metrics_request_rejected();
    return error_of(http_path(c), c->route)(c, 503,
                                            "all request threads are busy and the queue is full; retry later");
}

int http_route_head(http_conn *c)
{
    tokenizer *f = A.f;
    const char *uri = http_path(c);
    if (http_frame_check(c))
        return 1;
    if (!strcmp(http_method(c), "OPTIONS") && http_header(c, "Origin") &&
        http_header(c, "Access-Control-Request-Method"))
        return preflight(c);
    int k = route_of(uri);
    int (*error)(http_conn *, int, const char *) = error_of(uri, k);
    if (api_key && (k < 0 || !routes[k].open) && !authorized(c))
        return unauthorized(c);
    if (k < 0)
        return error(c, 404, "no such path");
    if (!method_in(http_method(c), routes[k].methods)) {
        char msg[64];
        snprintf(msg, sizeof msg, "use %s", routes[k].methods);
        return error(c, 405, msg);
    }
    switch (k) {
    case R_HEALTH:
    case R_PING:
        if (!tokenizer_healthy(f))
            return http_send_error(c, 503, "not all processes are up");
        if (k == R_PING) {
            http_resp_head(c, 200, "text/plain", 0, NULL);
            return 200;
        }
        http_send_json(c, 200, "{\"status\":\"ok\"}", health_extra);
        return 200;
    case R_VERSION: return api_version(c);
    case R_METRICS: return handle_metrics(c, f);
    case R_MODELS: return api_models(&A, c);
    case R_MODEL: return api_model(&A, c, uri + strlen(routes[R_MODEL].path));
    }
    c->route = k;
    if (!c->chunked && c->has_body && c->p.content_length > HTTP_MAX_BODY)
        return error(c, 413, http_body_error(-413));
    if (http_server_busy(c->srv)) /* refused before its body is sent */
        return http_route_busy(c);
    http_frame_continue(c);
    return 0;
}

/* --max-queue N: one more request may wait for a handler while fewer than N wait in all,
 * N_WAITING here and those with a slot the router has not yet taken into its batch */
static int may_wait(int n_waiting)
{
    return A.f->max_queue <= 0 || n_waiting + tokenizer_n_queued(A.f) < A.f->max_queue;
}

void http_route_run(http_conn *c)
{
    if (http_conn_gone(c)) { /* hung up while it waited for this thread: nobody to answer */
        c->broken = 1;
        if (c->route != R_TOKENIZE && c->route != R_DETOKENIZE)
            metrics_request_dropped();
        return;
    }
    switch (c->route) {
    case R_TOKENIZE: api_tokenize(&A, c); break;
    case R_DETOKENIZE: api_detokenize(&A, c); break;
    case R_GENERATE:
    case R_GENERATE_STREAM: api_generate(A.f, c, c->route == R_GENERATE_STREAM); break;
    default: api_completions(&A, c, c->route == R_CHAT);
    }
}

http_server *http_start(tokenizer *f, const http_opts *o)
{
    A.f = f;
    A.model_name = o->model_name;
    /* a --chat-template that does not load stops the start; the model's own only the chat API */
    if (chat_template_load(&A.chat, o->model_dir, o->chat_template, A.chat_err, sizeof A.chat_err) &&
        o->chat_template) {
        LOG_ERR("--chat-template %s: %s", o->chat_template, A.chat_err);
        return NULL;
    }
    if (!A.chat)
        LOG_WARN("%s: /v1/chat/completions will answer 400", A.chat_err);
    api_key = o->api_key && *o->api_key ? o->api_key : NULL;
    if (o->launch_id && !strpbrk(o->launch_id, "\r\n"))
        snprintf(health_extra, sizeof health_extra, "X-Cinder-Launch: %.64s\r\n", o->launch_id);
    static const char *const any[] = {"*"};
    http_resp_opts ro = {HTTP_KEEP_ALIVE_MS, o->n_origins ? o->origins : any, o->n_origins ? o->n_origins : 1};
    http_resp_init(&ro);
    http_server_opts so = {o->host, o->port, o->n_threads, o->max_waiting, may_wait};
    return http_server_start(&so);
}

int http_stop(http_server *s) { return http_server_stop(s, 3000); }
