/* test_serving.c - bench-serving's pieces without a server: percentiles and the summary's
 * definitions (vLLM's), the arrival process (mean rate and the gamma shape's spread,
 * reproducible by seed), both backends' request bodies and stream events, and the three
 * workloads with the default model's tokenizer (models/stories15M, from setup): exact random
 * lengths, ShareGPT/instruction filters and reply lengths. Random inputs, seed printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../bench/serving.h"
#include "../../common/json_util.h"

#define TOKENIZER "models/stories15M/tokenizer.json"

static sv_rng R;
static uint64_t SEED;

static void test_percentile(void **state)
{
    double v[] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    sv_dist d;
    sv_dist_of(v, 10, &d); /* numpy: mean 5.5, median 5.5, p90 9.1, p99 9.91, std 2.8722813 */
    assert_float_equal(d.mean, 5.5, 1e-12);
    assert_float_equal(d.median, 5.5, 1e-12);
    assert_float_equal(d.p90, 9.1, 1e-12);
    assert_float_equal(d.p99, 9.91, 1e-12);
    assert_float_equal(d.std, 2.8722813232690143, 1e-12);
    double one = 7;
    sv_dist_of(&one, 1, &d);
    assert_float_equal(d.p99, 7, 0);
    /* random: percentiles of a sorted sample bracket the right elements */
    int n = sv_rng_int(&R, 2, 5000);
    double *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++)
        x[i] = 1000 * sv_rng_uniform(&R) + 1;
    sv_dist_of(x, n, &d);
    for (int p = 0; p <= 100; p += 5) {
        double q = sv_percentile(x, n, p), pos = p / 100.0 * (n - 1);
        assert_true(q >= x[(int)floor(pos)] - 1e-9 && q <= x[(int)ceil(pos)] + 1e-9);
    }
    assert_true(d.median <= d.p90 && d.p90 <= d.p99 && d.p99 <= x[n - 1]);
    free(x);
}

static double gaps_cv(const double *t, int n, double *mean)
{
    double s = 0, sq = 0;
    for (int i = 1; i < n; i++)
        s += t[i] - t[i - 1];
    *mean = s / (n - 1);
    for (int i = 1; i < n; i++)
        sq += (t[i] - t[i - 1] - *mean) * (t[i] - t[i - 1] - *mean);
    return sqrt(sq / (n - 1)) / *mean;
}

static void test_arrivals(void **state)
{
    int n = 40000;
    double *t = malloc((size_t)n * sizeof *t), *u = malloc((size_t)n * sizeof *u), mean;
    double rate = 1 + 99 * sv_rng_uniform(&R);
    /* gamma of shape b: gaps with mean 1/rate and coefficient of variation 1/sqrt(b) */
    const double shapes[] = {1, 0.5, 4, 0.2};
    for (int k = 0; k < 4; k++) {
        uint64_t seed = sv_rng_u64(&R);
        sv_arrivals(n, rate, shapes[k], seed, t);
        assert_float_equal(t[0], 0, 0);
        double cv = gaps_cv(t, n, &mean), want_cv = 1 / sqrt(shapes[k]);
        printf("# rate %.2f burstiness %.1f: mean gap %.3f ms (want %.3f), cv %.3f (want %.3f)\n", rate,
               shapes[k], mean, 1000 / rate, cv, want_cv);
        assert_true(fabs(mean * rate / 1000 - 1) < 0.05);
        assert_true(fabs(cv / want_cv - 1) < 0.06);
        sv_arrivals(n, rate, shapes[k], seed, u);
        assert_memory_equal(t, u, (size_t)n * sizeof *t); /* the seed decides */
    }
    sv_arrivals(100, INFINITY, 1, 1, t);
    for (int i = 0; i < 100; i++)
        assert_float_equal(t[i], 0, 0);
    free(t);
    free(u);
}

