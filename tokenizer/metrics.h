/* metrics.h - the tokenizer process's Prometheus metrics (GET /metrics).
 *
 * Counters and histograms updated by the HTTP threads (lock-free atomics), plus gauges read
 * at scrape time from the store header (queue length, running batch, KV use, which the
 * router publishes there).
 */
#ifndef CINDER_METRICS_H
#define CINDER_METRICS_H

#include <stddef.h>
#include "../common/store.h"

enum metric_outcome { OUT_LENGTH, OUT_STOP, OUT_ABORT, OUT_ERROR, OUT_REJECTED, N_OUTCOMES };

/* Records one finished request: its outcome, token counts and latencies (seconds; ttft < 0
 * when no token came). */
void metrics_request(int outcome, int n_prompt, int n_out, double ttft_s, double e2e_s);
/* Records the gap between two consecutive tokens of a request (seconds). */
void metrics_token_gap(double s);
/* Renders everything into a malloc'd text (Prometheus exposition format 0.0.4). */
char *metrics_render(const store *st);
int metrics_outcome_of(int finish_reason);

#endif
