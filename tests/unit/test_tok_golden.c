/* test_tok_golden.c - the tokenizer library against HF tokenizers' own output: every vector
 * of tests/data/tok/{llama2,llama3,qwen3}.jsonl (written by scripts/gen_golden.js with the Rust
 * library as oracle) must encode to the same ids, with the post-processor's ids where
 * recorded, and decode to HF's text (the original text where HF round-trips). The same
 * vectors are then encoded from several threads at once on one shared tokenizer.
 * tests/data/tok/variant_*.jsonl run the same checks on a base tokenizer with components
 * replaced as their first line says (Metaspace, GPT-2 ByteLevel, Split behaviors, added
 * tokens with lstrip/rstrip/single_word/normalized).
 *
 * Tokenizers are found at run time: models/stories15M/tokenizer.json (made by setup from the
 * default model), build/assets/{llama3,qwen3}/tokenizer.json (scripts/fetch_assets.sh),
 * relative to the repository root, or at $CINDER_TOK_LLAMA2 / _LLAMA3 / _QWEN3. A missing file
 * fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../common/tok/tok.h"
#include "../../common/json_util.h"

typedef struct {
    char *text;
    int32_t *ids, *bos, n_ids, n_bos; /* n_bos < 0: not recorded */
    char *dec;                        /* HF's decode of ids */
} vec;

typedef struct {
    char name[128];
    const char *env, *tok_rel; /* where the tokenizer is */
    char vec_path[2048];       /* the vectors ("" until found) */
    const char *vec_rel;
    int variant;               /* vectors start with a {"variant": ...} line */
    tok *t;
    vec *v;
    int n;
} suite;

enum { MAX_SUITES = 32 };
static suite g_suites[MAX_SUITES] = {
    {.name = "llama2", .env = "CINDER_TOK_LLAMA2", .tok_rel = "models/stories15M/tokenizer.json",
     .vec_rel = "tests/data/tok/llama2.jsonl"},
    {.name = "llama3", .env = "CINDER_TOK_LLAMA3", .tok_rel = "build/assets/llama3/tokenizer.json",
     .vec_rel = "tests/data/tok/llama3.jsonl"},
    {.name = "qwen3", .env = "CINDER_TOK_QWEN3", .tok_rel = "build/assets/qwen3/tokenizer.json",
     .vec_rel = "tests/data/tok/qwen3.jsonl"},
};
static int g_n_suites = 3, g_cur;

/* REL under the repository root: the working directory, or two levels above this binary's
 * directory (build/test/). */
static int find_path(const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s", rel);
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
    snprintf(out, n, "%s/%s", exe, rel);
    return access(out, R_OK) == 0 ? 0 : -1;
}

static int32_t *int_array(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    int32_t *p = malloc(((size_t)*n + 1) * sizeof *p);
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, a) p[i++] = (int32_t)e->valuedouble;
    return p;
}

static void load_vectors(suite *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot read golden vectors %s", s->name, path);
    char *line = NULL;
    size_t cap = 0;
    int n_cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        if (cJSON_GetObjectItem(j, "variant")) {
            cJSON_Delete(j);
            continue;
        }
        const cJSON *text = cJSON_GetObjectItem(j, "text");
        assert_true(cJSON_IsString(text));
        if (s->n == n_cap) {
            n_cap = n_cap ? 2 * n_cap : 1024;
            s->v = realloc(s->v, (size_t)n_cap * sizeof *s->v);
        }
        vec *v = &s->v[s->n++];
        v->text = strdup(text->valuestring);
        v->ids = int_array(cJSON_GetObjectItem(j, "ids"), &v->n_ids);
        const cJSON *bos = cJSON_GetObjectItem(j, "bos"), *dec = cJSON_GetObjectItem(j, "dec");
        v->n_bos = -1;
        v->bos = bos ? int_array(bos, &v->n_bos) : NULL;
        v->dec = strdup(cJSON_IsString(dec) ? dec->valuestring : text->valuestring);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    assert_true(s->n >= (s->variant ? 400 : 2000));
}

