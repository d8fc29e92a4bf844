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
    if (!cJSON_IsArray(j))
        return -1;
    int n = cJSON_GetArraySize(j), i = 0, rc = -1;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    char *text = NULL, *out = NULL;
    cJSON *s = NULL;
    const cJSON *e;
    int64_t len;
    if (!ids)
        goto fail;
    cJSON_ArrayForEach(e, j) ids[i++] = cJSON_IsNumber(e) ? (int32_t)e->valuedouble : -1;
    len = tok_decode(t, ids, (size_t)n, skip_special, NULL, 0);
    if (len < 0 || !(text = malloc((size_t)len + 1)) ||
        tok_decode(t, ids, (size_t)n, skip_special, text, (size_t)len) != len)
        goto fail;
    text[len] = 0;
    if (!(s = cJSON_CreateString(text)) || !(out = cJSON_PrintUnformatted(s)))
        goto fail;
    puts(out);
    rc = 0;
fail:
    free(out);
    cJSON_Delete(s);
    free(text);
    free(ids);
    return rc;
}

/* One stdin line: a JSON string to encode, or with DECODE a JSON array of ids; its answer on
 * stdout. 0, or -1 for a line that is not what was expected. */
static int tokenize_line(const tok *t, const char *line, int decode, int special)
{
    cJSON *j = cJSON_Parse(line);
    int rc = decode ? decode_line(t, j, special) : encode_line(t, j, special);
    cJSON_Delete(j);
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
        if (tokenize_line(t, line, decode, special) < 0) {
            fprintf(stderr, "%s: line %ld: %s\n", argv[0], lineno,
                    decode ? "expected a JSON array of valid ids" : "expected a JSON string of valid UTF-8");
            rc = 1;
        }
        fflush(stdout);
    }
    free(line);
    tok_free(t);
    return rc;
}
