/* cmd_bench_tokenizer.c - build/bin/bench-tokenizer: single-thread encode speed of the
 * tokenizer library on real text, to compare with HF tokenizers (bench/tokenizer_hf.js,
 * same text, same output format; bench/bench_tokenizer.sh runs both).
 *
 *   bench-tokenizer --tokenizer FILE --data PROMPTS.json [--mode concat|prompts] [--secs S]
 *
 * The text: every "human" turn of a ShareGPT file (or instruction of an Alpaca-style one),
 * joined with "\n\n" (concat: encoded as one text) or encoded one prompt at a time (prompts).
 * Repeats the whole pass until S seconds (default 3) have passed; prints MB/s and tokens/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "../common/tok/tok.h"
#include "../common/json_util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


/* The prompts of DATA as an array of strings (pointers into the returned cJSON tree). */
static cJSON *load_prompts(const char *path, const char ***out, int *n_out)
{
    size_t n;
    char *s = file_read_all(path, &n, NULL, 0);
    cJSON *j = s ? cJSON_ParseWithLength(s, n) : NULL;
    free(s);
    if (!j)
        return NULL;
    int cap = cJSON_GetArraySize(j) * 4 + 1, m = 0;
    const char **p = malloc((size_t)cap * sizeof *p);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, j) {
        const cJSON *conv = cJSON_GetObjectItem(rec, "conversations"), *c;
        cJSON_ArrayForEach(c, conv) {
            const cJSON *from = cJSON_GetObjectItem(c, "from"), *v = cJSON_GetObjectItem(c, "value");
            if (cJSON_IsString(from) && !strcmp(from->valuestring, "human") && cJSON_IsString(v) &&
                m < cap)
                p[m++] = v->valuestring;
        }
        const cJSON *ins = cJSON_GetObjectItem(rec, "instruction");
        if (cJSON_IsString(ins) && m < cap)
            p[m++] = ins->valuestring;
    }
    *out = p;
    *n_out = m;
    return j;
}

int main(int argc, char **argv)
{
    const char *tok_path = NULL, *data = NULL, *mode = "concat";
    double secs = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokenizer"))
            tok_path = argv[i + 1];
        else if (!strcmp(argv[i], "--data"))
            data = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--secs"))
            secs = atof(argv[i + 1]);
    }
    if (!tok_path || !data || (strcmp(mode, "concat") && strcmp(mode, "prompts"))) {
        fprintf(stderr, "usage: %s --tokenizer FILE --data PROMPTS.json [--mode concat|prompts] "
                        "[--secs S]\n", argv[0]);
        return 2;
    }
    char err[512];
    tok *t = tok_load(tok_path, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const char **prompts;
    int n_prompts;
    cJSON *j = load_prompts(data, &prompts, &n_prompts);
    if (!j || n_prompts == 0) {
        fprintf(stderr, "%s: no prompts\n", data);
        return 1;
    }
    size_t total = 0;
    for (int i = 0; i < n_prompts; i++)
        total += strlen(prompts[i]) + 2;
    char *text = malloc(total + 1);
    size_t len = 0;
    for (int i = 0; i < n_prompts; i++) {
        size_t l = strlen(prompts[i]);
        memcpy(text + len, prompts[i], l);
        len += l;
        if (i + 1 < n_prompts) {
            memcpy(text + len, "\n\n", 2);
            len += 2;
        }
    }
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    int concat = !strcmp(mode, "concat");
    int64_t tokens = 0, bytes = 0, passes = 0;
    double t0 = now_s(), el;
    do {
        if (concat) {
            tokens += tok_encode(t, text, len, 0, ids, cap);
            bytes += (int64_t)len;
        } else
            for (int i = 0; i < n_prompts; i++) {
                size_t l = strlen(prompts[i]);
                tokens += tok_encode(t, prompts[i], l, 0, ids, cap);
                bytes += (int64_t)l;
            }
        passes++;
        el = now_s() - t0;
    } while (el < secs);
    printf("cinder mode=%s prompts=%d bytes/pass=%lld tokens/pass=%lld passes=%lld "
           "MB/s=%.2f tokens/s=%.0f\n", mode, n_prompts, (long long)(bytes / passes),
           (long long)(tokens / passes), (long long)passes, (double)bytes / el / 1e6,
           (double)tokens / el);
    free(ids);
    free(text);
    free(prompts);
    cJSON_Delete(j);
    tok_free(t);
    return 0;
}
