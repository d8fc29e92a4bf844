/* backend.h - what the worker process needs from a compute backend (reference CPU, CUDA).
 *
 * A backend loads the model, owns the paged KV cache, and runs one forward pass over a mixed
 * batch of prefill chunks and decodes, then samples the next token of every sequence that asks.
 * KV layout is the backend's business, addressed by block ids: token t of a sequence lives in
 * block block_table[t / block_size] at offset t % block_size.
 * Plain C that C++ can include too (the CUDA engine takes fwd_seq records as they are).
 */
#ifndef CINDER_BACKEND_H
#define CINDER_BACKEND_H

#include <stdint.h>
#include <stddef.h>
#include "../common/model_config.h"
#include "../common/msg.h"
#include "../common/sampling_params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *backend;    /* auto (CUDA when the build and the machine have it), cpu, cuda */
    const char *model_dir;
    int dummy_weights;      /* 1: random weights from config.json alone (--load-format dummy) */
    int block_size;         /* from the store header */
    int max_seq_len;        /* from the store header */
    int max_batch_tokens;   /* most tokens one forward carries */
    int max_seqs;           /* most sequences one forward carries */
    int64_t kv_tokens;      /* KV capacity asked for in tokens; 0 = size it from free memory */
    float mem_util;         /* fraction of device memory to use (CUDA) */
    int n_threads;          /* CPU threads (CPU backend); 0 = all cores */
    /* CUDA backend (worker flags --dtype, --enforce-eager, --gemv-max-tokens, --gemv-warps,
       --pdl, --prefill-attn); zero selects each default */
    int fp16;               /* 1: fp16 weights and activations instead of bf16 */
    int no_graphs;          /* 1: run decode batches eagerly, no CUDA graphs */
    int gemv_max_tokens;    /* decode batches up to this many tokens take the fused GEMV path
                               (0: the default, 8; -1: never) */
    int gemv_warps;         /* GEMV launch width, warps a multiprocessor (0: 16) */
    int pdl;                /* early-launch sites: bit 0 the GEMVs, bit 1 decode attention
                               (0: the default, GEMVs only; -1: none) */
    int portable_attn;      /* 1: the portable prefill attention kernel everywhere
                               (--prefill-attn portable); 0: the Hopper one where it applies */
    int quant_fp8;          /* --quantization fp8: FP8 projections (fp8_config.h) */
    int kv_fp8;             /* --kv-cache-dtype fp8: an E4M3 KV cache */
    /* attached to a holder (hold.h): the weights and the KV cache are its, not loaded nor
       allocated; NULL: the backend's own */
    const msg_holder_attached *hold;
    const char *hold_region;  /* the CPU holder's shared-memory region */
} backend_opts;

#define FWD_MAX_TOP_LOGPROBS 20    /* most top logprobs a backend returns per sample */

typedef struct {
    int32_t slot;
    int32_t n_cached;              /* tokens already in the KV cache */
    int32_t n_new;                 /* tokens[n_cached .. n_cached+n_new) run now */
    int32_t sample;                /* 1: sample after the last new token */
    const int32_t *tokens;         /* [n_cached + n_new] the sequence so far (shared memory) */
    int32_t n_prompt;              /* tokens[0..n_prompt) are the prompt: frequency/presence
                                      penalties count only the tokens after (0: count all) */
    const int32_t *block_table;    /* [ceil((n_cached + n_new) / block_size)] */
    const sampling_params *params;
    const int32_t *suppress;       /* [n_suppress] ids not to sample now (min_tokens: EOS and
                                      the stop token ids until enough tokens are out) */
    int32_t n_suppress;
    int32_t out_token;             /* set by forward when sample = 1 */
    float out_logprob;             /* raw log-probability of out_token (sampling.h) */
    int32_t *out_top_ids;          /* [params->n_top_logprobs] when that is > 0: set by forward */
    float *out_top_lps;            /* (sample = 1) to the most likely ids and their raw logprobs */
} fwd_seq;

typedef struct {
    int n_seqs;
    fwd_seq *seqs;                 /* [n_seqs] */
} fwd_batch;

typedef struct backend backend;
struct backend {
    const char *name;
    model_config cfg;
    int n_kv_blocks;               /* KV capacity, set by init */
    int (*forward)(backend *b, fwd_batch *batch); /* 0 or negative */
    /* Logits of the last forward for sequence I that sampled, [vocab], for tests; may be NULL. */
    const float *(*last_logits)(backend *b, int i);
    void (*free)(backend *b);
};

/* What a backend can take in one forward. */
typedef struct {
    int max_seqs, max_tokens, max_ctx, vocab_size, block_size, n_kv_blocks;
} fwd_limits;

/* Checks every count, token and block index BATCH will use against L; 0, or -EINVAL
 * (logged, prefixed with WHO) so a bad step fails cleanly instead of touching bad memory. */
int fwd_batch_check(const fwd_batch *batch, const fwd_limits *l, const char *who);

/* The backend's flags, for the worker and the holder (getopt_long entries, val 'X') and the
 * forward benchmark: NAME without "--", VALUE its argument (ignored by --enforce-eager).
 * 1: applied; 0: not one of them; -1: a bad value (said on stderr). --gemv-max-tokens 0 and
 * --pdl 0 turn them off. */
#define BACKEND_OPTIONS                                                                         \
    {"backend", 1, 0, 'X'}, {"kv-tokens", 1, 0, 'X'}, {"max-batch-tokens", 1, 0, 'X'},          \
    {"threads", 1, 0, 'X'}, {"gpu-memory-utilization", 1, 0, 'X'}, {"load-format", 1, 0, 'X'},  \
    {"dtype", 1, 0, 'X'}, {"enforce-eager", 0, 0, 'X'}, {"gemv-max-tokens", 1, 0, 'X'},         \
    {"gemv-warps", 1, 0, 'X'}, {"pdl", 1, 0, 'X'}, {"prefill-attn", 1, 0, 'X'},                 \
    {"quantization", 1, 0, 'X'}, {"kv-cache-dtype", 1, 0, 'X'}
int backend_opts_parse(backend_opts *o, const char *name, const char *value);
extern const char backend_opts_usage[];   /* those flags, for usage lines */
/* The defaults (auto backend, 2048 tokens a step, 90% of the GPU's memory). */
void backend_opts_init(backend_opts *o);
/* The limits every process takes from the store header: block size, context, and the most
 * sequences one step can carry (N_SLOTS, at most MSG_MAX_SEQS). */
void backend_opts_layout(backend_opts *o, int block_size, int max_seq_len, int n_slots);

/* Each returns NULL with a message in ERR on failure. */
backend *cpu_backend_init(const backend_opts *o, char *err, size_t n_err);
backend *cuda_backend_init(const backend_opts *o, char *err, size_t n_err);

/* MoE tests (test_backend_diff): the experts the CPU backend chose in its last forward,
 * ids[(l * max_batch_tokens + t) * n_experts_used + j] for layer l, token t of the batch in
 * batch order (seqs[0]'s new tokens first), choice j in the router's order; NULL for a dense
 * model or another backend. */
const int32_t *cpu_backend_routing(backend *b);

#ifdef __cplusplus
}
#endif

#endif
