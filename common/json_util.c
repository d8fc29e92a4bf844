/* json_util.c - file reading and typed field access on top of cJSON (see json_util.h). */
#include "json_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *file_read_all(const char *path, size_t *len, char *err, size_t n_err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        goto fail_io;
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail_io;
    buf = malloc((size_t)size + 1);
    if (!buf) {
        snprintf(err, n_err, "%s: out of memory", path);
        goto fail;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto fail_io;
    buf[size] = 0;
    fclose(f);
    if (len)
        *len = (size_t)size;
    return buf;
fail_io:
    snprintf(err, n_err, "%s: read error: %s", path, strerror(errno));
fail:
    free(buf);
    fclose(f);
    return NULL;
}

cJSON *json_read_file(const char *path, char *err, size_t n_err)
{
    size_t len;
    char *text = file_read_all(path, &len, err, n_err);
    if (!text)
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(err, n_err, "%s: invalid JSON near byte %ld", path,
                 at ? (long)(at - text) : -1L);
    }
    free(text);
    return j;
}

/* 1 if P (N bytes) starts with four hex digits */
static int hex4(const char *p, size_t n)
{
    for (size_t k = 0; k < 4; k++)
        if (k >= n || !isxdigit((unsigned char)p[k]))
            return 0;
    return 1;
}

/* Deepest nesting of S outside strings (exact for valid JSON, a bound for the rest). Sets
 * *HAS_NUL when S holds a NUL byte or the escape \u0000, *BAD_ESCAPE for a \u escape without
 * four hex digits (cJSON 1.7 decodes one to NUL). */
static int json_scan(const char *s, size_t len, int *has_nul, int *bad_escape)
{
    int depth = 0, max = 0, in_str = 0;
    *has_nul = memchr(s, 0, len) != NULL;
    *bad_escape = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 1 < len && s[i + 1] == 'u') {
                    if (!hex4(s + i + 2, len - i - 2))
                        *bad_escape = 1;
                    else if (!memcmp(s + i + 2, "0000", 4))
                        *has_nul = 1;
                }
                i++; /* the escaped character */
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            max = ++depth > max ? depth : max;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

cJSON *json_parse_body(const char *s, size_t len, char *err, size_t n_err)
{
    int has_nul, bad_escape;
    if (json_scan(s, len, &has_nul, &bad_escape) > JSON_MAX_DEPTH) {
        snprintf(err, n_err, "the body is nested deeper than %d levels", JSON_MAX_DEPTH);
        return NULL;
    }
    if (has_nul) {
        snprintf(err, n_err, "NUL characters (\\u0000) are not accepted");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = bad_escape ? NULL : cJSON_ParseWithLengthOpts(s, len, &end, 0);
    while (j && end < s + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (!j || end != s + len) {
        cJSON_Delete(j);
        snprintf(err, n_err, "request body is not valid JSON");
        return NULL;
    }
    return j;
}

void json_drop_nulls(cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return;
    cJSON *v = obj->child;
    while (v) {
        cJSON *next = v->next;
        if (cJSON_IsNull(v))
            cJSON_Delete(cJSON_DetachItemViaPointer(obj, v));
        v = next;
    }
}

int json_get_num(const cJSON *obj, const char *name, double def, double *out,
                 char *err, size_t n_err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(err, n_err, "\"%s\" is not a number", name);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

int json_get_int(const cJSON *obj, const char *name, long long def, long long *out,
                 char *err, size_t n_err)
{
    double d;
    if (json_get_num(obj, name, (double)def, &d, err, n_err) < 0)
        return -1;
    if (d != floor(d) || fabs(d) > 9.0e15) {
        snprintf(err, n_err, "\"%s\" is not an integer", name);
        return -1;
    }
    *out = (long long)d;
    return 0;
}

const char *json_safe_name(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (n)
        buf[i] = 0;
    return buf;
}
