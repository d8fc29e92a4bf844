/* model_family.c - the per-family part of reading config.json (see model_config.h): which
 * architecture it is, which family fields it uses (q/k/v bias, q/k norm, sliding window, MoE
 * router and experts) with transformers' defaults and rules, and which fields that would change
 * the math cinder does not compute (refused by name, never ignored).
 */
#include "model_config.h"
#include "json_util.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *arch, *type; /* "architectures" entry, "model_type" */
    int id;                  /* model_arch */
    int window_default;      /* transformers' sliding_window default (0: None) */
    int qwen_window;         /* window only with use_sliding_window, from max_window_layers */
} family;

static const family families[] = {
    {"LlamaForCausalLM", "llama", MODEL_LLAMA, 0, 0},
    {"MistralForCausalLM", "mistral", MODEL_MISTRAL, 4096, 0},
    {"Qwen2ForCausalLM", "qwen2", MODEL_QWEN2, 4096, 1},
    {"Qwen3ForCausalLM", "qwen3", MODEL_QWEN3, 4096, 1},
    {"MixtralForCausalLM", "mixtral", MODEL_MIXTRAL, 0, 0},
    {"Qwen3MoeForCausalLM", "qwen3_moe", MODEL_QWEN3_MOE, 4096, 1},
};
enum { N_FAMILIES = sizeof families / sizeof *families };

const char *model_arch_name(int arch)
{
    return arch >= 0 && arch < N_FAMILIES ? families[arch].arch : "?";
}

/* The family named by "architectures" (or, without it, "model_type"); neither: a LLaMA
 * (llama2.c conversions). */
static const family *find_family(const cJSON *j, char *err, size_t n_err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const char *name;
    int by_arch = a && !cJSON_IsNull(a);
    if (by_arch) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 1 || !cJSON_IsString(a->child)) {
            snprintf(err, n_err, "architectures: expected one architecture name");
            return NULL;
        }
        name = a->child->valuestring;
    } else if (t && !cJSON_IsNull(t)) {
        name = cJSON_IsString(t) ? t->valuestring : "(not a string)";
    } else {
        return &families[MODEL_LLAMA];
    }
    for (int i = 0; i < N_FAMILIES; i++)
        if (!strcmp(by_arch ? families[i].arch : families[i].type, name))
            return &families[i];
    char list[256] = "";
    for (int i = 0; i < N_FAMILIES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 families[i].arch);
    snprintf(err, n_err, "architecture \"%.64s\" is not supported (supported: %s)", name, list);
    return NULL;
}

static int is_set(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return v && !cJSON_IsFalse(v) && !cJSON_IsNull(v);
}

/* Fields that change the math and that no supported family computes the way the config asks. */
static int check_unsupported(const family *f, const cJSON *j, char *err, size_t n_err)
{
    static const char *const must_be_false[] = {"attention_bias", "mlp_bias", "qkv_bias",
                                                "use_qk_norm", NULL};
    for (int i = 0; must_be_false[i]; i++)
        if (is_set(j, must_be_false[i])) {
            snprintf(err, n_err, "%s is not supported for %s", must_be_false[i], f->arch);
            return -1;
        }
    long long shared = 0;
    if (json_get_int(j, "shared_expert_intermediate_size", 0, &shared, err, n_err) < 0)
        return -1;
    if (shared) {
        snprintf(err, n_err, "shared experts (shared_expert_intermediate_size) are not supported "
                             "for %s", f->arch);
        return -1;
    }
    return 0;
}

/* layer_types (transformers 5): [full_attention] * k + [sliding_attention] * (n - k) gives
 * the first windowed layer k; no entry: -1. Another pattern is refused. */
static int parse_layer_types(const cJSON *j, int n_layers, int *from, char *err, size_t n_err)
{
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    *from = -1;
    if (!lt || cJSON_IsNull(lt))
        return 0;
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != n_layers) {
        snprintf(err, n_err, "layer_types: expected %d entries", n_layers);
        return -1;
    }
    int i = 0, first_sliding = n_layers;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        int sliding = cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
        if (!sliding && !(cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention"))) {
            snprintf(err, n_err, "layer_types: only full_attention and sliding_attention are "
                                 "supported");
            return -1;
        }
        if (sliding && first_sliding == n_layers)
            first_sliding = i;
        if (!sliding && first_sliding < n_layers) {
            snprintf(err, n_err, "layer_types: a full_attention layer after a sliding_attention "
                                 "one is not supported");
            return -1;
        }
        i++;
    }
    *from = first_sliding;
    return 0;
}

/* sliding_window as transformers applies it: Mistral and Mixtral on every layer when set;
 * Qwen only with use_sliding_window, on layers from max_window_layers on (or as layer_types
 * says); LLaMA never. */
