/* fuzz_msg.c - libFuzzer target: ZeroMQ message bodies through msg_unpack.
 *
 * Any bytes must unpack to 0 or a negative code, never a crash or a leak. Round trip: when
 * unpacking succeeds, packing the result and unpacking again gives the same message, and
 * every counted array stays inside its bounds.
 */
#include <string.h>

#include "../../common/msg.h"
#include "fuzz_util.h"

static msg_any first, second; /* large (the STEP array): not on the stack */

static void check_bounds(const msg_any *m)
{
    FUZZ_CHECK(m->type > 0 && m->type < MSG_N_TYPES);
    if (m->type == MSG_STEP)
        FUZZ_CHECK(m->u.step.n_seqs >= 0 && m->u.step.n_seqs <= MSG_MAX_SEQS);
    if (m->type == MSG_DETOK)
        FUZZ_CHECK(m->u.detok.n_seqs >= 0 && m->u.detok.n_seqs <= MSG_MAX_SEQS);
    if (m->type == MSG_TEXT_DELTA)
        FUZZ_CHECK(m->u.text_delta.text_len <= MSG_TEXT_MAX);
    if (m->type == MSG_REQ_FAILED)
        FUZZ_CHECK(memchr(m->u.req_failed.error, 0, sizeof m->u.req_failed.error) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&first, 0, sizeof first);
    if (msg_unpack(data, size, &first) != 0)
        return 0;
    check_bounds(&first);
    if (first.type == MSG_REQ_FAILED) { /* a C string: what follows its NUL is not the message */
        char *e = first.u.req_failed.error;
        size_t n = strlen(e);
        memset(e + n, 0, sizeof first.u.req_failed.error - n);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    FUZZ_CHECK(msg_pack(&sb, first.type, &first.u) == 0);
    memset(&second, 0, sizeof second);
    FUZZ_CHECK(msg_unpack(sb.data, sb.size, &second) == 0);
    /* both were zeroed and filled field by field: equal bytes mean equal messages */
    FUZZ_CHECK(!memcmp(&first, &second, sizeof first));
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
