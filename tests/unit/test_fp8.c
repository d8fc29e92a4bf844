/* test_fp8.c - FP8 (kernels/fp8.h, worker/fp8_*.c, the CPU backend's FP8):
 * (a) E4M3 decode of all 256 codes against the format's formula, encode(decode(c)) == c;
 * (b) encode against a brute-force nearest code (ties to even) on random values and on every
 *     midpoint, saturation, NaN, and the round-trip error bound;
 * (c) quantization_config: the supported formats accepted, every other refused by name;
 * (d) FP8 checkpoints written here (per-channel F32 scales as compressed-tensors, per-tensor
 *     BF16 scales as quant_method fp8) run on the CPU backend: the per-channel one gives
 *     bit-identical logits to --quantization fp8 of the same fp32 model, both stay near the
 *     fp32 logits; a missing scale, FP8 tensors without quantization_config refused;
 * (e) --kv-cache-dtype fp8: twice the default KV capacity, logits near the fp32 cache's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../worker/backend.h"
#include "../../worker/fp8_config.h"
#include "../../worker/kv_layout.h"
#include "../fp8_ckpt.h"

static char g_make_model[4096];
static char g_model[256];   /* a tiny fp32 Llama made by make-model */

/* ---------------------------------------------------------------- the format */

static double code_formula(int c)
{
    int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    double v = e == 0 ? m * ldexp(1, -9) : (1 + m / 8.0) * ldexp(1, e - 7);
    return s ? -v : v;
}

static void test_codes_exhaustive(void **state)
{
    for (int c = 0; c < 256; c++) {
        float v = fp8_e4m3_decode((uint8_t)c);
        if ((c & 0x7f) == 0x7f) {
            assert_true(isnan(v));
            continue;
        }
        assert_true((double)v == code_formula(c));
        assert_int_equal(signbit(v) != 0, c >> 7);
        assert_int_equal(fp8_e4m3_encode(v), c);
    }
    assert_true(fp8_e4m3_decode(0x7e) == 448.0f);
    assert_true(fp8_e4m3_decode(0x08) == ldexpf(1, -6));
    assert_true(fp8_e4m3_decode(0x01) == ldexpf(1, -9));
}

/* The nearest finite code to X by search, ties to the even code (the one whose mantissa's
 * last bit is 0), saturating beyond 448. */
static int nearest_code(float x)
{
    int sign = signbit(x) ? 0x80 : 0, best = 0;
    double a = fabs((double)x), bd = INFINITY;
    if (a >= 448)
        return sign | 0x7e;
    for (int c = 0; c < 0x7f; c++) {
        double d = fabs(code_formula(c) - a);
        if (d < bd || (d == bd && (c & 1) == 0))
            bd = d, best = c;
    }
    return sign | best;
}

static uint64_t g_rng = 12345;
static double uniform01(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

static void test_encode_rounding(void **state)
{
    /* every midpoint between neighbouring codes goes to the even one */
    for (int c = 0; c < 0x7e; c++) {
        float mid = (float)((code_formula(c) + code_formula(c + 1)) / 2);
        assert_int_equal(fp8_e4m3_encode(mid), (c & 1) ? c + 1 : c);
        assert_int_equal(fp8_e4m3_encode(-mid), 0x80 | ((c & 1) ? c + 1 : c));
        assert_int_equal(fp8_e4m3_encode(nextafterf(mid, 0)), c);
        assert_int_equal(fp8_e4m3_encode(nextafterf(mid, 1000)), c + 1);
    }
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float x = (float)(ldexp(1, -14) * pow(2, 24 * uniform01()));   /* 2^-14 .. 2^10 */
        if (i & 1)
            x = -x;
        uint8_t q = fp8_e4m3_encode(x);
        assert_int_equal(q, nearest_code(x));
        if (fabsf(x) <= 448) {
            double err = fabs(fp8_e4m3_decode(q) - (double)x);
            assert_true(err <= fmax(ldexp(fabs(x), -4), ldexp(1, -10)));
            worst = fmax(worst, err / fabs(x) * (fabsf(x) >= ldexpf(1, -6)));
        }
    }
    assert_true(worst <= 1.0 / 16);
    assert_int_equal(fp8_e4m3_encode(448.5f), 0x7e);
    assert_int_equal(fp8_e4m3_encode(1e30f), 0x7e);
    assert_int_equal(fp8_e4m3_encode(-INFINITY), 0xfe);
    assert_int_equal(fp8_e4m3_encode(NAN) & 0x7f, 0x7f);
    assert_int_equal(fp8_e4m3_encode(ldexpf(1, -11)), 0);   /* below half the least subnormal */
    assert_int_equal(fp8_e4m3_encode(-0.0f), 0x80);
}

