/* fp8_config.c - config.json's quantization_config and the FP8 flags (see fp8_config.h):
 * accepted formats, refusals by name, and which weights-table tensors are FP8.
 */
#include "fp8_config.h"
#include "../common/json_util.h"

#include <stdio.h>
#include <string.h>

static const cJSON *get(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int str_is(const cJSON *o, const char *name, const char *want)
{
    const cJSON *v = get(o, name);
    return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

static const char *str_or(const cJSON *o, const char *name, const char *def)
{
    const cJSON *v = get(o, name);
    return cJSON_IsString(v) ? v->valuestring : v ? "(not a string)" : def;
}

/* A float 8-bit symmetric quantization args object of compressed-tensors. */
static int ct_float8(const cJSON *a)
{
    const cJSON *bits = get(a, "num_bits"), *sym = get(a, "symmetric");
    return str_is(a, "type", "float") && cJSON_IsNumber(bits) && bits->valuedouble == 8 &&
           (!sym || cJSON_IsTrue(sym));
}

/* quant_method "fp8": per-tensor or per-channel weight scales, dynamic activations. */
static int parse_fp8(const cJSON *qc, char *err, size_t n_err)
{
    const cJSON *block = get(qc, "weight_block_size");
    if (block) {
        char *s = cJSON_PrintUnformatted(block);
        snprintf(err, n_err, "quantization_config: weight_block_size %.40s (block-wise FP8 "
                 "scales) is not supported: per-tensor and per-channel weight scales only",
                 s ? s : "?");
        cJSON_free(s);
        return -1;
    }
    const char *fmt = str_or(qc, "fmt", "e4m3"), *act = str_or(qc, "activation_scheme", "dynamic");
    if (strcmp(fmt, "e4m3")) {
        snprintf(err, n_err, "quantization_config: fmt \"%.32s\" is not supported (e4m3 only)", fmt);
        return -1;
    }
    if (strcmp(act, "dynamic")) {
        snprintf(err, n_err, "quantization_config: activation_scheme \"%.32s\" is not supported "
                 "(dynamic per-token activation scales only; static input_scale tensors are not "
                 "read)", act);
        return -1;
    }
    const cJSON *kv = get(qc, "kv_cache_scheme");
    if (kv) {
        snprintf(err, n_err, "quantization_config: kv_cache_scheme is not supported (use "
                 "--kv-cache-dtype fp8)");
        return -1;
    }
    return 0;
}

/* Every name in IGNORE (a list) is lm_head (which cinder keeps 16-bit anyway). */
static int only_lm_head(const cJSON *ignore)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, ignore)
        if (!cJSON_IsString(e) || strcmp(e->valuestring, "lm_head"))
            return 0;
    return 1;
}