static void test_backend_bodies(void **state)
{
    sv_prompt p = {"Once \"upon\"\n a time", 7, 33, 0};
    sv_req_opts o = {.backend = SV_CINDER, .model = "stories15M", .ignore_eos = 1, .temperature = -1};
    char *s = sv_backend_body(&o, &p);
    cJSON *j = cJSON_Parse(s);
    assert_string_equal(cJSON_GetObjectItem(j, "inputs")->valuestring, p.prompt);
    cJSON *q = cJSON_GetObjectItem(j, "parameters");
    assert_int_equal(cJSON_GetObjectItem(q, "max_new_tokens")->valueint, 33);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(q, "ignore_eos")));
    cJSON_Delete(j);
    free(s);
    o.backend = SV_OPENAI;
    s = sv_backend_body(&o, &p);
    j = cJSON_Parse(s);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "stories15M");
    assert_string_equal(cJSON_GetObjectItem(j, "prompt")->valuestring, p.prompt);
    assert_int_equal(cJSON_GetObjectItem(j, "max_tokens")->valueint, 33);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"), "include_usage")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ignore_eos")));
    assert_float_equal(cJSON_GetObjectItem(j, "temperature")->valuedouble, 0, 0); /* greedy */
    assert_null(cJSON_GetObjectItem(j, "top_p"));
    cJSON_Delete(j);
    free(s);
    o.backend = SV_OPENAI_CHAT; /* vLLM's openai-chat: one user message */
    o.temperature = 0.7;
    o.top_p = 0.9;
    s = sv_backend_body(&o, &p);
    j = cJSON_Parse(s);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0);
    assert_string_equal(cJSON_GetObjectItem(m, "role")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(m, "content")->valuestring, p.prompt);
    assert_int_equal(cJSON_GetObjectItem(j, "max_completion_tokens")->valueint, 33);
    assert_null(cJSON_GetObjectItem(j, "prompt"));
    assert_float_equal(cJSON_GetObjectItem(j, "temperature")->valuedouble, 0.7, 0);
    assert_float_equal(cJSON_GetObjectItem(j, "top_p")->valuedouble, 0.9, 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
    cJSON_Delete(j);
    free(s);
    o.backend = SV_CINDER; /* sampling on cinder's API */
    s = sv_backend_body(&o, &p);
    j = cJSON_Parse(s);
    q = cJSON_GetObjectItem(j, "parameters");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(q, "do_sample")));
    assert_float_equal(cJSON_GetObjectItem(q, "temperature")->valuedouble, 0.7, 0);
    assert_float_equal(cJSON_GetObjectItem(q, "top_p")->valuedouble, 0.9, 0);
    cJSON_Delete(j);
    free(s);
    assert_string_equal(sv_backend_path(SV_OPENAI), "/v1/completions");
    assert_string_equal(sv_backend_path(SV_CINDER), "/generate_stream");
    assert_string_equal(sv_backend_path(SV_OPENAI_CHAT), "/v1/chat/completions");
    sv_backend b;
    assert_int_equal(sv_backend_parse("vllm", &b), -1);
    assert_int_equal(sv_backend_parse("openai-chat", &b), 0);
    assert_int_equal(b, SV_OPENAI_CHAT);
}

static int event(sv_backend b, const char *data, sv_event *ev, sv_buf *text)
{
    return sv_backend_event(b, data, strlen(data), ev, text);
}

