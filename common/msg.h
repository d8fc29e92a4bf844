/* msg.h - every message the processes exchange over ZeroMQ: one plain C struct per type.
 *
 * Messages carry slot indices and counts; token IDs stay in the shared-memory store
 * (common/store.h). On the wire a message is one msgpack array whose first element is the
 * type: [type, field, field, ...]. Each type has a pack/unpack pair in msg.c.
 *
 *   tokenizer   -> router       NEW_REQ, ABORT
 *   detokenizer -> router       STOP_REQ (a stop string matched)
 *   router      -> worker       STEP
 *   worker      -> router       STEP_DONE, WORKER_READY
 *   router      -> detokenizer  DETOK
 *   detokenizer -> tokenizer    TEXT_DELTA
 *   router      -> tokenizer    REQ_FAILED (request could not be served; no text will come)
 *   worker      -> holder       HOLDER_ATTACH (request: the one REQ/REP pair, holder.ipc)
 *   holder      -> worker       HOLDER_ATTACHED (reply: where the weights and the KV cache are)
 */
#ifndef CINDER_MSG_H
#define CINDER_MSG_H

#include <msgpack.h>
#include <stdint.h>

#define MSG_MAX_SEQS 1024   /* sequences in one STEP or DETOK */
#define MSG_TEXT_MAX 4096   /* bytes of text in one TEXT_DELTA */

enum msg_type {
    MSG_NEW_REQ = 1,
    MSG_ABORT,
    MSG_STOP_REQ,
    MSG_STEP,
    MSG_STEP_DONE,
    MSG_WORKER_READY,
    MSG_DETOK,
    MSG_TEXT_DELTA,
    MSG_REQ_FAILED,
    MSG_HOLDER_ATTACH,
    MSG_HOLDER_ATTACHED,
    MSG_N_TYPES
};

typedef struct { int32_t slot; uint64_t req_id; } msg_new_req;   /* prompt is in the slot */
typedef struct { int32_t slot; uint64_t req_id; } msg_abort;     /* client went away */
typedef struct { int32_t slot; uint64_t req_id; } msg_stop_req;  /* stop string seen */

typedef struct {
    int32_t slot;
    int32_t n_cached; /* tokens of this sequence already in the KV cache */
    int32_t n_new;    /* tokens[n_cached .. n_cached+n_new) are run in this step */
    int32_t sample;   /* 1: sample a token after the last one (decode, or last prefill chunk) */
} step_seq;

typedef struct {
    uint64_t step_id;
    uint32_t epoch;    /* router epoch that built it: a worker drops steps of a dead router */
    int32_t n_seqs;
    step_seq seqs[MSG_MAX_SEQS];
} msg_step;

typedef struct {
    uint64_t step_id;
    int32_t status;    /* 0, or negative: the step failed and its sequences must be failed */
    uint32_t epoch;    /* worker epoch that ran it */
    float step_ms;     /* worker time for the step */
} msg_step_done;

typedef struct {
    uint32_t epoch;       /* worker (re)start count, from the store header */
    int32_t n_kv_blocks;  /* KV capacity */
    int32_t max_batch_tokens; /* most tokens one step may carry */
    uint64_t kv_gen;      /* the holder's KV generation the worker attached to (see
                             msg_holder_attached); 0: the worker's own KV, new with it */
} msg_worker_ready;

typedef struct {
    int32_t slot;
    uint64_t req_id;
    int32_t n_tokens; /* tokens now valid in the slot */
    int32_t finish;   /* finish_reason, FINISH_NONE while running */
} detok_seq;

typedef struct {
    int32_t n_seqs;
    detok_seq seqs[MSG_MAX_SEQS];
} msg_detok;

typedef struct {
    int32_t slot;
    uint64_t req_id;
    int32_t token_id;  /* the token this delta belongs to; -1 for a final flush */
    float logprob;
    int32_t n_out;     /* output tokens so far */
    int32_t special;   /* 1 if token_id is a special token */
    int32_t finish;    /* finish_reason; nonzero on the last delta of a request */
    uint32_t text_len;
    char text[MSG_TEXT_MAX];
} msg_text_delta;

typedef struct {
    int32_t slot;
    uint64_t req_id;
    int32_t status;    /* HTTP-like status to report */
    char error[256];
} msg_req_failed;

typedef struct {
    uint32_t worker_epoch; /* the worker asking (its epoch in the store) */
    int32_t reload;        /* 1: load the weights from disk again first (--reload-weights) */
} msg_holder_attach;

#define MSG_IPC_HANDLE_BYTES 64   /* a cudaIpcMemHandle_t */
enum hold_kind { HOLD_CPU_F32 = 1, HOLD_CUDA_BF16, HOLD_CUDA_F16 };

typedef struct {
    int32_t status;        /* 0, or negative: the holder cannot serve (its log says why) */
    int32_t kind;          /* hold_kind: the backend and element type of both regions */
    uint64_t kv_gen;       /* generation of the KV contents: holder epoch << 32 | weight
                              loads; the same value means the KV a worker left is still valid */
    int32_t n_kv_blocks;   /* KV capacity in blocks */
    uint64_t weights_bytes, kv_bytes; /* sizes of the weights and of K and V together */
    float verify_ms;       /* the weights digest check before this attach; -1: none (first) */
    int32_t reloaded;      /* 1: the weights were loaded again for this attach (asked for, or
                              the digest did not match) */
    uint8_t ipc_weights[MSG_IPC_HANDLE_BYTES]; /* CUDA: the handles of the two allocations */
    uint8_t ipc_kv[MSG_IPC_HANDLE_BYTES];      /* (K, then V); zero on the CPU */
} msg_holder_attached;

/* Any message, tagged by type. Large (the STEP array): keep it off small stacks. */
typedef struct {
    int32_t type;
    union {
        msg_new_req new_req;
        msg_abort abort;
        msg_stop_req stop_req;
        msg_step step;
        msg_step_done step_done;
        msg_worker_ready worker_ready;
        msg_detok detok;
        msg_text_delta text_delta;
        msg_req_failed req_failed;
        msg_holder_attach holder_attach;
        msg_holder_attached holder_attached;
    } u;
} msg_any;

/* Packs message M of TYPE into SB (which the caller inits/destroys); 0 or negative. */
int msg_pack(msgpack_sbuffer *sb, int type, const void *m);
/* Unpacks DATA into OUT; 0, or negative on malformed input (never aborts). */
int msg_unpack(const void *data, size_t len, msg_any *out);
const char *msg_type_name(int type);

#endif
