/* test_families.c - every model family served end to end by launch.sh with its own
 * tokenizer: the tiny transformers-written models of tests/data/hf (Llama, Mistral, Mixtral,
 * Qwen2, Qwen3, Qwen3-MoE; config.json in both styles), each with a tokenizer of its
 * family's style whose 512 ids fit the model (tests/data/hf/tok_llama2, tok_qwen, written by
 * scripts/hf_tiny_tokenizers.py), through /generate and /v1/chat/completions on the CPU
 * backend. The served tokens must be what the `generate` tool gives for the same prompt ids
 * (the CPU backend, whose greedy ids test_hf_families holds to transformers'), and the served
 * text their decode after the prompt's, as HF's incremental detokenization (see check_text
 * for the invalid UTF-8 random weights produce). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"
#include "../../common/tok/tok.h"

#define N_GEN 12
#define MAX_IDS 512

typedef struct {
    const char *family;   /* tests/data/hf/<family>/<style>/ */
    const char *style;    /* v4 or v5 config.json */
    const char *tok;      /* tests/data/hf/<tok>/ */
} fam;

static const fam families[] = {
    {"llama", "v4", "tok_llama2"},   {"mistral", "v5", "tok_llama2"},
    {"mixtral", "v4", "tok_llama2"}, {"qwen2", "v5", "tok_qwen"},
    {"qwen3", "v4", "tok_qwen"},     {"qwen3_moe", "v5", "tok_qwen"},
};

