/* safetensors.c - mmap reader and writer of .safetensors files (see safetensors.h).
 * Assumes a little-endian host, as the format does.
 */
#include "safetensors.h"
#include "json_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dtype_names[ST_N_DTYPES] = {
    "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3"};
static const size_t dtype_sizes[ST_N_DTYPES] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1, 1};

#define ST_MAX_HEADER (100u << 20) /* the format caps the header at 100 MB */

const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_N_DTYPES ? dtype_names[d] : "?"; }
size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_N_DTYPES ? dtype_sizes[d] : 0; }

int st_dtype_parse(const char *s)
{
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0)
            return i;
    return -1;
}

void st_init(safetensors *st) { memset(st, 0, sizeof *st); }

void st_free(safetensors *st)
{
    for (int i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++)
        if (st->maps[i])
            munmap(st->maps[i], st->map_bytes[i]);
    st_init(st);
}

const st_tensor *st_find(const safetensors *st, const char *name)
{
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0)
            return &st->tensors[i];
    return NULL;
}

/* A JSON number that is an integer in [0, 2^53]; -1 otherwise. */
static int64_t json_uint(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d))
        return -1;
    return (int64_t)d;
}

/* Parses one header entry into T; 0 or -1 with ERR set. */
static int parse_entry(const cJSON *e, const char *data, size_t data_len, st_tensor *t,
                       char *err, size_t n_err)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs)) {
        snprintf(err, n_err, "tensor %s: needs dtype, shape and data_offsets", e->string);
        return -1;
    }
    int d = st_dtype_parse(dt->valuestring);
    if (d < 0) {
        snprintf(err, n_err, "tensor %s: unknown dtype %.16s", e->string, dt->valuestring);
        return -1;
    }
    t->dtype = (st_dtype)d;
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > ST_MAX_DIMS) {
        snprintf(err, n_err, "tensor %s: %d dims (at most %d)", e->string, n_dims, ST_MAX_DIMS);
        return -1;
    }
    t->n_dims = n_dims;
    int64_t n = 1;
    for (int i = 0; i < n_dims; i++) {
        int64_t s = json_uint(cJSON_GetArrayItem(shape, i));
        if (s < 0 || (s > 0 && n > INT64_MAX / 8 / s)) {
            snprintf(err, n_err, "tensor %s: bad shape", e->string);
            return -1;
        }
        t->shape[i] = s;
        n *= s;
    }
    t->n_elems = n;
    int64_t b = cJSON_GetArraySize(offs) == 2 ? json_uint(cJSON_GetArrayItem(offs, 0)) : -1;
    int64_t end = cJSON_GetArraySize(offs) == 2 ? json_uint(cJSON_GetArrayItem(offs, 1)) : -1;
    if (b < 0 || end < b || (uint64_t)end > data_len) {
        snprintf(err, n_err, "tensor %s: data_offsets out of the file", e->string);
        return -1;
    }
    if ((uint64_t)(end - b) != (uint64_t)n * dtype_sizes[d]) {
        snprintf(err, n_err, "tensor %s: %lld bytes for %lld elements of %s", e->string,
                 (long long)(end - b), (long long)n, dtype_names[d]);
        return -1;
    }
    t->n_bytes = (size_t)(end - b);
    t->data = data + b;
    t->name = strdup(e->string);
    if (!t->name) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    return 0;
}

/* PATH mapped read-only (*SIZE bytes, at least 8: the header's length), or NULL with MSG set. */
static void *map_file(const char *path, size_t *size, char *msg, size_t n_msg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, n_msg, "%s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < 8) {
        close(fd);
        snprintf(msg, n_msg, "not a regular file of at least 8 bytes");
        return NULL;
    }
    *size = (size_t)sb.st_size;
    void *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(msg, n_msg, "mmap: %s", strerror(errno));
        return NULL;
    }
    return map;
}