static int base_path(const char *base, char *path, size_t n)
{
    for (int i = 0; i < 2; i++) {
        if (strcmp(g_suites[i].name, base))
            continue;
        const char *env = getenv(g_suites[i].env);
        if (env) {
            snprintf(path, n, "%s", env);
            return 0;
        }
        if (find_path(g_suites[i].tok_rel, path, n) == 0)
            return 0;
        fprintf(stderr, "%s: tokenizer %s is missing (run scripts/setup.sh, or set %s)\n", base,
                g_suites[i].tok_rel, g_suites[i].env);
        return -1;
    }
    fprintf(stderr, "unknown base tokenizer %s\n", base);
    return -1;
}


/* Loads the variant tokenizer: base file with the patch of the vectors' first line applied
 * (fields replaced; "added_tokens+" appended), written to a temporary file. */
static tok *load_variant(suite *s, char *err, size_t n_err)
{
    FILE *f = fopen(s->vec_path, "r");
    char *line = NULL, path[2048], *text = NULL;
    size_t cap = 0, n;
    tok *t = NULL;
    cJSON *head = NULL, *base = NULL;
    if (!f || getline(&line, &cap, f) <= 0)
        goto out;
    head = cJSON_Parse(line);
    const cJSON *v = cJSON_GetObjectItem(head, "variant"), *e;
    const cJSON *b = cJSON_GetObjectItem(v, "base");
    if (!cJSON_IsString(b) || base_path(b->valuestring, path, sizeof path) < 0 ||
        !(text = file_read_all(path, &n, NULL, 0)) || !(base = cJSON_ParseWithLength(text, n)))
        goto out;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(v, "patch")) {
        size_t kl = strlen(e->string);
        if (kl && e->string[kl - 1] == '+') {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(kl - 1), e->string);
            const cJSON *x;
            cJSON *arr = cJSON_GetObjectItem(base, key);
            cJSON_ArrayForEach(x, e) cJSON_AddItemToArray(arr, cJSON_Duplicate(x, 1));
        } else
            cJSON_ReplaceItemInObject(base, e->string, cJSON_Duplicate(e, 1));
    }
    char dir[] = "/tmp/cinder_tokvar_XXXXXX";
    if (!mkdtemp(dir))
        goto out;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char *json = cJSON_PrintUnformatted(base);
    FILE *o = fopen(path, "w");
    fputs(json, o);
    fclose(o);
    free(json);
    t = tok_load(path, err, n_err);
    unlink(path);
    rmdir(dir);
out:
    if (f)
        fclose(f);
    free(line);
    free(text);
    cJSON_Delete(head);
    cJSON_Delete(base);
    return t;
}

static int setup_suite(void **state)
{
    suite *s = &g_suites[g_cur];
    char path[2048], err[512] = "";
    *state = s;
    if (!s->vec_path[0] && find_path(s->vec_rel, s->vec_path, sizeof s->vec_path) < 0) {
        fprintf(stderr, "%s: golden vectors %s are missing\n", s->name, s->vec_rel);
        return -1;
    }
    if (s->variant)
        s->t = load_variant(s, err, sizeof err);
    else if (getenv(s->env) || find_path(s->tok_rel, path, sizeof path) == 0)
        s->t = tok_load(getenv(s->env) ? getenv(s->env) : path, err, sizeof err);
    else
        snprintf(err, sizeof err, "tokenizer %s is missing (run scripts/setup.sh, or set %s)",
                 s->tok_rel, s->env);
    if (!s->t) {
        fprintf(stderr, "%s: %s\n", s->name, err[0] ? err : "cannot build the tokenizer");
        return -1;
    }
    load_vectors(s, s->vec_path);
    return 0;
}

/* Checks vector V on T; returns the number of mismatches (0 or 1), describing the first. */
static int check_vec(const tok *t, const vec *v, int add_special, char *why, size_t n_why)
{
    const int32_t *want = add_special ? v->bos : v->ids;
    int n_want = add_special ? v->n_bos : v->n_ids;
    size_t len = strlen(v->text), cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    int64_t n = tok_encode(t, v->text, len, add_special, ids, cap);
    int bad = n != n_want || memcmp(ids, want, (size_t)n_want * sizeof *ids) != 0;
    if (bad) {
        int at = 0;
        while (at < n && at < n_want && ids[at] == want[at])
            at++;
        snprintf(why, n_why, "encode(%.80s%s): %lld ids, want %d; first difference at %d: %d vs %d",
                 v->text, len > 80 ? "..." : "", (long long)n, n_want, at,
                 at < n ? ids[at] : -1, at < n_want ? want[at] : -1);
    } else if (!add_special) {
        int64_t m = tok_decode(t, ids, (size_t)n, 0, NULL, 0);
        char *out = malloc((size_t)(m > 0 ? m : 0) + 1);
        assert_int_equal(tok_decode(t, ids, (size_t)n, 0, out, (size_t)m), m);
        out[m] = 0;
        bad = (size_t)m != strlen(v->dec) || memcmp(out, v->dec, (size_t)m) != 0;
        if (bad)
            snprintf(why, n_why, "decode(encode(%.80s)) = \"%.80s\", HF gives \"%.80s\"", v->text,
                     out, v->dec);
        free(out);
    }
    free(ids);
    return bad;
}

