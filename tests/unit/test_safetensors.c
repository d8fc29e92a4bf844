/* test_safetensors.c - safetensors writer/reader round trip (F32, F16, BF16, sharded model
 * directories with and without an index) and rejection of malformed files, including
 * random corruptions of a valid file (the reader must return an error, never crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/safetensors.h"

static char g_dir[256];
static char g_err[512];

static float frand(void) { return (float)rand() / RAND_MAX * 4.0f - 2.0f; }

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* header JSON H followed by N_DATA bytes of data */
static void write_raw(const char *path, const char *h, size_t n_data)
{
    size_t n = strlen(h);
    unsigned char *buf = calloc(1, 8 + n + n_data);
    uint64_t len = n;
    memcpy(buf, &len, 8);
    memcpy(buf + 8, h, n);
    write_file(path, buf, 8 + n + n_data);
    free(buf);
}

static int try_open(const char *path)
{
    safetensors st;
    st_init(&st);
    int rc = st_add_file(&st, path, g_err, sizeof g_err);
    st_free(&st);
    return rc;
}

static void test_roundtrip(void **state)
{
    enum { A = 37, B = 5 };
    float a[A * B], back[A * B];
    uint16_t h[A], bf[A];
    float hf[A], bff[A];
    for (int i = 0; i < A * B; i++)
        a[i] = frand();
    for (int i = 0; i < A; i++) {
        hf[i] = frand() * 100;
        bff[i] = frand() * 1e-3f;
        h[i] = st_f32_to_f16(hf[i]);
        bf[i] = st_f32_to_bf16(bff[i]);
    }
    st_write_tensor w[] = {
        {"x.weight", ST_F32, 2, {A, B}, a},
        {"y.f16", ST_F16, 1, {A}, h},
        {"z.bf16", ST_BF16, 1, {A}, bf},
        {"empty", ST_F32, 2, {0, 3}, NULL},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", g_dir);
    assert_int_equal(st_write(path, w, 4, g_err, sizeof g_err), 0);
    safetensors st;
    assert_int_equal(st_open_dir(&st, g_dir, g_err, sizeof g_err), 0);
    assert_int_equal(st.n_tensors, 4);
    int64_t shape[] = {A, B};
    assert_int_equal(st_load_f32(&st, "x.weight", 2, shape, back, g_err, sizeof g_err), 0);
    assert_memory_equal(a, back, sizeof a);
    int64_t wrong[] = {B, A};
    assert_true(st_load_f32(&st, "x.weight", 2, wrong, back, g_err, sizeof g_err) < 0);
    assert_true(st_load_f32(&st, "nope", 2, shape, back, g_err, sizeof g_err) < 0);
    int64_t s1[] = {A};
    assert_int_equal(st_load_f32(&st, "y.f16", 1, s1, back, g_err, sizeof g_err), 0);
    for (int i = 0; i < A; i++) /* f16 has 11 significant bits */
        assert_true(fabsf(back[i] - hf[i]) <= fabsf(hf[i]) * (1.0f / 2048) + 1e-7f);
    assert_int_equal(st_load_f32(&st, "z.bf16", 1, s1, back, g_err, sizeof g_err), 0);
    for (int i = 0; i < A; i++) /* bf16 has 8 significant bits */
        assert_true(fabsf(back[i] - bff[i]) <= fabsf(bff[i]) * (1.0f / 256));
    const st_tensor *e = st_find(&st, "empty");
    assert_non_null(e);
    assert_int_equal(e->n_elems, 0);
    st_free(&st);
    unlink(path);
}

static void test_half_conversions(void **state)
{
    /* exactly representable values survive; special values and rounding */
    float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f,
                    0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        assert_true(st_f16_to_f32(st_f32_to_f16(vals[i])) == vals[i]);
    assert_true(isinf(st_f16_to_f32(st_f32_to_f16(70000.0f))));
    assert_true(isnan(st_f16_to_f32(st_f32_to_f16(NAN))));
    assert_int_equal(st_f32_to_f16(1.0f + 1.0f / 4096), 0x3c00); /* tie rounds to even */
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);   /* tie to even */
    assert_int_equal(st_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);   /* tie to even, up */
    for (int i = 0; i < 10000; i++) { /* every f16 bit pattern that is finite round-trips */
        uint16_t hb = (uint16_t)(rand() & 0xffff);
        if ((hb & 0x7c00) == 0x7c00)
            continue;
        assert_int_equal(st_f32_to_f16(st_f16_to_f32(hb)), hb);
    }
}

