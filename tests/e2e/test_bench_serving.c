/* test_bench_serving.c - build/bin/bench-serving against a real cinder (CPU backend,
 * stories15M): random prompts all at once and at a finite rate under a concurrency cap,
 * ShareGPT prompts from ../shared/data, the OpenAI endpoint, vLLM's flags and result keys with
 * the openai-chat backend (goodput, percentiles, --save-result), the defaults alone,
 * shared-prefix and multi-turn workloads with the run's prefix cache hit rate, a sweep with
 * its plot, and a run where every request fails. Each run's JSON must account for every request and token
 * (ignore_eos: output == the lengths asked for), and agree with the server's /metrics
 * (cinder_requests_total{outcome=...}, cinder_prompt_tokens_total,
 * cinder_generation_tokens_total) over the same run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/json_util.h"
#include "cluster.h"
#include "http_client.h"
#include "prom.h"

#define SHAREGPT "../shared/data/sharegpt_prompts_1000.json"

static cluster C;
static char BENCH[PATH_MAX], RESULT[64], OUTPUT[64];

/* Server figures that a run moves. */
typedef struct {
    double requests, length, prompt, generation;
} counters;

static const char *const OUTCOMES[] = {"length", "stop", "abort", "error", "rejected"};


/* 0, or -1 when the server has no /metrics. */
static int scrape(counters *c)
{
    http_resp r;
    http_request(C.port, "GET", "/metrics", NULL, &r);
    int rc = -1;
    if (r.status == 200) {
        char label[96];
        c->requests = 0;
        for (int i = 0; i < 5; i++) {
            snprintf(label, sizeof label, "outcome=\"%s\"", OUTCOMES[i]);
            double v = prom_value(r.body, "cinder_requests_total", label);
            assert_true(v >= 0);
            c->requests += v;
            if (!i)
                c->length = v;
        }
        c->prompt = prom_value(r.body, "cinder_prompt_tokens_total", NULL);
        c->generation = prom_value(r.body, "cinder_generation_tokens_total", NULL);
        assert_true(c->prompt >= 0 && c->generation >= 0);
        rc = 0;
    } else {
        printf("# /metrics answered %d: server counters not compared\n", r.status);
    }
    http_resp_free(&r);
    return rc;
}

/* Runs bench-serving with ARGS against the cluster; returns its exit status, the result JSON
 * in *J (NULL when none) and its stdout in OUTPUT. */
static int bench(const char *args, cJSON **j)
{
    char cmd[8192], err[256];
    unlink(RESULT);
    snprintf(cmd, sizeof cmd, "%s --host 127.0.0.1 --port %d --tokenizer models/stories15M/tokenizer.json "
                              "--no-progress --result-file %s %s > %s", BENCH, C.port, RESULT, args, OUTPUT);
    printf("# %s\n", cmd);
    int rc = system(cmd);
    *j = json_read_file(RESULT, err, sizeof err);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    if (!cJSON_IsNumber(v))
        fail_msg("result has no number '%s'", key);
    return v->valuedouble;
}

static double sum(const cJSON *j, const char *key)
{
    double s = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(j, key)) s += v->valuedouble;
    return s;
}