static void test_backend_events(void **state)
{
    sv_event ev;
    sv_buf text = {0};
    assert_int_equal(event(SV_CINDER, "{\"token\":{\"id\":3,\"text\":\" a\",\"logprob\":-1,\"special\":false},"
                                      "\"generated_text\":null,\"finished\":false,\"finish_reason\":null}", &ev, &text), 0);
    assert_true(ev.output && ev.n_tokens == 1 && !ev.end && ev.usage_out == -1);
    assert_int_equal(event(SV_CINDER, "{\"token\":{\"id\":4,\"text\":\"b\"},\"generated_text\":\" ab\","
                                      "\"finished\":true,\"finish_reason\":\"length\",\"count_output_tokens\":2}",
                           &ev, &text), 0);
    assert_true(ev.output && ev.end && ev.usage_out == 2);
    assert_string_equal(ev.finish, "length");
    assert_string_equal(text.p, " ab");
    assert_int_equal(event(SV_CINDER, "{\"error\":\"boom\"}", &ev, &text), 0);
    assert_string_equal(ev.error, "server: boom");
    assert_int_equal(event(SV_CINDER, "{\"tok\":1}", &ev, &text), -1);
    assert_int_equal(event(SV_CINDER, "not json", &ev, &text), -1);
    text.n = 0;
    assert_int_equal(event(SV_OPENAI, "{\"id\":\"x\",\"choices\":[{\"text\":\"Hi\",\"index\":0,\"finish_reason\":null}],"
                                      "\"usage\":null}", &ev, &text), 0);
    assert_true(ev.output && !ev.end && ev.n_tokens == 0 && ev.usage_out == -1 && !ev.finish[0]);
    assert_int_equal(event(SV_OPENAI, "{\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}", &ev, &text), 0);
    assert_true(ev.output); /* an empty chunk is still a timing point, as in vLLM */
    assert_string_equal(ev.finish, "length");
    assert_int_equal(event(SV_OPENAI, "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9}}",
                           &ev, &text), 0);
    assert_true(!ev.output && ev.usage_out == 9);
    assert_int_equal(event(SV_OPENAI, "[DONE]", &ev, &text), 0);
    assert_true(ev.end);
    assert_int_equal(event(SV_OPENAI, "{\"error\":{\"message\":\"bad\",\"type\":\"x\"}}", &ev, &text), 0);
    assert_string_equal(ev.error, "server: bad");
    assert_int_equal(event(SV_OPENAI, "{\"choices\":[{\"delta\":{\"content\":\"!\"}}]}", &ev, &text), 0);
    assert_string_equal(text.p, "Hi!");
    sv_buf_free(&text);
}

static void test_summary(void **state)
{
    int n = sv_rng_int(&R, 3, 200);
    sv_dataset d = {calloc((size_t)n, sizeof(sv_prompt)), n};
    sv_outcome *o = calloc((size_t)n, sizeof *o);
    for (int i = 0; i < n; i++) {
        d.v[i].prompt_len = sv_rng_int(&R, 1, 500);
        o[i].ok = i == 0 ? 0 : sv_rng_int(&R, 0, 4) > 0;
        o[i].n_out = o[i].n_events = sv_rng_int(&R, 1, 40);
        o[i].start_ms = 1000 * sv_rng_uniform(&R);
        o[i].ttft_ms = 1 + 100 * sv_rng_uniform(&R);
        o[i].itl_ms = malloc((size_t)o[i].n_events * sizeof(double));
        double t = o[i].ttft_ms;
        for (int k = 0; k + 1 < o[i].n_events; k++)
            t += o[i].itl_ms[k] = 50 * sv_rng_uniform(&R);
        o[i].e2e_ms = t + 1;
    }
    long long in = 0, out = 0;
    int ok = 0, n_tpot = 0, n_gaps = 0, peak = 0;
    double tpot_sum = 0, ttft_sum = 0, gap_sum = 0;
    for (int i = 0; i < n; i++) {
        int cover = 0; /* requests in flight at request i's send: [start, start + e2e) */
        for (int k = 0; k < n; k++)
            cover += o[k].start_ms <= o[i].start_ms && o[i].start_ms < o[k].start_ms + o[k].e2e_ms;
        peak = cover > peak ? cover : peak;
        if (!o[i].ok)
            continue;
        ok++;
        in += d.v[i].prompt_len;
        out += o[i].n_out;
        ttft_sum += o[i].ttft_ms;
        for (int k = 0; k + 1 < o[i].n_events; k++, n_gaps++)
            gap_sum += o[i].itl_ms[k];
        if (o[i].n_out > 1) {
            tpot_sum += (o[i].e2e_ms - o[i].ttft_ms) / (o[i].n_out - 1);
            n_tpot++;
        }
    }
    sv_summary s;
    sv_summarize(&d, o, 2.5, NULL, &s);
    assert_int_equal(s.completed, ok);
    assert_int_equal(s.failed, n - ok);
    assert_int_equal(s.total_input, in);
    assert_int_equal(s.total_output, out);
    assert_float_equal(s.request_tput, ok / 2.5, 1e-9);
    assert_float_equal(s.total_tput, (in + out) / 2.5, 1e-9);
    assert_float_equal(s.ttft.mean, ok ? ttft_sum / ok : 0, 1e-9);
    assert_float_equal(s.tpot.mean, n_tpot ? tpot_sum / n_tpot : 0, 1e-9);
    assert_float_equal(s.itl.mean, n_gaps ? gap_sum / n_gaps : 0, 1e-9);
    assert_int_equal(s.max_concurrent, peak); /* failed requests were in flight too */
    for (int i = 0; i < n; i++)
        sv_outcome_free(&o[i]);
    free(o);
    free(d.v);
}

