/* store.h - the shared-memory request store that all four processes map.
 *
 * One POSIX shared-memory region, created by `shm-tool create` at launch and removed at stop,
 * so it survives the restart of any single process. Layout:
 *
 *   [store_hdr][slot 0][slot 1]...[slot n_slots-1]
 *   slot = [slot_hdr][tokens:   int32 x max_seq_len]     prompt tokens then output tokens
 *                    [logprobs: float x max_seq_len]     logprob of each sampled token
 *                    [top_ids:  int32 x max_seq_len x n_top_logprobs] the most likely tokens at
 *                    [top_lps:  float x max_seq_len x n_top_logprobs] each output position and
 *                                                        their logprobs (only for requests that ask)
 *                    [blocks:   int32 x max_blocks_per_seq] KV block table of the request
 *
 * Every size is in the header; no process takes a size from its own flags. Every field of a
 * slot header is written by exactly one process, named in its comment; counters that another
 * process reads are _Atomic and published with release / read with acquire ordering.
 */
#ifndef CINDER_STORE_H
#define CINDER_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "sampling_params.h"

#define STORE_MAGIC 0x315245444e4943ULL /* "CINDER1" */
#define STORE_VERSION 7
#define STORE_STOP_BYTES 512  /* stop strings, NUL-separated */
#define STORE_PENDING_BYTES 512 /* detokenizer text held back (stop-string prefix, partial UTF-8) */
#define STORE_MAX_STOP_IDS 16   /* stop token ids per request, besides the model's EOS ids */
#define STORE_ERROR_BYTES 160   /* why the router ended a request with FINISH_ERROR */
#define STORE_TOP_LOGPROBS 20   /* top logprobs kept per output token (OpenAI's top_logprobs limit);
                                   the header's n_top_logprobs, which processes read */

/* PROC_HOLDER: the holder of the weights and the KV cache (holder/main.c), in launches
 * whose store says with_holder. */
enum proc_id { PROC_TOKENIZER, PROC_ROUTER, PROC_WORKER, PROC_DETOKENIZER, PROC_HOLDER, N_PROC };
extern const char *const proc_names[N_PROC];

enum slot_state { SLOT_FREE = 0, SLOT_ACTIVE = 1 };

enum finish_reason { FINISH_NONE = 0, FINISH_LENGTH, FINISH_STOP, FINISH_ABORT, FINISH_ERROR };
extern const char *const finish_names[]; /* "", "length", "stop", "abort", "error" */

typedef struct {
    /* written by the tokenizer */
    _Atomic uint32_t state;       /* slot_state; FREE -> ACTIVE on accept, ACTIVE -> FREE when answered */
    _Atomic uint64_t req_id;      /* unique per request; messages carry it to reject stale ones
                                     (atomic: the tokenizer's receiver thread reads it while a
                                     handler thread takes the slot for a new request) */
    sampling_params params;
    int32_t n_prompt;             /* prompt tokens in tokens[0..n_prompt) */
    int32_t n_stop;               /* stop strings in stop[] */
    char stop[STORE_STOP_BYTES];  /* n_stop NUL-terminated strings back to back */
    int32_t n_stop_ids;           /* token ids in stop_ids[] that end the request */
    int32_t stop_ids[STORE_MAX_STOP_IDS];
    uint8_t include_stop_str;     /* the detokenizer keeps a matched stop string in the text */
    uint8_t keep_special;         /* the detokenizer writes special tokens' text (vLLM's
                                     skip_special_tokens = false) */
    _Atomic int32_t n_delivered;  /* output tokens whose text delta reached the tokenizer: a
                                     restarted detokenizer resends from there */
    /* written by the tokenizer when it fills the slot (n_prompt), then by the worker */
    _Atomic int32_t n_tokens;     /* valid tokens in tokens[]: n_prompt + generated */
    /* written by the router */
    _Atomic int32_t n_blocks;     /* valid entries in the block table */
    _Atomic int32_t finish;       /* finish_reason once the router ended the request */
    int32_t error_status;         /* with FINISH_ERROR: the HTTP status to answer (written
                                     before finish is published) */
    char error[STORE_ERROR_BYTES]; /* with FINISH_ERROR: the message, NUL-terminated */
    _Atomic int32_t n_prompt_cached; /* prompt tokens taken from the prefix cache at the
                                        request's first admission (0 until then; OpenAI's
                                        usage.prompt_tokens_details.cached_tokens) */
    /* also written by the router: when the request reached each stage, CLOCK_MONOTONIC us
       (now_us(): one clock for every process of the host), 0 until it did; reset when it
       queues the request; the tokenizer reads them after the final delta (/metrics' queue,
       prefill and decode times) */
    _Atomic uint64_t t_queued_us;    /* the router queued it (NEW_REQ) */
    _Atomic uint64_t t_scheduled_us; /* first admitted to the running batch */
    _Atomic uint64_t t_first_token_us; /* its first output token came back from the worker */
    _Atomic uint64_t t_last_token_us;  /* its latest output token came back */
    /* written by the detokenizer */
    _Atomic uint64_t detok_req_id; /* request the fields below belong to (resume after restart) */
    _Atomic int32_t detok_prefix; /* token offset where the last decode window starts */
    _Atomic int32_t detok_read;   /* tokens already turned into text (sent or pending) */
    _Atomic int32_t detok_seen;   /* tokens whose delta was sent (text may be held back) */
    _Atomic int32_t n_pending;    /* bytes in pending[] */
    _Atomic int32_t detok_done;   /* 1 once the final text delta was sent */
    _Atomic int32_t stop_hit;     /* 1 once a stop string matched: later text is dropped */
    char pending[STORE_PENDING_BYTES];
} slot_hdr;

