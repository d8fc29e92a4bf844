/* detok.c - incremental detokenization with stop strings (see detok.h). */
#include "detok.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW_BACK 5      /* prompt tokens decoded before the first output token */
#define MAX_HOLD_TOKENS 8  /* emit even an incomplete character after this many tokens */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

/* Decodes tokens[from, to) into B (skipping special tokens unless KEEP_SPECIAL); 0 or
 * negative. */
static int decode_into(const tok *t, const int32_t *tokens, int from, int to, int keep_special, buf *b)
{
    for (;;) {
        int64_t n = tok_decode(t, tokens + from, (size_t)(to - from), !keep_special, b->p, b->cap);
        if (n < 0)
            return -1;
        if ((size_t)n <= b->cap) {
            b->n = (size_t)n;
            return 0;
        }
        char *p = realloc(b->p, (size_t)n + 64);
        if (!p)
            return -1;
        b->p = p;
        b->cap = (size_t)n + 64;
    }
}

static int ends_incomplete(const buf *b) /* ends with U+FFFD: a character still to come */
{
    return b->n >= 3 && !memcmp(b->p + b->n - 3, "\xef\xbf\xbd", 3);
}

/* Earliest match of any stop string in S[0..n) (the first listed on a tie): its offset, or
 * -1; its length in *LEN. */
static long stop_find(const slot_hdr *h, const char *s, size_t n, size_t *len)
{
    long best = -1;
    const char *stop = h->stop;
    for (int k = 0; k < h->n_stop; k++, stop += strlen(stop) + 1) {
        size_t m = strlen(stop);
        const char *p = m ? memmem(s, n, stop, m) : NULL;
        if (p && (best < 0 || p - s < best)) {
            best = p - s;
            *len = m;
        }
    }
    return best;
}

/* Length of the longest tail of S[0..n) that begins some stop string (text to hold back). */
static size_t stop_prefix_tail(const slot_hdr *h, const char *s, size_t n)
{
    size_t hold = 0;
    const char *stop = h->stop;
    for (int k = 0; k < h->n_stop; k++, stop += strlen(stop) + 1) {
        size_t m = strlen(stop);
        for (size_t len = m > 0 ? m - 1 : 0; len > hold; len--)
            if (len <= n && !memcmp(s + n - len, stop, len)) {
                hold = len;
                break;
            }
    }
    return hold;
}

/* Appends TEXT to the delta, held-back text first, applying stop strings (once the delta's
 * token is past min_tokens, as vLLM: the text of the first min_tokens output tokens is never
 * searched); a matched stop string is cut off, or kept with include_stop_str.
 * Returns 1 when a stop string matched. */
static int add_text(slot_hdr *h, msg_text_delta *d, const char *text, size_t n)
{
    char tmp[STORE_PENDING_BYTES + MSG_TEXT_MAX];
    size_t n_pend = (size_t)atomic_load(&h->n_pending);
    if (n > MSG_TEXT_MAX)
        n = MSG_TEXT_MAX;
    memcpy(tmp, h->pending, n_pend);
    memcpy(tmp + n_pend, text, n);
    size_t len = n_pend + n, stop_len = 0;
    int check = d->n_out > h->params.min_tokens;
    long at = check ? stop_find(h, tmp, len, &stop_len) : -1;
    size_t emit = at >= 0 ? (size_t)at + (h->include_stop_str ? stop_len : 0)
                          : len - (check ? stop_prefix_tail(h, tmp, len) : 0);
    if (emit > MSG_TEXT_MAX - d->text_len)
        emit = MSG_TEXT_MAX - d->text_len;
    memcpy(d->text + d->text_len, tmp, emit);
    d->text_len += (uint32_t)emit;
    size_t keep = at >= 0 ? 0 : len - emit;
    if (keep > STORE_PENDING_BYTES)
        keep = STORE_PENDING_BYTES;
    memmove(h->pending, tmp + len - keep, keep);
    atomic_store(&h->n_pending, (int32_t)keep);
    if (at >= 0)
        atomic_store(&h->stop_hit, 1);
    return at >= 0;
}

static void flush_pending(slot_hdr *h, msg_text_delta *d)
{
    size_t n = (size_t)atomic_load(&h->n_pending);
    if (n > MSG_TEXT_MAX - d->text_len)
        n = MSG_TEXT_MAX - d->text_len;
    memcpy(d->text + d->text_len, h->pending, n);
    d->text_len += (uint32_t)n;
    atomic_store(&h->n_pending, 0);
}

/* Over 80 lines: one pass over a request's new tokens whose steps (resume after a restart,
 * decode window, UTF-8 hold-back, stop strings, deltas) share the slot state they update. */