static void test_golden(void **state)
{
    suite *s = *state;
    int n_bad = 0, n_bos = 0, n_rt = 0;
    char why[1024];
    for (int i = 0; i < s->n; i++) {
        const vec *v = &s->v[i];
        if (check_vec(s->t, v, 0, why, sizeof why) && n_bad++ < 10)
            fprintf(stderr, "%s line %d: %s\n", s->name, i + 1, why);
        if (v->n_bos >= 0) {
            n_bos++;
            if (check_vec(s->t, v, 1, why, sizeof why) && n_bad++ < 10)
                fprintf(stderr, "%s line %d (with special tokens): %s\n", s->name, i + 1, why);
        }
        n_rt += !strcmp(v->dec, v->text);
    }
    printf("%s: %d vectors (%d with special tokens, %d round-trip), %d mismatches\n", s->name,
           s->n, n_bos, n_rt, n_bad);
    assert_int_equal(n_bad, 0);
    if (!s->variant)
        assert_true(n_rt > s->n / 2);
}

/* tok_encode reports the needed count when CAP is too small and writes only CAP ids */
static void test_small_cap(void **state)
{
    suite *s = *state;
    const vec *v = NULL;
    for (int i = 0; i < s->n && !v; i++)
        if (s->v[i].n_ids > 10)
            v = &s->v[i];
    assert_non_null(v);
    int32_t ids[5] = {-7, -7, -7, -7, -7};
    assert_int_equal(tok_encode(s->t, v->text, strlen(v->text), 0, ids, 4), v->n_ids);
    assert_memory_equal(ids, v->ids, 4 * sizeof *ids);
    assert_int_equal(ids[4], -7);
}

typedef struct {
    suite *s;
    int first, n_bad;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char why[1024];
    for (int k = 0; k < a->s->n; k++) {
        int i = (a->first + k) % a->s->n; /* each thread starts elsewhere */
        a->n_bad += check_vec(a->s->t, &a->s->v[i], 0, why, sizeof why);
    }
    return NULL;
}

static void test_threads(void **state)
{
    enum { N_THREADS = 4 };
    suite *s = *state;
    pthread_t th[N_THREADS];
    worker_arg a[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        a[i] = (worker_arg){s, i * s->n / N_THREADS, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(a[i].n_bad, 0);
    }
}

static int teardown_suite(void **state)
{
    suite *s = *state;
    for (int i = 0; i < s->n; i++) {
        free(s->v[i].text);
        free(s->v[i].ids);
        free(s->v[i].bos);
        free(s->v[i].dec);
    }
    free(s->v);
    tok_free(s->t);
    return 0;
}

/* the variant files next to the main vectors */
static void find_variants(void)
{
    char dir[2048], pat[2100];
    if (find_path(g_suites[0].vec_rel, dir, sizeof dir) < 0)
        return;
    *strrchr(dir, '/') = 0;
    snprintf(pat, sizeof pat, "%s/variant_*.jsonl", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc && g_n_suites < MAX_SUITES; i++) {
        suite *s = &g_suites[g_n_suites++];
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        snprintf(s->name, sizeof s->name, "%.*s", (int)(strlen(base) - 6), base);
        snprintf(s->vec_path, sizeof s->vec_path, "%s", g.gl_pathv[i]);
        s->variant = 1;
    }
    globfree(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_small_cap),
        cmocka_unit_test(test_threads),
    };
    find_variants();
    int rc = 0;
    for (g_cur = 0; g_cur < g_n_suites; g_cur++)
        rc |= _cmocka_run_group_tests(g_suites[g_cur].name, tests, 3, setup_suite, teardown_suite);
    return rc;
}
