/* serve.c - a request's path through its slots, router, detokenizer and back (see serve.h). */
#include "serve.h"
#include "../common/log.h"
#include "http_conn.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define WAIT_MS 100

/* The prompt's tokens into the slot's token array: encoded, or copied when given as ids; cut
 * to its last truncate_prompt_tokens when asked (vLLM's left truncation). 0 or an HTTP status
 * with ERR. */
static int put_prompt(tokenizer *f, int slot, const gen_req *g, const serve_prompt *p,
                      int add_special, char *err, size_t n_err)
{
    int32_t *tokens = slot_tokens(&f->st, slot), *big = NULL;
    const int32_t *src = tokens;
    int64_t n, cap = f->max_seq_len, keep = g->truncate_prompt_tokens;
    if (p->ids) {
        n = p->n_ids;
        src = p->ids;
    } else {
        n = encode_pool_run(f->encoders, p->text, p->n_text, add_special, tokens, (size_t)cap);
        if (n > cap && keep && keep < cap) { /* too long for the slot, but only its end is kept */
            if (!(big = malloc((size_t)n * sizeof *big)) ||
                encode_pool_run(f->encoders, p->text, p->n_text, add_special, big, (size_t)n) != n) {
                free(big);
                snprintf(err, n_err, "cannot encode the prompt");
                return 500;
            }
            src = big;
        }
    }
    int64_t m = keep && n > keep ? keep : n; /* the tokens kept: the last m */
    int status = 0;
    if (n < 0)
        status = 400, snprintf(err, n_err, "the prompt is not valid UTF-8");
    else if (n == 0)
        status = 400, snprintf(err, n_err, "the prompt encodes to no tokens");
    else if (m >= cap)
        status = 400, snprintf(err, n_err, "the prompt has %lld tokens; this model's context is %lld "
                               "tokens", (long long)m, (long long)cap);
    else {
        memmove(tokens, src + (n - m), (size_t)m * sizeof *tokens);
        store_slot(&f->st, slot)->n_prompt = (int32_t)m;
    }
    free(big);
    return status;
}

/* Writes the request's header into SLOT, whose prompt is in place: sampling parameters (the
 * seed plus SAMPLE, the choice's index within its prompt, when one was given, as vLLM; a
 * random one otherwise), stops and flags. */
static void fill_header(tokenizer *f, int slot, const gen_req *g, int sample)
{
    slot_hdr *h = store_slot(&f->st, slot);
    h->params = g->params;
    if (g->seed_given)
        h->params.seed = g->params.seed + (uint64_t)sample;
    else if (getrandom(&h->params.seed, sizeof h->params.seed, 0) != sizeof h->params.seed)
        h->params.seed = now_us() + (uint64_t)slot;
    h->n_stop = g->n_stop;
    memcpy(h->stop, g->stop, sizeof h->stop);
    h->n_stop_ids = g->n_stop_ids;
    memcpy(h->stop_ids, g->stop_ids, sizeof h->stop_ids);
    h->include_stop_str = (uint8_t)g->include_stop_str;
    h->keep_special = (uint8_t)g->keep_special;
    atomic_store(&h->n_tokens, h->n_prompt);
    atomic_store(&h->n_delivered, 0);
}

/* Fills the slots of every choice: each prompt once, into its first choice's slot, copied into
 * the others'. 0 or an HTTP status with ERR. */
static int fill_slots(tokenizer *f, const gen_req *g, const serve_prompt *prompts, serve_choice *ch,
                      int n_choices, int add_special, char *err, size_t n_err)
{
    for (int i = 0; i < n_choices; i++) {
        int sample = i % g->n;
        if (sample == 0) {
            int status = put_prompt(f, ch[i].slot, g, &prompts[ch[i].prompt], add_special, err, n_err);
            if (status)
                return status;
        } else {
            int first = ch[i - sample].slot, n = store_slot(&f->st, first)->n_prompt;
            memcpy(slot_tokens(&f->st, ch[i].slot), slot_tokens(&f->st, first), (size_t)n * sizeof(int32_t));
            store_slot(&f->st, ch[i].slot)->n_prompt = n;
        }
        fill_header(f, ch[i].slot, g, sample);
        ch[i].n_prompt = store_slot(&f->st, ch[i].slot)->n_prompt;
    }
    return 0;
}

typedef struct {
    tokenizer *f;
    http_conn *c;
    api_out *o;
    serve_state *s;
    mail_waiter w;
    uint32_t router_epoch;
    uint64_t t0_us;
    int n_live;          /* choices not finished */
    int *live;           /* [n_choices] their slots, then ... */
    int *live_ch;        /* [n_choices] ... their choice indices */
    int began;           /* a stream: its headers went out */
    int client_gone, aborted;
    int status;          /* 0, or the HTTP status of the first failure */
    char why[256];
} relay_ctx;

static void abort_all(relay_ctx *r)
{
    for (int k = 0; k < r->n_live; k++)
        tokenizer_abort(r->f, r->live[k]);
    r->aborted = 1;
}

