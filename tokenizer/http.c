/* http.c - the HTTP API of the tokenizer process (civetweb handlers).
 *
 *   GET  /health           200 when all four processes are up, else 503
 *   POST /generate         {"inputs", "parameters"} -> {"generated_text": [str], ...}
 *   POST /generate_stream  the same, as server-sent events, one per token
 *
 * Each request runs on a civetweb thread: validate, encode, take a slot, write the prompt,
 * submit, then relay the slot's text deltas until the final one, and free the slot.
 * Every client error is a 4xx with {"error": message}; nothing a client sends can crash us.
 */
#include "http.h"
#include "../common/log.h"
#include "req_parse.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_BODY (1 << 20)
#define WAIT_MS 500
#define ROUTER_LOST_MS 3000

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void send_json(struct mg_connection *c, int status, const char *body, const char *extra)
{
    mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n%s\r\n",
              status, reason_phrase(status), strlen(body), extra ? extra : "");
    mg_write(c, body, strlen(body));
}

static int send_error(struct mg_connection *c, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    send_json(c, status, s, status == 503 ? "Retry-After: 1\r\n" : NULL);
    cJSON_free(s);
    cJSON_Delete(o);
    return status;
}

/* Reads the body into a malloc'd buffer; returns its length or a negative HTTP status. */
static long read_body(struct mg_connection *c, char **out)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri->content_length > MAX_BODY)
        return -413;
    size_t cap = ri->content_length > 0 ? (size_t)ri->content_length + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -500;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > MAX_BODY) {
                free(buf);
                return -413;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return -500;
            }
            buf = p;
            cap *= 2;
        }
        int r = mg_read(c, buf + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = 0;
    *out = buf;
    return (long)n;
}

/* Encodes the prompt into the slot; 0 or an HTTP status with a message in ERR. */
static int fill_slot(front *f, int slot, const gen_req *g, char *err, size_t n_err)
{
    slot_hdr *h = store_slot(&f->st, slot);
    int32_t *tokens = slot_tokens(&f->st, slot);
    int64_t n = tok_encode(f->tok, g->inputs, g->n_inputs, 1, tokens, (size_t)f->max_seq_len);
    if (n < 0) {
        snprintf(err, n_err, "\"inputs\" is not valid UTF-8");
        return 400;
    }
    if (n == 0) {
        snprintf(err, n_err, "\"inputs\" encodes to no tokens");
        return 400;
    }
    if (n >= f->max_seq_len) {
        snprintf(err, n_err, "the prompt has %lld tokens; this model's context is %d tokens",
                 (long long)n, f->max_seq_len);
        return 400;
    }
    h->params = g->params;
    if (!g->seed_given && getrandom(&h->params.seed, sizeof h->params.seed, 0) != sizeof h->params.seed)
        h->params.seed = (uint64_t)now_ms();
    h->n_prompt = (int32_t)n;
    h->n_stop = g->n_stop;
    memcpy(h->stop, g->stop, sizeof h->stop);
    h->n_stop_ids = g->n_stop_ids;
    memcpy(h->stop_ids, g->stop_ids, sizeof h->stop_ids);
    atomic_store(&h->n_tokens, (int32_t)n);
    return 0;
}

static cJSON *token_json(const delta_node *d)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "id", d->token_id);
    cJSON_AddItemToObject(t, "text", cJSON_CreateString(""));
    cJSON_AddNumberToObject(t, "logprob", d->logprob);
    cJSON_AddBoolToObject(t, "special", d->special || d->token_id < 0);
    return t;
}

/* Writes one server-sent event for delta D; returns 0, or -1 if the client is gone. */
static int send_event(struct mg_connection *c, const delta_node *d, const char *full_text, int n_prompt)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *t = token_json(d);
    char *text = strndup(d->text, d->text_len);
    cJSON_ReplaceItemInObject(t, "text", cJSON_CreateString(text ? text : ""));
    free(text);
    cJSON_AddItemToObject(o, "token", t);
    if (d->finish) {
        cJSON_AddStringToObject(o, "generated_text", full_text);
        cJSON_AddBoolToObject(o, "finished", 1);
        cJSON_AddStringToObject(o, "finish_reason", finish_names[d->finish]);
        cJSON_AddNumberToObject(o, "count_output_tokens", d->n_out);
        cJSON_AddNumberToObject(o, "prompt_tokens", n_prompt);
    } else {
        cJSON_AddNullToObject(o, "generated_text");
        cJSON_AddBoolToObject(o, "finished", 0);
        cJSON_AddNullToObject(o, "finish_reason");
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    size_t n = strlen(s);
    char *ev = malloc(n + 8);
    int rc = -1;
    if (ev) {
        memcpy(ev, "data:", 5);
        memcpy(ev + 5, s, n);
        memcpy(ev + 5 + n, "\n\n", 2);
        rc = mg_send_chunk(c, ev, (unsigned)(n + 7)) > 0 ? 0 : -1;
        free(ev);
    }
    cJSON_free(s);
    return rc;
}

typedef struct {
    char *p;
    size_t n, cap;
} text_buf;