/* One completed run: every request done, exactly the tokens asked for, sane timings. */
static void check_run(const cJSON *r, int n)
{
    assert_int_equal((int)num(r, "completed"), n);
    assert_int_equal((int)num(r, "failed"), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "output_lens")), n);
    const cJSON *asked = cJSON_GetObjectItem(r, "requested_output_lens")->child;
    const cJSON *got = cJSON_GetObjectItem(r, "output_lens")->child;
    const cJSON *ttft = cJSON_GetObjectItem(r, "ttfts_ms")->child, *e2e = cJSON_GetObjectItem(r, "e2els_ms")->child;
    const cJSON *err = cJSON_GetObjectItem(r, "errors")->child, *fin = cJSON_GetObjectItem(r, "finish_reasons")->child;
    for (; asked; asked = asked->next, got = got->next, ttft = ttft->next, e2e = e2e->next, err = err->next,
                  fin = fin->next) {
        assert_int_equal(got->valueint, asked->valueint);
        assert_true(ttft->valuedouble > 0 && e2e->valuedouble >= ttft->valuedouble);
        assert_string_equal(err->valuestring, "");
        assert_string_equal(fin->valuestring, "length");
    }
    assert_int_equal((long long)num(r, "total_output_tokens"), (long long)sum(r, "requested_output_lens"));
    assert_int_equal((long long)num(r, "total_input_tokens"), (long long)sum(r, "input_lens"));
    assert_true(num(r, "duration") > 0);
    assert_true(num(r, "mean_ttft_ms") > 0 && num(r, "mean_ttft_ms") <= num(r, "mean_e2el_ms"));
    assert_true(num(r, "median_ttft_ms") <= num(r, "p99_ttft_ms"));
    assert_true(num(r, "mean_tpot_ms") > 0 && num(r, "mean_itl_ms") > 0);
    assert_true(num(r, "p90_e2el_ms") <= num(r, "p99_e2el_ms") + 1e-9);
    assert_float_equal(num(r, "output_throughput"), num(r, "total_output_tokens") / num(r, "duration"), 1e-6);
}

/* The server's counters moved by exactly the run's figures (polled: the server counts a
 * request just after its last byte). CHAT: the server's prompts are the rendered ones, longer
 * than the messages' text that bench-serving counts (as vLLM's does). */
static void check_metrics(const counters *before, const cJSON *r, int n, int chat)
{
    counters after;
    for (int tries = 0;; tries++) {
        if (scrape(&after))
            return;
        if (after.requests - before->requests >= n || tries == 30)
            break;
        usleep(100000);
    }
    printf("# /metrics: +%.0f requests (+%.0f length), +%.0f prompt tokens, +%.0f generated; bench: %d, %.0f, %.0f\n",
           after.requests - before->requests, after.length - before->length, after.prompt - before->prompt,
           after.generation - before->generation, n, num(r, "total_input_tokens"), num(r, "total_output_tokens"));
    assert_int_equal((int)(after.requests - before->requests), n);
    assert_int_equal((int)(after.length - before->length), n);
    if (chat)
        assert_true((long long)(after.prompt - before->prompt) > (long long)num(r, "total_input_tokens"));
    else
        assert_int_equal((long long)(after.prompt - before->prompt), (long long)num(r, "total_input_tokens"));
    assert_int_equal((long long)(after.generation - before->generation), (long long)num(r, "total_output_tokens"));
}

static int out_has(const char *s)
{
    char err[128];
    char *text = file_read_all(OUTPUT, NULL, err, sizeof err);
    int yes = text && strstr(text, s);
    free(text);
    return yes;
}

static void test_random_all_at_once(void **state)
{
    counters before;
    int have_metrics = !scrape(&before);
    cJSON *r;
    assert_int_equal(bench("--dataset-name random --num-prompts 20 --random-input-len 48 --random-output-len 24 "
                           "--random-range-ratio 0.5 --seed 3", &r), 0);
    assert_non_null(r);
    check_run(r, 20);
    assert_string_equal(cJSON_GetObjectItem(r, "request_rate")->valuestring, "inf");
    assert_true(num(r, "max_concurrent_requests") > 1); /* they overlapped */
    assert_true(out_has("============ Serving Benchmark Result ============"));
    assert_true(out_has("Successful requests:                     20"));
    if (have_metrics)
        check_metrics(&before, r, 20, 0);
    cJSON_Delete(r);
}

static void test_rate_and_concurrency(void **state)
{
    counters before;
    int have_metrics = !scrape(&before);
    cJSON *r;
    assert_int_equal(bench("--num-prompts 12 --random-input-len 24 --random-output-len 16 --request-rate 8 "
                           "--max-concurrency 3 --seed 5", &r), 0);
    assert_non_null(r);
    check_run(r, 12);
    assert_float_equal(num(r, "request_rate"), 8, 0);
    assert_true(num(r, "max_concurrent_requests") <= 3);
    double prev = -1;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(r, "start_ms")) { /* sent in arrival order, spread out */
        assert_true(s->valuedouble >= prev);
        prev = s->valuedouble;
    }
    assert_true(prev > 100);
    if (have_metrics)
        check_metrics(&before, r, 12, 0);
    cJSON_Delete(r);
}

