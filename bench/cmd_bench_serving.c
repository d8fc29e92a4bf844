/* cmd_bench_serving.c - build/bin/bench-serving: the serving benchmark client, after vLLM's
 * benchmark_serving. Loads a workload, sends it to a running server over many concurrent
 * streams (one thread, libuv), prints vLLM's result table, writes a JSON result, and with
 * --sweep-rates runs several request rates and plots latency against rate. The server's
 * prefix cache counters (/metrics) read before and after each run give its hit rate.
 *
 *   bench-serving [--backend cinder|openai|openai-chat] [--base-url URL | --host H --port N]
 *       [--endpoint PATH] [--model NAME] [--tokenizer tokenizer.json]
 *       [--dataset-name sharegpt|instruction|random|prefix_repetition|multiturn]
 *       [--dataset-path FILE] [--num-prompts N] [--seed S] [--request-rate R|inf]
 *       [--burstiness B] [--max-concurrency N] [--sweep-rates R1,R2,...] [--plot FILE.png]
 *       [--percentile-metrics ttft,tpot,itl,e2el] [--metric-percentiles 90,99]
 *       [--goodput ttft:MS tpot:MS e2el:MS] [--save-result] [--result-dir DIR]
 *       [--result-filename NAME | --result-file PATH] [--save-detailed] ...  (--help: all)
 *
 * Flags and result keys are vLLM's `vllm bench serve` ones where they mean the same thing
 * (cinder's earlier names stay as aliases). Without --random-input-len / --random-output-len
 * / --max-prompt-len / --max-total-len, vLLM's defaults are capped by the context of the model
 * the tokenizer belongs to (config.json's max_position_embeddings beside it), so the defaults
 * fit the default 256-token model.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../common/json_util.h"

#include "serving.h"
#include "serving_report.h"

#define MAX_RATES 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench-serving [options]\n"
            "server:\n"
            "  --backend B                 cinder: POST /generate_stream; openai: POST /v1/completions;\n"
            "                              openai-chat: POST /v1/chat/completions (default cinder)\n"
            "  --base-url http://H:P[/pre] the server (default http://127.0.0.1:8000); or --host H --port N\n"
            "  --endpoint PATH             the path requests go to (default: the backend's)\n"
            "  --model NAME                OpenAI \"model\" (default: the tokenizer's directory name;\n"
            "                              alias --served-model-name)\n"
            "  --ignore-eos, --no-ignore-eos   run every request to its length (default), or let it stop at EOS\n"
            "  --temperature F             sample at F (default greedy); --top-p F, --top-k N likewise\n"
            "  --timeout S                 a request open longer fails (default 3600, 0: never)\n"
            "  (OPENAI_API_KEY in the environment is sent as Authorization: Bearer)\n"
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
            "  --max-prompt-len N            prompt <= N (default 1024, at most the model's context - 1),\n"
            "  --max-total-len N             prompt + output <= N (default 2048, at most the model's context)\n"
            "  --random-input-len N        random: prompt tokens (default 1024, at most half the context)\n"
            "  --random-output-len N       random: output tokens (default 128, at most a quarter of it)\n"
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
            "  --percentile-metrics LIST   figures reported with percentiles: ttft,tpot,itl,e2el (default all)\n"
            "  --metric-percentiles LIST   which percentiles, e.g. 50,90,99 (default 90,99)\n"
            "  --goodput KEY:MS ...        SLOs (ttft, tpot, e2el in ms): the rate of requests meeting all\n"
            "  --save-result               write the JSON to --result-dir/--result-filename (default: .,\n"
            "                              BACKEND-RATEqps[-concurrencyN]-MODEL-DATE.json)\n"
            "  --result-dir DIR, --result-filename NAME   (either implies --save-result)\n"
            "  --result-file FILE          the JSON's whole path: one run's object, or an array for a sweep\n"
            "  --save-detailed             the JSON also holds every inter-token gap and text\n"
            "  --plot FILE.png             latency against rate (gnuplot; FILE.png.dat and .gp beside)\n"
            "  --no-progress               no progress bar on stderr (alias --disable-tqdm)\n");
}

typedef struct {
    sv_client_cfg client;
    sv_data_cfg data;
    sv_stats_cfg stats;
    const char *tokenizer, *result_file, *result_dir, *result_filename, *plot, *endpoint;
    char model_buf[256], host_buf[256], path_buf[512];
    double rates[MAX_RATES];
    int n_rates, detailed, save_result, goodput;
    unsigned metrics;                /* --percentile-metrics, bit SV_TTFT... */
    int lens_given;                  /* bits: random input, random output, max prompt, max total */
} options;

