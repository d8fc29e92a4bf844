/* test_llama3_vocab.c - serving a model directory with the real Llama-3 tokenizer
 * (byte-level BPE, 128256 tokens, build/assets/llama3 from scripts/fetch_assets.sh) end to
 * end: a tiny random-weight Llama-3-shaped model (make-model), the four real processes,
 * /generate, /generate_stream and the chat API through the Llama-3 chat template. Random
 * weights give random text: the checks are on counts, shapes and stops, not on words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "http_client.h"

static cluster C;
static char model_dir[64];

static int setup(void **state)
{
    snprintf(model_dir, sizeof model_dir, "/tmp/cinder-llama3-tiny.%d", (int)getpid());
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; rm -rf %s; mkdir -p %s; cat > %s.json <<'J'\n"
             "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
             " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
             " \"vocab_size\": 128256, \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5,"
             " \"rope_theta\": 500000.0, \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128009],"
             " \"tie_word_embeddings\": true, \"torch_dtype\": \"float32\"}\nJ\n"
             "${CINDER_BIN:-build/bin}/make-model --out %s --config %s.json >/dev/null;"
             "cp build/assets/llama3/tokenizer.json build/assets/llama3/tokenizer_config.json %s/",
             model_dir, model_dir, model_dir, model_dir, model_dir, model_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot build the tiny Llama-3 model (did setup fetch build/assets/llama3?)\n");
        return -1;
    }
    snprintf(cmd, sizeof cmd, "--model-dir %s", model_dir);
    return cluster_start(&C, cmd);
}

static int teardown(void **state)
{
    cluster_stop(&C);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s.json", model_dir, model_dir);
    return system(cmd);
}

static cJSON *post(const char *path, const char *body, int want)
{
    http_resp r;
    http_request(C.port, "POST", path, body, &r);
    assert_int_equal(r.status, want);
    cJSON *j = cJSON_Parse(r.body);
    http_resp_free(&r);
    assert_non_null(j);
    return j;
}

static void test_generate(void **state)
{
    /* "Hello, world" is 3 tokens in Llama-3's vocabulary; the post-processor adds no BOS */
    cJSON *j = post("/generate", "{\"inputs\":\"Hello, world\",\"parameters\":{\"max_new_tokens\":12,"
                                 "\"ignore_eos\":true}}", 200);
    assert_int_equal(cJSON_GetObjectItem(j, "prompt_tokens")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(j, "count_output_tokens")->valueint, 12);
    assert_string_equal(cJSON_GetObjectItem(j, "finish_reason")->valuestring, "length");
    cJSON_Delete(j);
}

static void test_stream_and_chat(void **state)
{
    http_resp r;
    http_request(C.port, "POST", "/generate_stream",
                 "{\"inputs\":\"<|begin_of_text|>Cinder serves\",\"parameters\":{\"max_new_tokens\":9,"
                 "\"ignore_eos\":true}}", &r);
    assert_int_equal(r.status, 200);
    int events = 0;
    for (char *p = r.body; (p = strstr(p, "data:")); p += 5)
        events++;
    assert_int_equal(events, 9);
    http_resp_free(&r);
    /* the Llama-3 template: <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n
     * Hi <|eot_id|> <|start_header_id|> assistant <|end_header_id|> \n\n = 11 tokens, with no
     * second BOS */
    cJSON *j = post("/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                                            "\"max_tokens\":5,\"ignore_eos\":true}", 200);
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    assert_int_equal(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 11);
    assert_int_equal(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 5);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_stream_and_chat),
    };
    return cmocka_run_group_tests_name("e2e_llama3_vocab", tests, setup, teardown);
}
