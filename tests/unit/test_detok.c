/* test_detok.c - incremental detokenization against decoding the whole sequence at once,
 * with the default model's SentencePiece vocabulary (models/stories15M, from setup).
 *
 * Fresh random token sequences each run (pieces, and characters spelled as byte tokens so
 * that a character spans several deltas), fed in random-sized pieces as the router would: the deltas joined must equal
 * the one-shot decode, no delta may end inside a UTF-8 character, one delta per token; stop
 * strings cut the text at their first occurrence and ask for a stop exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../detokenizer/detok.h"

#define TOKENIZER "models/stories15M/tokenizer.json"
#define SLOT 3

static store st;
static tok *T;

typedef struct {
    char text[1 << 16];
    size_t n;
    size_t ends[4096]; /* text length after each delta */
    int n_deltas, finish, bad_utf8;
} collected;

static int setup(void **state)
{
    char err[256], name[64];
    T = tok_load(TOKENIZER, err, sizeof err);
    if (!T) {
        fprintf(stderr, "test_detok: %s: %s (run scripts/setup.sh)\n", TOKENIZER, err);
        return -1;
    }
    snprintf(name, sizeof name, "/cinder-test-detok-%d", (int)getpid());
    store_layout l = {.n_slots = 8, .max_seq_len = 512, .block_size = 16, .vocab_size = 32000};
    if (store_create(&st, name, &l))
        return -1;
    store_unlink(name);
    return 0;
}

static int teardown(void **state)
{
    store_close(&st);
    tok_free(T);
    return 0;
}

static int utf8_complete(const char *s, size_t n) /* no character cut at the end */
{
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--, back++;
    if (i == 0)
        return back == 0;
    unsigned char c = (unsigned char)s[i - 1];
    int need = c < 0x80 ? 0 : c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    return need == back;
}

static void collect(void *arg, const msg_text_delta *d)
{
    collected *c = arg;
    memcpy(c->text + c->n, d->text, d->text_len);
    c->n += d->text_len;
    c->ends[c->n_deltas++] = c->n;
    c->bad_utf8 |= !utf8_complete(d->text, d->text_len);
    if (d->finish)
        c->finish = d->finish;
}

/* Appends the UTF-8 bytes of a random non-ASCII code point as byte-fallback tokens. */
static int put_char_bytes(int32_t *t)
{
    uint32_t cp;
    do
        cp = 0x80 + (uint32_t)rand() % 0x10ff80;
    while (cp >= 0xd800 && cp < 0xe000);
    unsigned char b[4];
    int n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n == 2)
        b[0] = (unsigned char)(0xc0 | cp >> 6);
    else if (n == 3)
        b[0] = (unsigned char)(0xe0 | cp >> 12);
    else
        b[0] = (unsigned char)(0xf0 | cp >> 18);
    for (int k = 1; k < n; k++)
        b[k] = (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - k))) & 0x3f));
    for (int k = 0; k < n; k++)
        t[k] = 3 + b[k]; /* <0xXX> tokens are ids 3..258 */
    return n;
}

/* A request with a random prompt and N_OUT random output tokens in SLOT: pieces, and
 * characters spelled as byte tokens (split across deltas, a character at a time). */
static uint64_t req_id = 100;

/* A fresh request header (as the tokenizer writes it) over the tokens already in SLOT. */
static void reset_header(int n_prompt, const char *stop)
{
    slot_hdr *h = store_slot(&st, SLOT);
    memset(h, 0, sizeof *h);
    h->n_prompt = n_prompt;
    h->req_id = ++req_id;
    h->n_stop = stop ? 1 : 0;
    if (stop)
        snprintf(h->stop, sizeof h->stop, "%s", stop);
    atomic_store(&h->state, SLOT_ACTIVE);
}

static int make_request(int n_out)
{
    int32_t *t = slot_tokens(&st, SLOT);
    int n_prompt = 1 + rand() % 20;
    t[0] = 1; /* BOS */
    for (int i = 1; i < n_prompt + n_out;) {
        if (rand() % 4 == 0 && i + 4 <= n_prompt + n_out && (i >= n_prompt || i + 4 <= n_prompt))
            i += put_char_bytes(t + i);
        else
            t[i++] = 259 + rand() % (32000 - 259); /* a piece */
    }
    reset_header(n_prompt, NULL);
    return n_prompt;
}

/* Text of the output tokens when the whole sequence is decoded at once. */
static size_t expected_text(int n_prompt, int n_total, char *out, size_t cap)
{
    static char pre[1 << 16];
    const int32_t *t = slot_tokens(&st, SLOT);
    int64_t a = tok_decode(T, t, (size_t)n_prompt, 1, pre, sizeof pre);
    int64_t b = tok_decode(T, t, (size_t)n_total, 1, out, cap);
    assert_true(a >= 0 && b >= a);
    assert_memory_equal(pre, out, (size_t)a); /* the prompt's text is a prefix */
    memmove(out, out + a, (size_t)(b - a));
    return (size_t)(b - a);
}