static void test_sharegpt(void **state)
{
    if (access(SHAREGPT, R_OK)) {
        printf("# skipped: %s is absent (the shared benchmark data sits beside the repository)\n", SHAREGPT);
        skip();
    }
    counters before;
    int have_metrics = !scrape(&before);
    cJSON *r;
    /* stories15M's context is 256 tokens: prompts that leave room for 24 new ones */
    assert_int_equal(bench("--dataset-name sharegpt --dataset-path " SHAREGPT " --num-prompts 16 --output-len 24 "
                           "--max-total-len 256 --seed 1", &r), 0);
    assert_non_null(r);
    check_run(r, 16);
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(r, "input_lens")) assert_true(v->valueint >= 4 && v->valueint <= 232);
    if (have_metrics)
        check_metrics(&before, r, 16, 0);
    cJSON_Delete(r);
}

static void test_openai(void **state)
{
    counters before;
    int have_metrics = !scrape(&before);
    cJSON *r;
    assert_int_equal(bench("--backend openai --num-prompts 16 --random-input-len 32 --random-output-len 20 "
                           "--random-range-ratio 0.3 --request-rate 20 --seed 9", &r), 0);
    assert_non_null(r);
    check_run(r, 16);
    assert_string_equal(cJSON_GetObjectItem(r, "backend")->valuestring, "openai");
    if (have_metrics)
        check_metrics(&before, r, 16, 0);
    cJSON_Delete(r);
}

