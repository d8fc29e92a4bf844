/* serving.h - the serving benchmark client (build/bin/bench-serving), after vLLM's
 * benchmark_serving: a workload of prompts (serving_data.c) sent over many concurrent HTTP
 * streams on one libuv thread (serving_client.c, serving_backend.c, serving_http.c), each
 * request timed (TTFT, inter-token gaps, end to end), then summarized (serving_stats.c) and
 * reported as a table, JSON and a rate-sweep plot (serving_report.c).
 */
#ifndef CINDER_SERVING_H
#define CINDER_SERVING_H

#include <stdint.h>

#include "../common/tok/tok.h"
#include "serving_http.h"

/* ---- random numbers: splitmix64, seeded, the same sequence on every machine */
typedef struct {
    uint64_t s;
} sv_rng;

static inline uint64_t sv_rng_u64(sv_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* uniform in [0, 1) */
static inline double sv_rng_uniform(sv_rng *r) { return (double)(sv_rng_u64(r) >> 11) * 0x1.0p-53; }
/* uniform integer in [LO, HI] */
static inline int sv_rng_int(sv_rng *r, int lo, int hi)
{
    return lo + (int)(sv_rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* ---- the workload */
typedef struct {
    char *prompt;       /* NUL-terminated text sent as is */
    int prompt_len;     /* its tokens as the server counts them (with BOS if the tokenizer adds one) */
    int output_len;     /* tokens requested (max_new_tokens / max_tokens, with ignore_eos) */
    int after;          /* multi-turn: 1 + the index of the request whose answer must come
                           first (an earlier one); 0: none */
} sv_prompt;

typedef struct {
    sv_prompt *v;
    int n;
} sv_dataset;

typedef struct {
    const char *name;        /* "sharegpt", "instruction", "random", "prefix_repetition" or
                                "multiturn" */
    const char *path;        /* the JSON file (sharegpt, instruction) */
    int num_prompts;
    uint64_t seed;
    int output_len;          /* when a record has no reply (0: such records are skipped) */
    int fixed_output_len;    /* > 0: every request asks for this many, whatever the reply */
    int min_len;             /* filters (sharegpt, instruction): prompt and reply >= min_len, */
    int max_prompt_len;      /* prompt <= max_prompt_len, */
    int max_total_len;       /* prompt + output <= max_total_len */
    int random_input_len, random_output_len;
    double random_range_ratio; /* lengths uniform in [len * (1 - r), len * (1 + r)] */
    /* prefix_repetition (vLLM's names): num_prefixes random prefixes of prefix_len tokens,
       each shared by num_prompts / num_prefixes requests with random suffixes */
    int prefix_len, suffix_len, num_prefixes, prefix_output_len;
    int turns;               /* multiturn: turns per conversation */
} sv_data_cfg;

/* Loads the workload of CFG, token counts by TOK. 0, or -1 with a message in ERR. */
int sv_data_load(const sv_data_cfg *cfg, const tok *t, sv_dataset *d, char *err, size_t n_err);
void sv_data_free(sv_dataset *d);

/* /metrics' prefix cache counters (cinder's, or vLLM's vllm:prefix_cache_*): 0, or -1 when
 * the server has none (or cannot be reached). A blocking GET, outside the timed run. */
int sv_prefix_counters(const char *host, int port, double *queries, double *hits);

/* Arrival times (ms from the start) of N requests: a gamma process of RATE requests/s
 * (BURSTINESS 1 = Poisson; smaller is burstier), all 0 when RATE is infinite. */
void sv_arrivals(int n, double rate, double burstiness, uint64_t seed, double *t_ms);

/* ---- the servers' APIs */
typedef enum { SV_CINDER, SV_OPENAI, SV_OPENAI_CHAT } sv_backend;

typedef struct {
    sv_backend backend;
    const char *model;       /* OpenAI's "model" */
    const char *path;        /* the URL path requests go to (sv_backend_path's, or --endpoint) */
    const char *api_key;     /* sent as "Authorization: Bearer KEY" (OPENAI_API_KEY); NULL: none */
    int ignore_eos;
    double temperature;      /* < 0: greedy (temperature 0) */
    double top_p;            /* 0: the server's default */
    int top_k;               /* 0: the server's default */
} sv_req_opts;

int sv_backend_parse(const char *name, sv_backend *b); /* 0, or -1 for an unknown name */
const char *sv_backend_name(sv_backend b);
const char *sv_backend_path(sv_backend b); /* the default path of B's requests */
/* The JSON body asking for P's completion, streamed; malloc'd. */
char *sv_backend_body(const sv_req_opts *o, const sv_prompt *p);

/* What one server-sent event said. */
typedef struct {
    int output;              /* carries generated output: a timing point (first token or a gap) */
    int n_tokens;            /* tokens it stands for (cinder: one event per token) */
    int end;                 /* the stream's last event (cinder "finished", OpenAI [DONE]) */
    int usage_out;           /* OpenAI usage.completion_tokens / cinder count_output_tokens, or -1 */
    char finish[16];         /* finish_reason when given */
    char error[160];         /* an error the server sent in the stream */
} sv_event;

/* Parses the DATA (N bytes) of one event in B's format into EV, appending generated text to
 * TEXT. 0 (EV->error set when the server reported an error), or -1 when it is not what B
 * sends (EV->error says why). */
int sv_backend_event(sv_backend b, const char *data, size_t n, sv_event *ev, sv_buf *text);

/* ---- one request's outcome */
typedef struct {
    int ok;                  /* HTTP 200, a complete stream, at least one token */
    double start_ms;         /* when it was sent, from the start of the run */
    double ttft_ms, e2e_ms;  /* first output, last byte; from the send */
    int n_out;               /* output tokens (see sv_client_cfg) */
    int n_events;            /* events with output */
    double *itl_ms;          /* [n_events - 1] gaps between consecutive output events */
    int cap_itl;
    sv_buf text;             /* generated text */
    char finish[16];
    char err[200];
} sv_outcome;

void sv_outcome_free(sv_outcome *o);

/* ---- the client */
typedef struct {
    sv_req_opts req;
    const char *host;
    int port;
    double request_rate;     /* requests/s; INFINITY sends all at once */
    double burstiness;
    int max_concurrency;     /* 0: no limit */
    uint64_t seed;
    double timeout_s;        /* a request still open after this fails; 0: no limit */
    int progress;            /* draw a progress bar on stderr */
    const tok *tok;          /* OpenAI without usage: output tokens = encode(text) */
} sv_client_cfg;

/* Runs the benchmark: sends every prompt of D, each at its arrival time, once fewer than
 * max_concurrency are in flight. Fills OUT[d->n] and *DURATION_S (first send to last
 * answer). 0, or -1 with ERR when it cannot run at all (e.g. the host does not resolve). */
int sv_client_run(const sv_client_cfg *cfg, const sv_dataset *d, sv_outcome *out, double *duration_s,
                  char *err, size_t n_err);

/* ---- figures */
#define SV_MAX_PCT 8

typedef struct {
    double mean, std, median, p90, p99;   /* ms */
    double pct[SV_MAX_PCT];               /* at sv_stats_cfg's percentiles */
} sv_dist;

/* What sv_summarize computes besides the fixed figures (vLLM's --metric-percentiles and
 * --goodput). */
typedef struct {
    int n_pct;
    double pcts[SV_MAX_PCT];              /* percentiles, 0..100 */
    double slo_ttft_ms, slo_tpot_ms, slo_e2el_ms; /* a request meeting every one set (> 0) is good */
} sv_stats_cfg;

typedef struct {
    int n_requests, completed, failed;
    double duration_s;
    long long total_input, total_output;
    double request_tput, output_tput, total_tput; /* per second */
    int max_concurrent;                           /* most requests in flight at once */
    double prefix_queries, prefix_hits;           /* the server's prefix cache counters over the
                                                     run (prompt tokens); -1: not reported */
    int good_completed;                           /* requests meeting every SLO (with --goodput) */
    double request_goodput;                       /* of them, per second; -1: no SLO given */
    sv_dist ttft, tpot, itl, e2el;
} sv_summary;

/* The P-th percentile (0..100) of the N sorted values, interpolated as numpy's default. */
double sv_percentile(const double *sorted, int n, double p);
/* Mean, std, median, p90, p99 of V[N] (sorts V in place); all 0 when N is 0. */
void sv_dist_of(double *v, int n, sv_dist *d);
/* Summarizes one run (as vLLM: throughputs and token totals over completed requests;
 * TPOT = (e2e - ttft) / (n_out - 1) over requests with more than one token; ITL over every
 * gap of every completed request; goodput: completed requests whose TTFT, TPOT (0 for a
 * single token) and E2EL meet every SLO of CFG, per second). CFG may be NULL. */
void sv_summarize(const sv_dataset *d, const sv_outcome *o, double duration_s, const sv_stats_cfg *cfg,
                  sv_summary *s);

#endif