typedef struct {
    /* written once by shm-tool at creation */
    uint64_t magic;
    uint32_t version;
    uint32_t n_slots;
    uint32_t max_seq_len;         /* tokens per slot: prompt + output */
    uint32_t block_size;          /* KV tokens per block */
    uint32_t max_blocks_per_seq;  /* ceil(max_seq_len / block_size) */
    uint32_t vocab_size;
    uint32_t n_top_logprobs;      /* entries per position in top_ids / top_lps */
    uint64_t slot_bytes;          /* bytes per slot, header and arrays, 64-byte aligned */
    uint64_t total_bytes;
    int32_t launcher_pid;         /* launch.sh in the foreground: every process stops once it is
                                     gone (0: --detach, nothing to follow) */
    uint64_t launcher_start;      /* its start time (field 22 of /proc/PID/stat): a later
                                     process that reuses the pid is not taken for it */
    uint32_t with_holder;         /* 1: a holder process owns the weights and the KV cache and
                                     the worker attaches to it (store_holder_name); 0: the
                                     worker allocates and loads them itself */
    /* written by each process about itself, index proc_id */
    _Atomic uint64_t hb_ms[N_PROC];  /* CLOCK_MONOTONIC ms of its last heartbeat */
    _Atomic int32_t pid[N_PROC];
    _Atomic uint32_t epoch[N_PROC];  /* incremented at every (re)start */
    /* written by the worker */
    _Atomic int32_t n_kv_blocks;     /* KV capacity in blocks, once loaded */
    _Atomic uint64_t n_worker_steps; /* steps run */
    _Atomic uint64_t step_busy_us;   /* time inside steps */
    _Atomic uint64_t step_gap_us;    /* idle time between a step's end and the next step's
                                        start, summed over gaps under 100 ms (queued work) */
    _Atomic uint64_t n_step_gaps;    /* gaps counted in step_gap_us */
    /* written by the router (for /metrics and tests) */
    _Atomic int32_t n_waiting;       /* requests queued */
    _Atomic int32_t n_running;       /* requests in the running batch */
    _Atomic int32_t n_free_blocks;   /* KV blocks free */
    _Atomic int32_t kv_limit_blocks; /* KV blocks the router may use */
    _Atomic uint64_t n_preempted;    /* requests preempted (recomputed later) */
    _Atomic int32_t n_cached_blocks; /* KV blocks in the prefix cache (held or evictable) */
    _Atomic uint64_t prefix_queries; /* prompt tokens of requests at their first admission */
    _Atomic uint64_t prefix_hits;    /* of them, tokens taken from the prefix cache */
    _Atomic uint32_t worker_serving; /* epoch of the worker whose capacity the router took
                                        (0: none; /health is 503 unless it is the running one) */
    _Atomic uint64_t n_worker_restarts;  /* workers that came back after one was lost */
    _Atomic uint64_t n_resumed;      /* running requests that went on after a worker restart
                                        from their completed KV positions (no recompute) */
    _Atomic uint64_t n_recomputed_tokens; /* completed KV positions a worker restart lost
                                        (the KV did not survive) and that are computed again */
    /* written by the tokenizer */
    _Atomic uint64_t next_req_id;
} store_hdr;

typedef struct {
    store_hdr *hdr;
    size_t map_bytes;
    char name[128];
} store;

typedef struct {
    uint32_t n_slots, max_seq_len, block_size, vocab_size;
    int32_t launcher_pid;     /* 0: none */
    uint64_t launcher_start;
    uint32_t with_holder;
} store_layout;