static void test_shards(void **state)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {7, 8, 9, 10}, out[6];
    st_write_tensor w1[] = {{"a", ST_F32, 2, {2, 3}, a}};
    st_write_tensor w2[] = {{"b", ST_F32, 1, {4}, b}};
    char p1[512], p2[512], idx[512];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", g_dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", g_dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", g_dir);
    assert_int_equal(st_write(p1, w1, 1, g_err, sizeof g_err), 0);
    assert_int_equal(st_write(p2, w2, 1, g_err, sizeof g_err), 0);
    /* without the index: found by name */
    safetensors st;
    assert_int_equal(st_open_dir(&st, g_dir, g_err, sizeof g_err), 0);
    assert_int_equal(st.n_files, 2);
    int64_t sb[] = {4};
    assert_int_equal(st_load_f32(&st, "b", 1, sb, out, g_err, sizeof g_err), 0);
    assert_memory_equal(out, b, sizeof b);
    st_free(&st);
    /* with the index */
    const char *j = "{\"metadata\":{},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                    "\"b\":\"model-00002-of-00002.safetensors\"}}";
    write_file(idx, j, strlen(j));
    assert_int_equal(st_open_dir(&st, g_dir, g_err, sizeof g_err), 0);
    int64_t sa[] = {2, 3};
    assert_int_equal(st_load_f32(&st, "a", 2, sa, out, g_err, sizeof g_err), 0);
    assert_memory_equal(out, a, sizeof a);
    st_free(&st);
    /* an index naming a missing tensor, or a path outside the directory, fails */
    j = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}";
    write_file(idx, j, strlen(j));
    assert_true(st_open_dir(&st, g_dir, g_err, sizeof g_err) < 0);
    j = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    write_file(idx, j, strlen(j));
    assert_true(st_open_dir(&st, g_dir, g_err, sizeof g_err) < 0);
    unlink(idx);
    /* a missing shard fails */
    unlink(p1);
    assert_true(st_open_dir(&st, g_dir, g_err, sizeof g_err) < 0);
    unlink(p2);
    assert_true(st_open_dir(&st, g_dir, g_err, sizeof g_err) < 0);
}

static void test_malformed(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", g_dir);
    const struct { const char *hdr; size_t n_data; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4},   /* short data */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12}, /* size mismatch */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8},   /* reversed */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}", 8},                                          /* overflow */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8},   /* duplicate */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8},    /* bad JSON */
        {"[1,2]", 8},
        {"{\"a\":3}", 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(path, cases[i].hdr, cases[i].n_data);
        assert_true(try_open(path) < 0);
        assert_true(strlen(g_err) > 0);
    }
    /* header length larger than the file, empty file, tiny file */
    unsigned char buf[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_file(path, buf, 10);
    assert_true(try_open(path) < 0);
    write_file(path, buf, 0);
    assert_true(try_open(path) < 0);
    write_file(path, buf, 5);
    assert_true(try_open(path) < 0);
    /* a good one still opens */
    write_raw(path, "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    assert_int_equal(try_open(path), 0);
    unlink(path);
    assert_true(try_open(path) < 0); /* missing file */
}

/* Random byte corruptions of a valid file: open must return (either way) without crashing,
 * and any tensor it accepts must lie inside the file. */
static void test_fuzz(void **state)
{
    float a[64];
    for (int i = 0; i < 64; i++)
        a[i] = frand();
    st_write_tensor w[] = {{"p.weight", ST_F32, 2, {8, 4}, a}, {"q", ST_BF16, 1, {16}, a}};
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz.safetensors", g_dir);
    assert_int_equal(st_write(path, w, 2, g_err, sizeof g_err), 0);
    FILE *f = fopen(path, "rb");
    unsigned char good[1024];
    size_t n = fread(good, 1, sizeof good, f);
    fclose(f);
    int n_ok = 0;
    for (int it = 0; it < 3000; it++) {
        unsigned char bad[1024];
        memcpy(bad, good, n);
        size_t len = n;
        int n_mut = 1 + rand() % 4;
        for (int m = 0; m < n_mut; m++)
            bad[rand() % (it % 3 == 0 ? 8 : n)] = (unsigned char)"0123456789[]{},\"-.e \x00\xff"[rand() % 22];
        if (it % 5 == 0)
            len = (size_t)rand() % n;
        write_file(path, bad, len);
        safetensors st;
        st_init(&st);
        if (st_add_file(&st, path, g_err, sizeof g_err) == 0) {
            n_ok++;
            for (int i = 0; i < st.n_tensors; i++) {
                const st_tensor *t = &st.tensors[i];
                const char *base = st.maps[0];
                assert_true((const char *)t->data >= base &&
                            (const char *)t->data + t->n_bytes <= base + len);
                float *out = malloc(t->n_elems * sizeof(float) + 1);
                st_to_f32(t, out); /* touches every byte: must stay inside the mapping */
                free(out);
            }
        }
        st_free(&st);
    }
    assert_true(n_ok > 0 && n_ok < 3000);
    unlink(path);
}

int main(void)
{
    srand(1234);
    snprintf(g_dir, sizeof g_dir, "/tmp/cinder_st_XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_shards),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_fuzz),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(g_dir);
    return rc;
}
