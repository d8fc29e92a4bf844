/* test_hf_families.c - the CPU backend against transformers itself, for every supported family:
 * tests/data/hf/<family>/ holds a tiny random-weight model written by transformers'
 * save_pretrained (tests/gpu/hf_families.py), its config.json in transformers 5.x style (v5/)
 * and 4.x style (v4/), and transformers' greedy continuations of three prompts with the
 * logits of every step. For each family and each config style the backend prefills every
 * prompt in chunks (block size 4, so windows and chunks cross blocks), then decodes all
 * prompts together in one batch, free-running greedy: every generated id must be
 * transformers' and every logits row within 1e-4 (relative to the row's largest) of its.
 * Then for every family's config, random weights (--load-format dummy) and make-model's file
 * of them (same table, same seed, f32) give bit-identical logits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <glob.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../common/json_util.h"
#include "../../worker/backend.h"

#define REL_TOL 1e-4
#define BLOCK 4
enum { MAX_PROMPTS = 8, MAX_LEN = 256 };

typedef struct {
    char dir[2048];
    int n_prompts, n_gen, vocab;
    int32_t prompt[MAX_PROMPTS][MAX_LEN], n_prompt[MAX_PROMPTS];
    int32_t greedy[MAX_PROMPTS][MAX_LEN];
    float *logits;   /* [n_prompts, n_gen, vocab] */
} family_ref;

/* tests/data/hf under the working directory or the repository root above build/test/. */
static int find_data(char *out, size_t n)
{
    snprintf(out, n, "tests/data/hf");
    if (access(out, R_OK) == 0)
        return 0;
    char exe[1024];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return -1;
    exe[k] = 0;
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        if (!s)
            return -1;
        *s = 0;
    }
    if (snprintf(out, n, "%s/tests/data/hf", exe) >= (int)n)
        return -1;
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int read_ids(const cJSON *a, int32_t *out, int cap)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        assert_true(cJSON_IsNumber(e) && n < cap);
        out[n++] = (int32_t)e->valueint;
    }
    return n;
}

static void load_ref(family_ref *r, const char *dir)
{
    char path[2100], err[512];
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%.2000s", dir);
    snprintf(path, sizeof path, "%.2000s/ref.json", dir);
    cJSON *j = json_read_file(path, err, sizeof err);
    if (!j)
        fail_msg("%s", err);
    r->n_gen = cJSON_GetObjectItem(j, "n_gen")->valueint;
    r->vocab = cJSON_GetObjectItem(j, "vocab")->valueint;
    const cJSON *p = cJSON_GetObjectItem(j, "prompts"), *g = cJSON_GetObjectItem(j, "greedy");
    r->n_prompts = cJSON_GetArraySize(p);
    assert_true(r->n_prompts > 0 && r->n_prompts <= MAX_PROMPTS);
    assert_int_equal(cJSON_GetArraySize(g), r->n_prompts);
    for (int i = 0; i < r->n_prompts; i++) {
        r->n_prompt[i] = read_ids(cJSON_GetArrayItem(p, i), r->prompt[i], MAX_LEN);
        assert_int_equal(read_ids(cJSON_GetArrayItem(g, i), r->greedy[i], MAX_LEN), r->n_gen);
        assert_true(r->n_prompt[i] + r->n_gen < MAX_LEN);
    }
    cJSON_Delete(j);
    size_t n = (size_t)r->n_prompts * r->n_gen * r->vocab;
    r->logits = malloc(n * sizeof(float));
    snprintf(path, sizeof path, "%.2000s/logits.bin", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(r->logits, sizeof(float), n, f), n);
    fclose(f);
}

static double rel_err(const float *a, const float *ref, int n)
{
    double d = 0, m = 1;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        m = fmax(m, fabs((double)ref[i]));
    }
    return d / m;
}

/* The logits of batch sequence BI and its greedy TOKEN against transformers' step STEP of
 * prompt I; returns the relative logit error. */
static double check_step(const family_ref *r, const char *dir, backend *b, int bi, int i,
                         int step, int token)
{
    const float *l = b->last_logits(b, bi);
    assert_non_null(l);
    if (token != r->greedy[i][step])
        fail_msg("%s prompt %d step %d: token %d, transformers %d", dir, i, step, token,
                 r->greedy[i][step]);
    return rel_err(l, r->logits + ((size_t)i * r->n_gen + step) * r->vocab, r->vocab);
}