static void test_summary_exact(void **state)
{
    /* two done requests and a failed one, by hand */
    sv_prompt p[3] = {{"a", 10, 4, 0}, {"b", 20, 1, 0}, {"c", 30, 5, 0}};
    sv_dataset d = {p, 3};
    double g0[] = {10, 20, 30};
    sv_outcome o[3] = {
        {.ok = 1, .start_ms = 0, .ttft_ms = 100, .e2e_ms = 160, .n_out = 4, .n_events = 4, .itl_ms = g0},
        {.ok = 1, .start_ms = 50, .ttft_ms = 40, .e2e_ms = 40, .n_out = 1, .n_events = 1},
        {.ok = 0, .start_ms = 200, .e2e_ms = 5, .n_events = 0},
    };
    sv_summary s;
    sv_summarize(&d, o, 2, NULL, &s);
    assert_int_equal(s.completed, 2);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.total_input, 30);
    assert_int_equal(s.total_output, 5);
    assert_float_equal(s.output_tput, 2.5, 1e-12);
    assert_float_equal(s.ttft.mean, 70, 1e-12);
    assert_float_equal(s.tpot.mean, 20, 1e-12); /* (160 - 100) / 3; the 1-token request has none */
    assert_float_equal(s.itl.median, 20, 1e-12);
    assert_float_equal(s.e2el.mean, 100, 1e-12);
    assert_int_equal(s.max_concurrent, 2);
    assert_float_equal(s.request_goodput, -1, 0); /* no SLO */
    /* goodput (vLLM's): TTFT <= 50 ms holds for the second request only; with TPOT <= 25 too
       for both TPOTs (20, and 0 for one token) but TTFT fails the first */
    sv_stats_cfg cfg = {.n_pct = 2, .pcts = {50, 75}, .slo_ttft_ms = 50};
    sv_summarize(&d, o, 2, &cfg, &s);
    assert_int_equal(s.good_completed, 1);
    assert_float_equal(s.request_goodput, 0.5, 1e-12);
    assert_float_equal(s.ttft.pct[0], 70, 1e-12); /* numpy: percentile([40, 100], 50) */
    assert_float_equal(s.ttft.pct[1], 85, 1e-12);
    cfg.slo_ttft_ms = 0;
    cfg.slo_tpot_ms = 20;
    cfg.slo_e2el_ms = 200;
    sv_summarize(&d, o, 2, &cfg, &s);
    assert_int_equal(s.good_completed, 2);
    cfg.slo_tpot_ms = 19.9;
    sv_summarize(&d, o, 2, &cfg, &s);
    assert_int_equal(s.good_completed, 1);
}

/* vLLM's defaults */
static sv_data_cfg data_cfg(const char *name, const char *path)
{
    return (sv_data_cfg){.name = name, .path = path, .num_prompts = 10, .seed = SEED, .min_len = 4,
                         .max_prompt_len = 1024, .max_total_len = 2048, .random_input_len = 1024,
                         .random_output_len = 128};
}

