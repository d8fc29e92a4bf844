/* metrics.c - Prometheus counters, histograms and gauges (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const outcome_names[N_OUTCOMES] = {"length", "stop", "abort", "error", "rejected"};

#define N_BUCKETS 18
static const double buckets[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                          0.5, 0.75, 1, 2.5, 5, 10, 20, 40, 80};

typedef struct {
    _Atomic uint64_t count[N_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_us;
} histogram;

static _Atomic uint64_t requests[N_OUTCOMES], prompt_tokens, generation_tokens;
static histogram h_ttft, h_tpot, h_e2e;

static void observe(histogram *h, double s)
{
    int b = 0;
    while (b < N_BUCKETS && s > buckets[b])
        b++;
    atomic_fetch_add(&h->count[b], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)(s * 1e6));
}

int metrics_outcome_of(int finish)
{
    switch (finish) {
    case FINISH_LENGTH: return OUT_LENGTH;
    case FINISH_STOP: return OUT_STOP;
    case FINISH_ABORT: return OUT_ABORT;
    default: return OUT_ERROR;
    }
}

void metrics_request(int outcome, int n_prompt, int n_out, double ttft_s, double e2e_s)
{
    atomic_fetch_add(&requests[outcome], 1);
    if (outcome == OUT_REJECTED)
        return;
    atomic_fetch_add(&prompt_tokens, (uint64_t)n_prompt);
    atomic_fetch_add(&generation_tokens, (uint64_t)n_out);
    if (ttft_s >= 0)
        observe(&h_ttft, ttft_s);
    observe(&h_e2e, e2e_s);
}

void metrics_token_gap(double s) { observe(&h_tpot, s); }

typedef struct {
    char *p;
    size_t n, cap;
} out_buf;

static void out(out_buf *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && o->n + (size_t)k < o->cap) {
            o->n += (size_t)k;
            return;
        }
        char *p = realloc(o->p, o->cap * 2);
        if (!p)
            return;
        o->p = p;
        o->cap *= 2;
    }
}

static void render_hist(out_buf *o, const char *name, const char *help, histogram *h)
{
    out(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b <= N_BUCKETS; b++) {
        cum += atomic_load(&h->count[b]);
        if (b < N_BUCKETS)
            out(o, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[b], (unsigned long long)cum);
        else
            out(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    }
    out(o, "%s_sum %.6f\n%s_count %llu\n", name, atomic_load(&h->sum_us) / 1e6, name, (unsigned long long)cum);
}

static void metric(out_buf *o, const char *type, const char *name, const char *help, double v)
{
    out(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}
#define gauge(o, name, help, v) metric(o, "gauge", name, help, v)
#define counter(o, name, help, v) metric(o, "counter", name, help, v)

char *metrics_render(const store *st)
{
    out_buf o = {malloc(8192), 0, 8192};
    if (!o.p)
        return NULL;
    out(&o, "# HELP cinder_requests_total Requests finished, by outcome.\n"
            "# TYPE cinder_requests_total counter\n");
    for (int i = 0; i < N_OUTCOMES; i++)
        out(&o, "cinder_requests_total{outcome=\"%s\"} %llu\n", outcome_names[i],
            (unsigned long long)atomic_load(&requests[i]));
    out(&o, "# HELP cinder_prompt_tokens_total Prompt tokens of finished requests.\n"
            "# TYPE cinder_prompt_tokens_total counter\ncinder_prompt_tokens_total %llu\n",
        (unsigned long long)atomic_load(&prompt_tokens));
    out(&o, "# HELP cinder_generation_tokens_total Tokens generated for finished requests.\n"
            "# TYPE cinder_generation_tokens_total counter\ncinder_generation_tokens_total %llu\n",
        (unsigned long long)atomic_load(&generation_tokens));
    render_hist(&o, "cinder_time_to_first_token_seconds", "Time from request to first token.", &h_ttft);
    render_hist(&o, "cinder_time_per_output_token_seconds", "Time between consecutive tokens.", &h_tpot);
    render_hist(&o, "cinder_e2e_request_latency_seconds", "Time from request to last token.", &h_e2e);
    const store_hdr *h = st->hdr;
    int limit = atomic_load(&h->kv_limit_blocks), free_blocks = atomic_load(&h->n_free_blocks);
    gauge(&o, "cinder_num_requests_waiting", "Requests queued in the router.", atomic_load(&h->n_waiting));
    gauge(&o, "cinder_num_requests_running", "Requests in the running batch.", atomic_load(&h->n_running));
    gauge(&o, "cinder_kv_cache_blocks_total", "KV blocks the router may use.", limit);
    gauge(&o, "cinder_kv_cache_blocks_free", "KV blocks free.", free_blocks);
    gauge(&o, "cinder_kv_cache_usage_ratio", "Share of KV blocks in use.",
          limit > 0 ? (double)(limit - free_blocks) / limit : 0.0);
    counter(&o, "cinder_num_preemptions_total", "Requests preempted and recomputed.",
          (double)atomic_load(&h->n_preempted));
    counter(&o, "cinder_prefix_cache_queries_total",
            "Prompt tokens looked up in the prefix cache (each request once, when first admitted).",
            (double)atomic_load(&h->prefix_queries));
    counter(&o, "cinder_prefix_cache_hits_total", "Of them, tokens taken from the prefix cache.",
            (double)atomic_load(&h->prefix_hits));
    gauge(&o, "cinder_prefix_cache_blocks", "KV blocks in the prefix cache (in use or evictable).",
          atomic_load(&h->n_cached_blocks));
    counter(&o, "cinder_worker_restarts_total", "Workers that came back after one was lost.",
            (double)atomic_load(&h->n_worker_restarts));
    counter(&o, "cinder_resumed_requests_total",
            "Running requests that went on after a worker restart from their kept KV (no recompute).",
            (double)atomic_load(&h->n_resumed));
    counter(&o, "cinder_recomputed_tokens_total",
            "Completed KV positions a worker restart lost (the KV did not survive) and computed again.",
            (double)atomic_load(&h->n_recomputed_tokens));
    uint64_t n_steps = atomic_load(&h->n_worker_steps), n_gaps = atomic_load(&h->n_step_gaps);
    counter(&o, "cinder_worker_steps_total", "Iterations the worker ran.", (double)n_steps);
    gauge(&o, "cinder_worker_step_gap_seconds_mean", "Mean idle time between iterations with work queued.",
          n_gaps ? atomic_load(&h->step_gap_us) / 1e6 / (double)n_gaps : 0.0);
    return o.p;
}
