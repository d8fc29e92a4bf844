/* model_config.c - reads an HF config.json (+ generation_config.json) into a model_config
 * (see model_config.h), as transformers 4.x and 5.x write it: the fields every family shares
 * here (defaults of transformers' LlamaConfig), the family's own in model_family.c. An
 * architecture or a field cinder does not compute is refused.
 */
#include "model_config.h"
#include "json_util.h"
#include "model_family.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Adds the EOS id(s) of V (an int or a list of ints) to C, skipping duplicates. */
static int add_eos(model_config *c, const cJSON *v, char *err, size_t n_err)
{
    if (!v || cJSON_IsNull(v))
        return 0;
    const cJSON *one = v;
    if (cJSON_IsArray(v))
        one = v->child;
    for (; one; one = cJSON_IsArray(v) ? one->next : NULL) {
        if (!cJSON_IsNumber(one) || one->valuedouble < 0 || one->valuedouble > 1e9 ||
            one->valuedouble != (double)(int)one->valuedouble) {
            snprintf(err, n_err, "eos_token_id: not a token id");
            return -1;
        }
        int id = (int)one->valuedouble, dup = 0;
        for (int i = 0; i < c->n_eos; i++)
            dup |= c->eos_ids[i] == id;
        if (dup)
            continue;
        if (c->n_eos == MODEL_MAX_EOS) {
            snprintf(err, n_err, "more than %d eos_token_id", MODEL_MAX_EOS);
            return -1;
        }
        c->eos_ids[c->n_eos++] = id;
    }
    return 0;
}

static int parse_rope_scaling(model_config *c, const cJSON *rs, char *err, size_t n_err)
{
    if (!rs || cJSON_IsNull(rs))
        return 0;
    if (!cJSON_IsObject(rs)) {
        snprintf(err, n_err, "rope_scaling: not an object");
        return -1;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type)
        type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type)) {
        snprintf(err, n_err, "rope_scaling: no rope_type");
        return -1;
    }
    if (strcmp(type->valuestring, "default") == 0)
        return 0;
    if (strcmp(type->valuestring, "llama3") != 0) {
        snprintf(err, n_err, "rope_scaling type \"%.32s\" is not supported (only llama3)",
                 type->valuestring);
        return -1;
    }
    double factor, lo, hi;
    long long orig;
    if (json_get_num(rs, "factor", 0, &factor, err, n_err) < 0 ||
        json_get_num(rs, "low_freq_factor", 1, &lo, err, n_err) < 0 ||
        json_get_num(rs, "high_freq_factor", 4, &hi, err, n_err) < 0 ||
        json_get_int(rs, "original_max_position_embeddings", 8192, &orig, err, n_err) < 0)
        return -1;
    if (!(factor >= 1) || !(lo > 0) || !(hi > lo) || orig <= 0) {
        snprintf(err, n_err, "rope_scaling: invalid llama3 parameters");
        return -1;
    }
    c->rope_factor = (float)factor;
    c->rope_low_freq_factor = (float)lo;
    c->rope_high_freq_factor = (float)hi;
    c->rope_orig_max_pos = (int)orig;
    return 0;
}