/* One file's header, checked field by field against the file (never trusted). */
int st_add_file(safetensors *st, const char *path, char *err, size_t n_err)
{
    char msg[256];
    cJSON *root = NULL;
    void *map = NULL;
    size_t size = 0;
    int n_old = st->n_tensors;
    if (st->n_files >= ST_MAX_FILES) {
        snprintf(msg, sizeof msg, "more than %d files", ST_MAX_FILES);
        goto fail;
    }
    if (!(map = map_file(path, &size, msg, sizeof msg)))
        goto fail;
    uint64_t n_hdr;
    memcpy(&n_hdr, map, 8);
    if (n_hdr < 2 || n_hdr > ST_MAX_HEADER || n_hdr > size - 8) {
        snprintf(msg, sizeof msg, "header length %llu does not fit the file (%zu bytes)",
                 (unsigned long long)n_hdr, size);
        goto fail;
    }
    const char *hdr = (const char *)map + 8;
    root = cJSON_ParseWithLength(hdr, (size_t)n_hdr);
    if (!cJSON_IsObject(root)) {
        snprintf(msg, sizeof msg, "header is not a JSON object");
        goto fail;
    }
    const char *data = hdr + n_hdr;
    size_t data_len = size - 8 - (size_t)n_hdr;
    int n_new = cJSON_GetArraySize(root);
    st_tensor *grown = realloc(st->tensors, (size_t)(n_old + n_new + 1) * sizeof *grown);
    if (!grown) {
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    st->tensors = grown;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0)
            continue;
        st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        if (parse_entry(e, data, data_len, t, msg, sizeof msg) < 0)
            goto fail;
        if (st_find(st, t->name)) {
            snprintf(msg, sizeof msg, "duplicate tensor %s", t->name);
            free(t->name);
            goto fail;
        }
        t->file = st->n_files;
        st->n_tensors++;
    }
    cJSON_Delete(root);
    st->maps[st->n_files] = map;
    st->map_bytes[st->n_files] = size;
    st->n_files++;
    return 0;
fail:
    snprintf(err, n_err, "%s: %s", path, msg);
    for (int i = n_old; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    st->n_tensors = n_old;
    cJSON_Delete(root);
    if (map)
        munmap(map, size);
    return -1;
}

/* A shard file name from an index must be a plain file name in the directory. */
static int shard_name_ok(const char *s)
{
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 200;
}

static int open_indexed(safetensors *st, const char *dir, const char *index_path,
                        char *err, size_t n_err)
{
    char path[4096];
    cJSON *idx = json_read_file(index_path, err, n_err);
    if (!idx)
        return -1;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    const cJSON *e, *f;
    if (!cJSON_IsObject(wm)) {
        snprintf(err, n_err, "%s: no weight_map object", index_path);
        goto fail;
    }
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            snprintf(err, n_err, "%s: bad file name for %s", index_path, e->string);
            goto fail;
        }
        int seen = 0; /* open each shard once, in order of first mention */
        cJSON_ArrayForEach(f, wm) {
            if (f == e)
                break;
            if (strcmp(f->valuestring, e->valuestring) == 0) {
                seen = 1;
                break;
            }
        }
        if (seen)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (st_add_file(st, path, err, n_err) < 0)
            goto fail;
    }
    cJSON_ArrayForEach(e, wm) {
        if (!st_find(st, e->string)) {
            snprintf(err, n_err, "%s: tensor %s is not in %s", index_path, e->string,
                     e->valuestring);
            goto fail;
        }
    }
    cJSON_Delete(idx);
    return 0;
fail:
    cJSON_Delete(idx);
    return -1;
}

static int shard_filter(const struct dirent *d)
{
    unsigned a, b;
    int end = 0;
    return sscanf(d->d_name, "model-%5u-of-%5u.safetensors%n", &a, &b, &end) == 2 &&
           d->d_name[end] == 0 && end > 0;
}

static int open_shards(safetensors *st, const char *dir, char *err, size_t n_err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, shard_filter, alphasort);
    int rc = -1;
    char path[4096];
    if (n < 0) {
        snprintf(err, n_err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (n == 0) {
        snprintf(err, n_err, "%s: no model.safetensors nor model-*-of-*.safetensors", dir);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        unsigned a, b;
        sscanf(names[i]->d_name, "model-%5u-of-%5u", &a, &b);
        if (a != (unsigned)i + 1 || b != (unsigned)n) {
            snprintf(err, n_err, "%s: shards incomplete or inconsistent at %s", dir,
                     names[i]->d_name);
            goto out;
        }
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (st_add_file(st, path, err, n_err) < 0)
            goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int st_open_dir(safetensors *st, const char *dir, char *err, size_t n_err)
{
    char path[4096];
    st_init(st);
    int rc;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) == 0) {
        rc = open_indexed(st, dir, path, err, n_err);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) == 0)
            rc = st_add_file(st, path, err, n_err);
        else
            rc = open_shards(st, dir, err, n_err);
    }
    if (rc < 0)
        st_free(st);
    return rc;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0) {                          /* zero or subnormal: man * 2^-24 */
        f = ldexpf((float)man, -24);
        uint32_t u;
        memcpy(&u, &f, 4);
        u |= sign;
        memcpy(&f, &u, 4);
        return f;
    }
    uint32_t u = exp == 31 ? sign | 0x7f800000u | (man << 13)
                           : sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &u, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)     /* NaN stays a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t st_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00;
    if (a >= 0x477ff000u)                    /* rounds to >= 65520: infinity */
        return sign | 0x7c00;
    if (a < 0x38800000u) {                   /* below 2^-14: subnormal, round to 2^-24 units */
        float v;
        memcpy(&v, &a, 4);
        return sign | (uint16_t)lrintf(v * 16777216.0f); /* exact rounding, ties to even */
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1) - (112u << 23);
    return sign | (uint16_t)(r >> 13);
}

