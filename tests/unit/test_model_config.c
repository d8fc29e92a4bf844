/* test_model_config.c - config.json parsing: Llama-2 style defaults, Llama-3.1 rope scaling
 * and EOS lists, generation_config.json EOS merge, transformers 5.x's rope_parameters, the
 * family fields (Qwen2 bias and window rules, Qwen3 head_dim and q/k norm, Mistral window,
 * Mixtral and Qwen3-MoE experts), other architectures and math-changing fields refused by
 * name, and invalid configs rejected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../common/model_config.h"

static char g_dir[256], g_err[512];

static void put(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (!text) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_llama2_defaults(void **state)
{
    put("generation_config.json", NULL);
    put("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":288,"
                       "\"intermediate_size\":768,\"num_hidden_layers\":6,"
                       "\"num_attention_heads\":6,\"vocab_size\":32000,"
                       "\"max_position_embeddings\":256,\"rms_norm_eps\":1e-05,"
                       "\"bos_token_id\":1,\"eos_token_id\":2,\"tie_word_embeddings\":true,"
                       "\"torch_dtype\":\"float32\",\"rope_scaling\":null}");
    model_config c;
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
    assert_int_equal(c.dim, 288);
    assert_int_equal(c.hidden_dim, 768);
    assert_int_equal(c.n_layers, 6);
    assert_int_equal(c.n_heads, 6);
    assert_int_equal(c.n_kv_heads, 6);
    assert_int_equal(c.head_dim, 48);
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.max_seq_len, 256);
    assert_true(c.norm_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0f);
    assert_true(c.rope_factor == 0.0f);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 2);
    assert_string_equal(c.dtype, "float32");
}

static void test_llama31(void **state)
{
    put("config.json", "{\"hidden_size\":4096,\"intermediate_size\":14336,"
                       "\"num_hidden_layers\":32,\"num_attention_heads\":32,"
                       "\"num_key_value_heads\":8,\"vocab_size\":128256,"
                       "\"max_position_embeddings\":131072,\"rms_norm_eps\":1e-05,"
                       "\"rope_theta\":500000.0,\"bos_token_id\":128000,"
                       "\"eos_token_id\":[128001,128008,128009],\"hidden_act\":\"silu\","
                       "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                       "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
                       "\"rope_type\":\"llama3\"},\"torch_dtype\":\"bfloat16\"}");
    put("generation_config.json", "{\"bos_token_id\":128000,\"eos_token_id\":[128009,128001,128006]}");
    model_config c;
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
    assert_int_equal(c.n_kv_heads, 8);
    assert_int_equal(c.head_dim, 128);
    assert_true(c.rope_theta == 500000.0f);
    assert_true(c.rope_factor == 8.0f);
    assert_true(c.rope_low_freq_factor == 1.0f);
    assert_true(c.rope_high_freq_factor == 4.0f);
    assert_int_equal(c.rope_orig_max_pos, 8192);
    assert_int_equal(c.tie_embeddings, 0);
    assert_int_equal(c.n_eos, 4); /* 128001 128008 128009 + 128006 from generation_config */
    assert_int_equal(c.eos_ids[3], 128006);
    assert_string_equal(c.dtype, "bfloat16");
    /* old-style "type" key and explicit head_dim */
    put("generation_config.json", NULL);
    put("config.json", "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"head_dim\":32,\"vocab_size\":300,"
                       "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":2}}");
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.rope_factor == 2.0f);
    assert_int_equal(c.rope_orig_max_pos, 8192);
    assert_true(c.norm_eps == 1e-6f);        /* LlamaConfig defaults */
    assert_int_equal(c.max_seq_len, 2048);
    assert_int_equal(c.eos_ids[0], 2);
}

/* transformers 5.x: rope_parameters holds rope_type, rope_theta and the scaling; "dtype" */
static void test_transformers5(void **state)
{
    put("generation_config.json", NULL);
    put("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\","
                       "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"vocab_size\":300,\"dtype\":\"bfloat16\","
                       "\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,"
                       "\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                       "\"original_max_position_embeddings\":8192}}");
    model_config c;
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
    assert_true(c.rope_theta == 500000.0f);   /* was silently 10000 */
    assert_true(c.rope_factor == 8.0f);
    assert_int_equal(c.rope_orig_max_pos, 8192);
    assert_string_equal(c.dtype, "bfloat16");
    put("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                       "\"intermediate_size\":128,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"vocab_size\":300,"
                       "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1000000.0}}");
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
    assert_true(c.rope_theta == 1000000.0f);
    assert_true(c.rope_factor == 0.0f);
}