/* A model directory for F under /tmp (links to the committed files); 0 or -1. */
static int make_dir(const fam *f, char *dir, size_t n)
{
    char root[1024];
    if (!getcwd(root, sizeof root)) return -1;
    snprintf(dir, n, "/tmp/cinder-fam-%s.%d", f->family, (int)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; rm -rf %s; mkdir -p %s; d=%s/tests/data/hf/%s/%s; t=%s/tests/data/hf/%s;"
             "ln -s $d/* %s/;"
             "ln -s $t/tokenizer.json $t/tokenizer_config.json %s/",
             dir, dir, root, f->family, f->style, root, f->tok, dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static cJSON *post(int port, const char *path, const char *body)
{
    http_resp r;
    http_request(port, "POST", path, body, &r);
    if (r.status != 200) fprintf(stderr, "%s: %d %s\n", path, r.status, r.body ? r.body : "");
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    http_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* The ids of a JSON array (or of its objects' "id"), into IDS; their count. */
static int json_ids(const cJSON *a, int32_t *ids)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const cJSON *v = cJSON_IsObject(e) ? cJSON_GetObjectItem(e, "id") : e;
        assert_true(cJSON_IsNumber(v) && n < MAX_IDS);
        ids[n++] = v->valueint;
    }
    return n;
}

/* The ids the `generate` tool (the CPU backend, greedy) continues PROMPT with, N_GEN of them. */
static void cli_generate(const char *dir, const int32_t *prompt, int n_prompt, int32_t *out)
{
    char cmd[8192];
    int at = snprintf(cmd, sizeof cmd, "${CINDER_BIN:-build/bin}/generate --model-dir %s --n %d "
                      "--threads 2 --tokens ", dir, N_GEN);
    for (int i = 0; i < n_prompt; i++)
        at += snprintf(cmd + at, sizeof cmd - at, "%s%d", i ? "," : "", prompt[i]);
    snprintf(cmd + at, sizeof cmd - at, " 2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = 0;
    while (n < N_GEN && fscanf(p, "%d", &out[n]) == 1) n++;
    pclose(p);
    assert_int_equal(n, N_GEN);
}

/* HF's incremental text of the continuation GEN after PROMPT: decode(prompt + gen) past
 * decode(prompt), special tokens skipped. */
static char *continuation(const tok *t, const int32_t *prompt, int n_prompt, const int32_t *gen,
                          int n_gen)
{
    static char a[8192], b[8192];
    int32_t all[2 * MAX_IDS];
    memcpy(all, prompt, sizeof *all * n_prompt);
    memcpy(all + n_prompt, gen, sizeof *all * n_gen);
    int64_t la = tok_decode(t, prompt, n_prompt, 1, a, sizeof a - 1);
    int64_t lb = tok_decode(t, all, n_prompt + n_gen, 1, b, sizeof b - 1);
    assert_true(la >= 0 && lb >= la && lb < (int64_t)sizeof b);
    b[lb] = 0;
    assert_memory_equal(a, b, la);
    return b + la;
}

/* The served TEXT against the decode EXPECT: equal; when EXPECT holds U+FFFD (random weights
 * pick byte tokens that make no valid UTF-8), the incremental detokenizer, like vLLM's, may
 * render those bytes differently than one decode of the whole (it never takes back text it
 * sent), so only the text before the first U+FFFD must agree. */
static void check_text(const char *what, const char *text, const char *expect)
{
    const char *bad = strstr(expect, "\xef\xbf\xbd");
    if (!bad) {
        if (strcmp(text, expect)) fail_msg("%s: text \"%s\", decode \"%s\"", what, text, expect);
        return;
    }
    size_t n = (size_t)(bad - expect);
    if (strncmp(text, expect, n))
        fail_msg("%s: text \"%s\" does not begin as the decode \"%s\"", what, text, expect);
}

/* Served ids SERVED (N) against the tool's REF (N_GEN): a prefix, all of them unless the
 * reason is a stop on the models' EOS (id 2, bos 1 / eos 2 in every tiny config). */
static void check_ids(const char *what, const int32_t *served, int n, const int32_t *ref,
                      const char *reason)
{
    for (int i = 0; i < n; i++)
        if (served[i] != ref[i]) fail_msg("%s: token %d is %d, generate says %d", what, i, served[i], ref[i]);
    if (!strcmp(reason, "length")) assert_int_equal(n, N_GEN);
    else if (strcmp(reason, "stop") || n >= N_GEN || ref[n] != 2) {
        if (!(n > 0 && served[n - 1] == 2 && !strcmp(reason, "stop")))
            fail_msg("%s: finish %s after %d tokens", what, reason, n);
    }
}

/* One family's run: its model directory, tokenizer and launch. */
typedef struct {
    const fam *f;
    char dir[256];
    tok *t;
    cluster c;
    int started;
} run;

static run runs[sizeof families / sizeof *families];

static int setup(void **state)
{
    run *r = *state;
    char path[512], err[256], extra[512];
    if (make_dir(r->f, r->dir, sizeof r->dir) < 0) return -1;
    snprintf(path, sizeof path, "%s/tokenizer.json", r->dir);
    if (!(r->t = tok_load(path, err, sizeof err))) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    snprintf(extra, sizeof extra, "--model-dir %s", r->dir);
    r->started = cluster_start(&r->c, extra) == 0;
    return r->started ? 0 : -1;
}

static int teardown(void **state)
{
    run *r = *state;
    if (r->started) cluster_stop(&r->c);
    r->started = 0;
    tok_free(r->t);
    r->t = NULL;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_family(void **state)
{
    run *r = *state;
    const fam *f = r->f;
    const char *dir = r->dir;
    const tok *t = r->t;
    cluster c = r->c;
    int32_t prompt[MAX_IDS], served[MAX_IDS], ref[N_GEN];

    /* /generate: a prompt with accented letters (Qwen: NFC, byte-level; Llama-2 style: byte
       fallback), its ids from /tokenize */
    const char *text = "Once upon a time, a cafe\\u0301 fox said: d\\u00e9j\\u00e0 vu!";
    char body[1024];
    snprintf(body, sizeof body, "{\"prompt\":\"%s\"}", text);
    cJSON *j = post(c.port, "/tokenize", body);
    int n_prompt = json_ids(cJSON_GetObjectItem(j, "tokens"), prompt);
    cJSON_Delete(j);
    assert_true(n_prompt > 5);
    for (int i = 0; i < n_prompt; i++) assert_true(prompt[i] >= 0 && prompt[i] < 512);
    snprintf(body, sizeof body, "{\"inputs\":\"%s\",\"parameters\":{\"max_new_tokens\":%d,"
             "\"return_details\":true}}", text, N_GEN);
    j = post(c.port, "/generate", body);
    assert_int_equal(cJSON_GetObjectItem(j, "prompt_tokens")->valueint, n_prompt);
    int n = json_ids(cJSON_GetObjectItem(j, "tokens"), served);
    cli_generate(dir, prompt, n_prompt, ref);
    char what[128];
    snprintf(what, sizeof what, "%s /generate", f->family);
    check_ids(what, served, n, ref, cJSON_GetObjectItem(j, "finish_reason")->valuestring);
    const cJSON *gt = cJSON_GetObjectItem(j, "generated_text");
    if (cJSON_IsArray(gt)) gt = cJSON_GetArrayItem(gt, 0);
    check_text(what, gt->valuestring, continuation(t, prompt, n_prompt, served, n));
    printf("%s: /generate %d prompt ids -> %d tokens %s\n", f->family, n_prompt, n,
           cJSON_GetObjectItem(j, "finish_reason")->valuestring);
    cJSON_Delete(j);

    /* /v1/chat/completions through the family's chat template, its prompt ids from /tokenize */
    const char *msgs = "[{\"role\":\"user\",\"content\":\"Tell me a story about a fox.\"}]";
    snprintf(body, sizeof body, "{\"messages\":%s}", msgs);
    j = post(c.port, "/tokenize", body);
    n_prompt = json_ids(cJSON_GetObjectItem(j, "tokens"), prompt);
    cJSON_Delete(j);
    snprintf(body, sizeof body, "{\"messages\":%s,\"max_tokens\":%d,\"temperature\":0}", msgs,
             N_GEN);
    j = post(c.port, "/v1/chat/completions", body);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint,
                     n_prompt);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    n = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valueint;
    cli_generate(dir, prompt, n_prompt, ref);
    assert_true(n >= 1 && n <= N_GEN);
    /* the chat answer carries no ids: the tool's first n tokens must read as its text, and
       its finish reason agree with them */
    memcpy(served, ref, sizeof *ref * n);
    snprintf(what, sizeof what, "%s chat", f->family);
    check_ids(what, served, n, ref, cJSON_GetObjectItem(ch, "finish_reason")->valuestring);
    const char *content = cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")->valuestring;
    check_text(what, content, continuation(t, prompt, n_prompt, served, n));
    printf("%s: chat %d prompt ids -> %d tokens\n", f->family, n_prompt, n);
    cJSON_Delete(j);
}

int main(void)
{
    struct CMUnitTest tests[sizeof families / sizeof *families];
    for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
        runs[i].f = &families[i];
        tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate_setup_teardown(
            test_family, setup, teardown, &runs[i]);
        tests[i].name = families[i].family;
    }
    return cmocka_run_group_tests_name("e2e_families", tests, NULL, NULL);
}
