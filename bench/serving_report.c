/* serving_report.c - bench-serving's table (laid out as vLLM's benchmark_serving prints it,
 * plus p90 and failures), JSON result and rate-sweep plot (see serving_report.h).
 */
#include "serving_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WIDTH 50

const char *const sv_metric_names[SV_N_METRICS] = {"ttft", "tpot", "itl", "e2el"};
static const char *const metric_abbr[SV_N_METRICS] = {"TTFT", "TPOT", "ITL", "E2EL"};
static const char *const metric_title[SV_N_METRICS] = {"Time to First Token",
                                                       "Time per Output Token (excl. 1st token)",
                                                       "Inter-token Latency", "End-to-end Latency"};

static const sv_dist *dist_of(const sv_summary *s, int m)
{
    return m == SV_TTFT ? &s->ttft : m == SV_TPOT ? &s->tpot : m == SV_ITL ? &s->itl : &s->e2el;
}

/* vLLM's key for percentile P: "99", "99.9" */
static void pct_word(double p, char *out, size_t n)
{
    snprintf(out, n, p == (int)p ? "%.0f" : "%g", p);
}

/* TITLE centered in a WIDTH line of FILL, as Python's "{:^50}". */
static void rule(FILE *f, const char *title, char fill)
{
    int len = (int)strlen(title), left = (WIDTH - len) / 2, right = WIDTH - len - left;
    for (int i = 0; i < left; i++)
        fputc(fill, f);
    fputs(title, f);
    for (int i = 0; i < right; i++)
        fputc(fill, f);
    fputc('\n', f);
}

static void row_num(FILE *f, const char *name, double v) { fprintf(f, "%-40s %-10.2f\n", name, v); }
static void row_int(FILE *f, const char *name, long long v) { fprintf(f, "%-40s %-10lld\n", name, v); }

static void section(FILE *f, const sv_run_info *ri, int m, const sv_dist *d)
{
    char name[64], p[16];
    rule(f, metric_title[m], '-');
    snprintf(name, sizeof name, "Mean %s (ms):", metric_abbr[m]);
    row_num(f, name, d->mean);
    snprintf(name, sizeof name, "Median %s (ms):", metric_abbr[m]);
    row_num(f, name, d->median);
    for (int i = 0; i < ri->stats->n_pct; i++) {
        pct_word(ri->stats->pcts[i], p, sizeof p);
        snprintf(name, sizeof name, "P%s %s (ms):", p, metric_abbr[m]);
        row_num(f, name, d->pct[i]);
    }
}

void sv_report_table(FILE *f, const sv_run_info *ri, const sv_summary *s)
{
    rule(f, " Serving Benchmark Result ", '=');
    row_int(f, "Successful requests:", s->completed);
    row_int(f, "Failed requests:", s->failed);
    if (isfinite(ri->request_rate))
        row_num(f, "Traffic request rate (req/s):", ri->request_rate);
    else
        fprintf(f, "%-40s %-10s\n", "Traffic request rate (req/s):", "inf");
    if (ri->max_concurrency > 0)
        row_int(f, "Maximum request concurrency:", ri->max_concurrency);
    row_int(f, "Peak concurrent requests:", s->max_concurrent);
    row_num(f, "Benchmark duration (s):", s->duration_s);
    row_int(f, "Total input tokens:", s->total_input);
    row_int(f, "Total generated tokens:", s->total_output);
    row_num(f, "Request throughput (req/s):", s->request_tput);
    if (s->request_goodput >= 0)
        row_num(f, "Request goodput (req/s):", s->request_goodput);
    row_num(f, "Output token throughput (tok/s):", s->output_tput);
    row_num(f, "Total Token throughput (tok/s):", s->total_tput);
    if (s->prefix_queries > 0)
        row_num(f, "Prefix cache hit rate (%):", 100.0 * s->prefix_hits / s->prefix_queries);
    for (int m = 0; m < SV_N_METRICS; m++)
        if (ri->metrics & (1u << m))
            section(f, ri, m, dist_of(s, m));
    rule(f, "", '=');
    fflush(f);
}

/* mean, median, std and the chosen percentiles of metric M, as vLLM's keys */
static void add_dist(cJSON *j, const sv_run_info *ri, int m, const sv_dist *d)
{
    char key[48], p[16];
    const char *what[] = {"mean", "median", "std"};
    double v[] = {d->mean, d->median, d->std};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%s_%s_ms", what[i], sv_metric_names[m]);
        cJSON_AddNumberToObject(j, key, v[i]);
    }
    for (int i = 0; i < ri->stats->n_pct; i++) {
        pct_word(ri->stats->pcts[i], p, sizeof p);
        snprintf(key, sizeof key, "p%s_%s_ms", p, sv_metric_names[m]);
        cJSON_AddNumberToObject(j, key, d->pct[i]);
    }
}

