/* test_forward_compare.c - the forward benchmark's baselines (bench/forward_compare.c):
 * lines read field by field, malformed ones refused with their line number, a run's cases
 * matched against a baseline by kind, batch, length and dtype, the x floor and change figures
 * in the table, save then load giving back every field, and the committed baselines
 * (bench/forward/SHAPE/baseline.tsv) readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bench/forward_compare.h"
#include "repo_path.h"

static const char good[] =
    "# a comment, then a blank line\n"
    "\n"
    "decode\t8\t4096\tbf16\t5.935\t-\tR1\tH200\t2026-12-02\n"
    "  # indented comment\n"
    "prefill\t4\t1024\tfp8+kv8\t93.78\t61.25\tF1\tNVIDIA H200\t2026-11-21\r\n"
    "decode\t8\t4096\tfp8\t4.713\t2.917\tQ7\tNVIDIA H100 80GB HBM3\t2027-01-31\n";

/* TEXT read as a file named "b.tsv" into S: fcmp_read's result, its message in ERR. */
static int read_text(const char *text, fcmp_set *s, char *err, size_t n_err)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = fcmp_read(f, "b.tsv", s, err, n_err);
    fclose(f);
    return rc;
}

/* GOOD into S, every line of it accepted. */
static void read_good(fcmp_set *s)
{
    char err[256] = "";
    if (read_text(good, s, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_parse(void **state)
{
    (void)state;
    fcmp_set s = {0};
    read_good(&s);
    assert_int_equal(s.n, 3);
    const fcmp_case *a = &s.v[0], *b = &s.v[1], *c = &s.v[2];
    assert_int_equal(a->kind, FCMP_DECODE);
    assert_int_equal(a->batch, 8);
    assert_int_equal(a->len, 4096);
    assert_string_equal(a->dtype, "bf16");
    assert_float_equal(a->time_ms, 5.935, 1e-12);
    assert_true(a->floor_ms <= 0);   /* "-" */
    assert_string_equal(a->run, "R1");
    assert_int_equal(a->line, 3);
    assert_int_equal(b->kind, FCMP_PREFILL);
    assert_int_equal(b->batch, 4);
    assert_int_equal(b->len, 1024);
    assert_string_equal(b->dtype, "fp8+kv8");
    assert_float_equal(b->time_ms, 93.78, 1e-12);
    assert_float_equal(b->floor_ms, 61.25, 1e-12);
    assert_string_equal(b->device, "NVIDIA H200");
    assert_string_equal(b->date, "2026-11-21");   /* the \r is not part of it */
    assert_int_equal(b->line, 5);
    assert_string_equal(c->device, "NVIDIA H100 80GB HBM3");
    assert_string_equal(c->run, "Q7");
    assert_int_equal(c->line, 6);
    fcmp_free(&s);
}

/* Each malformed line, after two good ones, is refused naming line 3 and what is wrong. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *line, *says;
    } bad[] = {
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR3\tH200\n", "9 tab-separated fields expected"},
        {"decode 1 512 bf16 4.439 3.819 R3 H200 2026-12-02\n", "got 1"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR3\tH200\t2026-12-02\textra\n", "got more than 9"},
        {"decodes\t1\t512\tbf16\t4.439\t3.819\tR3\tH200\t2026-12-02\n", "field 1 (kind)"},
        {"decode\t0\t512\tbf16\t4.439\t3.819\tR3\tH200\t2026-12-02\n", "field 2 (batch) '0'"},
        {"decode\t1\t5x12\tbf16\t4.439\t3.819\tR3\tH200\t2026-12-02\n", "field 3 (len) '5x12'"},
        {"decode\t1\t512\tint4\t4.439\t3.819\tR3\tH200\t2026-12-02\n", "field 4 (dtype) 'int4'"},
        {"decode\t1\t512\tbf16+kv4\t4.439\t3.819\tR3\tH200\t2026-12-02\n", "field 4 (dtype)"},
        {"decode\t1\t512\tbf16\t-4.4\t3.819\tR3\tH200\t2026-12-02\n", "field 5 (time_ms) '-4.4'"},
        {"decode\t1\t512\tbf16\tfast\t3.819\tR3\tH200\t2026-12-02\n", "field 5 (time_ms)"},
        {"decode\t1\t512\tbf16\t-\t3.819\tR3\tH200\t2026-12-02\n", "field 5 (time_ms)"},
        {"decode\t1\t512\tbf16\t4.439\tnan\tR3\tH200\t2026-12-02\n", "field 6 (floor_ms) 'nan'"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR 3\tH200\t2026-12-02\n", "field 7 (run)"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\t\tH200\t2026-12-02\n", "field 7 (run)"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR3\t\t2026-12-02\n", "field 8 (device)"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR3\tH200\t2026-13-02\n", "field 9 (date)"},
        {"decode\t1\t512\tbf16\t4.439\t3.819\tR3\tH200\t02.12.2026\n", "field 9 (date)"},
        /* the first line's case again */
        {"decode\t2\t1024\tbf16\t6.1\t-\tR9\tH200\t2026-12-02\n", "decode b=2 ctx=1024 bf16 is on line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[512], err[256] = "";
        snprintf(text, sizeof text, "decode\t2\t1024\tbf16\t4.5\t-\tR1\tH200\t2026-12-02\n"
                                    "prefill\t1\t128\tbf16\t6.02\t-\tF1\tH200\t2026-11-21\n%s",
                 bad[i].line);
        fcmp_set s = {0};
        int rc = read_text(text, &s, err, sizeof err);
        if (rc != -1 || strncmp(err, "b.tsv:3: ", 9) || !strstr(err, bad[i].says))
            fail_msg("case %zu: rc %d, message '%s' (wanted 'b.tsv:3: ...%s...')", i, rc, err,
                     bad[i].says);
        fcmp_free(&s);
    }
    /* the same case in another dtype, or as prefill, is another case */
    fcmp_set s = {0};
    char err[256] = "";
    assert_int_equal(read_text("decode\t2\t1024\tbf16\t4.5\t-\tR1\tH200\t2026-12-02\n"
                               "decode\t2\t1024\tfp8\t4.1\t-\tQ1\tH200\t2026-12-02\n"
                               "prefill\t2\t1024\tbf16\t45.7\t-\tF1\tH200\t2026-11-21\n",
                               &s, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    fcmp_free(&s);
    assert_int_equal(fcmp_load("/nonexistent/baseline.tsv", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/baseline.tsv: "));
}

static fcmp_case make_case(fcmp_kind kind, int batch, int len, const char *dtype, double ms,
                           double floor_ms)
{
    fcmp_case c = {.kind = kind, .batch = batch, .len = len, .time_ms = ms, .floor_ms = floor_ms};
    snprintf(c.dtype, sizeof c.dtype, "%s", dtype);
    snprintf(c.run, sizeof c.run, "T5");
    snprintf(c.device, sizeof c.device, "NVIDIA H100 80GB HBM3");
    snprintf(c.date, sizeof c.date, "2026-12-03");
    return c;
}

static void test_match(void **state)
{
    (void)state;
    fcmp_set base = {0};
    read_good(&base);
    fcmp_case k = make_case(FCMP_DECODE, 8, 4096, "bf16", 1, 0);
    const fcmp_case *m = fcmp_find(&base, &k);
    assert_non_null(m);
    assert_string_equal(m->run, "R1");
    snprintf(k.dtype, sizeof k.dtype, "fp8");
    m = fcmp_find(&base, &k);
    assert_non_null(m);
    assert_string_equal(m->run, "Q7");
    snprintf(k.dtype, sizeof k.dtype, "fp8+kv8");
    assert_null(fcmp_find(&base, &k));   /* only as prefill */
    k.kind = FCMP_PREFILL, k.batch = 4, k.len = 1024;
    assert_non_null(fcmp_find(&base, &k));
    k.len = 4096;
    assert_null(fcmp_find(&base, &k));
    k = make_case(FCMP_DECODE, 4096, 8, "bf16", 1, 0);   /* batch and length swapped */
    assert_null(fcmp_find(&base, &k));
    assert_null(fcmp_find(NULL, &k));
    fcmp_free(&base);
}

static void test_figures(void **state)
{
    (void)state;
    assert_float_equal(fcmp_x_floor(5.935, 4.809), 5.935 / 4.809, 1e-12);
    assert_float_equal(fcmp_x_floor(5.0, 0), 0, 0);
    assert_float_equal(fcmp_x_floor(-1, 3.8), 0, 0);
    assert_float_equal(fcmp_change_pct(5.46, 5.2), 5.0, 1e-9);
    assert_float_equal(fcmp_change_pct(4.1, 5.0), -18.0, 1e-9);

    fcmp_set base = {0}, run = {0};
    char *out = NULL;
    size_t n_out = 0;
    read_good(&base);
    fcmp_case c = make_case(FCMP_DECODE, 8, 4096, "bf16", 6.528, 4.352);   /* R1: 5.935 */
    assert_int_equal(fcmp_add(&run, &c), 0);
    c = make_case(FCMP_PREFILL, 4, 1024, "fp8+kv8", 84.402, 70.335);       /* F1: 93.78 */
    assert_int_equal(fcmp_add(&run, &c), 0);
    c = make_case(FCMP_DECODE, 2, 512, "bf16", 4.4, 3.7);                  /* not in it */
    assert_int_equal(fcmp_add(&run, &c), 0);
    c = make_case(FCMP_DECODE, 8, 4096, "fp8", -1, 2.5);                   /* failed */
    assert_int_equal(fcmp_add(&run, &c), 0);

    FILE *f = open_memstream(&out, &n_out);
    fcmp_print(f, &run, &base, 0);
    fclose(f);
    char *row[6] = {out};   /* the header, four rows, what follows */
    for (int k = 1; k < 6; k++) {
        char *nl = strchr(row[k - 1], '\n');
        if (!nl)
            fail_msg("%d lines only:\n%s", k, out);
        *nl = 0;
        row[k] = nl + 1;
    }
    char *l1 = row[1], *l2 = row[2], *l3 = row[3], *l4 = row[4], *l5 = row[5];
    if (!strstr(out, "case") || !strstr(out, "x floor") || !strstr(out, "previous ms (run)"))
        fail_msg("header: %s", out);
    /* 6.528 / 4.352 = 1.50x; (6.528 - 5.935) / 5.935 = +9.99% */
    if (!strstr(l1, "decode b=8 ctx=4096 bf16") || !strstr(l1, "4.352") ||
        !strstr(l1, "6.528") || !strstr(l1, "1.50x") || !strstr(l1, "5.935 (R1)") ||
        !strstr(l1, "+10.0%"))
        fail_msg("row 1: '%s'", l1);
    /* 84.402 / 70.335 = 1.20x; (84.402 - 93.78) / 93.78 = -10.0% */
    if (!strstr(l2, "prefill 4x1024 fp8+kv8") || !strstr(l2, "1.20x") ||
        !strstr(l2, "93.780 (F1)") || !strstr(l2, "-10.0%"))
        fail_msg("row 2: '%s'", l2);
    /* absent from the baseline: previous and change are "-" */
    if (!strstr(l3, "decode b=2 ctx=512 bf16") || !strstr(l3, "1.19x") ||
        strstr(l3, "(") || strlen(l3) < 2 || strcmp(l3 + strlen(l3) - 2, " -"))
        fail_msg("row 3: '%s'", l3);
    if (!strstr(l4, "failed") || !strstr(l4, "4.713 (Q7)") || strcmp(l4 + strlen(l4) - 2, " -"))
        fail_msg("row 4: '%s'", l4);
    /* every baseline case was run (the fp8 decode failed but is there) */
    assert_string_equal(l5, "");
    free(out);

    /* markdown; a baseline with a case the run lacks */
    c = make_case(FCMP_DECODE, 64, 1024, "bf16", 7.208, 0);
    assert_int_equal(fcmp_add(&base, &c), 0);
    f = open_memstream(&out, &n_out);
    fcmp_print(f, &run, &base, 1);
    fclose(f);
    if (!strstr(out, "| case | floor ms | time ms | x floor | previous ms (run) | change |\n"
                     "| --- | --- | --- | --- | --- | --- |\n"
                     "| decode b=8 ctx=4096 bf16 | 4.352 | 6.528 | 1.50x | 5.935 (R1) | +10.0% |\n") ||
        !strstr(out, "| decode b=2 ctx=512 bf16 | 3.700 | 4.400 | 1.19x | - | - |\n") ||
        !strstr(out, "(1 case of the baseline not in this run)"))
        fail_msg("markdown:\n%s", out);
    free(out);
    fcmp_free(&run);
    fcmp_free(&base);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[] = "/tmp/test_forward_compare_XXXXXX", err[256] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    fcmp_set run = {0}, back = {0};
    fcmp_case c = make_case(FCMP_PREFILL, 8, 2048, "fp16", 395.8712, 287.0049);
    assert_int_equal(fcmp_add(&run, &c), 0);
    c = make_case(FCMP_DECODE, 128, 4096, "bf16+kv8", 21.2194, 0);   /* floor unknown */
    snprintf(c.device, sizeof c.device, "GPU\twith a tab");           /* written as a blank */
    assert_int_equal(fcmp_add(&run, &c), 0);
    c = make_case(FCMP_DECODE, 3, 777, "fp8", -1, 2.2);               /* failed: not written */
    assert_int_equal(fcmp_add(&run, &c), 0);
    assert_int_equal(fcmp_save(path, &run, err, sizeof err), 0);
    if (fcmp_load(path, &back, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    unlink(path);
    assert_int_equal(back.n, 2);
    const fcmp_case *p = &back.v[0], *d = &back.v[1];
    assert_int_equal(p->kind, FCMP_PREFILL);
    assert_int_equal(p->batch, 8);
    assert_int_equal(p->len, 2048);
    assert_string_equal(p->dtype, "fp16");
    assert_float_equal(p->time_ms, 395.871, 1e-9);   /* 3 decimals */
    assert_float_equal(p->floor_ms, 287.005, 1e-9);
    assert_string_equal(p->run, "T5");
    assert_string_equal(p->device, "NVIDIA H100 80GB HBM3");
    assert_string_equal(p->date, "2026-12-03");
    assert_int_equal(d->kind, FCMP_DECODE);
    assert_int_equal(d->batch, 128);
    assert_int_equal(d->len, 4096);
    assert_string_equal(d->dtype, "bf16+kv8");
    assert_float_equal(d->time_ms, 21.219, 1e-9);
    assert_true(d->floor_ms <= 0);
    assert_string_equal(d->device, "GPU with a tab");
    assert_int_equal(fcmp_save("/nonexistent/dir/b.tsv", &run, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir/b.tsv"));
    fcmp_free(&run);
    fcmp_free(&back);
}

/* The committed baselines read, each with at least one case, every case naming its run. */
static void test_committed(void **state)
{
    (void)state;
    static const char *const shapes[] = {"llama3-8b", "qwen3-8b", "qwen2.5-7b", "qwen3-30b-a3b",
                                         "mixtral-8x7b"};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        char rel[128], path[1024], err[512] = "";
        snprintf(rel, sizeof rel, "bench/forward/%s/baseline.tsv", shapes[i]);
        if (find_path(rel, path, sizeof path) < 0)
            fail_msg("%s not found", rel);
        fcmp_set s = {0};
        if (fcmp_load(path, &s, err, sizeof err) < 0)
            fail_msg("%s", err);
        assert_true(s.n > 0);
        for (int k = 0; k < s.n; k++)
            assert_true(strlen(s.v[k].run) >= 2);
        fcmp_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_committed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
