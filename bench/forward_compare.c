/* forward_compare.c - reading, writing and comparing the forward benchmark's baselines
 * (format in forward_compare.h). Strict on input: a baseline that cannot be read as written
 * is refused with its line number before the benchmark spends any GPU time.
 */
#include "forward_compare.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_FIELDS 9
static const char *const field_names[N_FIELDS] = {
    "kind", "batch", "len", "dtype", "time_ms", "floor_ms", "run", "device", "date"};
static const char header[] =
    "# forward baseline (bench/forward_compare.h), tab-separated:\n"
    "# kind\tbatch\tlen\tdtype\ttime_ms\tfloor_ms\trun\tdevice\tdate\n";

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 1 || v > 1 << 30 || !isdigit((unsigned char)*s))
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_ms(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v <= 0 || !isdigit((unsigned char)*s))
        return -1;
    *out = v;
    return 0;
}

static int dtype_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 4 && !strcmp(s + n - 4, "+kv8"))
        n -= 4;
    return (n == 4 && (!strncmp(s, "bf16", 4) || !strncmp(s, "fp16", 4))) ||
           (n == 3 && !strncmp(s, "fp8", 3));
}

static int date_ok(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int month = atoi(s + 5), day = atoi(s + 8);
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* Copies S into OUT [n] when it fits and has no blank (BLANKS: spaces allowed inside). */
static int text_ok(const char *s, char *out, size_t n, int blanks)
{
    if (!*s || strlen(s) >= n || isspace((unsigned char)s[0]))
        return 0;
    for (const char *p = s; *p; p++)
        if (iscntrl((unsigned char)*p) || (!blanks && *p == ' '))
            return 0;
    memcpy(out, s, strlen(s) + 1);
    return 1;
}

int fcmp_parse_line(const char *line, fcmp_case *c, char *err, size_t n_err)
{
    char buf[512];
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    const char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p || *p == '#')
        return 0;
    if (len >= sizeof buf) {
        snprintf(err, n_err, "line longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    memcpy(buf, line, len);
    buf[len] = 0;
    char *f[N_FIELDS + 1];
    int n = 0;
    for (char *s = buf; s && n <= N_FIELDS; n++) {
        f[n] = s;
        s = strchr(s, '\t');
        if (s)
            *s++ = 0;
    }
    if (n != N_FIELDS) {
        snprintf(err, n_err, "%d tab-separated fields expected (kind batch len dtype time_ms "
                 "floor_ms run device date), got %s%d", N_FIELDS, n > N_FIELDS ? "more than " : "",
                 n > N_FIELDS ? N_FIELDS : n);
        return -1;
    }
    memset(c, 0, sizeof *c);
    int bad = -1;
    if (!strcmp(f[0], "decode"))
        c->kind = FCMP_DECODE;
    else if (!strcmp(f[0], "prefill"))
        c->kind = FCMP_PREFILL;
    else
        bad = 0;
    if (bad < 0 && parse_int(f[1], &c->batch) < 0) bad = 1;
    if (bad < 0 && parse_int(f[2], &c->len) < 0) bad = 2;
    if (bad < 0 && (!dtype_ok(f[3]) || !text_ok(f[3], c->dtype, sizeof c->dtype, 0))) bad = 3;
    if (bad < 0 && parse_ms(f[4], &c->time_ms) < 0) bad = 4;
    if (bad < 0 && strcmp(f[5], "-") && parse_ms(f[5], &c->floor_ms) < 0) bad = 5;
    if (bad < 0 && !text_ok(f[6], c->run, sizeof c->run, 0)) bad = 6;
    if (bad < 0 && !text_ok(f[7], c->device, sizeof c->device, 1)) bad = 7;
    if (bad < 0 && (!date_ok(f[8]) || !text_ok(f[8], c->date, sizeof c->date, 0))) bad = 8;
    if (bad >= 0) {
        static const char *const want[N_FIELDS] = {
            "decode or prefill", "a positive integer", "a positive integer",
            "bf16, fp16 or fp8, then +kv8 for an FP8 KV cache", "a positive number of ms",
            "a positive number of ms or -", "an id without blanks",
            "a name (no tabs, at most 63 characters)", "a date YYYY-MM-DD"};
        snprintf(err, n_err, "field %d (%s) '%.40s': %s expected", bad + 1, field_names[bad],
                 f[bad], want[bad]);
        return -1;
    }
    return 1;
}

int fcmp_add(fcmp_set *s, const fcmp_case *c)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        fcmp_case *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v)
            return -1;
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = *c;
    return 0;
}

const fcmp_case *fcmp_find(const fcmp_set *s, const fcmp_case *key)
{
    for (int i = 0; s && i < s->n; i++) {
        const fcmp_case *c = &s->v[i];
        if (c->kind == key->kind && c->batch == key->batch && c->len == key->len &&
            !strcmp(c->dtype, key->dtype))
            return c;
    }
    return NULL;
}

void fcmp_free(fcmp_set *s)
{
    free(s->v);
    *s = (fcmp_set){0};
}

void fcmp_label(const fcmp_case *c, char *out, size_t n)
{
    if (c->kind == FCMP_DECODE)
        snprintf(out, n, "decode b=%d ctx=%d %s", c->batch, c->len, c->dtype);
    else
        snprintf(out, n, "prefill %dx%d %s", c->batch, c->len, c->dtype);
}