/* Another family, or a field that changes the math, is refused by name before any weight. */
static void test_refused(void **state)
{
    static const struct { const char *extra, *want; } cases[] = {
        {"\"architectures\":[\"Gemma2ForCausalLM\"]", "Gemma2ForCausalLM"},
        {"\"architectures\":[\"Qwen2MoeForCausalLM\"]",
         "supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
         "MixtralForCausalLM, Qwen3MoeForCausalLM"},
        {"\"model_type\":\"phi3\"", "phi3"},
        {"\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":true", "attention_bias"},
        {"\"architectures\":[\"Qwen3MoeForCausalLM\"],\"mlp_only_layers\":[1]", "mlp_only_layers"},
        {"\"architectures\":[\"Qwen3MoeForCausalLM\"],\"decoder_sparse_step\":2", "decoder_sparse_step"},
        {"\"architectures\":[\"Qwen3MoeForCausalLM\"],\"shared_expert_intermediate_size\":64",
         "shared"},
        {"\"architectures\":[\"Qwen3MoeForCausalLM\"],\"use_sliding_window\":true", "use_sliding_window"},
        {"\"architectures\":[\"MistralForCausalLM\"],\"num_local_experts\":8", "num_local_experts"},
        {"\"architectures\":[\"Qwen2ForCausalLM\"],\"layer_types\":[\"sliding_attention\","
         "\"full_attention\"],\"use_sliding_window\":true", "layer_types"},
        {"\"architectures\":[\"Qwen2ForCausalLM\"],\"layer_types\":[\"chunked_attention\","
         "\"full_attention\"]", "layer_types"},
        {"\"architectures\":[\"MistralForCausalLM\"],\"sliding_window\":8,\"layer_types\":["
         "\"full_attention\",\"sliding_attention\"]", "layer_types"},
        {"\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":true", "attention_bias"},
        {"\"architectures\":[\"LlamaForCausalLM\"],\"mlp_bias\":true", "mlp_bias"},
        {"\"architectures\":[\"LlamaForCausalLM\"],\"sliding_window\":4096", "sliding_window"},
        {"\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":4}", "yarn"},
    };
    model_config c;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char cfg[1024];
        snprintf(cfg, sizeof cfg, "{%s,\"hidden_size\":64,\"intermediate_size\":128,"
                 "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300}",
                 cases[i].extra);
        put("config.json", cfg);
        g_err[0] = 0;
        assert_true(model_config_load(&c, g_dir, g_err, sizeof g_err) < 0);
        if (!strstr(g_err, cases[i].want))
            fail_msg("%s: error \"%s\" does not name %s", cases[i].extra, g_err, cases[i].want);
    }
    /* false or null is the same as absent */
    put("config.json", "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,"
                       "\"mlp_bias\":false,\"sliding_window\":null,\"hidden_size\":64,"
                       "\"intermediate_size\":128,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"vocab_size\":300}");
    assert_int_equal(model_config_load(&c, g_dir, g_err, sizeof g_err), 0);
}

static void load_family(model_config *c, const char *fields)
{
    char cfg[2048];
    put("generation_config.json", NULL);
    snprintf(cfg, sizeof cfg, "{%s,\"hidden_size\":1024,\"intermediate_size\":3072,"
             "\"num_hidden_layers\":4,\"num_attention_heads\":16,\"num_key_value_heads\":8,"
             "\"vocab_size\":1000,\"bos_token_id\":null,\"eos_token_id\":5}", fields);
    put("config.json", cfg);
    g_err[0] = 0;
    if (model_config_load(c, g_dir, g_err, sizeof g_err) < 0)
        fail_msg("%s: %s", fields, g_err);
}

/* The family fields with transformers' defaults and rules. */
static void test_families(void **state)
{
    model_config c;
    /* Qwen2.5 on the hub: a window given but use_sliding_window false: none; q/k/v bias */
    load_family(&c, "\"architectures\":[\"Qwen2ForCausalLM\"],\"sliding_window\":131072,"
                    "\"use_sliding_window\":false,\"max_window_layers\":28,"
                    "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\"");
    assert_int_equal(c.arch, MODEL_QWEN2);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.qk_norm, 0);
    assert_int_equal(c.sliding_window, 0);
    assert_int_equal(c.n_experts, 0);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.bos_id, -1);
    /* Qwen2 windowed from max_window_layers, or as transformers 5's layer_types say */
    load_family(&c, "\"architectures\":[\"Qwen2ForCausalLM\"],\"sliding_window\":64,"
                    "\"use_sliding_window\":true,\"max_window_layers\":3");
    assert_int_equal(c.sliding_window, 64);
    assert_int_equal(model_layer_window(&c, 2), 0);
    assert_int_equal(model_layer_window(&c, 3), 64);
    load_family(&c, "\"architectures\":[\"Qwen2ForCausalLM\"],\"sliding_window\":64,"
                    "\"use_sliding_window\":true,\"max_window_layers\":3,\"layer_types\":["
                    "\"full_attention\",\"sliding_attention\",\"sliding_attention\","
                    "\"sliding_attention\"]");
    assert_int_equal(model_layer_window(&c, 0), 0);
    assert_int_equal(model_layer_window(&c, 1), 64);
    /* Qwen3-0.6B: head_dim 128 != 1024 / 16; q/k norm */
    load_family(&c, "\"architectures\":[\"Qwen3ForCausalLM\"],\"head_dim\":128,"
                    "\"sliding_window\":null,\"use_sliding_window\":false,\"dtype\":\"bfloat16\"");
    assert_int_equal(c.arch, MODEL_QWEN3);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.qk_norm, 1);
    assert_int_equal(c.qkv_bias, 0);
    /* Mistral: every layer windowed; transformers' default window 4096 when absent */
    load_family(&c, "\"architectures\":[\"MistralForCausalLM\"],\"sliding_window\":8");
    assert_int_equal(c.arch, MODEL_MISTRAL);
    assert_int_equal(model_layer_window(&c, 0), 8);
    assert_int_equal(model_layer_window(&c, 3), 8);
    load_family(&c, "\"model_type\":\"mistral\"");
    assert_int_equal(c.sliding_window, 4096);
    load_family(&c, "\"architectures\":[\"MistralForCausalLM\"],\"sliding_window\":null");
    assert_int_equal(c.sliding_window, 0);
    /* Mixtral: experts of intermediate_size, always renormalised */
    load_family(&c, "\"architectures\":[\"MixtralForCausalLM\"],\"num_local_experts\":8,"
                    "\"num_experts_per_tok\":2,\"sliding_window\":null,\"router_jitter_noise\":0.0");
    assert_int_equal(c.arch, MODEL_MIXTRAL);
    assert_int_equal(c.n_experts, 8);
    assert_int_equal(c.n_experts_used, 2);
    assert_int_equal(c.hidden_dim, 3072);
    assert_int_equal(c.moe_renorm, 1);
    assert_int_equal(c.sliding_window, 0);
    /* Qwen3-MoE: moe_intermediate_size; renormalised iff norm_topk_prob (default false) */
    load_family(&c, "\"architectures\":[\"Qwen3MoeForCausalLM\"],\"num_experts\":128,"
                    "\"num_experts_per_tok\":8,\"moe_intermediate_size\":768,\"head_dim\":128,"
                    "\"decoder_sparse_step\":1,\"mlp_only_layers\":[],\"norm_topk_prob\":true");
    assert_int_equal(c.arch, MODEL_QWEN3_MOE);
    assert_int_equal(c.n_experts, 128);
    assert_int_equal(c.n_experts_used, 8);
    assert_int_equal(c.hidden_dim, 768);
    assert_int_equal(c.moe_renorm, 1);
    assert_int_equal(c.qk_norm, 1);
    load_family(&c, "\"architectures\":[\"Qwen3MoeForCausalLM\"],\"num_experts\":4,"
                    "\"num_experts_per_tok\":2,\"moe_intermediate_size\":32");
    assert_int_equal(c.moe_renorm, 0);
    assert_string_equal(model_arch_name(c.arch), "Qwen3MoeForCausalLM");
}

static void test_invalid(void **state)
{
    const char *bad[] = {
        "{\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":3,\"vocab_size\":300}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300,\"eos_token_id\":[2,\"x\"]}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300,\"eos_token_id\":300}",
        "{\"hidden_size\":\"64\",\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300,\"hidden_act\":\"gelu\"}",
        "{\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":300,\"torch_dtype\":\"int8\"}",
        "{\"hidden_size\":64,",
    };
    model_config c;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put("config.json", bad[i]);
        g_err[0] = 0;
        assert_true(model_config_load(&c, g_dir, g_err, sizeof g_err) < 0);
        assert_true(strlen(g_err) > 0);
    }
    put("config.json", NULL);
    assert_true(model_config_load(&c, g_dir, g_err, sizeof g_err) < 0);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/cinder_cfg_XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_defaults),
        cmocka_unit_test(test_llama31),
        cmocka_unit_test(test_transformers5),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_invalid),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    put("config.json", NULL);
    put("generation_config.json", NULL);
    rmdir(g_dir);
    return rc;
}
