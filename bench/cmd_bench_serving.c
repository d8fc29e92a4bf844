/* cmd_bench_serving.c - build/bin/bench-serving: the serving benchmark client, after vLLM's
 * benchmark_serving. Loads a workload, sends it to a running server over many concurrent
 * streams (one thread, libuv), prints vLLM's result table, writes a JSON result, and with
 * --sweep-rates runs several request rates and plots latency against rate. The server's
 * prefix cache counters (/metrics) read before and after each run give its hit rate.
 *
 *   bench-serving [--backend cinder|openai] [--host H] [--port N] [--model NAME]
 *       [--tokenizer tokenizer.json]
 *       [--dataset-name sharegpt|instruction|random|prefix_repetition|multiturn]
 *       [--dataset-path FILE] [--num-prompts N] [--seed S] [--request-rate R|inf]
 *       [--burstiness B] [--max-concurrency N] [--sweep-rates R1,R2,...] [--plot FILE.png]
 *       [--result-file FILE.json] [--save-detailed] ...   (--help lists every option)
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "serving.h"
#include "serving_report.h"

#define MAX_RATES 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench-serving [options]\n"
            "server:\n"
            "  --backend cinder|openai     cinder: POST /generate_stream; openai: POST /v1/completions (default cinder)\n"
            "  --host H --port N           server address (default 127.0.0.1:8000)\n"
            "  --model NAME                OpenAI \"model\" (default: the tokenizer's directory name)\n"
            "  --no-ignore-eos             let requests stop at EOS (default: ignore_eos, exact lengths)\n"
            "  --timeout S                 a request open longer fails (default 3600, 0: never)\n"
            "workload:\n"
            "  --tokenizer FILE            tokenizer.json counting tokens (default models/stories15M/tokenizer.json)\n"
            "  --dataset-name NAME         sharegpt, instruction, random, prefix_repetition (alias prefix)\n"
            "                              or multiturn (default random)\n"
            "  --dataset-path FILE         the JSON file of sharegpt / instruction\n"
            "  --num-prompts N             requests (default 1000)\n"
            "  --seed S                    shuffles, random prompts and arrivals (default 0)\n"
            "  --output-len N              output length of records without a reply (default: skip them)\n"
            "  --sharegpt-output-len N     every record asks for N tokens, whatever its reply\n"
            "  --min-len N                 filters: prompt and reply >= N tokens (default 4),\n"
            "  --max-prompt-len N            prompt <= N (default 1024),\n"
            "  --max-total-len N             prompt + output <= N (default 2048)\n"
            "  --random-input-len N        random: prompt tokens (default 1024)\n"
            "  --random-output-len N       random: output tokens (default 128)\n"
            "  --random-range-ratio R      random: lengths uniform in [len*(1-R), len*(1+R)] (default 0)\n"
            "  --prefix-repetition-prefix-len N    prefix_repetition: shared prefix tokens (default 256)\n"
            "  --prefix-repetition-suffix-len N    prefix_repetition: each request's own tokens (default 256)\n"
            "  --prefix-repetition-num-prefixes N  prefix_repetition: distinct prefixes (default 10)\n"
            "  --prefix-repetition-output-len N    prefix_repetition: output tokens (default 128)\n"
            "  --multiturn-turns N         multiturn: turns per conversation, each resending the history;\n"
            "                              questions of --random-input-len, answers of --random-output-len\n"
            "                              tokens (default 4)\n"
            "traffic:\n"
            "  --request-rate R            requests/s, Poisson arrivals; inf sends all at once (default inf)\n"
            "  --burstiness B              gamma arrivals of shape B (1: Poisson; default 1)\n"
            "  --max-concurrency N         at most N requests in flight (default: no limit)\n"
            "  --sweep-rates R1,R2,...     one run per rate (e.g. 1,2,4,inf)\n"
            "output:\n"
            "  --result-file FILE          JSON: one run's object, or an array of them for a sweep\n"
            "  --save-detailed             the JSON also holds every inter-token gap and text\n"
            "  --plot FILE.png             latency against rate (gnuplot; FILE.png.dat and .gp beside)\n"
            "  --no-progress               no progress bar on stderr\n");
}

typedef struct {
    sv_client_cfg client;
    sv_data_cfg data;
    const char *tokenizer, *result_file, *plot;
    char model_buf[256];
    double rates[MAX_RATES];
    int n_rates, detailed;
} options;

static int parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end == s || *end || errno || isnan(*v) ? -1 : 0;
}

static int parse_int(const char *s, int *v)
{
    double d;
    if (parse_num(s, &d) || d != floor(d) || d < 0 || d > 1e9)
        return -1;
    *v = (int)d;
    return 0;
}

static int parse_rates(const char *s, options *o)
{
    char *copy = strdup(s), *save = NULL;
    o->n_rates = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_rates == MAX_RATES || parse_num(t, &o->rates[o->n_rates]) || o->rates[o->n_rates] <= 0) {
            free(copy);
            return -1;
        }
        o->n_rates++;
    }
    free(copy);
    return o->n_rates ? 0 : -1;
}

static int parse_args(int argc, char **argv, options *o)
{
    enum { O_BACKEND = 256, O_HOST, O_PORT, O_MODEL, O_NO_EOS, O_TIMEOUT, O_TOK, O_DNAME, O_DPATH, O_NUM,
           O_SEED, O_OUT, O_FIXED, O_MIN, O_MAXP, O_MAXT, O_RIN, O_ROUT, O_RR, O_RATE, O_BURST, O_CONC,
           O_SWEEP, O_RESULT, O_DETAIL, O_PLOT, O_NOPROG, O_PLEN, O_SLEN, O_NPRE, O_POUT, O_TURNS };
    static const struct option opts[] = {
        {"backend", 1, 0, O_BACKEND}, {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT},
        {"model", 1, 0, O_MODEL}, {"no-ignore-eos", 0, 0, O_NO_EOS}, {"timeout", 1, 0, O_TIMEOUT},
        {"tokenizer", 1, 0, O_TOK}, {"dataset-name", 1, 0, O_DNAME}, {"dataset-path", 1, 0, O_DPATH},
        {"num-prompts", 1, 0, O_NUM}, {"seed", 1, 0, O_SEED}, {"output-len", 1, 0, O_OUT},
        {"sharegpt-output-len", 1, 0, O_FIXED}, {"min-len", 1, 0, O_MIN}, {"max-prompt-len", 1, 0, O_MAXP},
        {"max-total-len", 1, 0, O_MAXT}, {"random-input-len", 1, 0, O_RIN},
        {"random-output-len", 1, 0, O_ROUT}, {"random-range-ratio", 1, 0, O_RR},
        {"request-rate", 1, 0, O_RATE}, {"burstiness", 1, 0, O_BURST}, {"max-concurrency", 1, 0, O_CONC},
        {"sweep-rates", 1, 0, O_SWEEP}, {"result-file", 1, 0, O_RESULT}, {"save-detailed", 0, 0, O_DETAIL},
        {"plot", 1, 0, O_PLOT}, {"no-progress", 0, 0, O_NOPROG},
        {"prefix-repetition-prefix-len", 1, 0, O_PLEN}, {"prefix-repetition-suffix-len", 1, 0, O_SLEN},
        {"prefix-repetition-num-prefixes", 1, 0, O_NPRE}, {"prefix-repetition-output-len", 1, 0, O_POUT},
        {"multiturn-turns", 1, 0, O_TURNS}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    sv_client_cfg *c = &o->client;
    sv_data_cfg *d = &o->data;
    double seed = 0, rate = INFINITY;
    int k, li = 0, bad = 0, no_progress = 0;
    while (!bad && (k = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        switch (k) {
        case O_BACKEND: bad = sv_backend_parse(optarg, &c->req.backend); break;
        case O_HOST: c->host = optarg; break;
        case O_PORT: bad = parse_int(optarg, &c->port) || c->port < 1 || c->port > 65535; break;
        case O_MODEL: c->req.model = optarg; break;
        case O_NO_EOS: c->req.ignore_eos = 0; break;
        case O_TIMEOUT: bad = parse_num(optarg, &c->timeout_s) || c->timeout_s < 0; break;
        case O_TOK: o->tokenizer = optarg; break;
        case O_DNAME: d->name = optarg; break;
        case O_DPATH: d->path = optarg; break;
        case O_NUM: bad = parse_int(optarg, &d->num_prompts); break;
        case O_SEED: bad = parse_num(optarg, &seed) || seed < 0 || seed != floor(seed); break;
        case O_OUT: bad = parse_int(optarg, &d->output_len); break;
        case O_FIXED: bad = parse_int(optarg, &d->fixed_output_len); break;
        case O_MIN: bad = parse_int(optarg, &d->min_len); break;
        case O_MAXP: bad = parse_int(optarg, &d->max_prompt_len); break;
        case O_MAXT: bad = parse_int(optarg, &d->max_total_len); break;
        case O_RIN: bad = parse_int(optarg, &d->random_input_len); break;
        case O_ROUT: bad = parse_int(optarg, &d->random_output_len); break;
        case O_RR: bad = parse_num(optarg, &d->random_range_ratio); break;
        case O_RATE: bad = parse_num(optarg, &rate) || rate <= 0; break;
        case O_BURST: bad = parse_num(optarg, &c->burstiness) || !(c->burstiness > 0); break;
        case O_CONC: bad = parse_int(optarg, &c->max_concurrency); break;
        case O_SWEEP: bad = parse_rates(optarg, o); break;
        case O_RESULT: o->result_file = optarg; break;
        case O_DETAIL: o->detailed = 1; break;
        case O_PLOT: o->plot = optarg; break;
        case O_NOPROG: no_progress = 1; break;
        case O_PLEN: bad = parse_int(optarg, &d->prefix_len); break;
        case O_SLEN: bad = parse_int(optarg, &d->suffix_len); break;
        case O_NPRE: bad = parse_int(optarg, &d->num_prefixes); break;
        case O_POUT: bad = parse_int(optarg, &d->prefix_output_len); break;
        case O_TURNS: bad = parse_int(optarg, &d->turns); break;
        case 'h': usage(stdout); exit(0);
        default: bad = 1;
        }
        if (bad && k != '?')
            fprintf(stderr, "bench-serving: bad value for --%s: %s\n", opts[li].name, optarg);
    }
    if (bad || optind < argc) {
        usage(stderr);
        return -1;
    }
    if (!o->n_rates) {
        o->rates[0] = rate;
        o->n_rates = 1;
    }
    d->seed = c->seed = (uint64_t)seed;
    c->progress = no_progress ? 0 : isatty(2) ? 1 : 2;
    if (!c->req.model) { /* the directory the tokenizer sits in names the model, as cinder's server */
        snprintf(o->model_buf, sizeof o->model_buf, "%s", o->tokenizer);
        char *dir = dirname(o->model_buf);
        c->req.model = basename(dir);
    }
    return 0;
}