/* A row's quantization: its largest element maps to 448, every element within half a step. */
static void test_qdq_row(void **state)
{
    float x[300], y[300];
    for (int i = 0; i < 300; i++)
        x[i] = y[i] = (float)(uniform01() * 6 - 3);
    float s = fp8_qdq_row(y, 300);
    assert_true(s == fp8_amax(x, 300) / 448.0f);
    for (int i = 0; i < 300; i++)
        assert_true(fabs(y[i] - x[i]) <= fmax(fabs(x[i]) / 16, ldexp(s, -10)));
    float z[4] = {0};
    assert_true(fp8_qdq_row(z, 4) == 1.0f && z[0] == 0.0f);
}

/* ---------------------------------------------------------------- quantization_config */

/* fp8_config_load on g_model's config with QC; WANT_ERR NULL: accepted (returns weights). */
static int config_case(const char *qc, const char *want_err)
{
    char dir[] = "/tmp/cinder_fp8cfg_XXXXXX", err[1024] = "", p[512];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(fp8ck_write_config(g_model, dir, qc), 0);
    model_config c;
    assert_int_equal(model_config_load(&c, dir, err, sizeof err), 0);
    fp8_config q;
    int rc = fp8_config_load(&q, dir, &c, 0, 0, err, sizeof err);
    if (want_err) {
        if (rc == 0 || !strstr(err, want_err))
            fprintf(stderr, "quantization_config %s: got '%s', wanted '%s'\n", qc, err, want_err);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, want_err));
    } else {
        if (rc)
            fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
    return rc ? -1 : q.weights;
}

static void test_config(void **state)
{
    char qc[2048];
    snprintf(qc, sizeof qc, FP8CK_CT, "channel", FP8CK_TOKEN);
    assert_int_equal(config_case(qc, NULL), FP8_W_CHECKPOINT);
    snprintf(qc, sizeof qc, FP8CK_CT, "tensor", FP8CK_TOKEN);
    assert_int_equal(config_case(qc, NULL), FP8_W_CHECKPOINT);
    assert_int_equal(config_case(FP8CK_TENSOR, NULL), FP8_W_CHECKPOINT);
    assert_int_equal(config_case(NULL, NULL), FP8_W_NONE);
    /* refusals, each naming what it refuses */
    snprintf(qc, sizeof qc, FP8CK_CT, "block", FP8CK_TOKEN);
    config_case(qc, "weight strategy \"block\"");
    snprintf(qc, sizeof qc, FP8CK_CT, "group", FP8CK_TOKEN);
    config_case(qc, "weight strategy \"group\"");
    snprintf(qc, sizeof qc, FP8CK_CT, "channel", "null");
    config_case(qc, "weight-only FP8");
    snprintf(qc, sizeof qc, FP8CK_CT, "channel",
             "{\"num_bits\": 8, \"type\": \"float\", \"dynamic\": false, \"strategy\": \"tensor\"}");
    config_case(qc, "input_activations must be float 8-bit, dynamic");
    config_case("{\"quant_method\": \"fp8\", \"activation_scheme\": \"dynamic\", "
                "\"weight_block_size\": [128, 128]}", "weight_block_size [128,128]");
    config_case("{\"quant_method\": \"fp8\", \"activation_scheme\": \"static\"}",
                "activation_scheme \"static\"");
    config_case("{\"quant_method\": \"fp8\", \"fmt\": \"e5m2\"}", "fmt \"e5m2\"");
    config_case("{\"quant_method\": \"gptq\", \"bits\": 4}", "quant_method \"gptq\"");
    config_case("{\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\"}",
                "format \"pack-quantized\"");
    config_case("{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
                "\"ignore\": [\"lm_head\", \"model.layers.0.mlp.down_proj\"]}", "ignore lists");
    config_case("[1]", "not an object");
}

