/* metrics.c - Prometheus counters, histograms and gauges (see metrics.h). Bucket bounds are
 * vLLM's (vllm/v1/metrics/loggers.py), so the same dashboards read them the same way.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const outcome_names[N_OUTCOMES] = {"length", "stop", "abort", "error", "rejected"};

#define MAX_BUCKETS 32

static const double ttft_le[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double itl_le[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
static const double request_le[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static double tokens_le[MAX_BUCKETS]; /* 1, 2, 5, 10, 20, 50, ... up to max_model_len */
#define N_OF(a) ((int)(sizeof(a) / sizeof *(a)))

typedef struct {
    const char *name, *help;
    const double *le;
    int n_le;
    _Atomic uint64_t count[MAX_BUCKETS + 1]; /* last: +Inf */
    _Atomic uint64_t sum_bits;               /* a double */
} histogram;

enum { H_TTFT, H_ITL, H_TPOT_REQ, H_E2E, H_QUEUE, H_INFERENCE, H_PREFILL, H_DECODE, H_PROMPT, H_GEN,
       H_MAX_TOKENS, N_HIST };

#define HIST(name_, help_, le_, n_) {.name = name_, .help = help_, .le = le_, .n_le = n_}
static histogram hist[N_HIST] = {
    [H_TTFT] = HIST("time_to_first_token_seconds",
         "Histogram of time to first token in seconds.", ttft_le, N_OF(ttft_le)),
    [H_ITL] = HIST("inter_token_latency_seconds",
         "Histogram of inter-token latency in seconds.", itl_le, N_OF(itl_le)),
    [H_TPOT_REQ] = HIST("request_time_per_output_token_seconds",
         "Histogram of time_per_output_token_seconds per request.", itl_le, N_OF(itl_le)),
    [H_E2E] = HIST("e2e_request_latency_seconds",
         "Histogram of e2e request latency in seconds.", request_le, N_OF(request_le)),
    [H_QUEUE] = HIST("request_queue_time_seconds",
         "Histogram of time spent in WAITING phase for request.", request_le, N_OF(request_le)),
    [H_INFERENCE] = HIST("request_inference_time_seconds",
         "Histogram of time spent in RUNNING phase for request.", request_le, N_OF(request_le)),
    [H_PREFILL] = HIST("request_prefill_time_seconds",
         "Histogram of time spent in PREFILL phase for request.", request_le, N_OF(request_le)),
    [H_DECODE] = HIST("request_decode_time_seconds",
         "Histogram of time spent in DECODE phase for request.", request_le, N_OF(request_le)),
    [H_PROMPT] = HIST("request_prompt_tokens", "Number of prefill tokens processed.", tokens_le, 0),
    [H_GEN] = HIST("request_generation_tokens", "Number of generation tokens processed.", tokens_le, 0),
    [H_MAX_TOKENS] = HIST("request_params_max_tokens",
         "Histogram of the max_tokens request parameter.", tokens_le, 0),
};

static _Atomic uint64_t requests[N_OUTCOMES], prompt_tokens, generation_tokens;
static char label[320]; /* model_name="..." */

static void observe(histogram *h, double v)
{
    int b = 0;
    while (b < h->n_le && v > h->le[b])
        b++;
    atomic_fetch_add(&h->count[b], 1);
    uint64_t old = atomic_load(&h->sum_bits), next;
    do {
        double sum;
        memcpy(&sum, &old, sizeof sum);
        sum += v;
        memcpy(&next, &sum, sizeof next);
    } while (!atomic_compare_exchange_weak(&h->sum_bits, &old, next));
}