/* config.json's fields one after the other (a flat list of checks, over 80 lines). */
static int parse_config(model_config *c, const cJSON *j, char *err, size_t n_err)
{
    if (!cJSON_IsObject(j)) {
        snprintf(err, n_err, "not a JSON object");
        return -1;
    }
    if (model_family_check(j, err, n_err) < 0)
        return -1;
    long long dim, hidden, layers, heads, kv, head_dim, vocab, max_pos, bos, tie;
    double eps, theta;
    if (json_get_int(j, "hidden_size", -1, &dim, err, n_err) < 0 ||
        json_get_int(j, "intermediate_size", -1, &hidden, err, n_err) < 0 ||
        json_get_int(j, "num_hidden_layers", -1, &layers, err, n_err) < 0 ||
        json_get_int(j, "num_attention_heads", -1, &heads, err, n_err) < 0 ||
        json_get_int(j, "vocab_size", -1, &vocab, err, n_err) < 0)
        return -1;
    if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || vocab <= 0 ||
        dim > 1 << 20 || hidden > 1 << 22 || layers > 4096 || heads > 4096 || vocab > 1 << 24) {
        snprintf(err, n_err, "hidden_size, intermediate_size, num_hidden_layers, "
                             "num_attention_heads and vocab_size must be given and positive");
        return -1;
    }
    if (json_get_int(j, "num_key_value_heads", heads, &kv, err, n_err) < 0 ||
        json_get_int(j, "head_dim", dim / heads, &head_dim, err, n_err) < 0 ||
        json_get_int(j, "max_position_embeddings", 2048, &max_pos, err, n_err) < 0 ||
        json_get_int(j, "bos_token_id", 1, &bos, err, n_err) < 0 ||
        json_get_num(j, "rms_norm_eps", 1e-6, &eps, err, n_err) < 0)
        return -1;
    /* RoPE: transformers 4.x writes rope_theta and rope_scaling, 5.x one rope_parameters
       object holding rope_type, rope_theta and the scaling parameters */
    const cJSON *rope = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (rope && !cJSON_IsNull(rope) && !cJSON_IsObject(rope)) {
        snprintf(err, n_err, "rope_parameters: not an object");
        return -1;
    }
    if (rope && cJSON_IsNull(rope))
        rope = NULL;
    if (json_get_num(rope ? rope : j, "rope_theta", 10000, &theta, err, n_err) < 0)
        return -1;
    if (kv <= 0 || heads % kv != 0 || head_dim <= 0 || head_dim % 2 != 0 || head_dim > 4096 ||
        max_pos <= 0 || max_pos > 1 << 30 || !(eps > 0) || !(theta > 0)) {
        snprintf(err, n_err, "invalid num_key_value_heads, head_dim, max_position_embeddings, "
                             "rms_norm_eps or rope_theta");
        return -1;
    }
    const cJSON *bos_v = cJSON_GetObjectItemCaseSensitive(j, "bos_token_id");
    c->bos_id = bos_v && cJSON_IsNull(bos_v) ? -1 : (int)bos;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    tie = cJSON_IsTrue(t);
    if (t && !cJSON_IsBool(t) && !cJSON_IsNull(t)) {
        snprintf(err, n_err, "tie_word_embeddings: not a boolean");
        return -1;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0)) {
        snprintf(err, n_err, "hidden_act must be \"silu\"");
        return -1;
    }
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!eos) {
        c->n_eos = 1;
        c->eos_ids[0] = 2; /* LlamaConfig default */
    } else if (add_eos(c, eos, err, n_err) < 0) {
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "torch_dtype");
    if (!dt)
        dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    snprintf(c->dtype, sizeof c->dtype, "%s", cJSON_IsString(dt) ? dt->valuestring : "float32");
    if (strcmp(c->dtype, "float32") && strcmp(c->dtype, "float16") && strcmp(c->dtype, "bfloat16")) {
        snprintf(err, n_err, "torch_dtype \"%s\" is not float32, float16 or bfloat16", c->dtype);
        return -1;
    }
    c->dim = (int)dim;
    c->hidden_dim = (int)hidden;
    c->n_layers = (int)layers;
    c->n_heads = (int)heads;
    c->n_kv_heads = (int)kv;
    c->head_dim = (int)head_dim;
    c->vocab_size = (int)vocab;
    c->max_seq_len = (int)max_pos;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->tie_embeddings = (int)tie;
    if (c->bos_id >= c->vocab_size) {
        snprintf(err, n_err, "bos_token_id out of the vocabulary");
        return -1;
    }
    if (model_family_parse(c, j, err, n_err) < 0)
        return -1;
    return parse_rope_scaling(c, rope ? rope : cJSON_GetObjectItemCaseSensitive(j, "rope_scaling"),
                              err, n_err);
}

int model_config_load(model_config *c, const char *dir, char *err, size_t n_err)
{
    char path[4096], msg[512];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j = json_read_file(path, err, n_err);
    if (!j)
        return -1;
    int rc = parse_config(c, j, msg, sizeof msg);
    cJSON_Delete(j);
    if (rc < 0) {
        snprintf(err, n_err, "%s: %s", path, msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (access(path, F_OK) == 0) {
        j = json_read_file(path, err, n_err);
        if (!j)
            return -1;
        rc = cJSON_IsObject(j) ? add_eos(c, cJSON_GetObjectItemCaseSensitive(j, "eos_token_id"),
                                         msg, sizeof msg)
                               : (snprintf(msg, sizeof msg, "not an object"), -1);
        cJSON_Delete(j);
        if (rc < 0) {
            snprintf(err, n_err, "%s: %s", path, msg);
            return -1;
        }
    }
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] >= c->vocab_size) {
            snprintf(err, n_err, "%s: eos id %d out of the vocabulary", dir, c->eos_ids[i]);
            return -1;
        }
    return 0;
}

const char *const *model_config_unused_tensors(const model_config *c)
{
    static const char *const tied[] = {"rotary_emb.inv_freq", "lm_head.weight", NULL};
    static const char *const untied[] = {"rotary_emb.inv_freq", NULL};
    return c->tie_embeddings ? tied : untied;
}
