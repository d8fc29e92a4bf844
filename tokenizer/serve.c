/* serve.c - a request's path through slot, router, detokenizer and back (see serve.h). */
#include "serve.h"
#include "../common/log.h"
#include "http_conn.h"
#include "http_util.h"
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define WAIT_MS 100

/* Encodes the prompt into the slot and writes the request's header; 0 or an HTTP status
 * with a message in ERR. */
static int fill_slot(tokenizer *f, int slot, const gen_req *g, const char *prompt, size_t n_prompt,
                     int add_special, char *err, size_t n_err)
{
    slot_hdr *h = store_slot(&f->st, slot);
    int32_t *tokens = slot_tokens(&f->st, slot);
    int64_t n = encode_pool_run(f->encoders, prompt, n_prompt, add_special, tokens, (size_t)f->max_seq_len);
    if (n < 0) {
        snprintf(err, n_err, "the prompt is not valid UTF-8");
        return 400;
    }
    if (n == 0) {
        snprintf(err, n_err, "the prompt encodes to no tokens");
        return 400;
    }
    if (n >= f->max_seq_len) {
        snprintf(err, n_err, "the prompt has %lld tokens; this model's context is %d tokens",
                 (long long)n, f->max_seq_len);
        return 400;
    }
    h->params = g->params;
    if (!g->seed_given && getrandom(&h->params.seed, sizeof h->params.seed, 0) != sizeof h->params.seed)
        h->params.seed = now_us();
    h->n_prompt = (int32_t)n;
    h->n_stop = g->n_stop;
    memcpy(h->stop, g->stop, sizeof h->stop);
    h->n_stop_ids = g->n_stop_ids;
    memcpy(h->stop_ids, g->stop_ids, sizeof h->stop_ids);
    atomic_store(&h->n_tokens, (int32_t)n);
    atomic_store(&h->n_delivered, 0);
    return 0;
}

/* Waits for the slot's deltas until the final one, handing each to O. Returns 200, or an
 * error status with its message in *WHY when the request cannot complete: what the router
 * wrote into the slot when it ended the request with FINISH_ERROR, what a failure report
 * says, or 503 with *LOST set when the router went away (died, restarted, or hung past
 * STORE_HUNG_MS) still holding the slot.
 *
 * A client that goes away is noticed within WAIT_MS, streaming or not (its socket reports
 * the close; a failed write says so too): the request is aborted, the router ends it
 * within one iteration, and the final delta still comes. */
static int relay(tokenizer *f, struct mg_connection *c, int slot, api_out *o, serve_state *s, text_buf *text,
                 uint64_t t0_us, double *ttft_s, uint32_t router_epoch, char *why, size_t n_why,
                 int *lost)
{
    int client_gone = 0, fd = http_conn_fd(c);
    uint64_t last_us = 0, checked_us = 0; /* the first check at once */
    while (!s->finish) {
        if (!client_gone && now_us() - checked_us >= WAIT_MS * 1000u) {
            checked_us = now_us();
            if (http_conn_gone(fd)) {
                client_gone = 1;
                tokenizer_abort(f, slot); /* the router ends it; the final delta still comes */
            }
        }
        delta_node *d = tokenizer_next(f, slot, WAIT_MS);
        if (!d) {
            int status = tokenizer_failure(f, slot, why, n_why);
            if (status)
                return status;
            /* a router that died, hung or was replaced has forgotten the request */
            if (atomic_load(&f->st.hdr->epoch[PROC_ROUTER]) != router_epoch || store_gone(&f->st, PROC_ROUTER)) {
                snprintf(why, n_why, "the router went away; the request was not completed");
                *lost = 1;
                return 503;
            }
            continue;
        }
        uint64_t t = now_us();
        if (d->token_id >= 0) {
            if (last_us)
                metrics_token_gap((double)(t - last_us) / 1e6);
            else
                *ttft_s = (double)(t - t0_us) / 1e6;
            last_us = t;
        }
        text_append(text, d->text, d->text_len);
        s->text = text->p;
        s->n_text = text->n;
        s->finish = d->finish;
        s->n_out = d->n_out;
        if (o->stream && !client_gone && o->event(c, o, d, s)) {
            client_gone = 1;
            tokenizer_abort(f, slot); /* the router ends it; the final delta still comes */
        }
        free(d);
    }
    if (s->finish == FINISH_ERROR) {   /* the router wrote why before it published finish */
        const slot_hdr *h = store_slot(&f->st, slot);
        snprintf(why, n_why, "%.*s", STORE_ERROR_BYTES - 1,
                 h->error[0] ? h->error : "the request failed");
        return h->error_status >= 400 && h->error_status <= 599 ? h->error_status : 500;
    }
    return 200;
}

