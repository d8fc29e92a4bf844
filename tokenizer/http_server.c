/* http_server.c - the event loop of the HTTP front end: accepting, reading, deadlines,
 * answering from the loop, handing requests to the handler threads and taking their
 * connections back (see http_server.h; request parsing is in http_parse.c). */
#include "http_server.h"
#include "http_parse.h"
#include "http_pool.h"
#include "http_util.h"
#include "../common/log.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define HTTP_MAX_CONNS 8192 /* open connections (also bounded by the descriptor limit) */

struct http_server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;                 /* handlers returned connections, or a stop */
    pthread_t thread;
    http_pool *pool;
    int (*may_wait)(int n_waiting);  /* http_server_opts' */
    int port, max_conns, n_conns;
    atomic_int stopping;             /* 1: closing connections; 2: leave the loop */
    pthread_mutex_t mu;
    http_conn *returned;             /* from handlers (linked by queue_next), under mu */
    http_conn *unserved;             /* still queued for a thread at the stop, under mu */
    http_conn *conns;                /* every open connection (loop thread) */
    size_t body_bytes;               /* request bodies held (loop thread) */
    char rbuf[64 << 10];             /* the loop's read buffer: each read is parsed at once */
};

static void conn_close(http_conn *c);
static void start_answer(http_conn *c);

int http_server_busy(const http_server *s)
{
    return http_pool_full(s->pool) ||
           (!http_pool_has_free(s->pool) && s->may_wait && !s->may_wait(http_pool_waiting(s->pool)));
}

int http_server_waiting(const http_server *s) { return http_pool_waiting(s->pool); }

static void arm(http_conn *c, int ms, uv_timer_cb cb) { uv_timer_start(&c->timer, cb, (uint64_t)ms, 0); }

static void on_handle_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->n_open_handles > 0)
        return;
    http_parse_reset(c);
    free(c->in);
    text_free(&c->out);
    free(c);
}

static void conn_close(http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    http_server *s = c->srv;
    c->state = CONN_CLOSING;
    s->body_bytes -= c->n_counted;
    c->n_counted = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- writes from the loop: C's queued bytes go out without blocking */

typedef struct {
    uv_write_t w;
    http_conn *c;
    char *p;
} out_req;

static void after_linger(uv_timer_t *t) { conn_close(t->data); }

static void on_shut(uv_shutdown_t *r, int status)
{
    http_conn *c = r->data;
    if (c->state == CONN_LINGER && status < 0)
        conn_close(c);
}

/* the answer is out: the next request, or the close (after a linger) */
static void answer_done(http_conn *c)
{
    if (c->broken || !c->keep || atomic_load(&c->srv->stopping)) {
        if (c->broken) {
            conn_close(c);
            return;
        }
        c->state = CONN_LINGER; /* read and drop what comes until the client closes */
        c->shut.data = c;
        if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shut)) {
            conn_close(c);
            return;
        }
        arm(c, HTTP_DISCARD_MS, after_linger);
        http_server_read(c);
        return;
    }
    http_server *s = c->srv;
    s->body_bytes -= c->n_counted;
    c->n_counted = 0;
    http_parse_reset(c);
    c->state = CONN_HEAD;
    c->on_loop = 1;
    http_server_deadline(c, HTTP_KEEP_ALIVE_MS);
    if (c->in) { /* pipelined behind the last request */
        char *in = c->in;
        size_t n = c->n_in;
        c->in = NULL;
        c->n_in = 0;
        http_parse_feed(c, in, n);
        free(in);
    }
    if (c->state == CONN_HEAD || c->state == CONN_BODY)
        http_server_read(c);
}

static void to_pool(http_conn *c);

static void on_written(uv_write_t *w, int status)
{
    out_req *r = (out_req *)w;
    http_conn *c = r->c;
    free(r->p);
    free(r);
    c->n_writes--;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0)
        c->broken = 1;
    if (c->n_writes > 0)
        return;
    if (c->state == CONN_WRITING)
        answer_done(c);
    else if (c->state == CONN_WAIT)
        c->broken ? conn_close(c) : to_pool(c);
    else if (c->broken)
        conn_close(c);
}

