/* make-model - writes a random-weight model directory (config.json, model.safetensors)
 * of any shape, for tests and benchmarks. The weights are cpu_weights_random's: a backend
 * started with dummy weights on the same config.json computes the same model (exactly for
 * --dtype f32).
 *
 * usage: make-model --out DIR [--config config.json] [--dim 64] [--hidden 172] [--layers 2]
 *          [--heads 4] [--kv-heads 2] [--head-dim N] [--vocab 300] [--max-pos 512]
 *          [--rope-theta 10000] [--llama3-scaling FACTOR] [--tie 1] [--dtype f32|f16|bf16]
 *          [--seed 0] [--arch llama|mistral|qwen2|qwen3|mixtral|qwen3_moe] [--window N]
 *          [--window-from L] [--experts E] [--top-k K] [--moe-hidden N] [--norm-topk 0|1]
 * --window: sliding_window (Qwen: with use_sliding_window, from layer --window-from);
 * --experts: MoE (Mixtral's experts are --hidden wide, Qwen3-MoE's --moe-hidden).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/json_util.h"
#include "../common/safetensors.h"
#include "../worker/cpu_weights.h"

typedef struct {
    const char *out, *config, *dtype, *arch;
    int dim, hidden, layers, heads, kv_heads, head_dim, vocab, max_pos, tie;
    int window, window_from, experts, top_k, moe_hidden, norm_topk;
    double rope_theta, llama3_factor;
    unsigned long long seed;
} opts;

static int usage(void)
{
    fprintf(stderr, "usage: make-model --out DIR [--config config.json] [--dim N] [--hidden N] "
                    "[--layers N] [--heads N] [--kv-heads N] [--head-dim N] [--vocab N] "
                    "[--max-pos N] [--rope-theta X] [--llama3-scaling FACTOR] [--tie 0|1] "
                    "[--dtype f32|f16|bf16] [--seed N] [--arch llama|mistral|qwen2|qwen3|"
                    "mixtral|qwen3_moe] [--window N] [--window-from L] [--experts E] "
                    "[--top-k K] [--moe-hidden N] [--norm-topk 0|1]\n");
    return 2;
}

static int write_config(const opts *o, char *err, size_t n_err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->out);
    if (o->config) { /* copy it as is */
        size_t len;
        char *text = file_read_all(o->config, &len, err, n_err);
        if (!text)
            return -1;
        FILE *f = fopen(path, "w");
        int ok = f && fwrite(text, 1, len, f) == len;
        ok = f && fclose(f) == 0 && ok;
        free(text);
        if (!ok)
            snprintf(err, n_err, "%s: cannot write", path);
        return ok ? 0 : -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        return -1;
    }
    const char *dt = strcmp(o->dtype, "bf16") == 0 ? "bfloat16"
                     : strcmp(o->dtype, "f16") == 0 ? "float16" : "float32";
    static const char *const archs[][2] = {
        {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
        {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
        {"mixtral", "MixtralForCausalLM"}, {"qwen3_moe", "Qwen3MoeForCausalLM"}};
    int a = 0;
    while (a < 6 && strcmp(archs[a][0], o->arch))
        a++;
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
               "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
               "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
               "  \"num_key_value_heads\": %d,\n",
            a < 6 ? archs[a][1] : o->arch, o->arch, o->dim, o->hidden, o->layers, o->heads,
            o->kv_heads);
    int qwen = !strncmp(o->arch, "qwen", 4);
    if (o->window > 0 && qwen)
        fprintf(f, "  \"sliding_window\": %d,\n  \"use_sliding_window\": true,\n"
                   "  \"max_window_layers\": %d,\n", o->window, o->window_from);
    else if (o->window > 0)
        fprintf(f, "  \"sliding_window\": %d,\n", o->window);
    else if (strcmp(o->arch, "llama"))
        fprintf(f, "  \"sliding_window\": null,\n");
    if (o->experts > 0 && qwen)
        fprintf(f, "  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n"
                   "  \"moe_intermediate_size\": %d,\n  \"norm_topk_prob\": %s,\n",
                o->experts, o->top_k, o->moe_hidden > 0 ? o->moe_hidden : o->hidden,
                o->norm_topk ? "true" : "false");
    else if (o->experts > 0)
        fprintf(f, "  \"num_local_experts\": %d,\n  \"num_experts_per_tok\": %d,\n",
                o->experts, o->top_k);
    if (o->head_dim > 0)
        fprintf(f, "  \"head_dim\": %d,\n", o->head_dim);
    fprintf(f, "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n"
               "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": %g,\n",
            o->vocab, o->max_pos, o->rope_theta);
    if (o->llama3_factor > 0)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %g, "
                   "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                   "\"original_max_position_embeddings\": %d},\n",
                o->llama3_factor, o->max_pos / 4 > 0 ? o->max_pos / 4 : 1);
    fprintf(f, "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n  \"tie_word_embeddings\": %s,\n"
               "  \"torch_dtype\": \"%s\"\n}\n",
            o->tie ? "true" : "false", dt);
    if (fclose(f) != 0) {
        snprintf(err, n_err, "%s: write error", path);
        return -1;
    }
    return 0;
}