/* vLLM's `vllm bench serve` flags, the openai-chat backend and vLLM's result keys */
static void test_vllm_flags_chat(void **state)
{
    counters before;
    int have_metrics = !scrape(&before);
    char dir[64], cmd[3 * PATH_MAX], err[256], path[128];
    snprintf(dir, sizeof dir, "/tmp/cinder-bench-dir.%d", (int)getpid());
    snprintf(path, sizeof path, "%s/run.json", dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir %s && %s --base-url http://127.0.0.1:%d --backend openai-chat "
             "--endpoint /v1/chat/completions --tokenizer models/stories15M/tokenizer.json --dataset-name random "
             "--num-prompts 10 --random-input-len 16 --random-output-len 12 --ignore-eos --temperature 0 "
             "--max-concurrency 4 --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99.9 "
             "--goodput ttft:600000 tpot:600000 --save-result --result-dir %s --result-filename run.json "
             "--save-detailed --disable-tqdm > %s", dir, dir, BENCH, C.port, dir, OUTPUT);
    printf("# %s\n", cmd);
    assert_int_equal(system(cmd), 0);
    cJSON *r = json_read_file(path, err, sizeof err);
    assert_non_null(r);
    assert_int_equal((int)num(r, "completed"), 10);
    assert_string_equal(cJSON_GetObjectItem(r, "endpoint_type")->valuestring, "openai-chat");
    assert_string_equal(cJSON_GetObjectItem(r, "endpoint")->valuestring, "/v1/chat/completions");
    const char *keys[] = {"request_throughput", "output_throughput", "total_token_throughput", "mean_ttft_ms",
                          "median_ttft_ms", "std_ttft_ms", "p50_ttft_ms", "p99.9_ttft_ms", "p99.9_tpot_ms",
                          "p50_itl_ms", "p99.9_e2el_ms", "request_goodput", "duration", "total_input_tokens",
                          "total_output_tokens", "max_concurrency"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        num(r, keys[i]);
    assert_null(cJSON_GetObjectItem(r, "p90_ttft_ms")); /* only the percentiles asked for */
    /* every request met the (generous) SLOs */
    assert_float_equal(num(r, "request_goodput"), num(r, "request_throughput"), 1e-9);
    assert_int_equal((long long)num(r, "total_output_tokens"), 120);
    /* ttfts in seconds (vLLM's), ttfts_ms the same in ms; itls per request, in seconds */
    const cJSON *t = cJSON_GetObjectItem(r, "ttfts")->child, *t_ms = cJSON_GetObjectItem(r, "ttfts_ms")->child;
    const cJSON *itls = cJSON_GetObjectItem(r, "itls")->child, *lens = cJSON_GetObjectItem(r, "output_lens")->child;
    int n = 0;
    for (; t; t = t->next, t_ms = t_ms->next, itls = itls->next, lens = lens->next, n++) {
        assert_float_equal(t->valuedouble * 1e3, t_ms->valuedouble, 1e-6);
        assert_true(t->valuedouble > 0 && t->valuedouble < 60);
        assert_int_equal(cJSON_GetArraySize(itls), lens->valueint - 1);
        for (const cJSON *g = itls->child; g; g = g->next)
            assert_true(g->valuedouble >= 0 && g->valuedouble < 60);
    }
    assert_int_equal(n, 10);
    assert_true(out_has("Request goodput (req/s):"));
    assert_true(out_has("P99.9 TTFT (ms):"));
    if (have_metrics)
        check_metrics(&before, r, 10, 1);
    cJSON_Delete(r);
    /* the defaults alone fit the default model (random prompts of half its context) and a
       plain --save-result names the file as vLLM does */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "cd %s && %s --port %d --tokenizer %s/models/stories15M/tokenizer.json "
             "--num-prompts 4 --save-result --no-progress > %s/out", dir, BENCH, C.port, cwd, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '^cinder-infqps-stories15M-[0-9]\\{8\\}-[0-9]\\{6\\}\\.json$'", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
}

/* Shared prefixes and conversations: the run's prefix cache hit rate comes from the
 * server's counters; later turns go only once the turn before them has been answered. */
static void test_prefix_workloads(void **state)
{
    counters before;
    int have_metrics = !scrape(&before);
    cJSON *r;
    assert_int_equal(bench("--dataset-name prefix_repetition --num-prompts 16 --prefix-repetition-prefix-len 96 "
                           "--prefix-repetition-suffix-len 16 --prefix-repetition-num-prefixes 2 "
                           "--prefix-repetition-output-len 8 --seed 4", &r), 0);
    assert_non_null(r);
    check_run(r, 16);
    double q = num(r, "prefix_cache_queries"), h = num(r, "prefix_cache_hits");
    printf("# prefix_repetition: %.0f of %.0f prompt tokens from the cache\n", h, q);
    assert_true(q == num(r, "total_input_tokens"));
    assert_true(h >= 14 * 96 * 0.9); /* all but the first of each prefix find it cached */
    assert_float_equal(num(r, "prefix_cache_hit_rate"), h / q, 1e-9);
    assert_true(out_has("Prefix cache hit rate (%):"));
    if (have_metrics)
        check_metrics(&before, r, 16, 0);
    cJSON_Delete(r);

    have_metrics = !scrape(&before);
    assert_int_equal(bench("--dataset-name multiturn --num-prompts 12 --multiturn-turns 3 --random-input-len 16 "
                           "--random-output-len 8 --max-total-len 256 --request-rate 50 --seed 6", &r), 0);
    assert_non_null(r);
    check_run(r, 12);
    const cJSON *start = cJSON_GetObjectItem(r, "start_ms"), *e2e = cJSON_GetObjectItem(r, "e2els_ms");
    for (int i = 0; i < 12; i++)
        if (i % 3) /* a turn starts after the previous one's answer ended */
            assert_true(cJSON_GetArrayItem(start, i)->valuedouble >=
                        cJSON_GetArrayItem(start, i - 1)->valuedouble + cJSON_GetArrayItem(e2e, i - 1)->valuedouble - 1);
    printf("# multiturn: %.0f of %.0f prompt tokens from the cache\n", num(r, "prefix_cache_hits"),
           num(r, "prefix_cache_queries"));
    assert_true(num(r, "prefix_cache_hits") > 0);
    if (have_metrics)
        check_metrics(&before, r, 12, 0);
    cJSON_Delete(r);
}

static void test_failures_counted(void **state)
{
    cJSON *r;
    /* a model the server does not serve: OpenAI's 404 for every request */
    assert_int_equal(bench("--backend openai --model no-such-model --num-prompts 5 --random-input-len 8 "
                           "--random-output-len 4", &r), 1);
    assert_non_null(r);
    assert_int_equal((int)num(r, "completed"), 0);
    assert_int_equal((int)num(r, "failed"), 5);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "errors")) assert_non_null(strstr(e->valuestring, "HTTP 404"));
    assert_true(out_has("Failed requests:                         5"));
    cJSON_Delete(r);
    /* nobody listening */
    char args[256];
    snprintf(args, sizeof args, "--num-prompts 3 --random-input-len 8 --random-output-len 4 --port %d", 1);
    assert_int_equal(bench(args, &r), 1);
    assert_int_equal((int)num(r, "failed"), 3);
    cJSON_Delete(r);
}