/* Choice K of the live list is done (its final delta came, it failed or its router is gone):
 * off the list. A failure (STATUS, message WHY) fails the request: the others are aborted and
 * their final deltas still awaited, so their slots come back. */
static void choice_done(relay_ctx *r, int k, int status, const char *why)
{
    serve_choice *ch = &r->s->ch[r->live_ch[k]];
    ch->status = status;
    r->live[k] = r->live[r->n_live - 1];
    r->live_ch[k] = r->live_ch[r->n_live - 1];
    r->n_live--;
    if (status && !r->status) {
        r->status = status;
        snprintf(r->why, sizeof r->why, "%s", why);
        if (!r->aborted)
            abort_all(r);
    }
}

/* One delta D of choice K of the live list: its text and counts, metrics, the formatter. */
static void relay_delta(relay_ctx *r, int k, delta_node *d)
{
    serve_choice *ch = &r->s->ch[r->live_ch[k]];
    uint64_t t = now_us();
    if (d->token_id >= 0) {
        if (ch->last_us)
            metrics_token_gap((double)(t - ch->last_us) / 1e6);
        else
            ch->ttft_s = (double)(t - r->t0_us) / 1e6;
        ch->last_us = t;
        ch->n_seen++;
    }
    text_append(&ch->text, d->text, d->text_len);
    if (r->s->g->return_details && ch->n_seen > 0) { /* a final flush: the last token's text */
        if (ch->n_seen > ch->cap_tok_end) {
            int cap = 2 * ch->n_seen + 16;
            size_t *p = realloc(ch->tok_end, (size_t)cap * sizeof *p);
            if (p) {
                ch->tok_end = p;
                ch->cap_tok_end = cap;
            }
        }
        if (ch->n_seen <= ch->cap_tok_end)
            ch->tok_end[ch->n_seen - 1] = ch->text.n;
    }
    ch->finish = d->finish;
    ch->n_out = d->n_out;
    if (r->o->stream && !r->client_gone && !r->status && r->o->event(r->c, r->o, d, ch, r->s)) {
        r->client_gone = 1;
        abort_all(r); /* the router ends them; the final deltas still come */
    }
    if (d->finish == FINISH_ERROR) { /* the router wrote why before it published finish */
        const slot_hdr *h = store_slot(&r->f->st, ch->slot);
        char why[STORE_ERROR_BYTES + 1];
        snprintf(why, sizeof why, "%s", h->error[0] ? h->error : "the request failed");
        choice_done(r, k, h->error_status >= 400 && h->error_status <= 599 ? h->error_status : 500, why);
    } else if (d->finish) {
        choice_done(r, k, 0, "");
    }
}

/* Waits for the deltas of every choice until each one's final delta, handing them to the
 * formatter. Sets r->status (and r->why) when the request cannot complete: what the router
 * wrote into a slot when it ended a choice with FINISH_ERROR, what a failure report says, or
 * 503 (those choices marked lost) when the router went away (died, restarted, or hung past
 * STORE_HUNG_MS) still holding them.
 *
 * A client that goes away is noticed within WAIT_MS, streaming or not (its socket reports
 * the close; a failed write says so too): the choices are aborted, the router ends them
 * within one iteration, and their final deltas still come. */
