/* msg.c - msgpack encoding of the messages in msg.h: one pack/unpack pair per type.
 *
 * Wire form: [type, field, ...]. Unpacking checks every element's kind and range and returns
 * negative on anything unexpected, so a malformed or hostile message cannot crash a process.
 */
#include "msg.h"

#include <errno.h>
#include <string.h>

/* ---- reading helpers: each returns 0 or -EPROTO */

typedef struct {
    const msgpack_object *v; /* array elements */
    uint32_t n, i;
} rd;

static int rd_i64(rd *r, int64_t lo, int64_t hi, int64_t *out)
{
    if (r->i >= r->n)
        return -EPROTO;
    const msgpack_object *o = &r->v[r->i++];
    int64_t x;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return -EPROTO;
        x = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        x = o->via.i64;
    } else {
        return -EPROTO;
    }
    if (x < lo || x > hi)
        return -EPROTO;
    *out = x;
    return 0;
}

static int rd_i32(rd *r, int32_t *out)
{
    int64_t x;
    int rc = rd_i64(r, INT32_MIN, INT32_MAX, &x);
    if (!rc)
        *out = (int32_t)x;
    return rc;
}

static int rd_u32(rd *r, uint32_t *out)
{
    int64_t x;
    int rc = rd_i64(r, 0, UINT32_MAX, &x);
    if (!rc)
        *out = (uint32_t)x;
    return rc;
}

static int rd_u64(rd *r, uint64_t *out)
{
    if (r->i >= r->n || r->v[r->i].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -EPROTO;
    *out = r->v[r->i++].via.u64;
    return 0;
}

static int rd_f32(rd *r, float *out)
{
    if (r->i >= r->n)
        return -EPROTO;
    const msgpack_object *o = &r->v[r->i++];
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        *out = (float)o->via.f64;
    else
        return -EPROTO;
    return 0;
}

static int rd_bin(rd *r, char *dst, size_t cap, uint32_t *len)
{
    if (r->i >= r->n)
        return -EPROTO;
    const msgpack_object *o = &r->v[r->i++];
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > cap)
        return -EPROTO;
    memcpy(dst, o->via.bin.ptr, o->via.bin.size);
    *len = o->via.bin.size;
    return 0;
}

/* A nested array of N_FIELDS-element arrays: returns element count or -EPROTO. */
static int rd_rows(rd *r, uint32_t max_rows, uint32_t n_fields, const msgpack_object **rows)
{
    if (r->i >= r->n)
        return -EPROTO;
    const msgpack_object *o = &r->v[r->i++];
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max_rows)
        return -EPROTO;
    for (uint32_t k = 0; k < o->via.array.size; k++) {
        const msgpack_object *e = &o->via.array.ptr[k];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != n_fields)
            return -EPROTO;
    }
    *rows = o->via.array.ptr;
    return (int)o->via.array.size;
}

static rd rd_row(const msgpack_object *row) { return (rd){row->via.array.ptr, row->via.array.size, 0}; }

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

/* ---- one pack/unpack pair per message type */

static void pack_slot_req(msgpack_packer *p, int32_t slot, uint64_t req_id)
{
    msgpack_pack_int32(p, slot);
    msgpack_pack_uint64(p, req_id);
}

static int unpack_slot_req(rd *r, int32_t *slot, uint64_t *req_id)
{
    TRY(rd_i32(r, slot));
    return rd_u64(r, req_id);
}

static void new_req_pack(msgpack_packer *p, const msg_new_req *m) { pack_slot_req(p, m->slot, m->req_id); }
static int new_req_unpack(rd *r, msg_new_req *m) { return unpack_slot_req(r, &m->slot, &m->req_id); }
static void abort_pack(msgpack_packer *p, const msg_abort *m) { pack_slot_req(p, m->slot, m->req_id); }
static int abort_unpack(rd *r, msg_abort *m) { return unpack_slot_req(r, &m->slot, &m->req_id); }
static void stop_req_pack(msgpack_packer *p, const msg_stop_req *m) { pack_slot_req(p, m->slot, m->req_id); }
static int stop_req_unpack(rd *r, msg_stop_req *m) { return unpack_slot_req(r, &m->slot, &m->req_id); }

static void step_pack(msgpack_packer *p, const msg_step *m)
{
    msgpack_pack_uint64(p, m->step_id);
    msgpack_pack_uint32(p, m->epoch);
    msgpack_pack_array(p, (size_t)m->n_seqs);
    for (int i = 0; i < m->n_seqs; i++) {
        const step_seq *s = &m->seqs[i];
        msgpack_pack_array(p, 4);
        msgpack_pack_int32(p, s->slot);
        msgpack_pack_int32(p, s->n_cached);
        msgpack_pack_int32(p, s->n_new);
        msgpack_pack_int32(p, s->sample);
    }
}

