/* serving_client.c - bench-serving's load generator: every request its own non-blocking TCP
 * connection (libuv), all on one thread, each sent at its arrival time once fewer than
 * max_concurrency are in flight, each streamed through the HTTP and SSE parsers with a
 * timestamp taken as each event is parsed.
 *
 * Multi-turn workloads: a request with a predecessor (sv_prompt.after) is queued when the
 * predecessor's answer has ended, not at an arrival time; arrivals pace the first turns.
 *
 * Times are from just before the connect (loopback connects cost microseconds; the request
 * says Connection: close, as cinder's streams do) to the first output event (TTFT), between
 * output events (ITL), and to the end of the response (e2e).
 */
#include "serving.h"

#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct run run;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    run *r;
    int idx;
    char *req;               /* the whole HTTP request */
    size_t n_req;
    sv_http http;
    sv_sse sse;
    sv_buf err_body;         /* the body of a non-200 answer */
    uint64_t t0_ns, t_last_ns;
    int stream_end, n_tokens, usage_out, closing;
    char stream_err[200];
} conn;

struct run {
    const sv_client_cfg *cfg;
    const sv_dataset *d;
    sv_outcome *out;         /* [d->n] */
    uv_loop_t loop;
    uv_timer_t arrive_timer, tick_timer;
    struct sockaddr_storage addr;
    double *arrive_ms;       /* [n_starts] */
    int *starts, n_starts;   /* requests with no predecessor, the ones that arrive */
    int *follow;             /* [d->n] the request sent once this one ends, or -1 */
    int next_arrival;
    int *queue, q_head, q_tail; /* arrived, waiting for a concurrency slot */
    conn **live;             /* [d->n] requests in flight */
    int in_flight, n_done, last_shown;
    uint64_t t_start_ns, t_end_ns;
    char read_buf[65536];
};

static double ms_since(uint64_t t0_ns) { return (double)(uv_hrtime() - t0_ns) / 1e6; }

static void progress(run *r)
{
    int n = r->d->n, mode = r->cfg->progress;
    if (!mode)
        return;
    if (mode == 2) { /* not a terminal: a line at every tenth */
        if (r->n_done * 10 / n == r->last_shown * 10 / n && r->n_done != n)
            return;
        r->last_shown = r->n_done;
        fprintf(stderr, "progress: %d/%d requests, %.1f s\n", r->n_done, n, ms_since(r->t_start_ns) / 1e3);
        return;
    }
    char bar[41];
    int w = (int)(40.0 * r->n_done / n);
    memset(bar, '#', (size_t)w);
    memset(bar + w, ' ', (size_t)(40 - w));
    bar[40] = 0;
    double s = ms_since(r->t_start_ns) / 1e3;
    fprintf(stderr, "\r%3d%% |%s| %d/%d [%.1f s, %.2f req/s, %d in flight]%s", 100 * r->n_done / n, bar,
            r->n_done, n, s, s > 0 ? r->n_done / s : 0.0, r->in_flight, r->n_done == n ? "\n" : "");
}

static void start_next(run *r);

/* Request IDX is over: its next turn, if any, may go. */
static void done_one(run *r, int idx)
{
    r->n_done++;
    if (r->follow[idx] >= 0)
        r->queue[r->q_tail++] = r->follow[idx];
}

static void on_close(uv_handle_t *h)
{
    conn *c = h->data;
    run *r = c->r;
    int idx = c->idx;
    sv_http_free(&c->http);
    sv_sse_free(&c->sse);
    sv_buf_free(&c->err_body);
    free(c->req);
    free(c);
    r->in_flight--;
    done_one(r, idx);
    progress(r);
    if (r->n_done == r->d->n) {
        uv_close((uv_handle_t *)&r->arrive_timer, NULL);
        uv_close((uv_handle_t *)&r->tick_timer, NULL);
    } else {
        start_next(r);
    }
}