static int parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end == s || *end || errno || isnan(*v) ? -1 : 0;
}

/* the digits at S into *V, *END after them */
static int parse_int_prefix(const char *s, int *v, const char **end)
{
    char *e;
    long k = strtol(s, &e, 10);
    if (e == s || k < 0 || k > 1000000)
        return -1;
    *v = (int)k;
    *end = e;
    return 0;
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

/* "ttft,tpot,..." into bits */
static int parse_metrics(const char *s, unsigned *bits)
{
    char *copy = strdup(s), *save = NULL;
    *bits = 0;
    int bad = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !bad; t = strtok_r(NULL, ",", &save)) {
        int m = 0;
        while (m < SV_N_METRICS && strcmp(t, sv_metric_names[m]))
            m++;
        bad = m == SV_N_METRICS;
        *bits |= 1u << m;
    }
    free(copy);
    return bad || !*bits ? -1 : 0;
}

static int parse_pcts(const char *s, sv_stats_cfg *st)
{
    char *copy = strdup(s), *save = NULL;
    int bad = 0;
    st->n_pct = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !bad; t = strtok_r(NULL, ",", &save)) {
        bad = st->n_pct == SV_MAX_PCT || parse_num(t, &st->pcts[st->n_pct]) || st->pcts[st->n_pct] < 0 ||
              st->pcts[st->n_pct] > 100;
        st->n_pct++;
    }
    free(copy);
    return bad || !st->n_pct ? -1 : 0;
}

/* vLLM's --goodput: KEY:MS for ttft, tpot, e2el (several, or comma-separated) */
static int parse_goodput(const char *s, sv_stats_cfg *st)
{
    char *copy = strdup(s), *save = NULL;
    int bad = 0, n = 0;
    for (char *t = strtok_r(copy, ", ", &save); t && !bad; t = strtok_r(NULL, ", ", &save), n++) {
        char *colon = strchr(t, ':');
        double v;
        bad = !colon || parse_num(colon + 1, &v) || !(v > 0);
        if (bad)
            break;
        *colon = 0;
        if (!strcmp(t, "ttft"))
            st->slo_ttft_ms = v;
        else if (!strcmp(t, "tpot"))
            st->slo_tpot_ms = v;
        else if (!strcmp(t, "e2el"))
            st->slo_e2el_ms = v;
        else
            bad = 1;
    }
    free(copy);
    return bad || !n ? -1 : 0;
}

/* --base-url http://HOST[:PORT][/PREFIX] */
static int parse_base_url(const char *url, options *o)
{
    if (strncmp(url, "http://", 7))
        return -1;
    const char *h = url + 7, *end = h + strcspn(h, ":/");
    if (end == h || (size_t)(end - h) >= sizeof o->host_buf)
        return -1;
    snprintf(o->host_buf, sizeof o->host_buf, "%.*s", (int)(end - h), h);
    o->client.host = o->host_buf;
    o->client.port = 80;
    if (*end == ':' && (parse_int_prefix(end + 1, &o->client.port, &end) || o->client.port < 1 ||
                        o->client.port > 65535))
        return -1;
    size_t n = strlen(end);
    while (n && end[n - 1] == '/')
        n--;
    snprintf(o->path_buf, sizeof o->path_buf, "%.*s", (int)n, end); /* the prefix of every path */
    return 0;
}

