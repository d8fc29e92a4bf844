/* fp8_config.h - which FP8 a worker runs: its flags (--quantization fp8, --kv-cache-dtype fp8)
 * and what config.json's quantization_config says the checkpoint holds, decided once at start,
 * before a weight is read; formats cinder does not compute right are refused by name.
 *
 * Supported checkpoints (FP8 E4M3 weights, dynamic per-token FP8 activations):
 *   quant_method "fp8" (AutoFP8 / vLLM / transformers' FP8): activation_scheme "dynamic",
 *     no weight_block_size, weight_scale per tensor ([] or [1]) or per output channel;
 *   quant_method "compressed-tensors", format "float-quantized" (llm-compressor FP8_DYNAMIC):
 *     one config group targeting Linear, weights float 8-bit symmetric static with strategy
 *     "channel" ([out, 1] scales) or "tensor", input_activations float 8-bit dynamic "token",
 *     nothing ignored but lm_head, no kv_cache_scheme.
 * Refused: block-wise scales (weight_block_size, strategy block/group), static activation
 * scales, weight-only FP8, E5M2, any other quant_method (gptq, awq, bitsandbytes, ...).
 * FP8 covers the attention and MLP projections; embeddings, norms and the LM head stay 16-bit
 * (the LM head is 2-4% of a decode step's bytes and decides every sampled token).
 */
#ifndef CINDER_FP8_CONFIG_H
#define CINDER_FP8_CONFIG_H

#include <stddef.h>
#include "../common/model_config.h"
#include "../common/weights_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fp8_weights {
    FP8_W_NONE = 0,     /* 16-bit (or fp32) weights as the checkpoint has them */
    FP8_W_QUANTIZE,     /* --quantization fp8 on a 16/32-bit checkpoint: per-channel at load */
    FP8_W_CHECKPOINT,   /* an FP8 checkpoint: E4M3 codes and their weight_scale tensors */
};

typedef struct fp8_config {
    int weights;            /* fp8_weights */
    char method[32];        /* the checkpoint's quant_method, for logs ("" if none) */
    int kv_fp8;             /* --kv-cache-dtype fp8: E4M3 K and V */
    float k_scale, v_scale; /* per-tensor KV scales: 1 (vLLM's default without calibrated
                               scales; K after RoPE and V stay far below 448) */
} fp8_config;

/* Decides C's FP8 for model directory DIR (its config.json) and the flags: QUANT_FP8 (the
 * worker's --quantization fp8), KV_FP8 (--kv-cache-dtype fp8). 0, or -1 with a message in
 * ERR naming what is not supported. */
int fp8_config_load(fp8_config *q, const char *dir, const model_config *c, int quant_fp8,
                    int kv_fp8, char *err, size_t n_err);

/* Whether tensor T (layer LAYER >= 0) of the weights table is one the FP8 path quantizes:
 * the q/k/v/o and gate/up/down projections. */
int fp8_is_linear(const wl_tensor *t, int layer);

/* "fp8 weights (per-channel, quantized at load)" and the like, for logs. */
const char *fp8_describe(const fp8_config *q);

#ifdef __cplusplus
}
#endif

#endif
