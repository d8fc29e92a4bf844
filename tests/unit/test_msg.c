/* test_msg.c - every message type survives pack/unpack unchanged; malformed input is
 * rejected with a negative code, never a crash. Fresh random field values each run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/msg.h"

static int32_t rnd32(void) { return (int32_t)((uint32_t)rand() << 1 ^ (uint32_t)rand()); }
static uint64_t rnd64(void) { return (uint64_t)(uint32_t)rnd32() << 32 | (uint32_t)rnd32(); }

static void roundtrip(int type, const void *m, size_t size, msg_any *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_pack(&sb, type, m), 0);
    memset(out, 0xa5, sizeof *out); /* poison */
    assert_int_equal(msg_unpack(sb.data, sb.size, out), 0);
    assert_int_equal(out->type, type);
    /* every field came back: packing the result gives the same bytes (a field left
     * unwritten would still hold the poison and pack differently) */
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    assert_int_equal(msg_pack(&again, type, &out->u), 0);
    assert_int_equal(again.size, sb.size);
    assert_memory_equal(again.data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&again);
    (void)size;
    /* every truncation is rejected */
    for (size_t n = 0; n < sb.size; n += 1 + sb.size / 64)
        assert_true(msg_unpack(sb.data, n, out) < 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_small_messages(void **state)
{
    static msg_any out;
    for (int it = 0; it < 100; it++) {
        msg_new_req a = {rnd32(), rnd64()};
        roundtrip(MSG_NEW_REQ, &a, sizeof a, &out);
        msg_abort b = {rnd32(), rnd64()};
        roundtrip(MSG_ABORT, &b, sizeof b, &out);
        msg_stop_req c = {rnd32(), rnd64()};
        roundtrip(MSG_STOP_REQ, &c, sizeof c, &out);
        msg_step_done d = {rnd64(), rnd32(), (uint32_t)rnd32(), (float)rnd32() / 7.0f};
        roundtrip(MSG_STEP_DONE, &d, sizeof d, &out);
        msg_worker_ready e = {(uint32_t)rnd32(), rnd32(), rnd32(), rnd64()};
        roundtrip(MSG_WORKER_READY, &e, sizeof e, &out);
        msg_holder_attach f = {(uint32_t)rnd32(), rand() & 1};
        roundtrip(MSG_HOLDER_ATTACH, &f, sizeof f, &out);
        msg_holder_attached g = {rnd32(), rnd32(), rnd64(), rnd32(), rnd64(), rnd64(),
                                 (float)rnd32() / 3.0f, rand() & 1, {0}, {0}};
        for (int k = 0; k < MSG_IPC_HANDLE_BYTES; k++) {
            g.ipc_weights[k] = (uint8_t)rand();
            g.ipc_kv[k] = (uint8_t)rand();
        }
        roundtrip(MSG_HOLDER_ATTACHED, &g, sizeof g, &out);
    }
}

static void test_step_and_detok(void **state)
{
    static msg_step s;
    static msg_detok d;
    static msg_any out;
    for (int it = 0; it < 20; it++) {
        memset(&s, 0, sizeof s);
        s.step_id = rnd64();
        s.epoch = (uint32_t)rnd32();
        s.n_seqs = it == 0 ? MSG_MAX_SEQS : rand() % 50;
        for (int i = 0; i < s.n_seqs; i++)
            s.seqs[i] = (step_seq){rnd32(), rnd32(), rnd32(), rand() & 1};
        roundtrip(MSG_STEP, &s, offsetof(msg_step, seqs) + sizeof(step_seq) * (size_t)s.n_seqs, &out);
        memset(&d, 0, sizeof d);
        d.n_seqs = rand() % 50 + 1;
        for (int i = 0; i < d.n_seqs; i++)
            d.seqs[i] = (detok_seq){rnd32(), rnd64(), rnd32(), rand() % 5};
        roundtrip(MSG_DETOK, &d, offsetof(msg_detok, seqs) + sizeof(detok_seq) * (size_t)d.n_seqs, &out);
    }
}

static void test_text_messages(void **state)
{
    static msg_text_delta t;
    static msg_req_failed f;
    static msg_any out;
    for (int it = 0; it < 20; it++) {
        memset(&t, 0, sizeof t);
        t = (msg_text_delta){rnd32(), rnd64(), rnd32(), -1.5f, rnd32(), rand() & 1, rand() % 5, 0, {0}};
        t.text_len = it == 0 ? MSG_TEXT_MAX : (uint32_t)(rand() % 300);
        for (uint32_t i = 0; i < t.text_len; i++)
            t.text[i] = (char)rand(); /* any bytes, NULs included */
        roundtrip(MSG_TEXT_DELTA, &t, offsetof(msg_text_delta, text) + t.text_len, &out);
        memset(&f, 0, sizeof f);
        f = (msg_req_failed){rnd32(), rnd64(), 503, "router went away"};
        roundtrip(MSG_REQ_FAILED, &f, sizeof f, &out);
    }
}

static void test_malformed(void **state)
{
    static msg_any out;
    unsigned char junk[256];
    for (int it = 0; it < 2000; it++) {
        size_t n = (size_t)(rand() % (int)sizeof junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (unsigned char)rand();
        if (n > 0)
            junk[0] = (unsigned char)(0x90 | (rand() % 16)); /* a small array, to go deeper */
        int rc = msg_unpack(junk, n, &out);
        assert_true(rc <= 0);
    }
    /* wrong kinds: a step whose seqs hold strings, an unknown type, trailing fields */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer p;
    msgpack_packer_init(&p, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&p, 3);
    msgpack_pack_int(&p, MSG_NEW_REQ);
    msgpack_pack_int(&p, 1);
    msgpack_pack_str(&p, 1);
    msgpack_pack_str_body(&p, "x", 1);
    assert_true(msg_unpack(sb.data, sb.size, &out) < 0);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&p, 3);
    msgpack_pack_int(&p, 99);
    msgpack_pack_int(&p, 1);
    msgpack_pack_int(&p, 1);
    assert_true(msg_unpack(sb.data, sb.size, &out) < 0);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&p, 4);
    msgpack_pack_int(&p, MSG_ABORT);
    msgpack_pack_int(&p, 1);
    msgpack_pack_uint64(&p, 2);
    msgpack_pack_int(&p, 3);
    assert_true(msg_unpack(sb.data, sb.size, &out) < 0);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_messages),
        cmocka_unit_test(test_step_and_detok),
        cmocka_unit_test(test_text_messages),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