/* Writes the weights of W in DTYPE as DIR/model.safetensors. */
static int write_weights(const cpu_weights *w, const model_config *c, const char *dir,
                         st_dtype dtype, char *err, size_t n_err)
{
    int n_max = weights_layout_max_tensors(c) * (1 + c->n_layers), n = 0, rc = -1;
    wl_tensor *hf = calloc((size_t)n_max, sizeof *hf);
    st_write_tensor *t = calloc((size_t)n_max, sizeof *t);
    void **conv = calloc((size_t)n_max, sizeof *conv);
    if (!hf || !t || !conv) {
        snprintf(err, n_err, "out of memory");
        goto out;
    }
    for (int l = -1; l < c->n_layers; l++)
        n += weights_layout_tensors(&w->layout, c, l, hf + n);
    for (int i = 0; i < n; i++) {
        size_t n_el = (size_t)hf[i].shape[0] * (hf[i].n_dims == 2 ? (size_t)hf[i].shape[1] : 1);
        const float *data = w->mem + hf[i].offset;
        t[i] = (st_write_tensor){hf[i].name, dtype, hf[i].n_dims,
                                 {hf[i].shape[0], hf[i].shape[1]}, data};
        if (dtype == ST_F32)
            continue;
        uint16_t *h = malloc(n_el * sizeof *h);
        if (!h) {
            snprintf(err, n_err, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < n_el; k++)
            h[k] = dtype == ST_F16 ? st_f32_to_f16(data[k]) : st_f32_to_bf16(data[k]);
        conv[i] = h;
        t[i].data = h;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = st_write(path, t, n, err, n_err);
out:
    for (int i = 0; conv && i < n_max; i++)
        free(conv[i]);
    free(conv);
    free(t);
    free(hf);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {.dtype = "f32", .arch = "llama", .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2,
              .vocab = 300, .max_pos = 512, .tie = 1, .rope_theta = 10000, .top_k = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--dtype")) o.dtype = v;
        else if (!strcmp(a, "--dim")) o.dim = atoi(v);
        else if (!strcmp(a, "--hidden")) o.hidden = atoi(v);
        else if (!strcmp(a, "--layers")) o.layers = atoi(v);
        else if (!strcmp(a, "--heads")) o.heads = atoi(v);
        else if (!strcmp(a, "--kv-heads")) o.kv_heads = atoi(v);
        else if (!strcmp(a, "--head-dim")) o.head_dim = atoi(v);
        else if (!strcmp(a, "--vocab")) o.vocab = atoi(v);
        else if (!strcmp(a, "--max-pos")) o.max_pos = atoi(v);
        else if (!strcmp(a, "--tie")) o.tie = atoi(v);
        else if (!strcmp(a, "--rope-theta")) o.rope_theta = atof(v);
        else if (!strcmp(a, "--llama3-scaling")) o.llama3_factor = atof(v);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--arch")) o.arch = v;
        else if (!strcmp(a, "--window")) o.window = atoi(v);
        else if (!strcmp(a, "--window-from")) o.window_from = atoi(v);
        else if (!strcmp(a, "--experts")) o.experts = atoi(v);
        else if (!strcmp(a, "--top-k")) o.top_k = atoi(v);
        else if (!strcmp(a, "--moe-hidden")) o.moe_hidden = atoi(v);
        else if (!strcmp(a, "--norm-topk")) o.norm_topk = atoi(v);
        else return usage();
    }
    st_dtype dtype = !strcmp(o.dtype, "f32") ? ST_F32 : !strcmp(o.dtype, "f16") ? ST_F16
                     : !strcmp(o.dtype, "bf16") ? ST_BF16 : ST_N_DTYPES;
    if (!o.out || dtype == ST_N_DTYPES)
        return usage();
    if (o.hidden <= 0) /* LLaMA's 8/3 * dim, rounded up to a multiple of 4 */
        o.hidden = (8 * o.dim / 3 + 3) / 4 * 4;
    char err[8192];
    model_config c;
    cpu_weights w = {0};
    if (mkdir(o.out, 0755) < 0 && errno != EEXIST) {
        snprintf(err, sizeof err, "%s: %s", o.out, strerror(errno));
        goto fail;
    }
    if (write_config(&o, err, sizeof err) < 0 || model_config_load(&c, o.out, err, sizeof err) < 0)
        goto fail;
    cpu_pool *pool = cpu_pool_init(0);
    int rc = cpu_weights_random(&w, &c, o.seed, pool, NULL, err, sizeof err);
    cpu_pool_free(pool);
    if (rc < 0 || write_weights(&w, &c, o.out, dtype, err, sizeof err) < 0)
        goto fail;
    printf("make-model: %s: dim %d, hidden %d, %d layers, %d/%d heads, head_dim %d, vocab %d, "
           "%s, %zu parameters\n", o.out, c.dim, c.hidden_dim, c.n_layers, c.n_heads,
           c.n_kv_heads, c.head_dim, c.vocab_size, o.dtype, w.n_floats);
    cpu_weights_free(&w);
    return 0;
fail:
    cpu_weights_free(&w);
    fprintf(stderr, "make-model: %s\n", err);
    return 1;
}