/* What the options imply once all are read: the rates (RATE unless --sweep-rates), the SEED of
 * the data and the client, the request path, the API key, the progress display, the model name. */
static void args_finish(options *o, double rate, double seed, int no_progress)
{
    sv_client_cfg *c = &o->client;
    if (!o->n_rates) {
        o->rates[0] = rate;
        o->n_rates = 1;
    }
    o->data.seed = c->seed = (uint64_t)seed;
    snprintf(o->path_buf + strlen(o->path_buf), sizeof o->path_buf - strlen(o->path_buf), "%s",
             o->endpoint ? o->endpoint : sv_backend_path(c->req.backend));
    c->req.path = o->path_buf;
    c->req.api_key = getenv("OPENAI_API_KEY") && *getenv("OPENAI_API_KEY") ? getenv("OPENAI_API_KEY") : NULL;
    c->progress = no_progress ? 0 : isatty(2) ? 1 : 2;
    if (!c->req.model) { /* the directory the tokenizer sits in names the model, as cinder's server */
        snprintf(o->model_buf, sizeof o->model_buf, "%s", o->tokenizer);
        char *dir = dirname(o->model_buf);
        c->req.model = basename(dir);
    }
}

/* The long options: vLLM's `vllm bench serve` names, and cinder's earlier ones as aliases. */
enum { O_BACKEND = 256, O_HOST, O_PORT, O_MODEL, O_NO_EOS, O_TIMEOUT, O_TOK, O_DNAME, O_DPATH, O_NUM,
       O_SEED, O_OUT, O_FIXED, O_MIN, O_MAXP, O_MAXT, O_RIN, O_ROUT, O_RR, O_RATE, O_BURST, O_CONC,
       O_SWEEP, O_RESULT, O_DETAIL, O_PLOT, O_NOPROG, O_PLEN, O_SLEN, O_NPRE, O_POUT, O_TURNS,
       O_BASE, O_ENDPOINT, O_IGNORE_EOS, O_TEMP, O_TOPP, O_TOPK, O_SAVE, O_RDIR, O_RNAME, O_PMETRICS,
       O_PCTS, O_GOODPUT };
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
    {"multiturn-turns", 1, 0, O_TURNS}, {"base-url", 1, 0, O_BASE}, {"endpoint", 1, 0, O_ENDPOINT},
    {"served-model-name", 1, 0, O_MODEL}, {"ignore-eos", 0, 0, O_IGNORE_EOS}, {"temperature", 1, 0, O_TEMP},
    {"top-p", 1, 0, O_TOPP}, {"top-k", 1, 0, O_TOPK}, {"save-result", 0, 0, O_SAVE},
    {"result-dir", 1, 0, O_RDIR}, {"result-filename", 1, 0, O_RNAME},
    {"percentile-metrics", 1, 0, O_PMETRICS}, {"metric-percentiles", 1, 0, O_PCTS},
    {"goodput", 1, 0, O_GOODPUT}, {"disable-tqdm", 0, 0, O_NOPROG}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};