/* Raises the open-file limit: every request in flight is a socket. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int write_json(const char *path, cJSON *j)
{
    char *s = cJSON_Print(j);
    FILE *f = s ? fopen(path, "w") : NULL;
    int rc = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f))
        rc = -1;
    free(s);
    return rc;
}

/* Options, the workload, then the runs and their reports, top to bottom (over 80 lines). */
int main(int argc, char **argv)
{
    options o = {
        .client = {.req = {.backend = SV_CINDER, .ignore_eos = 1}, .host = "127.0.0.1", .port = 8000,
                   .burstiness = 1, .timeout_s = 3600},
        .data = {.name = "random", .num_prompts = 1000, .min_len = 4, .max_prompt_len = 1024,
                 .max_total_len = 2048, .random_input_len = 1024, .random_output_len = 128,
                 .prefix_len = 256, .suffix_len = 256, .num_prefixes = 10, .prefix_output_len = 128,
                 .turns = 4},
        .tokenizer = "models/stories15M/tokenizer.json",
    };
    char err[512];
    int rc = 2, any_ok = 1;
    sv_dataset d = {0};
    sv_summary *sums = NULL;
    sv_outcome *out = NULL;
    cJSON *results = NULL;
    tok *t = NULL;
    if (parse_args(argc, argv, &o))
        return 2;
    o.client.tok = t = tok_load(o.tokenizer, err, sizeof err);
    if (!t) {
        fprintf(stderr, "bench-serving: tokenizer: %s\n", err);
        return 2;
    }
    if (sv_data_load(&o.data, t, &d, err, sizeof err)) {
        fprintf(stderr, "bench-serving: %s\n", err);
        goto out;
    }
    raise_fd_limit();
    out = calloc((size_t)d.n, sizeof *out);
    sums = calloc((size_t)o.n_rates, sizeof *sums);
    results = cJSON_CreateArray();
    if (!out || !sums || !results) {
        fprintf(stderr, "bench-serving: out of memory\n");
        goto out;
    }
    sv_run_info ri = {sv_backend_name(o.client.req.backend), o.client.req.model, o.tokenizer, o.data.name,
                      o.data.path, o.client.host, o.client.port, 0, o.client.burstiness,
                      o.client.max_concurrency, d.n, (unsigned long long)o.data.seed, o.client.req.ignore_eos};
    for (int i = 0; i < o.n_rates; i++) {
        double duration;
        sv_client_cfg c = o.client;
        c.request_rate = ri.request_rate = o.rates[i];
        char conc[16] = "none";
        if (c.max_concurrency > 0)
            snprintf(conc, sizeof conc, "%d", c.max_concurrency);
        fprintf(stderr, "bench-serving: %s at http://%s:%d%s, %d prompts (%s), rate %g req/s, max concurrency %s\n",
                ri.backend, c.host, c.port, sv_backend_path(c.req.backend), d.n, ri.dataset, c.request_rate, conc);
        double q0, h0, q1, h1;
        int counters = !sv_prefix_counters(c.host, c.port, &q0, &h0);
        if (sv_client_run(&c, &d, out, &duration, err, sizeof err)) {
            fprintf(stderr, "bench-serving: %s\n", err);
            goto out;
        }
        sv_summarize(&d, out, duration, &sums[i]);
        sums[i].prefix_queries = sums[i].prefix_hits = -1;
        if (counters && !sv_prefix_counters(c.host, c.port, &q1, &h1)) {
            sums[i].prefix_queries = q1 - q0;
            sums[i].prefix_hits = h1 - h0;
        }
        for (int k = 0, shown = 0; k < d.n && shown < 3; k++)
            if (!out[k].ok)
                fprintf(stderr, "bench-serving: request %d failed: %s%s\n", k, out[k].err,
                        ++shown == 3 && sums[i].failed > 3 ? " (and more)" : "");
        sv_report_table(stdout, &ri, &sums[i]);
        cJSON_AddItemToArray(results, sv_report_json(&ri, &sums[i], &d, out, o.detailed));
        any_ok &= sums[i].completed > 0;
        for (int k = 0; k < d.n; k++)
            sv_outcome_free(&out[k]);
    }
    rc = any_ok ? 0 : 1;
    if (o.result_file) {
        cJSON *j = o.n_rates == 1 ? cJSON_GetArrayItem(results, 0) : results;
        if (write_json(o.result_file, j)) {
            fprintf(stderr, "bench-serving: cannot write %s\n", o.result_file);
            rc = 2;
        }
    }
    if (o.plot && sv_report_plot(o.plot, o.rates, sums, o.n_rates, err, sizeof err)) {
        fprintf(stderr, "bench-serving: plot: %s\n", err);
        rc = rc ? rc : 3;
    }
out:
    cJSON_Delete(results);
    free(sums);
    free(out);
    sv_data_free(&d);
    tok_free(t);
    return rc;
}
