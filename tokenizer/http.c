/* http.c - routes the tokenizer process's HTTP requests (civetweb) to the APIs.
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
 * Each request runs on a civetweb thread. Every client error is a 4xx with a JSON message;
 * nothing a client sends can crash the process. With an API key (--api-key, or the
 * environment's CINDER_API_KEY / VLLM_API_KEY) every route but /health, /ping, /version,
 * /metrics and CORS preflights needs "Authorization: Bearer KEY" (compared in constant
 * time), else 401 in OpenAI's error shape. Every answer carries the CORS headers and says
 * whether the connection stays open (http_resp.h: HTTP/1.1 keep-alive).
 *
 * Slow clients. A request's headers must arrive within HTTP_IO_TIMEOUT_MS (civetweb's
 * request_timeout_ms, checked after each read, so a client dripping them is cut after 10 to
 * 20 s; on a connection kept open, the next request's within HTTP_KEEP_ALIVE_MS of the last
 * answer, civetweb's keep_alive_timeout_ms), its body within HTTP_BODY_DEADLINE_MS
 * (http_util.c: 408 after 10 s in all). Requests that read a body (generation, tokenize) may
 * take all threads but a reserve (http_start): past that they get 503 + Retry-After before
 * their body is read, and a body left unread is dropped within HTTP_DISCARD_MS (http_resp.h).
 * Connections held open idle between requests count against the same limit (a connection is
 * kept only while idle ones plus generation threads stay under it), so /health and /metrics
 * always find a thread free of them.
 * What remains: connections still sending their headers (or silent) hold a thread before any
 * handler runs and count against no limit: clients dripping headers on every thread left
 * delay /health for up to 2 x HTTP_IO_TIMEOUT_MS; civetweb queues connections beyond its
 * threads. Closing that needs an event-driven front end (or a proxy) in front of the threads.
 */
#include "http.h"
#include "../common/log.h"
#include "api.h"
#include "http_frame.h"
#include "http_resp.h"
#include "http_util.h"
#include "metrics.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static api_ctx A;
static atomic_int gen_busy; /* threads inside a request that reads a body, its body included */
static int gen_max;         /* at most this many (http_start) */
static const char *api_key; /* NULL: none */
static char health_extra[128]; /* X-Cinder-Launch: ID */

static int handle_metrics(struct mg_connection *c, tokenizer *f)
{
    char *text = metrics_render(&f->st);
    if (!text)
        return http_send_error(c, 500, "out of memory");
    size_t n = strlen(text);
    http_resp_head(c, 200, "text/plain; version=0.0.4", (long long)n, NULL);
    mg_write(c, text, n);
    free(text);
    return 200;
}

enum { R_HEALTH, R_PING, R_VERSION, R_METRICS, R_GENERATE, R_GENERATE_STREAM, R_TOKENIZE, R_DETOKENIZE,
       R_COMPLETIONS, R_CHAT, R_MODELS, R_MODEL };