/* A finite number, or the string "inf" (JSON has no infinity). */
static void add_rate(cJSON *j, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(j, key, v);
    else
        cJSON_AddStringToObject(j, key, "inf");
}

/* The per-request arrays of the report, in dataset order (ttfts and itls in seconds, as
 * vLLM's; *_ms: ms); with DETAILED the gaps between events and the texts too. */
static void add_requests(cJSON *j, const sv_dataset *d, const sv_outcome *o, int detailed)
{
    cJSON *in = cJSON_AddArrayToObject(j, "input_lens"), *req = cJSON_AddArrayToObject(j, "requested_output_lens");
    cJSON *out = cJSON_AddArrayToObject(j, "output_lens"), *ttft = cJSON_AddArrayToObject(j, "ttfts_ms");
    cJSON *ttft_s = cJSON_AddArrayToObject(j, "ttfts");
    cJSON *e2e = cJSON_AddArrayToObject(j, "e2els_ms"), *start = cJSON_AddArrayToObject(j, "start_ms");
    cJSON *fin = cJSON_AddArrayToObject(j, "finish_reasons"), *errs = cJSON_AddArrayToObject(j, "errors");
    cJSON *itls = detailed ? cJSON_AddArrayToObject(j, "itls_ms") : NULL;
    cJSON *itls_s = detailed ? cJSON_AddArrayToObject(j, "itls") : NULL;
    cJSON *texts = detailed ? cJSON_AddArrayToObject(j, "generated_texts") : NULL;
    for (int i = 0; i < d->n; i++) {
        cJSON_AddItemToArray(in, cJSON_CreateNumber(d->v[i].prompt_len));
        cJSON_AddItemToArray(req, cJSON_CreateNumber(d->v[i].output_len));
        cJSON_AddItemToArray(out, cJSON_CreateNumber(o[i].n_out));
        cJSON_AddItemToArray(ttft, cJSON_CreateNumber(o[i].ttft_ms));
        cJSON_AddItemToArray(ttft_s, cJSON_CreateNumber(o[i].ttft_ms / 1e3));
        cJSON_AddItemToArray(e2e, cJSON_CreateNumber(o[i].e2e_ms));
        cJSON_AddItemToArray(start, cJSON_CreateNumber(o[i].start_ms));
        cJSON_AddItemToArray(fin, cJSON_CreateString(o[i].finish));
        cJSON_AddItemToArray(errs, cJSON_CreateString(o[i].err));
        if (detailed) {
            int n_gaps = o[i].n_events > 1 ? o[i].n_events - 1 : 0;
            cJSON_AddItemToArray(itls, cJSON_CreateDoubleArray(o[i].itl_ms, n_gaps));
            cJSON *gaps = cJSON_CreateArray();
            for (int k = 0; k < n_gaps; k++)
                cJSON_AddItemToArray(gaps, cJSON_CreateNumber(o[i].itl_ms[k] / 1e3));
            cJSON_AddItemToArray(itls_s, gaps);
            cJSON_AddItemToArray(texts, cJSON_CreateString(o[i].text.p ? o[i].text.p : ""));
        }
    }
}

