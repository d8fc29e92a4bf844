/* test_model_config.c - config.json parsing: Llama-2 style defaults, Llama-3.1 rope scaling
 * and EOS lists, generation_config.json EOS merge, transformers 5.x's rope_parameters, other
 * architectures and math-changing fields refused by name, and invalid configs rejected.
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
        {"\"architectures\":[\"Qwen2ForCausalLM\"]", "Qwen2ForCausalLM"},
        {"\"architectures\":[\"MixtralForCausalLM\"]", "supported: LlamaForCausalLM"},
        {"\"model_type\":\"qwen3\"", "qwen3"},
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
        cmocka_unit_test(test_invalid),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    put("config.json", NULL);
    put("generation_config.json", NULL);
    rmdir(g_dir);
    return rc;
}
