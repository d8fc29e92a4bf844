/* serving_report.h - bench-serving's output: vLLM's result table, the JSON result of a run,
 * and the latency-against-rate plot of a sweep (gnuplot).
 */
#ifndef CINDER_SERVING_REPORT_H
#define CINDER_SERVING_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "serving.h"

/* The figures with percentiles, in vLLM's order (--percentile-metrics picks among them) */
enum { SV_TTFT, SV_TPOT, SV_ITL, SV_E2EL, SV_N_METRICS };
extern const char *const sv_metric_names[SV_N_METRICS]; /* "ttft", "tpot", "itl", "e2el" */

/* What was run: the config recorded beside the figures. */
typedef struct {
    const char *backend, *model, *tokenizer, *dataset, *dataset_path, *host, *path;
    int port;
    double request_rate, burstiness;
    int max_concurrency;      /* 0: none */
    int num_prompts;
    unsigned long long seed;
    int ignore_eos;
    double temperature;       /* < 0: greedy */
    unsigned metrics;         /* bit SV_TTFT...: the figures reported with percentiles */
    const sv_stats_cfg *stats; /* the percentiles, the goodput SLOs */
} sv_run_info;

void sv_report_table(FILE *f, const sv_run_info *ri, const sv_summary *s);
/* One run as a JSON object (vLLM's key names where vLLM has the figure: mean_ttft_ms,
 * p99_ttft_ms, request_throughput, request_goodput, ttfts in seconds, ...; cinder's earlier
 * names stay too: backend, ttfts_ms, ...); DETAILED adds every inter-token gap (itls, in
 * seconds, and itls_ms) and the generated texts. */
cJSON *sv_report_json(const sv_run_info *ri, const sv_summary *s, const sv_dataset *d, const sv_outcome *o,
                      int detailed);
/* Draws mean and p99 TTFT and TPOT against the N RATES into PNG (via PNG.dat and PNG.gp,
 * kept for replotting). 0, or -1 with ERR (e.g. no gnuplot). */
int sv_report_plot(const char *png, const double *rates, const sv_summary *s, int n, char *err, size_t n_err);

#endif