int st_to_f32(const st_tensor *t, float *out)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, p, t->n_bytes);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < t->n_elems; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    default:
        return -1;
    }
}

const st_tensor *st_take(safetensors *st, const char *name, int n_dims, const int64_t *shape,
                         char *err, size_t n_err)
{
    st_tensor *t = (st_tensor *)st_find(st, name);   /* ST is ours to mark */
    if (!t) {
        snprintf(err, n_err, "tensor %s not found", name);
        return NULL;
    }
    int ok = t->n_dims == n_dims;
    for (int i = 0; ok && i < n_dims; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < n_dims; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)shape[i]);
        for (int i = 0; i < t->n_dims; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        snprintf(err, n_err, "tensor %s: shape [%s], expected [%s]", name, got, want);
        return NULL;
    }
    t->used = 1;
    return t;
}

int st_load_f32(safetensors *st, const char *name, int n_dims, const int64_t *shape,
                float *out, char *err, size_t n_err)
{
    const st_tensor *t = st_take(st, name, n_dims, shape, err, n_err);
    if (!t)
        return -1;
    if (st_to_f32(t, out) < 0) {
        snprintf(err, n_err, "tensor %s: dtype %s is not F32/F16/BF16", name,
                 st_dtype_name(t->dtype));
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int st_check_used(const safetensors *st, const char *const *ignore, char *err, size_t n_err)
{
    const char *first = NULL;
    int n = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const st_tensor *t = &st->tensors[i];
        int skip = t->used;
        for (int k = 0; ignore && ignore[k] && !skip; k++)
            skip = ends_with(t->name, ignore[k]);
        if (!skip && !n++)
            first = t->name;
    }
    if (!n)
        return 0;
    snprintf(err, n_err, "%d tensor%s in the checkpoint that config.json does not explain, such "
             "as %s (does config.json match the weights?)", n, n == 1 ? "" : "s", first);
    return -1;
}

int st_write(const char *path, const st_write_tensor *t, int n, char *err, size_t n_err)
{
    cJSON *root = cJSON_CreateObject();
    char *hdr = NULL;
    FILE *f = NULL;
    uint64_t off = 0;
    if (!root)
        goto oom;
    for (int i = 0; i < n; i++) {
        uint64_t n_elems = 1;
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(t[i].dtype)))
            goto oom;
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (!shape || !offs)
            goto oom;
        for (int d = 0; d < t[i].n_dims; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
            n_elems *= (uint64_t)t[i].shape[d];
        }
        uint64_t end = off + n_elems * st_dtype_size(t[i].dtype);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end));
        off = end;
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr)
        goto oom;
    uint64_t n_hdr = strlen(hdr), n_pad = (8 - n_hdr % 8) % 8;
    uint64_t n_total = n_hdr + n_pad;
    f = fopen(path, "wb");
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    int ok = fwrite(&n_total, 8, 1, f) == 1 && fwrite(hdr, 1, n_hdr, f) == n_hdr &&
             fwrite("        ", 1, n_pad, f) == n_pad;
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = st_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].n_dims; d++)
            bytes *= (size_t)t[i].shape[d];
        ok = bytes == 0 || fwrite(t[i].data, 1, bytes, f) == bytes;
    }
    if (fclose(f) != 0 || !ok) {
        f = NULL;
        snprintf(err, n_err, "%s: write error: %s", path, strerror(errno));
        goto fail;
    }
    free(hdr);
    cJSON_Delete(root);
    return 0;
oom:
    snprintf(err, n_err, "%s: out of memory", path);
fail:
    if (f)
        fclose(f);
    free(hdr);
    cJSON_Delete(root);
    return -1;
}