void http_server_flush(http_conn *c)
{
    if (!c->out.n)
        return;
    out_req *r = malloc(sizeof *r);
    if (!r) {
        c->broken = 1;
        return;
    }
    r->c = c;
    r->p = c->out.p;
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.n);
    c->out = (text_buf){0};
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        free(r->p);
        free(r);
        c->broken = 1;
        return;
    }
    c->n_writes++;
}

static void write_timed_out(uv_timer_t *t) { conn_close(t->data); }

/* C's answer is queued on it: send it, then answer_done() */
static void start_answer(http_conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->state = CONN_WRITING;
    http_server_flush(c);
    if (c->n_writes == 0) {
        answer_done(c);
        return;
    }
    arm(c, HTTP_WRITE_TIMEOUT_MS, write_timed_out); /* a client that does not read */
}

void http_server_answer_error(http_conn *c, int status, const char *msg)
{
    uv_timer_stop(&c->timer);
    c->must_close = 1;
    http_route_error(c, status, msg);
    start_answer(c);
}

/* the deadline of the header (a silent connection is just closed) or of the body passed */
static void deadline_passed(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->state == CONN_BODY)
        http_server_answer_error(c, 408, http_body_error(-408));
    else if (c->state == CONN_HEAD && c->begun)
        http_server_answer_error(c, 408, "the request headers did not arrive in time");
    else
        conn_close(c);
}

void http_server_deadline(http_conn *c, int ms) { arm(c, ms, deadline_passed); }

/* ---- handing requests to the handler threads and taking them back */

static void to_pool(http_conn *c)
{
    http_server *s = c->srv;
    uv_timer_stop(&c->timer);
    c->on_loop = 0;
    c->state = CONN_HANDLER;
    if (http_pool_submit(s->pool, c)) {
        c->on_loop = 1;
        http_route_busy(c);
        start_answer(c);
    }
}

static void handler_done(http_conn *c, void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    c->queue_next = s->returned;
    s->returned = c;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
}

static void stop_loop(http_server *s);

static void on_wake(uv_async_t *a)
{
    http_server *s = a->data;
    int stopping = atomic_load(&s->stopping); /* read first: UNSERVED was set before it */
    pthread_mutex_lock(&s->mu);
    http_conn *c = s->returned, *u = s->unserved;
    s->returned = s->unserved = NULL;
    pthread_mutex_unlock(&s->mu);
    while (c) {
        http_conn *next = c->queue_next;
        c->on_loop = 1;
        c->state = CONN_WRITING;
        answer_done(c);
        c = next;
    }
    for (http_conn *next; u; u = next) { /* waited for a thread in vain */
        next = u->queue_next;
        u->on_loop = 1;
        http_server_answer_error(u, 503, "the server is stopping; retry later");
    }
    if (stopping)
        stop_loop(s);
}

/* the request's headers, and its body when a handler needs it, are in: */
void http_server_request_ready(http_conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    if (c->answered) {
        start_answer(c);
        return;
    }
    if (http_server_busy(c->srv)) {
        http_route_busy(c);
        start_answer(c);
    } else if (c->n_writes > 0) { /* a 100 Continue still going out */
        c->state = CONN_WAIT;
        arm(c, HTTP_WRITE_TIMEOUT_MS, write_timed_out);
    } else {
        to_pool(c);
    }
}

/* ---- reading */

/* libuv reads one stream at a time and on_read parses (or copies) the bytes at once */
static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    http_server *s = ((http_conn *)h->data)->srv;
    *b = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    http_conn *c = st->data;
    if (n == 0)
        return;
    if (c->state == CONN_LINGER) { /* dropped; the close ends it */
        if (n < 0)
            conn_close(c);
        return;
    }
    if (n < 0) {
        if (c->state == CONN_BODY && n == UV_EOF) /* the client half-closed mid-body */
            http_server_answer_error(c, 400, http_body_error(-400));
        else
            conn_close(c);
        return;
    }
    http_parse_feed(c, b->base, (size_t)n);
}