static int parse_window(model_config *c, const family *f, const cJSON *j, char *err,
                        size_t n_err)
{
    long long win, from_layer;
    int lt_from;
    if (json_get_int(j, "sliding_window", f->window_default, &win, err, n_err) < 0 ||
        parse_layer_types(j, c->n_layers, &lt_from, err, n_err) < 0)
        return -1;
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(j, "sliding_window");
    if (sw && cJSON_IsNull(sw))
        win = 0;
    int use = f->qwen_window ? is_set(j, "use_sliding_window") : win > 0;
    if (f->id == MODEL_LLAMA) {
        if (is_set(j, "use_sliding_window") || win > 0 || (lt_from >= 0 && lt_from < c->n_layers)) {
            snprintf(err, n_err, "sliding_window is not supported for %s", f->arch);
            return -1;
        }
        return 0;
    }
    if (!use || win <= 0)
        return 0;
    if (f->id == MODEL_QWEN3_MOE) {
        snprintf(err, n_err, "use_sliding_window is not supported for %s", f->arch);
        return -1;
    }
    if (win > 1 << 30) {
        snprintf(err, n_err, "sliding_window: out of range");
        return -1;
    }
    if (f->qwen_window) {
        if (json_get_int(j, "max_window_layers", 28, &from_layer, err, n_err) < 0)
            return -1;
        if (lt_from >= 0)
            from_layer = lt_from;
    } else {
        if (lt_from > 0) {
            snprintf(err, n_err, "layer_types: full_attention layers with a sliding_window are "
                                 "not supported for %s", f->arch);
            return -1;
        }
        from_layer = 0;
    }
    if (from_layer < 0)
        from_layer = 0;
    if (from_layer >= c->n_layers)
        return 0;   /* no layer is windowed */
    c->sliding_window = (int)win;
    c->window_from_layer = (int)from_layer;
    return 0;
}

/* Mixtral: num_local_experts, top-k always renormalised; Qwen3-MoE: num_experts,
 * moe_intermediate_size, renormalised iff norm_topk_prob; every layer sparse. */
static int parse_moe(model_config *c, const family *f, const cJSON *j, char *err, size_t n_err)
{
    long long n_exp, top_k, moe_hid, step;
    int mixtral = f->id == MODEL_MIXTRAL;
    const char *n_name = cJSON_GetObjectItemCaseSensitive(j, "num_local_experts")
                             ? "num_local_experts" : "num_experts";
    if (json_get_int(j, n_name, mixtral ? 8 : 128, &n_exp, err, n_err) < 0 ||
        json_get_int(j, "num_experts_per_tok", mixtral ? 2 : 8, &top_k, err, n_err) < 0 ||
        json_get_int(j, "moe_intermediate_size", mixtral ? c->hidden_dim : 768, &moe_hid, err,
                     n_err) < 0 ||
        json_get_int(j, "decoder_sparse_step", 1, &step, err, n_err) < 0)
        return -1;
    if (n_exp < 1 || n_exp > MODEL_MAX_EXPERTS || top_k < 1 || top_k > n_exp ||
        top_k > MODEL_MAX_EXPERTS_USED || moe_hid <= 0 || moe_hid > 1 << 22) {
        snprintf(err, n_err, "invalid %s, num_experts_per_tok or moe_intermediate_size (at most "
                 "%d experts, %d per token)", n_name, MODEL_MAX_EXPERTS, MODEL_MAX_EXPERTS_USED);
        return -1;
    }
    const cJSON *only = cJSON_GetObjectItemCaseSensitive(j, "mlp_only_layers");
    if (step != 1 || (only && !cJSON_IsNull(only) && cJSON_GetArraySize(only) != 0)) {
        snprintf(err, n_err, "dense layers in a MoE model (decoder_sparse_step, mlp_only_layers) "
                             "are not supported");
        return -1;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "norm_topk_prob");
    if (norm && !cJSON_IsBool(norm) && !cJSON_IsNull(norm)) {
        snprintf(err, n_err, "norm_topk_prob: not a boolean");
        return -1;
    }
    c->n_experts = (int)n_exp;
    c->n_experts_used = (int)top_k;
    c->hidden_dim = (int)moe_hid;   /* every MLP of the model is an expert of this size */
    c->moe_renorm = mixtral || cJSON_IsTrue(norm);
    return 0;
}

int model_family_check(const cJSON *j, char *err, size_t n_err)
{
    const family *f = find_family(j, err, n_err);
    return f ? check_unsupported(f, j, err, n_err) : -1;
}

int model_family_parse(model_config *c, const cJSON *j, char *err, size_t n_err)
{
    const family *f = find_family(j, err, n_err);
    if (!f || check_unsupported(f, j, err, n_err) < 0)
        return -1;
    c->arch = f->id;
    c->qkv_bias = f->id == MODEL_QWEN2;
    c->qk_norm = f->id == MODEL_QWEN3 || f->id == MODEL_QWEN3_MOE;
    if (parse_window(c, f, j, err, n_err) < 0)
        return -1;
    if (f->id == MODEL_MIXTRAL || f->id == MODEL_QWEN3_MOE)
        return parse_moe(c, f, j, err, n_err);
    static const char *const moe_fields[] = {"num_local_experts", "num_experts",
                                             "moe_intermediate_size", NULL};
    for (int i = 0; moe_fields[i]; i++) {
        long long v = 0;
        if (json_get_int(j, moe_fields[i], 0, &v, err, n_err) < 0)
            return -1;
        if (v) {
            snprintf(err, n_err, "%s is not supported for %s", moe_fields[i], f->arch);
            return -1;
        }
    }
    return 0;
}
