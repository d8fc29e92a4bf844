/* serving_report.h - bench-serving's output: vLLM's result table, the JSON result of a run,
 * and the latency-against-rate plot of a sweep (gnuplot).
 */
#ifndef CINDER_SERVING_REPORT_H
#define CINDER_SERVING_REPORT_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "serving.h"

/* What was run: the config recorded beside the figures. */
typedef struct {
    const char *backend, *model, *tokenizer, *dataset, *dataset_path, *host;
    int port;
    double request_rate, burstiness;
    int max_concurrency;      /* 0: none */
    int num_prompts;
    unsigned long long seed;
    int ignore_eos;
} sv_run_info;

void sv_report_table(FILE *f, const sv_run_info *ri, const sv_summary *s);
/* One run as a JSON object (vLLM's key names where vLLM has the figure); DETAILED adds every
 * inter-token gap and the generated texts. */
cJSON *sv_report_json(const sv_run_info *ri, const sv_summary *s, const sv_dataset *d, const sv_outcome *o,
                      int detailed);
/* Draws mean and p99 TTFT and TPOT against the N RATES into PNG (via PNG.dat and PNG.gp,
 * kept for replotting). 0, or -1 with ERR (e.g. no gnuplot). */
int sv_report_plot(const char *png, const double *rates, const sv_summary *s, int n, char *err, size_t n_err);

#endif