void http_server_read(http_conn *c) { uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); }

/* ---- accepting */

static void on_connection(uv_stream_t *l, int status)
{
    http_server *s = l->data;
    if (status < 0)
        return;
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    c->on_loop = 1;
    uv_tcp_init(&s->loop, &c->tcp);
    uv_timer_init(&s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->n_open_handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) || uv_fileno((uv_handle_t *)&c->tcp, &c->fd) ||
        s->n_conns > s->max_conns + 64) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parse_reset(c);
    if (s->n_conns > s->max_conns) {
        http_server_answer_error(c, 503, "too many connections; retry later");
        return;
    }
    c->state = CONN_HEAD;
    http_server_deadline(c, HTTP_HEAD_DEADLINE_MS);
    http_server_read(c);
}

int http_server_port_is(const http_conn *c, int port) { return c->srv->port == port; }

int http_server_hold_body(http_conn *c, size_t n)
{
    if (c->srv->body_bytes + n > HTTP_BODY_BUDGET)
        return -1;
    c->srv->body_bytes += n;
    c->n_counted += n;
    return 0;
}

/* ---- the loop thread, start and stop */

static void *loop_main(void *arg)
{
    http_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void stop_loop(http_server *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_HANDLER) /* its handler's writes fail now, and it returns */
            shutdown(c->fd, SHUT_RDWR);
        else if (c->state != CONN_WRITING && c->state != CONN_LINGER)
            conn_close(c);
    }
    if (atomic_load(&s->stopping) == 2)
        uv_stop(&s->loop);
}

http_server *http_server_start(const http_server_opts *o)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    struct rlimit rl; /* every connection is a descriptor: allow as many as the hard limit */
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    s->max_conns = HTTP_MAX_CONNS;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur - 256 < s->max_conns)
        s->max_conns = rl.rlim_cur > 512 ? (int)rl.rlim_cur - 256 : (int)rl.rlim_cur / 2;
    s->port = o->port;
    s->may_wait = o->may_wait;
    pthread_mutex_init(&s->mu, NULL);
    uv_loop_init(&s->loop);
    uv_tcp_init(&s->loop, &s->listener);
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->listener.data = s->wake.data = s;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    uv_getaddrinfo_t gai;
    int rc = uv_getaddrinfo(&s->loop, &gai, NULL, o->host, port, &hints);
    if (rc) {
        LOG_ERR("cannot resolve %s: %s", o->host, uv_strerror(rc));
        goto fail;
    }
    rc = uv_tcp_bind(&s->listener, gai.addrinfo->ai_addr, 0);
    uv_freeaddrinfo(gai.addrinfo);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc) {
        LOG_ERR("cannot listen on %s:%d: %s", o->host, o->port, uv_strerror(rc));
        goto fail;
    }
    s->pool = http_pool_start(o->n_threads, o->max_waiting, http_route_run, handler_done, s);
    if (!s->pool)
        goto fail;
    if (pthread_create(&s->thread, NULL, loop_main, s)) {
        LOG_ERR("cannot start the HTTP loop thread");
        http_pool_stop(s->pool, 1000);
        goto fail;
    }
    return s;
fail:
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    free(s);
    return NULL;
}

int http_server_stop(http_server *s, int wait_ms)
{
    http_conn *q = http_pool_close(s->pool); /* before the loop shuts handlers' sockets */
    pthread_mutex_lock(&s->mu);
    s->unserved = q;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->stopping, 1);
    uv_async_send(&s->wake);
    int rc = http_pool_stop(s->pool, wait_ms);
    atomic_store(&s->stopping, 2);
    uv_async_send(&s->wake);
    pthread_join(s->thread, NULL);
    if (rc)
        return rc; /* the loop and its memory stay: a handler still running may return to it */
    while (s->conns) /* nothing else runs now: close what is left, then free it all */
        conn_close(s->conns);
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return 0;
}
