/* json_util.c - file reading and typed field access on top of cJSON (see json_util.h). */
#include "json_util.h"

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