/* The command line into O; -1 after the usage when an option or its value is refused. */
static int parse_args(int argc, char **argv, options *o)
{
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
        case O_MAXP: bad = parse_int(optarg, &d->max_prompt_len), o->lens_given |= 4; break;
        case O_MAXT: bad = parse_int(optarg, &d->max_total_len), o->lens_given |= 8; break;
        case O_RIN: bad = parse_int(optarg, &d->random_input_len), o->lens_given |= 1; break;
        case O_ROUT: bad = parse_int(optarg, &d->random_output_len), o->lens_given |= 2; break;
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
        case O_BASE: bad = parse_base_url(optarg, o); break;
        case O_ENDPOINT: o->endpoint = optarg, bad = optarg[0] != '/'; break;
        case O_IGNORE_EOS: c->req.ignore_eos = 1; break;
        case O_TEMP: bad = parse_num(optarg, &c->req.temperature) || c->req.temperature < 0; break;
        case O_TOPP: bad = parse_num(optarg, &c->req.top_p) || !(c->req.top_p > 0 && c->req.top_p <= 1); break;
        case O_TOPK: bad = parse_int(optarg, &c->req.top_k); break;
        case O_SAVE: o->save_result = 1; break;
        case O_RDIR: o->result_dir = optarg, o->save_result = 1; break;
        case O_RNAME: o->result_filename = optarg, o->save_result = 1; break;
        case O_PMETRICS: bad = parse_metrics(optarg, &o->metrics); break;
        case O_PCTS: bad = parse_pcts(optarg, &o->stats); break;
        case O_GOODPUT: bad = parse_goodput(optarg, &o->stats), o->goodput = 1; break;
        case 'h': usage(stdout); exit(0);
        default: bad = 1;
        }
        if (bad && k != '?')
            fprintf(stderr, "bench-serving: bad value for --%s: %s\n", opts[li].name, optarg);
    }
    /* vLLM's --goodput takes several words: ttft:200 tpot:50 */
    for (; !bad && o->goodput && optind < argc && strchr(argv[optind], ':'); optind++)
        if (parse_goodput(argv[optind], &o->stats)) {
            fprintf(stderr, "bench-serving: bad value for --goodput: %s\n", argv[optind]);
            bad = 1;
        }
    if (bad || optind < argc) {
        usage(stderr);
        return -1;
    }
    args_finish(o, rate, seed, no_progress);
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

/* vLLM's default lengths (1024-token random prompts, 2048 in all), capped by the context of
 * the model the tokenizer belongs to (max_position_embeddings of the config.json beside it),
 * unless given: the defaults then work against the default 256-token model too */
static void fit_context(options *o)
{
    char path[4096], dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s", o->tokenizer);
    snprintf(path, sizeof path, "%s/config.json", dirname(dir));
    cJSON *cfg = access(path, R_OK) ? NULL : json_read_file(path, err, sizeof err);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cfg, "max_position_embeddings");
    int ctx = cJSON_IsNumber(n) && n->valuedouble >= 4 ? (int)n->valuedouble : 0;
    cJSON_Delete(cfg);
    sv_data_cfg *d = &o->data;
    if (ctx <= 0)
        return;
    if (!(o->lens_given & 1) && d->random_input_len > ctx / 2)
        d->random_input_len = ctx / 2;
    if (!(o->lens_given & 2) && d->random_output_len > ctx / 4)
        d->random_output_len = ctx / 4;
    if (!(o->lens_given & 4) && d->max_prompt_len > ctx - 1)
        d->max_prompt_len = ctx - 1;
    if (!(o->lens_given & 8) && d->max_total_len > ctx)
        d->max_total_len = ctx;
}

/* Where the JSON goes: --result-file, or with --save-result / --result-dir / --result-filename
 * DIR/NAME (vLLM's name: BACKEND-RATEqps[-concurrencyN]-MODEL-YYYYmmdd-HHMMSS.json); 0: none */