/* Ends C's request: a failure when WHY is given or the exchange was not a whole stream. */
static void finish(conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    run *r = c->r;
    sv_outcome *o = &r->out[c->idx];
    o->e2e_ms = ms_since(c->t0_ns);
    r->t_end_ns = uv_hrtime();
    r->live[c->idx] = NULL;
    if (!why && c->http.status != 200) {
        snprintf(o->err, sizeof o->err, "HTTP %d: %.150s", c->http.status, c->err_body.p ? c->err_body.p : "");
        why = o->err;
    } else if (!why && c->stream_err[0])
        why = c->stream_err;
    else if (!why && !o->n_events)
        why = "no output in the stream";
    else if (!why && !c->stream_end)
        why = r->cfg->req.backend == SV_CINDER ? "stream ended without \"finished\"" : "stream ended without [DONE]";
    if (why) {
        if (why != o->err)
            snprintf(o->err, sizeof o->err, "%s", why);
    } else {
        o->ok = 1;
        if (r->cfg->req.backend == SV_CINDER)
            o->n_out = c->n_tokens;
        else if (c->usage_out >= 0)
            o->n_out = c->usage_out;
        else if (r->cfg->tok) {
            int64_t n = tok_encode(r->cfg->tok, o->text.p ? o->text.p : "", o->text.n, 0, NULL, 0);
            o->n_out = n < 0 ? 0 : (int)n;
        } else
            o->n_out = o->n_events;
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_event(void *ctx, const char *data, size_t n)
{
    conn *c = ctx;
    sv_outcome *o = &c->r->out[c->idx];
    sv_event ev;
    if (sv_backend_event(c->r->cfg->req.backend, data, n, &ev, &o->text) || ev.error[0]) {
        if (!c->stream_err[0])
            snprintf(c->stream_err, sizeof c->stream_err, "%s", ev.error);
        return;
    }
    if (ev.output) {
        uint64_t t = uv_hrtime();
        if (!o->n_events) {
            o->ttft_ms = (double)(t - c->t0_ns) / 1e6;
        } else {
            if (o->n_events > o->cap_itl) {
                int cap = o->cap_itl ? 2 * o->cap_itl : 64;
                double *p = realloc(o->itl_ms, (size_t)cap * sizeof *p);
                if (!p) {
                    snprintf(c->stream_err, sizeof c->stream_err, "out of memory");
                    return;
                }
                o->itl_ms = p;
                o->cap_itl = cap;
            }
            o->itl_ms[o->n_events - 1] = (double)(t - c->t_last_ns) / 1e6;
        }
        c->t_last_ns = t;
        o->n_events++;
        c->n_tokens += ev.n_tokens;
    }
    if (ev.usage_out >= 0)
        c->usage_out = ev.usage_out;
    if (ev.finish[0])
        snprintf(o->finish, sizeof o->finish, "%s", ev.finish);
    if (ev.end)
        c->stream_end = 1;
}

static void on_body(void *ctx, const char *p, size_t n)
{
    conn *c = ctx;
    if (c->http.status == 200)
        sv_sse_feed(&c->sse, p, n);
    else if (c->err_body.n < 512)
        strbuf_add(&c->err_body, p, n);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    run *r = ((conn *)h->data)->r; /* one thread, and libuv reads right after alloc: one buffer */
    *buf = uv_buf_init(r->read_buf, sizeof r->read_buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (c->closing)
        return;
    if (n > 0) {
        int rc = sv_http_feed(&c->http, buf->base, (size_t)n);
        if (rc == SV_HTTP_DONE)
            finish(c, NULL);
        else if (rc == SV_HTTP_ERR)
            finish(c, c->http.err);
    } else if (n == UV_EOF) {
        finish(c, sv_http_eof(&c->http) == SV_HTTP_DONE ? NULL : c->http.err);
    } else if (n < 0) {
        finish(c, uv_strerror((int)n));
    }
}

static void on_write(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (status < 0 && !c->closing)
        finish(c, uv_strerror(status));
}

static void on_connect(uv_connect_t *q, int status)
{
    conn *c = q->data;
    if (c->closing)
        return;
    if (status < 0) {
        finish(c, uv_strerror(status));
        return;
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->n_req);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (!rc)
        rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc)
        finish(c, uv_strerror(rc));
}

static char *http_request_text(const sv_client_cfg *cfg, const sv_prompt *p, size_t *n)
{
    char *body = sv_backend_body(&cfg->req, p);
    if (!body)
        return NULL;
    const char *key = cfg->req.api_key;
    size_t n_body = strlen(body), cap = n_body + strlen(cfg->host) + strlen(cfg->req.path) + (key ? strlen(key) : 0) + 300;
    char *req = malloc(cap);
    if (req) {
        int k = snprintf(req, cap,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                         "Accept: text/event-stream\r\nContent-Length: %zu\r\nConnection: close\r\n%s%s%s\r\n",
                         cfg->req.path, cfg->host, cfg->port, n_body, key ? "Authorization: Bearer " : "",
                         key ? key : "", key ? "\r\n" : "");
        memcpy(req + k, body, n_body);
        *n = (size_t)k + n_body;
    }
    free(body);
    return req;
}

/* Sends request IDX. */
static void start(run *r, int idx)
{
    sv_outcome *o = &r->out[idx];
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(o->err, sizeof o->err, "out of memory");
        done_one(r, idx);
        return;
    }
    c->r = r;
    c->idx = idx;
    c->usage_out = -1;
    c->tcp.data = c->connect.data = c->write.data = c;
    sv_http_init(&c->http, on_body, c);
    sv_sse_init(&c->sse, on_event, c);
    r->in_flight++;
    r->live[idx] = c;
    c->t0_ns = uv_hrtime();
    o->start_ms = (double)(c->t0_ns - r->t_start_ns) / 1e6;
    int rc = uv_tcp_init(&r->loop, &c->tcp);
    if (rc) { /* nothing to close: account for it here */
        snprintf(o->err, sizeof o->err, "%s", uv_strerror(rc));
        free(c);
        r->in_flight--;
        r->live[idx] = NULL;
        done_one(r, idx);
        return;
    }
    c->req = http_request_text(r->cfg, &r->d->v[idx], &c->n_req);
    if (!c->req) {
        finish(c, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&r->addr, on_connect);
    if (rc)
        finish(c, uv_strerror(rc));
}

static void start_next(run *r)
{
    int max = r->cfg->max_concurrency;
    while (r->q_head < r->q_tail && (max <= 0 || r->in_flight < max))
        start(r, r->queue[r->q_head++]);
    if (r->n_done == r->d->n && !uv_is_closing((uv_handle_t *)&r->tick_timer)) { /* all failed at once */
        uv_close((uv_handle_t *)&r->arrive_timer, NULL);
        uv_close((uv_handle_t *)&r->tick_timer, NULL);
    }
}

static void on_arrive(uv_timer_t *t)
{
    run *r = t->data;
    double now = ms_since(r->t_start_ns);
    while (r->next_arrival < r->n_starts && r->arrive_ms[r->next_arrival] <= now + 0.5)
        r->queue[r->q_tail++] = r->starts[r->next_arrival++];
    if (r->next_arrival < r->n_starts) {
        double wait = ceil(r->arrive_ms[r->next_arrival] - now);
        uv_timer_start(&r->arrive_timer, on_arrive, wait < 1 ? 1 : (uint64_t)wait, 0);
    }
    start_next(r);
}

/* Every 100 ms: time out stuck requests; redraw the bar while nothing completes. */
static void on_tick(uv_timer_t *t)
{
    run *r = t->data;
    double limit_ms = r->cfg->timeout_s * 1e3;
    for (int i = 0; limit_ms > 0 && i < r->d->n; i++)
        if (r->live[i] && ms_since(r->live[i]->t0_ns) > limit_ms)
            finish(r->live[i], "timed out");
    if (r->cfg->progress == 1 && r->n_done < r->d->n)
        progress(r);
}

static int resolve(const sv_client_cfg *cfg, struct sockaddr_storage *addr, char *err, size_t n_err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int rc = getaddrinfo(cfg->host, port, &hints, &res);
    if (rc) {
        snprintf(err, n_err, "%s: %s", cfg->host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int sv_client_run(const sv_client_cfg *cfg, const sv_dataset *d, sv_outcome *out, double *duration_s,
                  char *err, size_t n_err)
{
    run *r = calloc(1, sizeof *r);
    int rc = -1;
    if (!r) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    r->cfg = cfg;
    r->d = d;
    r->out = out;
    memset(out, 0, (size_t)d->n * sizeof *out);
    r->arrive_ms = malloc((size_t)d->n * sizeof *r->arrive_ms);
    r->queue = malloc((size_t)d->n * sizeof *r->queue);
    r->live = calloc((size_t)d->n, sizeof *r->live);
    r->starts = malloc((size_t)d->n * sizeof *r->starts);
    r->follow = malloc((size_t)d->n * sizeof *r->follow);
    if (!r->arrive_ms || !r->queue || !r->live || !r->starts || !r->follow) {
        snprintf(err, n_err, "out of memory");
        goto out;
    }
    for (int i = 0; i < d->n; i++)
        r->follow[i] = -1;
    for (int i = 0; i < d->n; i++) {
        int prev = d->v[i].after - 1;
        if (prev >= 0 && prev < i && r->follow[prev] < 0)
            r->follow[prev] = i;
        else
            r->starts[r->n_starts++] = i; /* no (usable) predecessor: it arrives */
    }
    if (resolve(cfg, &r->addr, err, n_err))
        goto out;
    signal(SIGPIPE, SIG_IGN); /* a server that hangs up must not kill the client */
    sv_arrivals(r->n_starts, cfg->request_rate, cfg->burstiness, cfg->seed, r->arrive_ms);
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->arrive_timer);
    uv_timer_init(&r->loop, &r->tick_timer);
    r->arrive_timer.data = r->tick_timer.data = r;
    r->t_start_ns = r->t_end_ns = uv_hrtime();
    uv_timer_start(&r->tick_timer, on_tick, 100, 100);
    on_arrive(&r->arrive_timer);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    *duration_s = (double)(r->t_end_ns - r->t_start_ns) / 1e9;
    rc = 0;
out:
    free(r->arrive_ms);
    free(r->queue);
    free(r->live);
    free(r->starts);
    free(r->follow);
    free(r);
    return rc;
}

void sv_outcome_free(sv_outcome *o)
{
    free(o->itl_ms);
    sv_buf_free(&o->text);
}