/* Feeds tokens in random pieces; returns how many times a stop was requested. */
static int feed(int n_prompt, int n_out, collected *c, int finish)
{
    int n = n_prompt, stops = 0;
    while (n < n_prompt + n_out) {
        n += 1 + rand() % 4;
        if (n > n_prompt + n_out)
            n = n_prompt + n_out;
        detok_seq e = {SLOT, req_id, n, n == n_prompt + n_out ? finish : FINISH_NONE};
        int rc = detok_advance(T, &st, &e, 0, collect, c);
        assert_true(rc == 0 || rc == 1);
        stops += rc;
    }
    return stops;
}

static void test_matches_whole_decode(void **state)
{
    static collected c;
    static char want[1 << 16];
    for (int it = 0; it < 300; it++) {
        int n_out = 1 + rand() % 60;
        int n_prompt = make_request(n_out);
        memset(&c, 0, sizeof c);
        assert_int_equal(feed(n_prompt, n_out, &c, FINISH_LENGTH), 0);
        size_t n = expected_text(n_prompt, n_prompt + n_out, want, sizeof want);
        assert_int_equal(c.n, n);
        assert_memory_equal(c.text, want, n);
        assert_int_equal(c.n_deltas, n_out);
        assert_int_equal(c.finish, FINISH_LENGTH);
        assert_false(c.bad_utf8);
    }
}

static void test_stop_strings(void **state)
{
    static collected c;
    static char want[1 << 16];
    int n_checked = 0;
    for (int it = 0; it < 300; it++) {
        int n_out = 10 + rand() % 50;
        int n_prompt = make_request(n_out);
        size_t n = expected_text(n_prompt, n_prompt + n_out, want, sizeof want);
        if (n < 8)
            continue;
        /* a stop string cut from the text, ASCII-safe boundaries */
        size_t at = (size_t)rand() % (n - 4), len = 2 + (size_t)rand() % 3;
        char stop[8];
        memcpy(stop, want + at, len);
        stop[len] = 0;
        if (!utf8_complete(stop, len) || (stop[0] & 0xc0) == 0x80 || strlen(stop) != len)
            continue;
        reset_header(n_prompt, stop);
        memset(&c, 0, sizeof c);
        int stops = feed(n_prompt, n_out, &c, FINISH_STOP);
        size_t first = (size_t)((char *)memmem(want, n, stop, len) - want);
        assert_int_equal(stops, 1);
        assert_int_equal(c.n, first);
        assert_memory_equal(c.text, want, first);
        assert_int_equal(c.finish, FINISH_STOP);
        n_checked++;
    }
    assert_true(n_checked > 50);
}

/* A detokenizer restarted mid-request (fresh = 1) resends exactly what the tokenizer lacks:
 * deltas up to the slot's n_delivered are not repeated, the rest are not lost. */
static void test_restart_resumes_exactly(void **state)
{
    static collected first, second;
    static char want[1 << 16];
    for (int it = 0; it < 200; it++) {
        int n_out = 4 + rand() % 60;
        int n_prompt = make_request(n_out);
        size_t n = expected_text(n_prompt, n_prompt + n_out, want, sizeof want);
        memset(&first, 0, sizeof first);
        memset(&second, 0, sizeof second);
        int cut = n_prompt + 1 + rand() % (n_out - 1); /* tokens handled before the crash */
        detok_seq e = {SLOT, req_id, cut, FINISH_NONE};
        assert_int_equal(detok_advance(T, &st, &e, 0, collect, &first), 0);
        /* the last deltas sent may never have reached the tokenizer */
        int delivered = first.n_deltas - rand() % 3;
        if (delivered < 0)
            delivered = 0;
        atomic_store(&store_slot(&st, SLOT)->n_delivered, delivered);
        detok_seq rest = {SLOT, req_id, n_prompt + n_out, FINISH_LENGTH};
        assert_int_equal(detok_advance(T, &st, &rest, 1, collect, &second), 0);
        size_t got = delivered ? first.ends[delivered - 1] : 0;
        assert_int_equal(delivered + second.n_deltas, n_out);
        assert_int_equal(got + second.n, n);
        assert_memory_equal(first.text, want, got);
        assert_memory_equal(second.text, want + got, second.n);
    }
}

static void test_stale_entries(void **state)
{
    static collected c;
    int n_prompt = make_request(5);
    detok_seq wrong_id = {SLOT, req_id + 7, n_prompt + 5, 0};
    assert_true(detok_advance(T, &st, &wrong_id, 0, collect, &c) < 0);
    detok_seq bad_slot = {999, req_id, n_prompt + 5, 0};
    assert_true(detok_advance(T, &st, &bad_slot, 0, collect, &c) < 0);
    detok_seq too_many = {SLOT, req_id, 100000, 0};
    assert_true(detok_advance(T, &st, &too_many, 0, collect, &c) < 0);
    assert_int_equal(c.n_deltas, 0);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_whole_decode),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_restart_resumes_exactly),
        cmocka_unit_test(test_stale_entries),
    };
    return cmocka_run_group_tests_name("detok", tests, setup, teardown);
}