static int result_path(const options *o, char *path, size_t n)
{
    if (o->result_file) {
        snprintf(path, n, "%s", o->result_file);
        return 1;
    }
    if (!o->save_result)
        return 0;
    char name[1024], conc[32] = "", date[32], rate[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", localtime(&now));
    if (o->client.max_concurrency > 0)
        snprintf(conc, sizeof conc, "-concurrency%d", o->client.max_concurrency);
    snprintf(rate, sizeof rate, isfinite(o->rates[0]) ? "%g" : "inf", o->rates[0]);
    const char *model = strrchr(o->client.req.model, '/') ? strrchr(o->client.req.model, '/') + 1 : o->client.req.model;
    snprintf(name, sizeof name, "%s-%sqps%s-%s-%s.json", sv_backend_name(o->client.req.backend), rate, conc, model,
             date);
    snprintf(path, n, "%s/%s", o->result_dir ? o->result_dir : ".", o->result_filename ? o->result_filename : name);
    return 1;
}

/* One run of D at RI's request rate: the outcomes in OUT (freed after), their summary in *SUM
 * with the server's prefix-cache hits (-1 when /metrics does not say), the first failures on
 * stderr, the table on stdout and the JSON added to RESULTS; -1 with ERR set when the client
 * cannot run. */
static int run_rate(const options *o, const sv_run_info *ri, const sv_dataset *d, sv_outcome *out,
                    sv_summary *sum, cJSON *results, char *err, size_t n_err)
{
    double duration;
    sv_client_cfg c = o->client;
    c.request_rate = ri->request_rate;
    char conc[16] = "none";
    if (c.max_concurrency > 0)
        snprintf(conc, sizeof conc, "%d", c.max_concurrency);
    fprintf(stderr, "bench-serving: %s at http://%s:%d%s, %d prompts (%s), rate %g req/s, max concurrency %s\n",
            ri->backend, c.host, c.port, c.req.path, d->n, ri->dataset, c.request_rate, conc);
    double q0, h0, q1, h1;
    int counters = !sv_prefix_counters(c.host, c.port, &q0, &h0);
    if (sv_client_run(&c, d, out, &duration, err, n_err))
        return -1;
    sv_summarize(d, out, duration, &o->stats, sum);
    sum->prefix_queries = sum->prefix_hits = -1;
    if (counters && !sv_prefix_counters(c.host, c.port, &q1, &h1)) {
        sum->prefix_queries = q1 - q0;
        sum->prefix_hits = h1 - h0;
    }
    for (int k = 0, shown = 0; k < d->n && shown < 3; k++)
        if (!out[k].ok)
            fprintf(stderr, "bench-serving: request %d failed: %s%s\n", k, out[k].err,
                    ++shown == 3 && sum->failed > 3 ? " (and more)" : "");
    sv_report_table(stdout, ri, sum);
    cJSON_AddItemToArray(results, sv_report_json(ri, sum, d, out, o->detailed));
    for (int k = 0; k < d->n; k++)
        sv_outcome_free(&out[k]);
    return 0;
}

/* Options, the workload, then a run a rate and the reports, top to bottom. */
int main(int argc, char **argv)
{
    options o = {
        .client = {.req = {.backend = SV_CINDER, .ignore_eos = 1, .temperature = -1}, .host = "127.0.0.1",
                   .port = 8000, .burstiness = 1, .timeout_s = 3600},
        .data = {.name = "random", .num_prompts = 1000, .min_len = 4, .max_prompt_len = 1024,
                 .max_total_len = 2048, .random_input_len = 1024, .random_output_len = 128,
                 .prefix_len = 256, .suffix_len = 256, .num_prefixes = 10, .prefix_output_len = 128,
                 .turns = 4},
        .tokenizer = "models/stories15M/tokenizer.json",
        .stats = {.n_pct = 2, .pcts = {90, 99}},
        .metrics = (1u << SV_N_METRICS) - 1,
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
    fit_context(&o);
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
                      o.data.path, o.client.host, o.client.req.path, o.client.port, 0, o.client.burstiness,
                      o.client.max_concurrency, d.n, (unsigned long long)o.data.seed, o.client.req.ignore_eos,
                      o.client.req.temperature, o.metrics, &o.stats};
    for (int i = 0; i < o.n_rates; i++) {
        ri.request_rate = o.rates[i];
        if (run_rate(&o, &ri, &d, out, &sums[i], results, err, sizeof err)) {
            fprintf(stderr, "bench-serving: %s\n", err);
            goto out;
        }
        any_ok &= sums[i].completed > 0;
    }
    rc = any_ok ? 0 : 1;
    char path[4096];
    if (result_path(&o, path, sizeof path)) {
        cJSON *j = o.n_rates == 1 ? cJSON_GetArrayItem(results, 0) : results;
        if (write_json(path, j)) {
            fprintf(stderr, "bench-serving: cannot write %s\n", path);
            rc = 2;
        } else {
            fprintf(stderr, "bench-serving: results in %s\n", path);
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