/* Creates (or replaces) the region NAME; 0 or -errno. */
int store_create(store *s, const char *name, const store_layout *l);
/* Maps an existing region, checking magic and version; 0 or negative. */
int store_open(store *s, const char *name);
void store_close(store *s);
int store_unlink(const char *name);
/* The name of the shared-memory region that the holder of store NAME keeps the weights and
 * the KV cache in (CPU backend): NAME with ".hold" appended; 0, or -ENAMETOOLONG. */
int store_holder_name(const char *name, char *out, size_t n);

static inline slot_hdr *store_slot(const store *s, int i)
{
    return (slot_hdr *)((char *)s->hdr + sizeof(store_hdr) + (size_t)i * s->hdr->slot_bytes);
}
static inline int32_t *slot_tokens(const store *s, int i)   /* [max_seq_len] */
{
    return (int32_t *)((char *)store_slot(s, i) + sizeof(slot_hdr));
}
static inline float *slot_logprobs(const store *s, int i)   /* [max_seq_len] */
{
    return (float *)(slot_tokens(s, i) + s->hdr->max_seq_len);
}
/* The top logprobs of the token at position POS (an output position): the ids and their
 * logprobs, most likely first; written by the worker before it publishes n_tokens past POS,
 * for requests whose params.n_top_logprobs > 0 (that many entries). */
static inline int32_t *slot_top_ids(const store *s, int i, int pos)   /* [n_top_logprobs] */
{
    return (int32_t *)(slot_logprobs(s, i) + s->hdr->max_seq_len) + (size_t)pos * s->hdr->n_top_logprobs;
}
static inline float *slot_top_lps(const store *s, int i, int pos)     /* [n_top_logprobs] */
{
    return (float *)(slot_top_ids(s, i, (int)s->hdr->max_seq_len)) + (size_t)pos * s->hdr->n_top_logprobs;
}
static inline int32_t *slot_blocks(const store *s, int i)   /* [max_blocks_per_seq] */
{
    return (int32_t *)slot_top_lps(s, i, (int)s->hdr->max_seq_len);
}

#define STORE_BEAT_MS 100   /* each process stamps its heartbeat this often */
#define STORE_SLOW_MS 1000  /* /health turns 503 when a process is silent this long */
#define STORE_HUNG_MS 5000  /* a process silent this long is treated as dead, not just busy
                               (under full load a loop can be starved for a while) */

/* Records this process's pid and bumps its epoch; heartbeat stamps hb_ms and, when the store
 * names a launcher that is gone, sends this process SIGTERM (once): every process stops as
 * on a plain SIGTERM, then calls store_orphan_cleanup. */
void store_register(store *s, int proc);
void store_heartbeat(store *s, int proc);
/* Reads /proc/PID/stat into BUF[N] and points *FIELDS past "pid (comm) " (comm may hold
 * anything), at field 3, the state letter ('Z' a zombie): 0, -errno, or -EPROTO when malformed. */
int proc_stat_read(int pid, char *buf, size_t n, const char **fields);
/* The start time of process PID (field 22 of /proc/PID/stat, clock ticks after boot); 0 or
 * -errno (-ESRCH also for a zombie). */
int proc_start_time(int pid, uint64_t *start);
/* The launcher the store names is no longer running (always 0 without one). */
int store_launcher_gone(const store *s);
/* 1 once this process stopped itself because its launcher was gone. */
int store_orphaned(void);
/* After such a stop: removes the shared memory (the store and the holder's region) and RUN_DIR/NAME.pid if it still names this
 * process (the router removes every pid file of the launch: nothing is left to stop). */
void store_orphan_cleanup(const store *s, const char *run_dir, int proc);
/* Stamps PROC's heartbeat every STORE_BEAT_MS from a thread of its own, for a process whose
 * loop can be busy longer than that (the worker inside a long step). 0 or negative. */
int store_heartbeat_thread(store *s, int proc);
/* Stops that thread (before the store is unmapped: it writes there); no-op without one. */
void store_heartbeat_stop(void);
/* PROC's process exists (all run on this host): a crash is seen at once. */
int store_running(const store *s, int proc);
/* Running and beat within STORE_SLOW_MS: healthy. */
int store_alive(const store *s, int proc);
/* Not running, or silent past STORE_HUNG_MS: its peers act as if it were dead. */
int store_gone(const store *s, int proc);

uint64_t now_ms(void); /* CLOCK_MONOTONIC */
uint64_t now_us(void);

#endif