static int text_append(text_buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* Relays the request's deltas until the final one; answers the client. */
static int relay(front *f, struct mg_connection *c, int slot, int stream)
{
    slot_hdr *h = store_slot(&f->st, slot);
    uint32_t router_epoch = atomic_load(&f->st.hdr->epoch[PROC_ROUTER]);
    text_buf text = {calloc(1, 1), 0, 1};
    int client_gone = 0, status = 200, finish = FINISH_NONE, n_out = 0;
    uint64_t lost_since = 0;
    if (stream)
        mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    while (!finish) {
        delta_node *d = front_next(f, slot, WAIT_MS);
        if (!d) {
            mailbox *b = &f->boxes[slot];
            if (b->failed) {
                status = b->status >= 400 ? b->status : 500;
                break;
            }
            /* a router that died or restarted has forgotten the request */
            int lost = !store_alive(&f->st, PROC_ROUTER, 1000) ||
                       atomic_load(&f->st.hdr->epoch[PROC_ROUTER]) != router_epoch;
            lost_since = lost ? (lost_since ? lost_since : now_ms()) : 0;
            if (lost && now_ms() - lost_since > ROUTER_LOST_MS) {
                status = 503;
                break;
            }
            continue;
        }
        text_append(&text, d->text, d->text_len);
        finish = d->finish;
        n_out = d->n_out;
        if (stream && !client_gone && send_event(c, d, text.p, h->n_prompt)) {
            client_gone = 1;
            front_abort(f, slot); /* the router ends it; the final delta still comes */
        }
        free(d);
    }
    if (stream && status == 200)
        mg_send_chunk(c, "", 0);
    else if (status != 200 && !stream)
        send_error(c, status, status == 503 ? "the router went away; request not completed"
                                            : f->boxes[slot].error);
    else if (status == 200) {
        cJSON *o = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(o, "generated_text");
        cJSON_AddItemToArray(arr, cJSON_CreateString(text.p));
        cJSON_AddNumberToObject(o, "count_output_tokens", n_out);
        cJSON_AddStringToObject(o, "finish_reason", finish_names[finish]);
        cJSON_AddNumberToObject(o, "prompt_tokens", h->n_prompt);
        char *s = cJSON_PrintUnformatted(o);
        send_json(c, 200, s, NULL);
        cJSON_free(s);
        cJSON_Delete(o);
    }
    free(text.p);
    if (status == 200)
        front_slot_release(f, slot);
    /* else: the router is gone with the slot's request; the slot stays taken until the
     * orphan path of a restarted pipeline reclaims it (issue 7) */
    return status;
}

static int handle_generate(struct mg_connection *c, front *f, int stream)
{
    char *body = NULL, err[512];
    long n = read_body(c, &body);
    if (n < 0)
        return send_error(c, (int)-n, n == -413 ? "request body too large" : "cannot read the body");
    gen_req g;
    int rc = gen_req_parse(&g, body, (size_t)n, f->max_seq_len, err, sizeof err);
    free(body);
    if (rc)
        return send_error(c, 400, err);
    if (!front_healthy(f)) {
        gen_req_free(&g);
        return send_error(c, 503, "the server is not ready");
    }
    if (f->max_queue > 0 && front_n_queued(f) >= f->max_queue) {
        gen_req_free(&g);
        return send_error(c, 503, "the request queue is full; retry later");
    }
    int slot = front_slot_take(f);
    if (slot < 0) {
        gen_req_free(&g);
        return send_error(c, 503, "all request slots are in use; retry later");
    }
    int status = fill_slot(f, slot, &g, err, sizeof err);
    gen_req_free(&g);
    if (status) {
        front_slot_release(f, slot);
        return send_error(c, status, err);
    }
    if (!front_submit(f, slot)) {
        front_slot_release(f, slot);
        return send_error(c, 503, "the router cannot be reached");
    }
    return relay(f, c, slot, stream);
}

static int dispatch(struct mg_connection *c, void *arg)
{
    front *f = arg;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    int is_post = !strcmp(ri->request_method, "POST"), is_get = !strcmp(ri->request_method, "GET");
    if (!strcmp(uri, "/health")) {
        if (!is_get)
            return send_error(c, 405, "use GET");
        if (!front_healthy(f))
            return send_error(c, 503, "not all processes are up");
        send_json(c, 200, "{\"status\":\"ok\"}", NULL);
        return 200;
    }
    if (!strcmp(uri, "/generate") || !strcmp(uri, "/generate_stream")) {
        if (!is_post)
            return send_error(c, 405, "use POST");
        return handle_generate(c, f, uri[9] == '_');
    }
    return send_error(c, 404, "no such path");
}

struct mg_context *http_start(front *f, const char *host, int port, int n_threads)
{
    char listen[128], threads[16];
    snprintf(listen, sizeof listen, "%s:%d", host, port);
    snprintf(threads, sizeof threads, "%d", n_threads);
    const char *options[] = {
        "listening_ports", listen, "num_threads", threads, "enable_keep_alive", "no",
        "request_timeout_ms", "3600000", NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, f, options);
    if (!ctx) {
        LOG_ERR("cannot listen on %s", listen);
        return NULL;
    }
    mg_set_request_handler(ctx, "/", dispatch, f);
    return ctx;
}