/* One family in one config style; returns the worst relative logit error. */
static double run_style(const family_ref *r, const char *style)
{
    char dir[2200], err[1024];
    snprintf(dir, sizeof dir, "%s/%s", r->dir, style);
    backend_opts o = {.model_dir = dir, .block_size = BLOCK, .max_seq_len = MAX_LEN,
                      .max_batch_tokens = 64, .max_seqs = MAX_PROMPTS, .kv_tokens = 2048,
                      .n_threads = 2};
    backend *b = cpu_backend_init(&o, err, sizeof err);
    if (!b)
        fail_msg("%s: %s", dir, err);
    assert_int_equal(b->cfg.vocab_size, r->vocab);
    sampling_params greedy = {.max_new_tokens = r->n_gen, .top_p = 1, .repetition_penalty = 1};
    int32_t tokens[MAX_PROMPTS][MAX_LEN], bt[MAX_PROMPTS][MAX_LEN / BLOCK + 1];
    int n_tok[MAX_PROMPTS];
    fwd_seq seqs[MAX_PROMPTS];
    double worst = 0;
    int next_block = 0;
    /* step 0: prefill each prompt alone, in a chunk of 3 tokens, then the rest */
    for (int i = 0; i < r->n_prompts; i++) {
        memcpy(tokens[i], r->prompt[i], (size_t)r->n_prompt[i] * sizeof(int32_t));
        n_tok[i] = r->n_prompt[i];
        for (int k = 0; k <= MAX_LEN / BLOCK; k++)   /* blocks in reverse: not contiguous */
            bt[i][k] = 2048 / BLOCK - 1 - next_block++;
        fwd_seq s = {.slot = i, .tokens = tokens[i], .n_prompt = n_tok[i], .block_table = bt[i],
                     .params = &greedy};
        fwd_batch one = {1, &s};
        for (int done = 0; done < n_tok[i];) {
            s.n_cached = done;
            s.n_new = done == 0 && n_tok[i] > 3 ? 3 : n_tok[i] - done;
            s.sample = done + s.n_new == n_tok[i];
            assert_int_equal(b->forward(b, &one), 0);
            done += s.n_new;
        }
        seqs[i] = s;
        worst = fmax(worst, check_step(r, dir, b, 0, i, 0, s.out_token));
        tokens[i][n_tok[i]++] = s.out_token;
    }
    /* then every prompt decodes in one batch */
    for (int step = 1; step < r->n_gen; step++) {
        for (int i = 0; i < r->n_prompts; i++) {
            seqs[i].n_cached = n_tok[i] - 1;
            seqs[i].n_new = 1;
            seqs[i].sample = 1;
        }
        fwd_batch all = {r->n_prompts, seqs};
        assert_int_equal(b->forward(b, &all), 0);
        for (int i = 0; i < r->n_prompts; i++) {
            worst = fmax(worst, check_step(r, dir, b, i, i, step, seqs[i].out_token));
            tokens[i][n_tok[i]++] = seqs[i].out_token;
        }
    }
    b->free(b);
    if (worst > REL_TOL)
        fail_msg("%s: logits differ from transformers' by %.2e (relative) > %.0e", dir, worst,
                 REL_TOL);
    return worst;
}

/* The family directories (DIRS [n] of 2048 chars); returns n. */
static int family_dirs(char (*dirs)[2048], int cap)
{
    char data[1024], pat[1100];
    assert_int_equal(find_data(data, sizeof data), 0);
    snprintf(pat, sizeof pat, "%s/*/ref.json", data);
    glob_t g;
    assert_int_equal(glob(pat, 0, NULL, &g), 0);
    int n = 0;
    for (size_t k = 0; k < g.gl_pathc && n < cap; k++, n++) {
        snprintf(dirs[n], 2048, "%s", g.gl_pathv[k]);
        *strrchr(dirs[n], '/') = 0;
    }
    globfree(&g);
    assert_true(n >= 8);   /* every family hf_families.py writes */
    return n;
}

static float *prefill_logits(backend *b, const int32_t *tok, int n)
{
    static const int32_t bt[4] = {3, 0, 2, 1};
    sampling_params greedy = {.max_new_tokens = 1, .top_p = 1, .repetition_penalty = 1};
    fwd_seq s = {.tokens = tok, .n_new = n, .n_prompt = n, .sample = 1, .block_table = bt,
                 .params = &greedy};
    fwd_batch one = {1, &s};
    assert_int_equal(b->forward(b, &one), 0);
    float *l = malloc((size_t)b->cfg.vocab_size * sizeof *l);
    memcpy(l, b->last_logits(b, 0), (size_t)b->cfg.vocab_size * sizeof *l);
    return l;
}

static char g_make_model[4096];

static void test_dummy_weights(void **state)
{
    char dirs[32][2048];
    int n = family_dirs(dirs, 32);
    int32_t tok[13];
    for (int i = 0; i < 13; i++)
        tok[i] = (i * 37 + 5) % 500;
    for (int k = 0; k < n; k++) {
        char tmp[] = "/tmp/cinder_fam_XXXXXX", cmd[8192], err[1024];
        assert_non_null(mkdtemp(tmp));
        snprintf(cmd, sizeof cmd, "%.4000s --out %s --config %.2000s/v5/config.json --dtype f32 --seed 0 "
                 ">/dev/null", g_make_model, tmp, dirs[k]);
        assert_int_equal(system(cmd), 0);
        float *l[2];
        for (int dummy = 0; dummy < 2; dummy++) {
            backend_opts o = {.model_dir = tmp, .dummy_weights = dummy, .block_size = 4,
                              .max_seq_len = 16, .max_batch_tokens = 16, .max_seqs = 1,
                              .kv_tokens = 16, .n_threads = 2};
            backend *b = cpu_backend_init(&o, err, sizeof err);
            if (!b)
                fail_msg("%s: %s", dirs[k], err);
            l[dummy] = prefill_logits(b, tok, 13);
            b->free(b);
        }
        for (int v = 0; v < 512; v++)
            assert_true(isfinite(l[0][v]));
        assert_memory_equal(l[0], l[1], 512 * sizeof(float));
        free(l[0]);
        free(l[1]);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_families(void **state)
{
    char dirs[32][2048];
    int n = family_dirs(dirs, 32);
    for (int k = 0; k < n; k++) {
        const char *dir = dirs[k];
        family_ref r;
        load_ref(&r, dir);
        double e5 = run_style(&r, "v5"), e4 = run_style(&r, "v4");
        printf("%-16s %d prompts x %d greedy tokens = transformers'; logits rel err v5 %.1e, "
               "v4 %.1e\n", strrchr(dir, '/') + 1, r.n_prompts, r.n_gen, e5, e4);
        free(r.logits);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_make_model, sizeof g_make_model, "%s/../bin/make-model", dirname(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_dummy_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
