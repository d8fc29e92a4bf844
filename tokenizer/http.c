/* http.c - routes the tokenizer process's HTTP requests (civetweb) to the APIs.
 *
 *   GET  /health                200 when all four processes are up, else 503
 *   POST /generate              LightLLM API (api_generate.c)
 *   POST /generate_stream       the same, server-sent events
 *   POST /v1/completions        OpenAI API (api_openai.c)
 *   POST /v1/chat/completions
 *   GET  /v1/models
 *   GET  /metrics               Prometheus text (metrics.c)
 *
 * Each request runs on a civetweb thread. Every client error is a 4xx with a JSON message;
 * nothing a client sends can crash the process.
 *
 * Slow clients. A request's headers must arrive within HTTP_IO_TIMEOUT_MS (civetweb's
 * request_timeout_ms, checked after each read, so a client dripping them is cut after 10 to
 * 20 s), its body within HTTP_BODY_DEADLINE_MS (http_util.c: 408 after 10 s in all). Requests
 * that generate (including those still reading their body) may take all threads but a
 * reserve (http_start): past that they get 503 + Retry-After before their body is read, so
 * /health and /metrics always find a thread free of them.
 * What remains: connections still sending their headers (or silent) hold a thread before any
 * handler runs and count against no limit: clients dripping headers on every thread left
 * delay /health for up to 2 x HTTP_IO_TIMEOUT_MS; civetweb queues connections beyond its
 * threads. Closing that needs an event-driven front end (or a proxy) in front of the threads.
 */
#include "http.h"
#include "../common/log.h"
#include "api.h"
#include "http_frame.h"
#include "http_util.h"
#include "metrics.h"

#include <civetweb.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static api_ctx A;
static atomic_int gen_busy; /* threads inside a generation request, its body read included */
static int gen_max;         /* at most this many (http_start) */

static int handle_metrics(struct mg_connection *c, tokenizer *f)
{
    char *text = metrics_render(&f->st);
    if (!text)
        return http_send_error(c, 500, "out of memory");
    size_t n = strlen(text);
    mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n", n);
    mg_write(c, text, n);
    free(text);
    return 200;
}

typedef struct {
    const char *path, *method;
    int openai;   /* errors in OpenAI's shape */
} route;

static const route routes[] = {
    {"/health", "GET", 0}, {"/metrics", "GET", 0}, {"/generate", "POST", 0},
    {"/generate_stream", "POST", 0}, {"/v1/completions", "POST", 1},
    {"/v1/chat/completions", "POST", 1}, {"/v1/models", "GET", 1},
};

static int dispatch(struct mg_connection *c, void *arg)
{
    tokenizer *f = arg;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    int k = -1;
    for (int i = 0; i < (int)(sizeof routes / sizeof *routes); i++)
        if (!strcmp(uri, routes[i].path))
            k = i;
    if (k < 0)
        return (strncmp(uri, "/v1/", 4) ? http_send_error : api_openai_error)(c, 404, "no such path");
    if (strcmp(ri->request_method, routes[k].method)) {
        char msg[64];
        snprintf(msg, sizeof msg, "use %s", routes[k].method);
        return (routes[k].openai ? api_openai_error : http_send_error)(c, 405, msg);
    }
    switch (k) {
    case 0:
        if (!tokenizer_healthy(f))
            return http_send_error(c, 503, "not all processes are up");
        http_send_json(c, 200, "{\"status\":\"ok\"}", NULL);
        return 200;
    case 1: return handle_metrics(c, f);
    case 6: return api_models(&A, c);
    }
    if (atomic_fetch_add(&gen_busy, 1) >= gen_max) { /* keep the reserve for /health, /metrics */
        atomic_fetch_sub(&gen_busy, 1);
        metrics_request(OUT_REJECTED, 0, 0, -1, 0);
        return (routes[k].openai ? api_openai_error : http_send_error)(c, 503, "all request threads are busy; "
                                                                               "retry later");
    }
    int status = k <= 3 ? api_generate(f, c, k == 3) : api_completions(&A, c, k == 5);
    atomic_fetch_sub(&gen_busy, 1);
    return status;
}

/* Each socket read or write may wait this long (not the whole request: a stream can run for
 * hours). A client that connects and stalls is dropped after it instead of holding a thread.
 * civetweb also bounds a request's headers with it: after each read, the request is dropped
 * if it began more than this ago, so the header phase ends within twice this. */
#define HTTP_IO_TIMEOUT_MS "10000"

/* Errors civetweb answers itself (malformed request line or headers, bad Content-Length):
 * the same JSON {"error": ...} as ours. */
static int civetweb_error(struct mg_connection *c, int status, const char *msg)
{
    http_frame_answered();
    http_send_error(c, status, msg && *msg ? msg : "bad request");
    return 0;
}

static int on_init_connection(const struct mg_connection *c, void **data)
{
    http_frame_conn_begin();
    return 0;
}

/* framing checks before any handler; a refused request is answered and goes no further */
static int on_begin_request(struct mg_connection *c) { return http_frame_check(c); }

static void on_connection_close(const struct mg_connection *c) { http_frame_conn_end(c); }

struct mg_context *http_start(tokenizer *f, const http_opts *o)
{
    char listen[128], threads[16];
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
    snprintf(listen, sizeof listen, "%s:%d", o->host, o->port);
    snprintf(threads, sizeof threads, "%d", o->n_threads);
    const char *options[] = {
        "listening_ports", listen, "num_threads", threads, "enable_keep_alive", "no",
        "request_timeout_ms", HTTP_IO_TIMEOUT_MS,
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