void metrics_init(const char *model_name, int max_model_len)
{
    /* the label value escaped as the exposition format wants: \\, \" and \n */
    size_t k = (size_t)snprintf(label, sizeof label, "model_name=\"");
    for (const char *p = model_name; *p && k + 4 < sizeof label; p++) {
        if (*p == '\\' || *p == '"' || *p == '\n')
            label[k++] = '\\';
        label[k++] = *p == '\n' ? 'n' : *p;
    }
    snprintf(label + k, sizeof label - k, "\"");
    int n = 0; /* vLLM's build_1_2_5_buckets(max_model_len) */
    for (double scale = 1; n < MAX_BUCKETS; scale *= 10) {
        static const int mantissa[] = {1, 2, 5};
        int i = 0;
        for (; i < 3 && n < MAX_BUCKETS && mantissa[i] * scale <= max_model_len; i++)
            tokens_le[n++] = mantissa[i] * scale;
        if (i < 3)
            break;
    }
    hist[H_PROMPT].n_le = hist[H_GEN].n_le = hist[H_MAX_TOKENS].n_le = n;
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

void metrics_request_rejected(void) { atomic_fetch_add(&requests[OUT_REJECTED], 1); }

void metrics_request_dropped(void) { atomic_fetch_add(&requests[OUT_ABORT], 1); }

void metrics_request(const metrics_req *r)
{
    atomic_fetch_add(&requests[r->outcome], 1);
    if (r->outcome == OUT_REJECTED)
        return;
    atomic_fetch_add(&prompt_tokens, (uint64_t)r->n_prompt);
    atomic_fetch_add(&generation_tokens, (uint64_t)r->n_out);
    if (r->ttft_s >= 0)
        observe(&hist[H_TTFT], r->ttft_s);
    if (r->outcome == OUT_ERROR) /* as vLLM: the request histograms hold finished requests */
        return;
    observe(&hist[H_E2E], r->e2e_s);
    observe(&hist[H_PROMPT], r->n_prompt);
    observe(&hist[H_GEN], r->n_out);
    observe(&hist[H_MAX_TOKENS], r->max_tokens);
    const double stage[][2] = {{H_QUEUE, r->queue_s}, {H_PREFILL, r->prefill_s}, {H_DECODE, r->decode_s},
                               {H_INFERENCE, r->inference_s}};
    for (int i = 0; i < 4; i++)
        if (stage[i][1] >= 0)
            observe(&hist[(int)stage[i][0]], stage[i][1]);
    if (r->decode_s >= 0 && r->n_out > 1)
        observe(&hist[H_TPOT_REQ], r->decode_s / (r->n_out - 1));
}

void metrics_token_gap(double s) { observe(&hist[H_ITL], s); }

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

/* H under NAME (cinder_NAME) */
static void render_hist(out_buf *o, const char *name, const char *help, const histogram *h)
{
    out(o, "# HELP cinder_%s %s\n# TYPE cinder_%s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b <= h->n_le; b++) {
        cum += atomic_load(&h->count[b]);
        if (b < h->n_le)
            out(o, "cinder_%s_bucket{%s,le=\"%g\"} %llu\n", name, label, h->le[b], (unsigned long long)cum);
        else
            out(o, "cinder_%s_bucket{%s,le=\"+Inf\"} %llu\n", name, label, (unsigned long long)cum);
    }
    uint64_t bits = atomic_load(&h->sum_bits);
    double sum;
    memcpy(&sum, &bits, sizeof sum);
    out(o, "cinder_%s_sum{%s} %.17g\ncinder_%s_count{%s} %llu\n", name, label, sum, name, label,
        (unsigned long long)cum);
}

static void metric(out_buf *o, const char *type, const char *name, const char *help, double v)
{
    out(o, "# HELP cinder_%s %s\n# TYPE cinder_%s %s\ncinder_%s{%s} %.17g\n", name, help, name, type, name,
        label, v);
}
#define gauge(o, name, help, v) metric(o, "gauge", name, help, v)
#define counter(o, name, help, v) metric(o, "counter", name, help, v)

char *metrics_render(const store *st, int http_waiting)
{
    out_buf o = {malloc(16384), 0, 16384};
    if (!o.p)
        return NULL;
    out(&o, "# HELP cinder_requests_total Requests answered, by outcome (error: failed; rejected: 503 "
            "before it was queued).\n# TYPE cinder_requests_total counter\n");
    for (int i = 0; i < N_OUTCOMES; i++)
        out(&o, "cinder_requests_total{%s,outcome=\"%s\"} %llu\n", label, outcome_names[i],
            (unsigned long long)atomic_load(&requests[i]));
    out(&o, "# HELP cinder_request_success_total Count of successfully processed requests.\n"
            "# TYPE cinder_request_success_total counter\n");
    for (int i = OUT_LENGTH; i <= OUT_ABORT; i++) /* vLLM's FinishReason: stop, length, abort */
        out(&o, "cinder_request_success_total{%s,finished_reason=\"%s\"} %llu\n", label, outcome_names[i],
            (unsigned long long)atomic_load(&requests[i]));
    counter(&o, "prompt_tokens_total", "Number of prefill tokens processed.",
            (double)atomic_load(&prompt_tokens));
    counter(&o, "generation_tokens_total", "Number of generation tokens processed.",
            (double)atomic_load(&generation_tokens));
    for (int i = 0; i < N_HIST; i++)
        render_hist(&o, hist[i].name, hist[i].help, &hist[i]);
    /* vLLM up to 0.10 named the inter-token latency so, and its Grafana dashboard still does */
    render_hist(&o, "time_per_output_token_seconds",
                "Histogram of time per output token in seconds (the same as inter_token_latency_seconds).",
                &hist[H_ITL]);
    const store_hdr *h = st->hdr;
    int limit = atomic_load(&h->kv_limit_blocks), free_blocks = atomic_load(&h->n_free_blocks);
    gauge(&o, "num_requests_waiting", "Number of requests waiting to be processed.",
          atomic_load(&h->n_waiting) + http_waiting);
    gauge(&o, "http_requests_waiting", "Requests waiting for an HTTP handler thread (--http-queue).",
          http_waiting);
    gauge(&o, "num_requests_running", "Number of requests in model execution batches.",
          atomic_load(&h->n_running));
    gauge(&o, "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          limit > 0 ? (double)(limit - free_blocks) / limit : 0.0);
    gauge(&o, "kv_cache_blocks_capacity", "KV blocks the router may use.", limit);
    gauge(&o, "kv_cache_blocks_free", "KV blocks free.", free_blocks);
    counter(&o, "num_preemptions_total", "Cumulative number of preemption from the engine.",
            (double)atomic_load(&h->n_preempted));
    counter(&o, "prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens (each request once, when first admitted).",
            (double)atomic_load(&h->prefix_queries));
    counter(&o, "prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
            (double)atomic_load(&h->prefix_hits));
    gauge(&o, "prefix_cache_blocks", "KV blocks in the prefix cache (in use or evictable).",
          atomic_load(&h->n_cached_blocks));
    counter(&o, "worker_restarts_total", "Workers that came back after one was lost.",
            (double)atomic_load(&h->n_worker_restarts));
    counter(&o, "resumed_requests_total",
            "Running requests that went on after a worker restart from their kept KV (no recompute).",
            (double)atomic_load(&h->n_resumed));
    counter(&o, "recomputed_tokens_total",
            "Completed KV positions a worker restart lost (the KV did not survive) and computed again.",
            (double)atomic_load(&h->n_recomputed_tokens));
    uint64_t n_steps = atomic_load(&h->n_worker_steps), n_gaps = atomic_load(&h->n_step_gaps);
    counter(&o, "worker_steps_total", "Iterations the worker ran.", (double)n_steps);
    gauge(&o, "worker_step_gap_seconds_mean", "Mean idle time between iterations with work queued.",
          n_gaps ? atomic_load(&h->step_gap_us) / 1e6 / (double)n_gaps : 0.0);
    return o.p;
}