static int n_tokens(const tok *t, const char *s, int special)
{
    return (int)tok_encode(t, s, strlen(s), special, NULL, 0);
}

static void test_random_dataset(void **state)
{
    char err[256];
    tok *t = tok_load(TOKENIZER, err, sizeof err);
    assert_non_null(t);
    sv_data_cfg c = data_cfg("random", NULL);
    c.num_prompts = 50;
    c.random_input_len = sv_rng_int(&R, 8, 200);
    c.random_output_len = sv_rng_int(&R, 4, 100);
    c.random_range_ratio = 0.5 * sv_rng_uniform(&R);
    sv_dataset d;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    assert_int_equal(d.n, 50);
    int exact = 0, lo = (int)floor(c.random_input_len * (1 - c.random_range_ratio)),
        hi = (int)ceil(c.random_input_len * (1 + c.random_range_ratio));
    for (int i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].prompt_len, n_tokens(t, d.v[i].prompt, 1)); /* what the server counts */
        exact += d.v[i].prompt_len >= lo && d.v[i].prompt_len <= hi;
        assert_true(d.v[i].output_len >= (int)floor(c.random_output_len * (1 - c.random_range_ratio)));
        assert_true(d.v[i].output_len <= (int)ceil(c.random_output_len * (1 + c.random_range_ratio)));
    }
    printf("# random: %d of 50 prompt lengths in [%d, %d]\n", exact, lo, hi);
    assert_int_equal(exact, 50);
    /* the seed decides */
    sv_dataset e;
    assert_int_equal(sv_data_load(&c, t, &e, err, sizeof err), 0);
    for (int i = 0; i < d.n; i++)
        assert_string_equal(d.v[i].prompt, e.v[i].prompt);
    sv_data_free(&d);
    sv_data_free(&e);
    c.random_range_ratio = 0; /* one length: every prompt hits it exactly */
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    for (int i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].prompt_len, c.random_input_len);
        assert_int_equal(d.v[i].output_len, c.random_output_len);
    }
    sv_data_free(&d);
    c.random_range_ratio = 1;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), -1);
    tok_free(t);
}

/* A ShareGPT file of random records: prompts of random words, some with a reply. */
static void write_sharegpt(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    static const char *const words[] = {"the", "little", "dog", "ran", "to", "a", "big", "tree", "and", "Lily"};
    fputs("[", f);
    for (int i = 0; i < n; i++) {
        int n_p = sv_rng_int(&R, 1, 60), n_r = sv_rng_int(&R, 0, 40);
        fprintf(f, "%s{\"id\":\"r%d\",\"conversations\":[{\"from\":\"human\",\"value\":\"", i ? "," : "", i);
        for (int k = 0; k < n_p; k++)
            fprintf(f, "%s%s", k ? " " : "", words[sv_rng_int(&R, 0, 9)]);
        fputs("\"}", f);
        if (n_r) {
            fputs(",{\"from\":\"gpt\",\"value\":\"", f);
            for (int k = 0; k < n_r; k++)
                fprintf(f, "%s%s", k ? " " : "", words[sv_rng_int(&R, 0, 9)]);
            fputs("\"},{\"from\":\"human\",\"value\":\"second turn\"}", f);
        }
        fputs("]}", f);
    }
    fputs("]", f);
    fclose(f);
}