static int step_unpack(rd *r, msg_step *m)
{
    const msgpack_object *rows;
    TRY(rd_u64(r, &m->step_id));
    TRY(rd_u32(r, &m->epoch));
    int n = rd_rows(r, MSG_MAX_SEQS, 4, &rows);
    if (n < 0)
        return n;
    m->n_seqs = n;
    for (int i = 0; i < n; i++) {
        rd e = rd_row(&rows[i]);
        step_seq *s = &m->seqs[i];
        TRY(rd_i32(&e, &s->slot));
        TRY(rd_i32(&e, &s->n_cached));
        TRY(rd_i32(&e, &s->n_new));
        TRY(rd_i32(&e, &s->sample));
    }
    return 0;
}

static void step_done_pack(msgpack_packer *p, const msg_step_done *m)
{
    msgpack_pack_uint64(p, m->step_id);
    msgpack_pack_int32(p, m->status);
    msgpack_pack_uint32(p, m->epoch);
    msgpack_pack_float(p, m->step_ms);
}

static int step_done_unpack(rd *r, msg_step_done *m)
{
    TRY(rd_u64(r, &m->step_id));
    TRY(rd_i32(r, &m->status));
    TRY(rd_u32(r, &m->epoch));
    return rd_f32(r, &m->step_ms);
}

static void worker_ready_pack(msgpack_packer *p, const msg_worker_ready *m)
{
    msgpack_pack_uint32(p, m->epoch);
    msgpack_pack_int32(p, m->n_kv_blocks);
    msgpack_pack_int32(p, m->max_batch_tokens);
    msgpack_pack_uint64(p, m->kv_gen);
}

static int worker_ready_unpack(rd *r, msg_worker_ready *m)
{
    TRY(rd_u32(r, &m->epoch));
    TRY(rd_i32(r, &m->n_kv_blocks));
    TRY(rd_i32(r, &m->max_batch_tokens));
    return rd_u64(r, &m->kv_gen);
}

static void detok_pack(msgpack_packer *p, const msg_detok *m)
{
    msgpack_pack_array(p, (size_t)m->n_seqs);
    for (int i = 0; i < m->n_seqs; i++) {
        const detok_seq *s = &m->seqs[i];
        msgpack_pack_array(p, 4);
        pack_slot_req(p, s->slot, s->req_id);
        msgpack_pack_int32(p, s->n_tokens);
        msgpack_pack_int32(p, s->finish);
    }
}

static int detok_unpack(rd *r, msg_detok *m)
{
    const msgpack_object *rows;
    int n = rd_rows(r, MSG_MAX_SEQS, 4, &rows);
    if (n < 0)
        return n;
    m->n_seqs = n;
    for (int i = 0; i < n; i++) {
        rd e = rd_row(&rows[i]);
        detok_seq *s = &m->seqs[i];
        TRY(unpack_slot_req(&e, &s->slot, &s->req_id));
        TRY(rd_i32(&e, &s->n_tokens));
        TRY(rd_i32(&e, &s->finish));
    }
    return 0;
}

static void text_delta_pack(msgpack_packer *p, const msg_text_delta *m)
{
    pack_slot_req(p, m->slot, m->req_id);
    msgpack_pack_int32(p, m->token_id);
    msgpack_pack_float(p, m->logprob);
    msgpack_pack_int32(p, m->n_out);
    msgpack_pack_int32(p, m->special);
    msgpack_pack_int32(p, m->finish);
    uint32_t n = m->text_len < MSG_TEXT_MAX ? m->text_len : MSG_TEXT_MAX;
    msgpack_pack_bin(p, n);
    msgpack_pack_bin_body(p, m->text, n);
}

static int text_delta_unpack(rd *r, msg_text_delta *m)
{
    TRY(unpack_slot_req(r, &m->slot, &m->req_id));
    TRY(rd_i32(r, &m->token_id));
    TRY(rd_f32(r, &m->logprob));
    TRY(rd_i32(r, &m->n_out));
    TRY(rd_i32(r, &m->special));
    TRY(rd_i32(r, &m->finish));
    return rd_bin(r, m->text, MSG_TEXT_MAX, &m->text_len);
}