typedef struct {
    const char *path, *methods; /* R_MODEL: a path prefix */
    int openai;   /* errors in OpenAI's shape */
    int open;     /* answered without the API key */
    int body;     /* reads a body: counts against gen_max */
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
static int authorized(struct mg_connection *c)
{
    const char *h = mg_get_header(c, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return equal_ct(h, api_key);
}

static int unauthorized(struct mg_connection *c)
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
static int preflight(struct mg_connection *c)
{
    if (!http_resp_origin_allowed(c))
        return http_send_error(c, 400, "disallowed CORS origin");
    const char *want = mg_get_header(c, "Access-Control-Request-Headers"); /* all are allowed */
    char extra[1024];
    int n = snprintf(extra, sizeof extra, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                     "Access-Control-Max-Age: 600\r\n");
    if (want && *want && strlen(want) < 512)
        snprintf(extra + n, sizeof extra - (size_t)n, "Access-Control-Allow-Headers: %s\r\n", want);
    http_resp_head(c, 200, "text/plain", 0, extra);
    return 200;
}

static int dispatch(struct mg_connection *c, void *arg)
{
    tokenizer *f = arg;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    if (!strcmp(ri->request_method, "OPTIONS") && mg_get_header(c, "Origin") &&
        mg_get_header(c, "Access-Control-Request-Method"))
        return preflight(c);
    int k = route_of(uri);
    int (*error)(struct mg_connection *, int, const char *) =
        k >= 0 ? (routes[k].openai ? api_openai_error : http_send_error)
               : strncmp(uri, "/v1/", 4) ? http_send_error : api_openai_error;
    if (api_key && (k < 0 || !routes[k].open) && !authorized(c))
        return unauthorized(c);
    if (k < 0)
        return error(c, 404, "no such path");
    if (!method_in(ri->request_method, routes[k].methods)) {
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
    if (atomic_fetch_add(&gen_busy, 1) >= gen_max) { /* keep the reserve for /health, /metrics */
        atomic_fetch_sub(&gen_busy, 1);
        if (k != R_TOKENIZE && k != R_DETOKENIZE)
            metrics_request_rejected();
        return error(c, 503, "all request threads are busy; retry later");
    }
    int status;
    switch (k) {
    case R_TOKENIZE: status = api_tokenize(&A, c); break;
    case R_DETOKENIZE: status = api_detokenize(&A, c); break;
    case R_GENERATE:
    case R_GENERATE_STREAM: status = api_generate(f, c, k == R_GENERATE_STREAM); break;
    default: status = api_completions(&A, c, k == R_CHAT);
    }
    atomic_fetch_sub(&gen_busy, 1);
    return status;
}

/* Each socket read or write may wait this long (not the whole request: a stream can run for
 * hours). A client that connects and stalls is dropped after it instead of holding a thread.
 * civetweb also bounds a request's headers with it: after each read, the request is dropped
 * if it began more than this ago, so the header phase ends within twice this. */
#define HTTP_IO_TIMEOUT_MS "10000"
/* A connection kept open waits this long for its next request (uvicorn's default, which
 * vLLM serves with; answers say so in Keep-Alive: timeout=5, which clients such as undici
 * honour by closing idle connections a little earlier) */
#define HTTP_KEEP_ALIVE_MS 5000

/* Errors civetweb answers itself (malformed request line or headers, bad Content-Length):
 * the same JSON {"error": ...} as ours. */
static int civetweb_error(struct mg_connection *c, int status, const char *msg)
{
    http_frame_answered();
    http_resp_close(c); /* civetweb closes after its own error answers */
    http_send_error(c, status, msg && *msg ? msg : "bad request");
    return 0;
}

static int on_init_connection(const struct mg_connection *c, void **data)
{
    http_frame_conn_begin();
    http_resp_conn_begin();
    return 0;
}

/* framing checks before any handler; a refused request is answered and goes no further */
static int on_begin_request(struct mg_connection *c)
{
    http_resp_request_begin(c);
    return http_frame_check(c);
}

static void on_connection_close(const struct mg_connection *c)
{
    http_frame_conn_end(c);
    http_resp_conn_end();
}

struct mg_context *http_start(tokenizer *f, const http_opts *o)
{
    char listen[128], threads[16], keep_alive[16];
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
    /* threads kept from generation requests: n/8, 1 to 4, one generation thread at least */
    int reserve = o->n_threads / 8 < 1 ? 1 : o->n_threads / 8 > 4 ? 4 : o->n_threads / 8;
    if (reserve > o->n_threads - 1)
        reserve = o->n_threads - 1;
    gen_max = o->n_threads - reserve;
    api_key = o->api_key && *o->api_key ? o->api_key : NULL;
    if (o->launch_id && !strpbrk(o->launch_id, "\r\n"))
        snprintf(health_extra, sizeof health_extra, "X-Cinder-Launch: %.64s\r\n", o->launch_id);
    static const char *const any[] = {"*"};
    http_resp_opts ro = {HTTP_KEEP_ALIVE_MS, o->n_origins ? o->origins : any, o->n_origins ? o->n_origins : 1,
                         &gen_busy, gen_max};
    http_resp_init(&ro);
    snprintf(keep_alive, sizeof keep_alive, "%d", HTTP_KEEP_ALIVE_MS);
    snprintf(listen, sizeof listen, "%s:%d", o->host, o->port);
    snprintf(threads, sizeof threads, "%d", o->n_threads);
    const char *options[] = {
        "listening_ports", listen, "num_threads", threads, "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", keep_alive, "request_timeout_ms", HTTP_IO_TIMEOUT_MS,
        /* CORS preflights are ours (dispatch), answered as every other request */
        "access_control_allow_methods", "",
        /* an absolute-form target (POST http://host:port/generate) for this port is served;
         * civetweb would match the host against its authentication_domain, and drop it */
        "enable_auth_domain_check", "no", NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.http_error = civetweb_error;
    cb.init_connection = on_init_connection;
    cb.begin_request = on_begin_request;
    cb.connection_close = on_connection_close;
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, f, options);
    if (!ctx) {
        LOG_ERR("cannot listen on %s", listen);
        return NULL;
    }
    mg_set_request_handler(ctx, "/", dispatch, f);
    return ctx;
}