cJSON *sv_report_json(const sv_run_info *ri, const sv_summary *s, const sv_dataset *d, const sv_outcome *o,
                      int detailed)
{
    cJSON *j = cJSON_CreateObject();
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now));
    /* the run's strings under vLLM's keys; one that is NULL is left out */
    const char *const info[][2] = {
        {"date", date}, {"endpoint_type", ri->backend}, {"backend", ri->backend},
        {"endpoint", ri->path}, {"model_id", ri->model}, {"tokenizer_id", ri->tokenizer},
        {"dataset_name", ri->dataset}, {"dataset_path", ri->dataset_path}, {"host", ri->host},
    };
    for (size_t k = 0; k < sizeof info / sizeof *info; k++)
        if (info[k][1])
            cJSON_AddStringToObject(j, info[k][0], info[k][1]);
    cJSON_AddNumberToObject(j, "port", ri->port);
    cJSON_AddNumberToObject(j, "num_prompts", ri->num_prompts);
    cJSON_AddNumberToObject(j, "seed", (double)ri->seed);
    cJSON_AddBoolToObject(j, "ignore_eos", ri->ignore_eos);
    cJSON_AddNumberToObject(j, "temperature", ri->temperature > 0 ? ri->temperature : 0);
    add_rate(j, "request_rate", ri->request_rate);
    cJSON_AddNumberToObject(j, "burstiness", ri->burstiness);
    if (ri->max_concurrency > 0)
        cJSON_AddNumberToObject(j, "max_concurrency", ri->max_concurrency);
    else
        cJSON_AddNullToObject(j, "max_concurrency");
    cJSON_AddNumberToObject(j, "duration", s->duration_s);
    cJSON_AddNumberToObject(j, "completed", s->completed);
    cJSON_AddNumberToObject(j, "failed", s->failed);
    cJSON_AddNumberToObject(j, "total_input_tokens", (double)s->total_input);
    cJSON_AddNumberToObject(j, "total_output_tokens", (double)s->total_output);
    cJSON_AddNumberToObject(j, "request_throughput", s->request_tput);
    if (s->request_goodput >= 0) {
        cJSON_AddNumberToObject(j, "request_goodput", s->request_goodput);
        cJSON_AddNumberToObject(j, "good_completed", s->good_completed);
    } else {
        cJSON_AddNullToObject(j, "request_goodput");
    }
    cJSON_AddNumberToObject(j, "output_throughput", s->output_tput);
    cJSON_AddNumberToObject(j, "total_token_throughput", s->total_tput);
    cJSON_AddNumberToObject(j, "max_concurrent_requests", s->max_concurrent);
    if (s->prefix_queries >= 0) { /* the server's counters over the run */
        cJSON_AddNumberToObject(j, "prefix_cache_queries", s->prefix_queries);
        cJSON_AddNumberToObject(j, "prefix_cache_hits", s->prefix_hits);
        cJSON_AddNumberToObject(j, "prefix_cache_hit_rate",
                                s->prefix_queries > 0 ? s->prefix_hits / s->prefix_queries : 0);
    } else {
        cJSON_AddNullToObject(j, "prefix_cache_hit_rate");
    }
    for (int m = 0; m < SV_N_METRICS; m++)
        if (ri->metrics & (1u << m))
            add_dist(j, ri, m, dist_of(s, m));
    add_requests(j, d, o, detailed);
    return j;
}

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, prog);
        if (n && access(dir, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

int sv_report_plot(const char *png, const double *rates, const sv_summary *s, int n, char *err, size_t n_err)
{
    char dat[4096], gp[4096], cmd[8300];
    snprintf(dat, sizeof dat, "%s.dat", png);
    snprintf(gp, sizeof gp, "%s.gp", png);
    FILE *f = fopen(dat, "w");
    if (!f) {
        snprintf(err, n_err, "%s: cannot write", dat);
        return -1;
    }
    fprintf(f, "# index rate mean_ttft_ms p99_ttft_ms mean_tpot_ms p99_tpot_ms mean_e2el_ms p99_e2el_ms "
               "output_tok_s\n");
    for (int i = 0; i < n; i++) {
        char rate[32];
        snprintf(rate, sizeof rate, isfinite(rates[i]) ? "%g" : "inf", rates[i]);
        fprintf(f, "%d %s %.3f %.3f %.3f %.3f %.3f %.3f %.2f\n", i, rate, s[i].ttft.mean, s[i].ttft.p99,
                s[i].tpot.mean, s[i].tpot.p99, s[i].e2el.mean, s[i].e2el.p99, s[i].output_tput);
    }
    fclose(f);
    if (!(f = fopen(gp, "w"))) {
        snprintf(err, n_err, "%s: cannot write", gp);
        return -1;
    }
    /* rates sit at equal spacing, labelled, so "inf" has a place */
    fprintf(f, "set terminal pngcairo size 1200,480 font ',10'\nset output '%s'\n"
               "set multiplot layout 1,2 title 'bench-serving: latency against request rate'\n"
               "set xlabel 'request rate (req/s)'\nset xrange [-0.5:%d.5]\nset grid\nset key top left\n"
               "set ylabel 'TTFT (ms)'\n"
               "plot '%s' using 1:3:xtic(2) with linespoints title 'mean TTFT', "
               "'' using 1:4 with linespoints title 'p99 TTFT'\n"
               "set ylabel 'TPOT (ms)'\n"
               "plot '%s' using 1:5:xtic(2) with linespoints title 'mean TPOT', "
               "'' using 1:6 with linespoints title 'p99 TPOT'\n"
               "unset multiplot\n",
            png, n - 1, dat, dat);
    fclose(f);
    if (!in_path("gnuplot")) {
        snprintf(err, n_err, "gnuplot is not installed (Debian: apt-get install gnuplot-nox); the data is in %s "
                 "and the script in %s", dat, gp);
        return -1;
    }
    snprintf(cmd, sizeof cmd, "gnuplot '%s'", gp);
    if (system(cmd) != 0) {
        snprintf(err, n_err, "gnuplot %s failed", gp);
        return -1;
    }
    return 0;
}