int detok_advance(const tok *t, store *st, const detok_seq *e, int fresh, detok_emit_fn emit, void *arg)
{
    if (e->slot < 0 || (uint32_t)e->slot >= st->hdr->n_slots)
        return -1;
    slot_hdr *h = store_slot(st, e->slot);
    if (atomic_load(&h->state) != SLOT_ACTIVE || h->req_id != e->req_id || e->n_tokens < h->n_prompt ||
        (uint32_t)e->n_tokens > st->hdr->max_seq_len)
        return -1;
    const int32_t *tokens = slot_tokens(st, e->slot);
    const float *logprobs = slot_logprobs(st, e->slot);
    int keep = h->keep_special;
    buf before = {0}, after = {0};
    int n_sent = 0; /* output tokens whose delta the tokenizer already has */
    if (fresh || atomic_load(&h->detok_req_id) != e->req_id) { /* start (again) from the prompt */
        n_sent = atomic_load(&h->detok_req_id) == e->req_id ? atomic_load(&h->n_delivered) : 0;
        /* the window must not start inside a character spread over several tokens */
        int start = h->n_prompt > WINDOW_BACK ? h->n_prompt - WINDOW_BACK : 0;
        while (start > 0 && h->n_prompt - start < 4 * WINDOW_BACK &&
               !decode_into(t, tokens, start, h->n_prompt, keep, &before) && before.n >= 3 &&
               !memcmp(before.p, "\xef\xbf\xbd", 3))
            start--;
        atomic_store(&h->detok_prefix, start);
        atomic_store(&h->detok_read, h->n_prompt);
        atomic_store(&h->detok_seen, h->n_prompt);
        atomic_store(&h->n_pending, 0);
        atomic_store(&h->detok_done, 0);
        atomic_store(&h->stop_hit, 0);
        atomic_store(&h->detok_req_id, e->req_id);
    }
    if (atomic_load(&h->detok_done)) {
        free(before.p);
        return 0;
    }
    static __thread msg_text_delta d;
    int have = 0, stopped = 0, rc = 0;
    int prefix = atomic_load(&h->detok_prefix), read = atomic_load(&h->detok_read);
    for (int i = atomic_load(&h->detok_seen); i < e->n_tokens; i++) {
        if (have && d.n_out > n_sent)
            emit(arg, &d);
        memset(&d, 0, offsetof(msg_text_delta, text));
        d.slot = e->slot;
        d.req_id = e->req_id;
        d.token_id = tokens[i];
        d.logprob = logprobs[i];
        d.n_out = i + 1 - h->n_prompt;
        d.special = tok_is_special(t, tokens[i]);
        have = !atomic_load(&h->stop_hit);
        if (decode_into(t, tokens, prefix, read, keep, &before) ||
            decode_into(t, tokens, prefix, i + 1, keep, &after)) {
            rc = -1;
            break;
        }
        int grew = after.n > before.n && !memcmp(after.p, before.p, before.n);
        int held = ends_incomplete(&after) && i + 1 - read < MAX_HOLD_TOKENS;
        if (grew && !held) {
            if (have && add_text(h, &d, after.p + before.n, after.n - before.n))
                stopped = 1;
            prefix = read;
            read = i + 1;
        } else if (!held) {
            read = i + 1; /* nothing printable (a skipped special token, invalid bytes) */
        }
        atomic_store(&h->detok_prefix, prefix);
        atomic_store(&h->detok_read, read);
        atomic_store(&h->detok_seen, i + 1); /* held text (read <= i) comes with a later token */
    }
    if (!rc && e->finish) {
        if (!have) {
            memset(&d, 0, offsetof(msg_text_delta, text));
            d.slot = e->slot;
            d.req_id = e->req_id;
            d.token_id = -1;
            d.n_out = e->n_tokens - h->n_prompt;
            have = 1;
        }
        /* tokens held back for an incomplete character: their text, as it decodes now */
        if (!atomic_load(&h->stop_hit) && read < e->n_tokens &&
            !decode_into(t, tokens, prefix, read, keep, &before) &&
            !decode_into(t, tokens, prefix, e->n_tokens, keep, &after) && after.n > before.n &&
            !memcmp(after.p, before.p, before.n)) {
            add_text(h, &d, after.p + before.n, after.n - before.n);
            atomic_store(&h->detok_read, e->n_tokens);
        }
        if (atomic_load(&h->stop_hit))
            d.finish = FINISH_STOP;
        else {
            flush_pending(h, &d);
            d.finish = e->finish;
        }
        atomic_store(&h->detok_done, 1);
    }
    if (have && (d.n_out > n_sent || d.finish))
        emit(arg, &d);
    free(before.p);
    free(after.p);
    return rc ? rc : stopped;
}