static void relay(relay_ctx *r)
{
    int which = -1;
    uint64_t checked_us = 0; /* the first check at once */
    while (r->n_live > 0) {
        if (!r->client_gone && now_us() - checked_us >= WAIT_MS * 1000u) {
            checked_us = now_us();
            if (http_conn_gone(r->c)) {
                r->client_gone = 1;
                abort_all(r);
            }
        }
        delta_node *d = tokenizer_next(r->f, &r->w, r->live, r->n_live, WAIT_MS, &which);
        if (d) {
            relay_delta(r, which, d);
            free(d);
            continue;
        }
        char why[256];
        for (int k = r->n_live - 1; k >= 0; k--) {
            int status = tokenizer_failure(r->f, r->live[k], why, sizeof why);
            if (status)
                choice_done(r, k, status, why);
        }
        /* a router that died, hung or was replaced has forgotten the requests */
        if (atomic_load(&r->f->st.hdr->epoch[PROC_ROUTER]) != r->router_epoch || store_gone(&r->f->st, PROC_ROUTER))
            while (r->n_live > 0) {
                r->s->ch[r->live_ch[r->n_live - 1]].lost = 1;
                choice_done(r, r->n_live - 1, 503, "the router went away; the request was not completed");
            }
    }
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

static int reject(http_conn *c, api_out *o, const char *msg)
{
    metrics_request_rejected();
    return o->error(c, 503, msg);
}

/* Gives back the slots of CH [n] that were taken (slot >= 0) and never submitted. */
static void release_unsubmitted(tokenizer *f, serve_choice *ch, int n)
{
    for (int i = 0; i < n; i++)
        if (ch[i].slot >= 0)
            tokenizer_slot_release(f, ch[i].slot);
}

/* Takes a slot per choice; 0, or -1 when there are not enough free (none kept). */
static int take_slots(tokenizer *f, serve_choice *ch, int n)
{
    for (int i = 0; i < n; i++)
        if ((ch[i].slot = tokenizer_slot_take(f)) < 0) {
            release_unsubmitted(f, ch, i);
            return -1;
        }
    return 0;
}

/* The answer once every choice is done: the formatter's, or the error; then the slots back
 * and the metrics (one request per choice, as the engine sees them). */
static int finish(relay_ctx *r)
{
    serve_state *s = r->s;
    for (int i = 0; i < s->n_choices; i++)
        s->ch[i].n_cached = atomic_load_explicit(&store_slot(&r->f->st, s->ch[i].slot)->n_prompt_cached,
                                                 memory_order_acquire);
    if (!r->status) {
        if (r->o->stream)
            r->o->end(r->c, r->o, s);
        else
            r->o->respond(r->c, r->o, s);
    } else if (r->began) {
        r->o->fail(r->c, r->o, r->status, r->why);
    } else {
        r->o->error(r->c, r->status, r->why);
    }
    double e2e = (double)(now_us() - r->t0_us) / 1e6;
    for (int i = 0; i < s->n_choices; i++) {
        serve_choice *ch = &s->ch[i];
        metrics_req m = {.outcome = ch->status ? OUT_ERROR : metrics_outcome_of(ch->finish),
                         .n_prompt = ch->n_prompt, .n_out = ch->n_out,
                         .max_tokens = r->s->g->params.max_new_tokens, .ttft_s = ch->ttft_s, .e2e_s = e2e};
        stage_times(r->f, ch->slot, &m); /* before the slot goes back */
        if (ch->lost)
            tokenizer_slot_lost(r->f, ch->slot, r->router_epoch);
        else
            tokenizer_slot_release(r->f, ch->slot); /* the router let go of it */
        metrics_request(&m);
    }
    return r->status ? r->status : 200;
}

int serve_generate(tokenizer *f, http_conn *c, const gen_req *g, const serve_prompt *prompts,
                   int n_prompts, int add_special, api_out *o)
{
    char err[512];
    uint64_t t0 = now_us();
    int n = n_prompts * g->n;
    if (n < 1 || n > REQ_MAX_CHOICES)
        return o->error(c, 400, "n times the number of prompts must be between 1 and 128");
    if (!tokenizer_ready(f))
        return reject(c, o, "the server is not ready");
    if (f->max_queue > 0 && tokenizer_n_queued(f) >= f->max_queue)
        return reject(c, o, "the request queue is full; retry later");
    serve_choice *ch = calloc((size_t)n, sizeof *ch);
    int *lists = calloc((size_t)n * 2, sizeof *lists);
    if (!ch || !lists) {
        free(ch);
        free(lists);
        return o->error(c, 503, "out of memory");
    }
    for (int i = 0; i < n; i++)
        ch[i] = (serve_choice){.index = i, .prompt = i / g->n, .slot = -1, .ttft_s = -1};
    int status;
    if (take_slots(f, ch, n) < 0) {
        status = reject(c, o, n > 1 ? "not enough free request slots for all choices; retry later"
                                    : "all request slots are in use; retry later");
        goto out;
    }
    if ((status = fill_slots(f, g, prompts, ch, n, add_special, err, sizeof err))) {
        release_unsubmitted(f, ch, n);
        status = o->error(c, status, err);
        goto out;
    }
    serve_state s = {f, g, n, ch};
    relay_ctx r = {.f = f, .c = c, .o = o, .s = &s, .t0_us = t0, .live = lists, .live_ch = lists + n,
                   .router_epoch = atomic_load(&f->st.hdr->epoch[PROC_ROUTER])};
    mail_waiter_init(&r.w);
    for (int i = 0; i < n; i++) {
        if (!(ch[i].req_id = tokenizer_submit(f, ch[i].slot, &r.w))) {
            /* the earlier ones are with the router: aborted, their final deltas awaited */
            release_unsubmitted(f, ch + i, n - i);
            s.n_choices = i;
            r.status = 503;
            snprintf(r.why, sizeof r.why, "the router cannot be reached");
            break;
        }
        r.live[r.n_live] = ch[i].slot;
        r.live_ch[r.n_live++] = i;
    }
    if (!r.status && o->stream) {
        r.began = 1;
        if (o->begin(c, o)) {
            r.client_gone = 1;
            abort_all(&r);
        }
    }
    if (r.status && r.n_live == 0) {
        status = o->error(c, r.status, r.why);
    } else {
        if (r.status)
            abort_all(&r);
        relay(&r);
        status = finish(&r);
    }
    mail_waiter_free(&r.w);
    for (int i = 0; i < n; i++) {
        text_free(&ch[i].text);
        free(ch[i].tok_end);
    }
out:
    free(ch);
    free(lists);
    return status;
}