static void test_sharegpt_filters(void **state)
{
    char err[256], path[64];
    tok *t = tok_load(TOKENIZER, err, sizeof err);
    assert_non_null(t);
    snprintf(path, sizeof path, "/tmp/test_serving.%d.json", (int)getpid());
    write_sharegpt(path, 400);
    cJSON *all = json_read_file(path, err, sizeof err);
    assert_non_null(all);
    sv_data_cfg c = data_cfg("sharegpt", path);
    c.num_prompts = 1000;
    c.max_prompt_len = 40;
    c.max_total_len = 60;
    sv_dataset d;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    /* every record that passes the filters is taken, each with its reply's length */
    int want = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, all) {
        const cJSON *conv = cJSON_GetObjectItem(rec, "conversations");
        if (cJSON_GetArraySize(conv) < 2)
            continue;
        int p = n_tokens(t, cJSON_GetArrayItem(conv, 0)->child->next->valuestring, 1);
        int o = n_tokens(t, cJSON_GetArrayItem(conv, 1)->child->next->valuestring, 0);
        want += p >= 4 && o >= 4 && p <= 40 && p + o <= 60;
    }
    assert_int_equal(d.n, want);
    for (int i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].prompt_len, n_tokens(t, d.v[i].prompt, 1));
        assert_true(d.v[i].prompt_len >= 4 && d.v[i].prompt_len <= 40);
        assert_true(d.v[i].output_len >= 4 && d.v[i].prompt_len + d.v[i].output_len <= 60);
        assert_null(strstr(d.v[i].prompt, "second turn"));
    }
    sv_data_free(&d);
    /* records without a reply come in with --output-len; a fixed length overrides replies */
    c.output_len = 7;
    c.max_total_len = 2048;
    c.max_prompt_len = 1024;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    int n_seven = 0;
    for (int i = 0; i < d.n; i++)
        n_seven += d.v[i].output_len == 7;
    assert_true(n_seven > 0 && d.n > want);
    sv_data_free(&d);
    c.fixed_output_len = 3; /* below min_len: allowed, as vLLM does for a fixed length */
    c.num_prompts = 10;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    assert_int_equal(d.n, 10);
    for (int i = 0; i < d.n; i++)
        assert_int_equal(d.v[i].output_len, 3);
    sv_data_free(&d);
    c.max_prompt_len = 1; /* nothing passes */
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), -1);
    c.path = "/nonexistent.json";
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), -1);
    cJSON_Delete(all);
    unlink(path);
    tok_free(t);
}

static void test_instruction(void **state)
{
    char err[256], path[64];
    tok *t = tok_load(TOKENIZER, err, sizeof err);
    assert_non_null(t);
    snprintf(path, sizeof path, "/tmp/test_serving_ins.%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("[{\"instruction\":\"Tell me a story about a dog\",\"output\":\"Once upon a time there was a dog.\"},"
          "{\"instruction\":\"Translate\",\"input\":\"the big tree is green\",\"output\":\"der grosse Baum\"},"
          "{\"output\":\"no instruction\"}]",
          f);
    fclose(f);
    sv_data_cfg c = data_cfg("instruction", path);
    c.num_prompts = 5;
    sv_dataset d;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    assert_int_equal(d.n, 2);
    for (int i = 0; i < 2; i++) {
        int story = !strncmp(d.v[i].prompt, "Tell", 4);
        assert_string_equal(d.v[i].prompt, story ? "Tell me a story about a dog" : "Translate\n\nthe big tree is green");
        assert_int_equal(d.v[i].output_len,
                         n_tokens(t, story ? "Once upon a time there was a dog." : "der grosse Baum", 0));
    }
    sv_data_free(&d);
    unlink(path);
    tok_free(t);
}

/* prefix_repetition: num_prefixes prefixes of about prefix_len tokens, each the start of
 * num_prompts / num_prefixes prompts in shuffled order, suffixes of their own; the seed
 * decides. */
static void test_prefix_dataset(void **state)
{
    char err[256];
    tok *t = tok_load(TOKENIZER, err, sizeof err);
    assert_non_null(t);
    sv_data_cfg c = data_cfg("prefix_repetition", NULL);
    c.num_prompts = 24;
    c.prefix_len = 64;
    c.suffix_len = 16;
    c.num_prefixes = 3;
    c.prefix_output_len = 7;
    sv_dataset d, e;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    assert_int_equal(d.n, 24);
    int group[24], n_group[3] = {0}, n_prefix = 0;
    char prefix[3][4096];
    for (int i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].prompt_len, n_tokens(t, d.v[i].prompt, 1));
        assert_true(abs(d.v[i].prompt_len - (1 + 64 + 16)) <= 4); /* BOS, prefix, suffix */
        assert_int_equal(d.v[i].output_len, 7);
        assert_int_equal(d.v[i].after, 0);
        group[i] = -1; /* which prefix: the text before the first 40 bytes agree */
        for (int g = 0; g < n_prefix && group[i] < 0; g++)
            if (!strncmp(prefix[g], d.v[i].prompt, 40))
                group[i] = g;
        if (group[i] < 0) {
            assert_true(n_prefix < 3);
            snprintf(prefix[n_prefix], sizeof prefix[n_prefix], "%s", d.v[i].prompt);
            group[i] = n_prefix++;
        }
        n_group[group[i]]++;
    }
    assert_int_equal(n_prefix, 3);
    for (int g = 0; g < 3; g++)
        assert_int_equal(n_group[g], 8);
    int round_robin = 1; /* the order is shuffled, not prefix by prefix in turn */
    for (int i = 0; i < d.n; i++)
        round_robin &= group[i] == group[i % 3];
    assert_false(round_robin);
    assert_int_equal(sv_data_load(&c, t, &e, err, sizeof err), 0);
    for (int i = 0; i < d.n; i++)
        assert_string_equal(d.v[i].prompt, e.v[i].prompt);
    sv_data_free(&d);
    sv_data_free(&e);
    c.name = "prefix"; /* the short name */
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    sv_data_free(&d);
    c.num_prefixes = 0;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), -1);
    tok_free(t);
}