/* ---------------------------------------------------------------- checkpoints on the CPU */

static void remove_dir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static backend *open_cpu(const char *dir, int quant_fp8, int kv_fp8, int64_t kv_tokens,
                         char *err, size_t n_err)
{
    backend_opts o = {.model_dir = dir, .block_size = 16, .max_seq_len = 256,
                      .max_batch_tokens = 256, .max_seqs = 4, .kv_tokens = kv_tokens,
                      .n_threads = 2, .quant_fp8 = quant_fp8, .kv_fp8 = kv_fp8};
    return cpu_backend_init(&o, err, n_err);
}

/* Logits [vocab] after a 29-token prompt and 3 decodes of fixed tokens (not the sampled ones:
 * a different greedy pick would make the logits incomparable), into OUT. */
static void run_logits(backend *b, float *out)
{
    int32_t tokens[40], bt[4] = {3, 0, 2, 1};
    for (int i = 0; i < 32; i++)
        tokens[i] = (i * 37 + 11) % b->cfg.vocab_size;
    sampling_params greedy = {.top_p = 1, .repetition_penalty = 1};
    fwd_seq s = {.n_cached = 0, .n_new = 29, .sample = 1, .tokens = tokens, .block_table = bt,
                 .params = &greedy, .n_prompt = 29};
    fwd_batch batch = {1, &s};
    for (int step = 0; step < 4; step++) {
        assert_int_equal(b->forward(b, &batch), 0);
        s.n_cached += s.n_new;
        s.n_new = 1;
    }
    memcpy(out, b->last_logits(b, 0), (size_t)b->cfg.vocab_size * sizeof *out);
}

