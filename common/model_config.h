/* model_config.h - the hyperparameters of a supported model family (LLaMA, Mistral, Qwen2,
 * Qwen3, Mixtral, Qwen3-MoE) read from an HF config.json as transformers 4.x and 5.x write it
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
#define MODEL_MAX_EXPERTS 512
#define MODEL_MAX_EXPERTS_USED 16

/* The architectures cinder computes, in the order of model_family.c's table. */
enum model_arch { MODEL_LLAMA, MODEL_MISTRAL, MODEL_QWEN2, MODEL_QWEN3, MODEL_MIXTRAL,
                  MODEL_QWEN3_MOE };

typedef struct {
    int dim;            /* hidden_size */
    int hidden_dim;     /* intermediate_size; MoE: each expert's (moe_intermediate_size for
                           Qwen3-MoE, intermediate_size for Mixtral) */
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
    int arch;           /* model_arch */
    int qkv_bias;       /* q_proj, k_proj, v_proj have biases (Qwen2) */
    int qk_norm;        /* RMSNorm over each q and k head before RoPE (Qwen3, Qwen3-MoE) */
    /* sliding-window attention: a token of a windowed layer attends to the last
       sliding_window positions, itself included (transformers: kv > q - window); layers
       l >= window_from_layer are windowed; sliding_window 0: none */
    int sliding_window, window_from_layer;
    /* MoE (n_experts > 0): every layer's MLP is n_experts experts of hidden_dim; a softmax
       router picks n_experts_used per token, their weights renormalised to sum 1 iff
       moe_renorm (Mixtral always, Qwen3-MoE with norm_topk_prob) */
    int n_experts, n_experts_used, moe_renorm;
} model_config;

/* The window of layer LAYER in tokens, 0 for full attention. */
static inline int model_layer_window(const model_config *c, int layer)
{
    return c->sliding_window > 0 && layer >= c->window_from_layer ? c->sliding_window : 0;
}

/* "LlamaForCausalLM", ... for a model_arch. */
const char *model_arch_name(int arch);

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