/* The seconds from A to B (CLOCK_MONOTONIC us), or -1 when either never came */
static double span_s(uint64_t a, uint64_t b) { return a && b >= a ? (double)(b - a) / 1e6 : -1; }

/* The request's stage times from the slot (the router wrote them before it let go of the
 * request, i.e. before the final delta came; read before the slot is released) */
static void stage_times(tokenizer *f, int slot, metrics_req *m)
{
    const slot_hdr *h = store_slot(&f->st, slot);
    uint64_t queued = atomic_load_explicit(&h->t_queued_us, memory_order_acquire);
    uint64_t sched = atomic_load_explicit(&h->t_scheduled_us, memory_order_acquire);
    uint64_t first = atomic_load_explicit(&h->t_first_token_us, memory_order_acquire);
    uint64_t last = atomic_load_explicit(&h->t_last_token_us, memory_order_acquire);
    m->queue_s = span_s(queued, sched);
    m->prefill_s = span_s(sched, first);
    m->decode_s = span_s(first, last);
    m->inference_s = span_s(sched, last);
}

static int reject(struct mg_connection *c, api_out *o, const char *msg)
{
    metrics_request_rejected();
    return o->error(c, 503, msg);
}

int serve_generate(tokenizer *f, struct mg_connection *c, const gen_req *g, const char *prompt, size_t n,
                   int add_special, api_out *o)
{
    char err[512];
    uint64_t t0 = now_us();
    if (!tokenizer_ready(f))
        return reject(c, o, "the server is not ready");
    if (f->max_queue > 0 && tokenizer_n_queued(f) >= f->max_queue)
        return reject(c, o, "the request queue is full; retry later");
    int slot = tokenizer_slot_take(f);
    if (slot < 0)
        return reject(c, o, "all request slots are in use; retry later");
    int status = fill_slot(f, slot, g, prompt, n, add_special, err, sizeof err);
    if (status) {
        tokenizer_slot_release(f, slot);
        return o->error(c, status, err);
    }
    uint32_t router_epoch = atomic_load(&f->st.hdr->epoch[PROC_ROUTER]);
    if (!tokenizer_submit(f, slot)) {
        tokenizer_slot_release(f, slot);
        return o->error(c, 503, "the router cannot be reached");
    }
    serve_state s = {.text = "", .n_prompt = store_slot(&f->st, slot)->n_prompt};
    text_buf text = {0};
    double ttft = -1;
    if (o->stream && o->begin(c, o))
        tokenizer_abort(f, slot);
    char why[256] = "";
    int lost = 0;
    status = relay(f, c, slot, o, &s, &text, t0, &ttft, router_epoch, why, sizeof why, &lost);
    s.n_cached = atomic_load_explicit(&store_slot(&f->st, slot)->n_prompt_cached, memory_order_acquire);
    metrics_req m = {.outcome = status == 200 ? metrics_outcome_of(s.finish) : OUT_ERROR, .n_prompt = s.n_prompt,
                     .n_out = s.n_out, .max_tokens = g->params.max_new_tokens, .ttft_s = ttft};
    stage_times(f, slot, &m);
    if (status == 200) {
        if (o->stream)
            o->end(c, o, &s);
        else
            o->respond(c, o, &s);
        tokenizer_slot_release(f, slot);
    } else {
        if (o->stream)
            o->fail(c, o, status, why);
        else
            o->error(c, status, why);
        if (lost)
            tokenizer_slot_lost(f, slot, router_epoch);
        else
            tokenizer_slot_release(f, slot); /* the router reported it and let it go */
    }
    m.e2e_s = (double)(now_us() - t0) / 1e6;
    metrics_request(&m);
    text_free(&text);
    return status;
}
