/* metrics.h - the tokenizer process's Prometheus metrics (GET /metrics).
 *
 * Named as vLLM's (vllm:NAME there, cinder_NAME here: promtool refuses ':' in a scraped
 * name), each series labelled with model_name, so vLLM's Grafana dashboards work once
 * "vllm:" becomes "cinder_". Counters and histograms are updated by the HTTP threads
 * (lock-free atomics); gauges are read at scrape time from the store header (queue length,
 * running batch, KV use, which the router publishes there) and from the HTTP front end
 * (requests waiting for a handler thread). README's Metrics section lists
 * them and what differs from vLLM.
 */
#ifndef CINDER_METRICS_H
#define CINDER_METRICS_H

#include <stddef.h>
#include "../common/store.h"

enum metric_outcome { OUT_LENGTH, OUT_STOP, OUT_ABORT, OUT_ERROR, OUT_REJECTED, N_OUTCOMES };

/* One finished request (times in seconds; < 0: that stage never came). */
typedef struct {
    int outcome;              /* metric_outcome */
    int n_prompt, n_out, max_tokens;
    double ttft_s, e2e_s;     /* from its arrival at the tokenizer */
    double queue_s;           /* router: queued until first admitted */
    double prefill_s;         /* first admitted until the first output token */
    double decode_s;          /* first until last output token */
    double inference_s;       /* first admitted until the last output token */
} metrics_req;

/* The label every series carries and the token histograms' range; before any other call. */
void metrics_init(const char *model_name, int max_model_len);
void metrics_request(const metrics_req *r);
/* A request turned away before it was queued (503). */
void metrics_request_rejected(void);
/* A request whose client hung up while it waited for a handler thread: never run (abort). */
void metrics_request_dropped(void);
/* Records the gap between two consecutive tokens of a request (seconds). */
void metrics_token_gap(double s);
/* Renders everything into a malloc'd text (Prometheus exposition format 0.0.4);
 * HTTP_WAITING: requests waiting for an HTTP handler thread (counted as waiting too). */
char *metrics_render(const store *st, int http_waiting);
int metrics_outcome_of(int finish_reason);

#endif
