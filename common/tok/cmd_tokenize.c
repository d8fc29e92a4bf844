/* cmd_tokenize.c - build/bin/tokenize: the tokenizer library on the command line, for tests
 * and for checking a tokenizer.json by hand.
 *
 *   tokenize --tokenizer FILE [--add-special]   one JSON string per stdin line -> JSON array
 *                                                of ids (no BOS/EOS unless --add-special;
 *                                                special tokens written in the text count)
 *   tokenize --tokenizer FILE --decode [--skip-special]
 *                                                one JSON array of ids per line -> JSON string
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok.h"

static int encode_line(const tok *t, const cJSON *j, int add_special)
{
    if (!cJSON_IsString(j))
        return -1;
    const char *s = j->valuestring;
    size_t n = strlen(s), cap = n + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    int64_t k = ids ? tok_encode(t, s, n, add_special, ids, cap) : -1;
    if (k > (int64_t)cap) { /* cannot happen for these tokenizers; handled anyway */
        int32_t *p = realloc(ids, (size_t)k * sizeof *ids);
        k = p ? tok_encode(t, s, n, add_special, p, (size_t)k) : -1;
        ids = p ? p : ids;
    }
    if (k < 0) {
        free(ids);
        return -1;
    }
    putchar('[');
    for (int64_t i = 0; i < k; i++)
        printf(i ? ",%d" : "%d", ids[i]);
    puts("]");
    free(ids);
    return 0;
}

static int decode_line(const tok *t, const cJSON *j, int skip_special)
{
    int n = cJSON_GetArraySize(j);
    if (!cJSON_IsArray(j))
        return -1;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids)
        return -1;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, j) ids[i++] = cJSON_IsNumber(e) ? (int32_t)e->valuedouble : -1;
    int64_t len = tok_decode(t, ids, (size_t)n, skip_special, NULL, 0);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    int rc = -1;
    if (text && tok_decode(t, ids, (size_t)n, skip_special, text, (size_t)len) == len) {
        text[len] = 0;
        cJSON *s = cJSON_CreateString(text);
        char *out = s ? cJSON_PrintUnformatted(s) : NULL;
        if (out) {
            puts(out);
            rc = 0;
        }
        free(out);
        cJSON_Delete(s);
    }
    free(text);
    free(ids);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int decode = 0, special = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--decode"))
            decode = 1;
        else if (!strcmp(argv[i], "--add-special") || !strcmp(argv[i], "--skip-special"))
            special = 1;
        else {
            fprintf(stderr, "usage: %s --tokenizer tokenizer.json [--add-special] | "
                            "[--decode [--skip-special]]\n", argv[0]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "%s: --tokenizer FILE is required\n", argv[0]);
        return 2;
    }
    char err[512];
    tok *t = tok_load(path, err, sizeof err);
    if (!t) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        lineno++;
        cJSON *j = cJSON_Parse(line);
        if ((decode ? decode_line(t, j, special) : encode_line(t, j, special)) < 0) {
            fprintf(stderr, "%s: line %ld: %s\n", argv[0], lineno,
                    decode ? "expected a JSON array of valid ids" : "expected a JSON string of valid UTF-8");
            rc = 1;
        }
        cJSON_Delete(j);
        fflush(stdout);
    }
    free(line);
    tok_free(t);
    return rc;
}