/* quant_method "compressed-tensors" with format "float-quantized". */
static int parse_ct(const cJSON *qc, char *err, size_t n_err)
{
    const char *fmt = str_or(qc, "format", "(none)"), *status = str_or(qc, "quantization_status",
                                                                        "compressed");
    const cJSON *groups = get(qc, "config_groups"), *ignore = get(qc, "ignore");
#define REFUSE(...) do { snprintf(err, n_err, "quantization_config (compressed-tensors): " __VA_ARGS__); return -1; } while (0)
    if (strcmp(fmt, "float-quantized"))
        REFUSE("format \"%.32s\" is not supported (float-quantized FP8 only)", fmt);
    if (strcmp(status, "compressed"))
        REFUSE("quantization_status \"%.32s\" is not supported (compressed only)", status);
    if (get(qc, "kv_cache_scheme"))
        REFUSE("kv_cache_scheme is not supported (use --kv-cache-dtype fp8)");
    if (ignore && (!cJSON_IsArray(ignore) || !only_lm_head(ignore)))
        REFUSE("ignore lists modules other than lm_head: mixed-precision layers are not supported");
    if (!cJSON_IsObject(groups) || cJSON_GetArraySize(groups) != 1)
        REFUSE("exactly one config group is supported");
    const cJSON *g = groups->child, *targets = get(g, "targets"), *w = get(g, "weights");
    const cJSON *in = get(g, "input_activations");
    if (!cJSON_IsArray(targets) || cJSON_GetArraySize(targets) != 1 ||
        !cJSON_IsString(targets->child) || strcmp(targets->child->valuestring, "Linear"))
        REFUSE("targets other than [\"Linear\"] are not supported");
    if (get(g, "output_activations"))
        REFUSE("output_activations are not supported");
    const char *ws = str_or(w, "strategy", "(none)");
    if (!w || !ct_float8(w) || cJSON_IsTrue(get(w, "dynamic")))
        REFUSE("weights must be float 8-bit, symmetric, static");
    if (strcmp(ws, "channel") && strcmp(ws, "tensor"))
        REFUSE("weight strategy \"%.32s\" is not supported (channel or tensor; block-wise and "
               "group scales are not)", ws);
    if (!in)
        REFUSE("weight-only FP8 (no input_activations) is not supported: activations must be "
               "dynamic per-token FP8");
    if (!ct_float8(in) || !cJSON_IsTrue(get(in, "dynamic")) || !str_is(in, "strategy", "token"))
        REFUSE("input_activations must be float 8-bit, dynamic, strategy \"token\" (got "
               "strategy \"%.32s\")", str_or(in, "strategy", "(none)"));
#undef REFUSE
    return 0;
}

static int parse_qc(fp8_config *q, const cJSON *qc, char *err, size_t n_err)
{
    if (!cJSON_IsObject(qc)) {
        snprintf(err, n_err, "quantization_config: not an object");
        return -1;
    }
    const char *m = str_or(qc, "quant_method", "(none)");
    snprintf(q->method, sizeof q->method, "%s", m);
    if (!strcmp(m, "fp8"))
        return parse_fp8(qc, err, n_err);
    if (!strcmp(m, "compressed-tensors"))
        return parse_ct(qc, err, n_err);
    snprintf(err, n_err, "quantization_config: quant_method \"%.32s\" is not supported (fp8 and "
             "compressed-tensors FP8 only)", m);
    return -1;
}

int fp8_config_load(fp8_config *q, const char *dir, const model_config *c, int quant_fp8,
                    int kv_fp8, char *err, size_t n_err)
{
    char path[4096], msg[512];
    memset(q, 0, sizeof *q);
    q->kv_fp8 = kv_fp8;
    q->k_scale = q->v_scale = 1.0f;
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = json_read_file(path, err, n_err);
    if (!j)
        return -1;
    const cJSON *qc = get(j, "quantization_config");
    int rc = 0;
    if (qc) {
        rc = parse_qc(q, qc, msg, sizeof msg);
        q->weights = FP8_W_CHECKPOINT;
    } else if (quant_fp8) {
        q->weights = FP8_W_QUANTIZE;
    }
    cJSON_Delete(j);
    if (rc == 0 && q->weights && c->n_experts > 0) {
        snprintf(msg, sizeof msg, "FP8 weights are not supported for MoE models (%s)",
                 model_arch_name(c->arch));
        rc = -1;
    }
    if (rc < 0) {
        snprintf(err, n_err, "%s: %s", path, msg);
        return -1;
    }
    return 0;
}

int fp8_is_linear(const wl_tensor *t, int layer)
{
    size_t n = strlen(t->name), k = strlen("_proj.weight");
    return layer >= 0 && t->kind == WL_MATRIX && n > k && !strcmp(t->name + n - k, "_proj.weight");
}

const char *fp8_describe(const fp8_config *q)
{
    static const char *const w[] = {"unquantized", "fp8 weights (per-channel scales, "
                                    "quantized at load)", "fp8 weights (the checkpoint's scales)"};
    static char buf[160];
    snprintf(buf, sizeof buf, "%s%s%s%s", w[q->weights], q->method[0] ? " " : "", q->method,
             q->kv_fp8 ? ", fp8 KV cache" : "");
    return buf;
}