static void test_sweep_plot(void **state)
{
    char png[64], dat[80], args[512];
    snprintf(png, sizeof png, "/tmp/bench-serving.%d.png", (int)getpid());
    snprintf(dat, sizeof dat, "%s.dat", png);
    snprintf(args, sizeof args, "--num-prompts 8 --random-input-len 16 --random-output-len 8 "
                                "--sweep-rates 4,inf --plot %s", png);
    cJSON *r;
    int rc = bench(args, &r), have_gnuplot = system("command -v gnuplot > /dev/null") == 0;
    assert_int_equal(rc, have_gnuplot ? 0 : 3); /* 3: everything but the plot */
    assert_true(cJSON_IsArray(r));
    assert_int_equal(cJSON_GetArraySize(r), 2);
    check_run(cJSON_GetArrayItem(r, 0), 8);
    check_run(cJSON_GetArrayItem(r, 1), 8);
    assert_float_equal(num(cJSON_GetArrayItem(r, 0), "request_rate"), 4, 0);
    assert_int_equal(access(dat, R_OK), 0);
    if (have_gnuplot) {
        FILE *f = fopen(png, "rb");
        unsigned char sig[8] = {0};
        assert_non_null(f);
        assert_int_equal(fread(sig, 1, 8, f), 8);
        fclose(f);
        assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    } else {
        printf("# gnuplot is not installed: plot not drawn (exit status 3 checked)\n");
    }
    cJSON_Delete(r);
    char gp[80];
    snprintf(gp, sizeof gp, "%s.gp", png);
    unlink(png);
    unlink(dat);
    unlink(gp);
}

static int setup(void **state)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0; /* BUILD/test/e2e_bench_serving -> BUILD/bin/bench-serving */
    snprintf(BENCH, sizeof BENCH, "%s/bin/bench-serving", dirname(dirname(exe)));
    snprintf(RESULT, sizeof RESULT, "/tmp/bench-serving.%d.json", (int)getpid());
    snprintf(OUTPUT, sizeof OUTPUT, "/tmp/bench-serving.%d.out", (int)getpid());
    if (access(BENCH, X_OK)) {
        fprintf(stderr, "no %s\n", BENCH);
        return -1;
    }
    return cluster_start(&C, CLUSTER_CHAT_TEMPLATE); /* the openai-chat backend needs one */
}

static int teardown(void **state)
{
    cluster_stop(&C);
    unlink(RESULT);
    unlink(OUTPUT);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_all_at_once),
        cmocka_unit_test(test_rate_and_concurrency),
        cmocka_unit_test(test_sharegpt),
        cmocka_unit_test(test_openai),
        cmocka_unit_test(test_vllm_flags_chat),
        cmocka_unit_test(test_prefix_workloads),
        cmocka_unit_test(test_failures_counted),
        cmocka_unit_test(test_sweep_plot),
    };
    return cmocka_run_group_tests_name("e2e_bench_serving", tests, setup, teardown);
}
