/* model_config.h - the LLaMA-family hyperparameters read from an HF config.json
 * (plus generation_config.json for extra EOS ids). Used by the worker (shapes), the router
 * (EOS ids, context length) and shm-tool (vocab size, context length).
 */
#ifndef CINDER_MODEL_CONFIG_H
#define CINDER_MODEL_CONFIG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODEL_MAX_EOS 8

typedef struct {
    int dim;            /* hidden_size */
    int hidden_dim;     /* intermediate_size */
    int n_layers;       /* num_hidden_layers */
    int n_heads;        /* num_attention_heads */
    int n_kv_heads;     /* num_key_value_heads (defaults to n_heads) */
    int head_dim;       /* head_dim (defaults to dim / n_heads) */
    int vocab_size;
    int max_seq_len;    /* max_position_embeddings */
    float norm_eps;     /* rms_norm_eps */
    float rope_theta;
    /* rope_scaling of type "llama3" (Llama-3.1); factor 0 = none */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_max_pos;
    int tie_embeddings; /* tie_word_embeddings: lm_head shares embed_tokens */
    int bos_id;         /* -1 if none */
    int n_eos;
    int eos_ids[MODEL_MAX_EOS];
    char dtype[16];     /* torch_dtype: "float32", "float16", "bfloat16" */
} model_config;

/* Reads DIR/config.json (and DIR/generation_config.json if present). 0, or negative with a
 * message in ERR. */
int model_config_load(model_config *c, const char *dir, char *err, size_t n_err);

/* Tensor-name suffixes a checkpoint of C may hold that the model does not use (NULL-
 * terminated, for st_check_used): old LLaMA checkpoints' rotary inv_freq buffers, and an
 * lm_head.weight beside tied embeddings (transformers ties it to the embedding too). */
const char *const *model_config_unused_tensors(const model_config *c);

#ifdef __cplusplus
}
#endif

#endif