/* multiturn: each turn's prompt starts with the previous turn's prompt and answer and waits
 * for it (after); a conversation ends early when the next turn would not fit. */
static void test_multiturn_dataset(void **state)
{
    char err[256];
    tok *t = tok_load(TOKENIZER, err, sizeof err);
    assert_non_null(t);
    sv_data_cfg c = data_cfg("multiturn", NULL);
    c.num_prompts = 20;
    c.turns = 3;
    c.random_input_len = 20;
    c.random_output_len = 10;
    c.max_total_len = 2048;
    sv_dataset d;
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    assert_int_equal(d.n, 20);
    for (int i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].prompt_len, n_tokens(t, d.v[i].prompt, 1));
        assert_int_equal(d.v[i].output_len, 10);
        if (i % 3 == 0) {
            assert_int_equal(d.v[i].after, 0);
        } else {
            assert_int_equal(d.v[i].after, i); /* the request before it */
            const char *prev = d.v[i - 1].prompt;
            assert_memory_equal(d.v[i].prompt, prev, strlen(prev));
            assert_true(d.v[i].prompt_len > d.v[i - 1].prompt_len + 25);
        }
    }
    sv_data_free(&d);
    c.max_total_len = 80; /* room for two turns of 30 + 10 tokens, not three */
    assert_int_equal(sv_data_load(&c, t, &d, err, sizeof err), 0);
    for (int i = 0; i < d.n; i++)
        assert_true(d.v[i].prompt_len + 10 <= 80 && (d.v[i].after == 0 || d.v[d.v[i].after - 1].after == 0));
    sv_data_free(&d);
    tok_free(t);
}

int main(void)
{
    SEED = getenv("TEST_SEED") ? strtoull(getenv("TEST_SEED"), NULL, 10) : (uint64_t)time(NULL);
    printf("# seed %llu (TEST_SEED=%llu replays it)\n", (unsigned long long)SEED,
           (unsigned long long)SEED);
    R.s = SEED;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_arrivals),
        cmocka_unit_test(test_backend_bodies),
        cmocka_unit_test(test_backend_events),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_summary_exact),
        cmocka_unit_test(test_random_dataset),
        cmocka_unit_test(test_sharegpt_filters),
        cmocka_unit_test(test_instruction),
        cmocka_unit_test(test_prefix_dataset),
        cmocka_unit_test(test_multiturn_dataset),
    };
    return cmocka_run_group_tests_name("serving", tests, NULL, NULL);
}