static void req_failed_pack(msgpack_packer *p, const msg_req_failed *m)
{
    pack_slot_req(p, m->slot, m->req_id);
    msgpack_pack_int32(p, m->status);
    size_t n = strnlen(m->error, sizeof m->error - 1);
    msgpack_pack_bin(p, n);
    msgpack_pack_bin_body(p, m->error, n);
}

static int req_failed_unpack(rd *r, msg_req_failed *m)
{
    uint32_t n;
    TRY(unpack_slot_req(r, &m->slot, &m->req_id));
    TRY(rd_i32(r, &m->status));
    TRY(rd_bin(r, m->error, sizeof m->error - 1, &n));
    m->error[n] = 0;
    return 0;
}

static void holder_attach_pack(msgpack_packer *p, const msg_holder_attach *m)
{
    msgpack_pack_uint32(p, m->worker_epoch);
    msgpack_pack_int32(p, m->reload);
}

static int holder_attach_unpack(rd *r, msg_holder_attach *m)
{
    TRY(rd_u32(r, &m->worker_epoch));
    return rd_i32(r, &m->reload);
}

static void holder_attached_pack(msgpack_packer *p, const msg_holder_attached *m)
{
    msgpack_pack_int32(p, m->status);
    msgpack_pack_int32(p, m->kind);
    msgpack_pack_uint64(p, m->kv_gen);
    msgpack_pack_int32(p, m->n_kv_blocks);
    msgpack_pack_uint64(p, m->weights_bytes);
    msgpack_pack_uint64(p, m->kv_bytes);
    msgpack_pack_float(p, m->verify_ms);
    msgpack_pack_int32(p, m->reloaded);
    msgpack_pack_bin(p, MSG_IPC_HANDLE_BYTES);
    msgpack_pack_bin_body(p, m->ipc_weights, MSG_IPC_HANDLE_BYTES);
    msgpack_pack_bin(p, MSG_IPC_HANDLE_BYTES);
    msgpack_pack_bin_body(p, m->ipc_kv, MSG_IPC_HANDLE_BYTES);
}

/* A bin of exactly MSG_IPC_HANDLE_BYTES into DST. */
static int rd_handle(rd *r, uint8_t *dst)
{
    uint32_t n;
    TRY(rd_bin(r, (char *)dst, MSG_IPC_HANDLE_BYTES, &n));
    return n == MSG_IPC_HANDLE_BYTES ? 0 : -EPROTO;
}

static int holder_attached_unpack(rd *r, msg_holder_attached *m)
{
    TRY(rd_i32(r, &m->status));
    TRY(rd_i32(r, &m->kind));
    TRY(rd_u64(r, &m->kv_gen));
    TRY(rd_i32(r, &m->n_kv_blocks));
    TRY(rd_u64(r, &m->weights_bytes));
    TRY(rd_u64(r, &m->kv_bytes));
    TRY(rd_f32(r, &m->verify_ms));
    TRY(rd_i32(r, &m->reloaded));
    TRY(rd_handle(r, m->ipc_weights));
    return rd_handle(r, m->ipc_kv);
}

/* ---- dispatch */

static const char *const type_names[MSG_N_TYPES] = {
    "?", "new_req", "abort", "stop_req", "step", "step_done", "worker_ready", "detok",
    "text_delta", "req_failed", "holder_attach", "holder_attached",
};

const char *msg_type_name(int type)
{
    return type > 0 && type < MSG_N_TYPES ? type_names[type] : "?";
}

int msg_pack(msgpack_sbuffer *sb, int type, const void *m)
{
    static const int n_fields[MSG_N_TYPES] = {0, 2, 2, 2, 3, 4, 4, 1, 8, 4, 2, 10};
    if (type <= 0 || type >= MSG_N_TYPES)
        return -EINVAL;
    msgpack_packer p;
    msgpack_packer_init(&p, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&p, 1 + (size_t)n_fields[type]);
    msgpack_pack_int32(&p, type);
    switch (type) {
    case MSG_NEW_REQ: new_req_pack(&p, m); break;
    case MSG_ABORT: abort_pack(&p, m); break;
    case MSG_STOP_REQ: stop_req_pack(&p, m); break;
    case MSG_STEP: step_pack(&p, m); break;
    case MSG_STEP_DONE: step_done_pack(&p, m); break;
    case MSG_WORKER_READY: worker_ready_pack(&p, m); break;
    case MSG_DETOK: detok_pack(&p, m); break;
    case MSG_TEXT_DELTA: text_delta_pack(&p, m); break;
    case MSG_REQ_FAILED: req_failed_pack(&p, m); break;
    case MSG_HOLDER_ATTACH: holder_attach_pack(&p, m); break;
    case MSG_HOLDER_ATTACHED: holder_attached_pack(&p, m); break;
    }
    return 0;
}