int fcmp_read(FILE *f, const char *name, fcmp_set *s, char *err, size_t n_err)
{
    char *line = NULL, why[256], label[64];
    size_t cap = 0;
    int line_no = 0;
    while (getline(&line, &cap, f) >= 0) {
        line_no++;
        fcmp_case c;
        int r = fcmp_parse_line(line, &c, why, sizeof why);
        if (r == 0)
            continue;
        if (r < 0) {
            snprintf(err, n_err, "%s:%d: %s", name, line_no, why);
            goto fail;
        }
        c.line = line_no;
        const fcmp_case *dup = fcmp_find(s, &c);
        if (dup) {
            fcmp_label(&c, label, sizeof label);
            snprintf(err, n_err, "%s:%d: %s is on line %d already", name, line_no, label, dup->line);
            goto fail;
        }
        if (fcmp_add(s, &c) < 0) {
            snprintf(err, n_err, "%s:%d: out of memory", name, line_no);
            goto fail;
        }
    }
    if (ferror(f)) {
        snprintf(err, n_err, "%s: read error after line %d", name, line_no);
        goto fail;
    }
    free(line);
    return 0;
fail:
    free(line);
    return -1;
}

int fcmp_load(const char *path, fcmp_set *s, char *err, size_t n_err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fcmp_read(f, path, s, err, n_err);
    fclose(f);
    return rc;
}

/* S with tabs and line breaks as spaces, so a field cannot split the line. */
static void put_field(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(iscntrl((unsigned char)*s) ? ' ' : *s, f);
}

int fcmp_write(FILE *f, const fcmp_set *s)
{
    fputs(header, f);
    for (int i = 0; i < s->n; i++) {
        const fcmp_case *c = &s->v[i];
        if (c->time_ms <= 0)
            continue;
        fprintf(f, "%s\t%d\t%d\t%s\t%.3f\t", c->kind == FCMP_DECODE ? "decode" : "prefill",
                c->batch, c->len, c->dtype, c->time_ms);
        if (c->floor_ms > 0)
            fprintf(f, "%.3f\t", c->floor_ms);
        else
            fputs("-\t", f);
        put_field(f, c->run);
        fputc('\t', f);
        put_field(f, c->device);
        fprintf(f, "\t%s\n", c->date);
    }
    return ferror(f) ? -1 : 0;
}

int fcmp_save(const char *path, const fcmp_set *s, char *err, size_t n_err)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fcmp_write(f, s);
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0)
        snprintf(err, n_err, "%s: write failed", path);
    return rc;
}

double fcmp_x_floor(double time_ms, double floor_ms)
{
    return time_ms > 0 && floor_ms > 0 ? time_ms / floor_ms : 0;
}

double fcmp_change_pct(double now_ms, double prev_ms)
{
    return 100.0 * (now_ms - prev_ms) / prev_ms;
}

/* The six cells of C's row ("-" where a figure is missing). */
static void row_cells(const fcmp_case *c, const fcmp_set *base, char cell[6][64])
{
    const fcmp_case *prev = fcmp_find(base, c);
    double x = fcmp_x_floor(c->time_ms, c->floor_ms);
    fcmp_label(c, cell[0], 64);
    for (int k = 1; k < 6; k++)
        strcpy(cell[k], "-");
    if (c->floor_ms > 0)
        snprintf(cell[1], 64, "%.3f", c->floor_ms);
    if (c->time_ms > 0)
        snprintf(cell[2], 64, "%.3f", c->time_ms);
    else
        strcpy(cell[2], "failed");
    if (x > 0)
        snprintf(cell[3], 64, "%.2fx", x);
    if (prev)
        snprintf(cell[4], 64, "%.3f (%s)", prev->time_ms, prev->run);
    if (prev && c->time_ms > 0)
        snprintf(cell[5], 64, "%+.1f%%", fcmp_change_pct(c->time_ms, prev->time_ms));
}

void fcmp_print(FILE *f, const fcmp_set *run, const fcmp_set *base, int md)
{
    static const char *const head[6] = {"case", "floor ms", "time ms", "x floor",
                                        "previous ms (run)", "change"};
    char cell[6][64];
    int w[6];
    for (int k = 0; k < 6; k++)
        w[k] = (int)strlen(head[k]);
    for (int i = 0; i < run->n; i++) {
        row_cells(&run->v[i], base, cell);
        for (int k = 0; k < 6; k++)
            w[k] = (int)strlen(cell[k]) > w[k] ? (int)strlen(cell[k]) : w[k];
    }
    if (md)
        fprintf(f, "| %s | %s | %s | %s | %s | %s |\n| --- | --- | --- | --- | --- | --- |\n",
                head[0], head[1], head[2], head[3], head[4], head[5]);
    else
        fprintf(f, "%-*s  %*s  %*s  %*s  %-*s  %*s\n", w[0], head[0], w[1], head[1], w[2],
                head[2], w[3], head[3], w[4], head[4], w[5], head[5]);
    for (int i = 0; i < run->n; i++) {
        row_cells(&run->v[i], base, cell);
        if (md)
            fprintf(f, "| %s | %s | %s | %s | %s | %s |\n", cell[0], cell[1], cell[2], cell[3],
                    cell[4], cell[5]);
        else
            fprintf(f, "%-*s  %*s  %*s  %*s  %-*s  %*s\n", w[0], cell[0], w[1], cell[1], w[2],
                    cell[2], w[3], cell[3], w[4], cell[4], w[5], cell[5]);
    }
    int left = 0;
    for (int i = 0; base && i < base->n; i++)
        left += !fcmp_find(run, &base->v[i]);
    if (left)
        fprintf(f, "(%d case%s of the baseline not in this run)\n", left, left > 1 ? "s" : "");
}