static double rel_diff(const float *a, const float *b, int n)
{
    double d = 0, m = 0;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

static backend *must_open(const char *dir, int quant_fp8, int kv_fp8, int64_t kv_tokens)
{
    char err[1024];
    backend *b = open_cpu(dir, quant_fp8, kv_fp8, kv_tokens, err, sizeof err);
    if (!b)
        fprintf(stderr, "cpu_backend_init: %s\n", err);
    assert_non_null(b);
    return b;
}

static void test_checkpoints(void **state)
{
    char qc[2048], ch[] = "/tmp/cinder_fp8ch_XXXXXX", te[] = "/tmp/cinder_fp8te_XXXXXX";
    assert_non_null(mkdtemp(ch));
    assert_non_null(mkdtemp(te));
    snprintf(qc, sizeof qc, FP8CK_CT, "channel", FP8CK_TOKEN);
    assert_int_equal(fp8ck_write_config(g_model, ch, qc), 0);
    assert_int_equal(fp8ck_write(g_model, ch, 0, 0), 0);
    assert_int_equal(fp8ck_write_config(g_model, te, FP8CK_TENSOR), 0);
    assert_int_equal(fp8ck_write(g_model, te, 1, 0), 0);

    backend *b = must_open(g_model, 0, 0, 4096);
    int V = b->cfg.vocab_size;
    float *l32 = malloc(V * sizeof(float)), *lq = malloc(V * sizeof(float));
    float *lch = malloc(V * sizeof(float)), *lte = malloc(V * sizeof(float));
    run_logits(b, l32);
    b->free(b);
    b = must_open(g_model, 1, 0, 4096);   /* --quantization fp8 */
    run_logits(b, lq);
    b->free(b);
    b = must_open(ch, 0, 0, 4096);
    run_logits(b, lch);
    b->free(b);
    b = must_open(te, 1, 0, 4096);         /* --quantization fp8 on an FP8 checkpoint: as is */
    run_logits(b, lte);
    b->free(b);
    double dq = rel_diff(lq, l32, V), dch = rel_diff(lch, lq, V), dte = rel_diff(lte, l32, V);
    printf("    logits vs fp32: --quantization fp8 %.2e, per-tensor checkpoint %.2e; "
           "per-channel checkpoint vs --quantization fp8 %.2e\n", dq, dte, dch);
    assert_true(dch == 0);                 /* same codes, same scales, same math */
    assert_true(dq > 1e-5 && dq < 0.1);    /* quantized, and close */
    assert_true(dte > 1e-5 && dte < 0.15 && rel_diff(lte, lq, V) > 0);

    /* refusals: a missing scale; FP8 tensors without quantization_config */
    char err[1024];
    assert_int_equal(fp8ck_write(g_model, ch, 0, 1), 0);
    assert_null(open_cpu(ch, 0, 0, 4096, err, sizeof err));
    assert_non_null(strstr(err, "weight_scale not found"));
    assert_int_equal(fp8ck_write_config(g_model, te, NULL), 0);
    assert_null(open_cpu(te, 0, 0, 4096, err, sizeof err));
    assert_non_null(strstr(err, "F8_E4M3"));
    /* the holder keeps fp32 weights and a fp32 cache: FP8 with it is refused */
    backend_opts o = {.model_dir = g_model, .block_size = 16, .max_seq_len = 256,
                      .max_batch_tokens = 256, .max_seqs = 4, .kv_fp8 = 1,
                      .hold = &(msg_holder_attached){0}};
    assert_null(cpu_backend_init(&o, err, sizeof err));
    assert_non_null(strstr(err, "holder"));
    free(l32), free(lq), free(lch), free(lte);
    remove_dir(ch);
    remove_dir(te);
}

static void test_kv_fp8(void **state)
{
    backend *b = must_open(g_model, 0, 0, 0), *b8 = must_open(g_model, 0, 1, 0);
    assert_int_equal(b->n_kv_blocks, KV_CPU_DEFAULT_TOKENS / 16);
    assert_int_equal(b8->n_kv_blocks, 2 * KV_CPU_DEFAULT_TOKENS / 16);   /* same bytes as bf16 */
    int V = b->cfg.vocab_size;
    float *l = malloc(V * sizeof(float)), *l8 = malloc(V * sizeof(float));
    run_logits(b, l);
    run_logits(b8, l8);
    double d = rel_diff(l8, l, V);
    printf("    fp8 KV cache: logits vs the fp32 cache %.2e\n", d);
    assert_true(d > 0 && d < 0.05);
    b->free(b);
    b8->free(b8);
    /* an explicit --kv-tokens is kept as asked */
    b8 = must_open(g_model, 1, 1, 1024);
    assert_int_equal(b8->n_kv_blocks, 1024 / 16);
    run_logits(b8, l8);
    printf("    fp8 weights and KV: logits vs fp32 %.2e\n", rel_diff(l8, l, V));
    assert_true(rel_diff(l8, l, V) < 0.1);
    b8->free(b8);
    free(l), free(l8);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[4096], cmd[8192];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_make_model, sizeof g_make_model, "%s/../bin/make-model", dirname(self));
    snprintf(g_model, sizeof g_model, "/tmp/cinder_fp8_XXXXXX");
    if (!mkdtemp(g_model))
        return 1;
    snprintf(cmd, sizeof cmd, "%s --out %s --dim 128 --hidden 256 --layers 2 --heads 4 "
             "--kv-heads 2 --vocab 300 --tie 0 >/dev/null", g_make_model, g_model);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot run %s\n", g_make_model);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_exhaustive),
        cmocka_unit_test(test_encode_rounding),
        cmocka_unit_test(test_qdq_row),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_kv_fp8),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    remove_dir(g_model);
    return rc;
}