/* Big-endian unsigned of N bytes at P. */
static uint64_t be(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = x << 8 | p[i];
    return x;
}

/* 1 if the msgpack data P[0..LEN) declares no more elements or bytes than it holds (each
 * element takes at least one byte). msgpack-c allocates for a container's declared count
 * before reading it: without this check, 5 bytes declaring a map of 2^32 - 1 entries make it
 * ask malloc for about 100 GB. */
static int msgpack_sizes_fit(const uint8_t *p, size_t len)
{
    uint64_t pending = 1; /* objects still to read */
    size_t pos = 0;
    while (pending > 0) {
        if (pos >= len)
            return 0;
        pending--;
        uint8_t b = p[pos++];
        uint64_t n_elems = 0, n_bytes = 0;
        int n_len = 0; /* bytes of a length field */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            ; /* fixint, nil, bool */
        else if (b <= 0x8f)
            n_elems = 2u * (b & 0x0f);
        else if (b <= 0x9f)
            n_elems = b & 0x0f;
        else if (b <= 0xbf)
            n_bytes = b & 0x1f;
        else if (b == 0xc4 || b == 0xd9)
            n_len = 1;
        else if (b == 0xc5 || b == 0xda)
            n_len = 2;
        else if (b == 0xc6 || b == 0xdb)
            n_len = 4;
        else if (b >= 0xc7 && b <= 0xc9) { /* ext 8/16/32: length, type byte, data */
            n_len = 1 << (b - 0xc7);
            n_bytes = 1;
        } else if (b == 0xca || b == 0xcb || (b >= 0xcc && b <= 0xd3))
            n_bytes = b == 0xca ? 4 : b == 0xcb ? 8 : 1u << ((b - 0xcc) & 3);
        else if (b >= 0xd4 && b <= 0xd8) /* fixext: type byte and 1..16 bytes */
            n_bytes = 1 + (1u << (b - 0xd4));
        else if (b >= 0xdc) /* array 16/32, map 16/32: the count follows */
            n_len = b & 1 ? 4 : 2;
        else
            return 0; /* 0xc1: never used */
        if (n_len) {
            if (len - pos < (size_t)n_len)
                return 0;
            uint64_t v = be(p + pos, n_len);
            pos += (size_t)n_len;
            if (b >= 0xdc)
                n_elems = b >= 0xde ? 2 * v : v;
            else
                n_bytes += v;
        }
        if (n_bytes > len - pos)
            return 0;
        pos += (size_t)n_bytes;
        pending += n_elems;
        if (pending > len - pos)
            return 0;
    }
    return 1;
}

int msg_unpack(const void *data, size_t len, msg_any *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -EPROTO;
    if (!msgpack_sizes_fit(data, len) ||
        msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        goto done;
    if (u.data.type != MSGPACK_OBJECT_ARRAY)
        goto done;
    rd r = {u.data.via.array.ptr, u.data.via.array.size, 0};
    if (rd_i32(&r, &out->type))
        goto done;
    switch (out->type) {
    case MSG_NEW_REQ: rc = new_req_unpack(&r, &out->u.new_req); break;
    case MSG_ABORT: rc = abort_unpack(&r, &out->u.abort); break;
    case MSG_STOP_REQ: rc = stop_req_unpack(&r, &out->u.stop_req); break;
    case MSG_STEP: rc = step_unpack(&r, &out->u.step); break;
    case MSG_STEP_DONE: rc = step_done_unpack(&r, &out->u.step_done); break;
    case MSG_WORKER_READY: rc = worker_ready_unpack(&r, &out->u.worker_ready); break;
    case MSG_DETOK: rc = detok_unpack(&r, &out->u.detok); break;
    case MSG_TEXT_DELTA: rc = text_delta_unpack(&r, &out->u.text_delta); break;
    case MSG_REQ_FAILED: rc = req_failed_unpack(&r, &out->u.req_failed); break;
    case MSG_HOLDER_ATTACH: rc = holder_attach_unpack(&r, &out->u.holder_attach); break;
    case MSG_HOLDER_ATTACHED: rc = holder_attached_unpack(&r, &out->u.holder_attached); break;
    default: rc = -EPROTO;
    }
    if (!rc && r.i != r.n)
        rc = -EPROTO; /* trailing fields */
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}
