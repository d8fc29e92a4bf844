/* cuda_weights.h - model weights on the GPU in bf16 (or fp16), with q/k/v and gate/up fused
 * so that one GEMM computes each group (the CPU backend's layout, cpu_weights.h). Loaded from
 * safetensors (F32/F16/BF16 converted on the host), or random on the GPU with the CPU
 * backend's generator (cpu_weights_random): the same values, rounded to the 16-bit type.
 * Plain C interface; device pointers are untyped.
 */
#ifndef CINDER_CUDA_WEIGHTS_H
#define CINDER_CUDA_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>
#include "../kernels/kdtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "../common/model_config.h"
#include "../common/weights_layout.h"

typedef struct {
    void *attn_norm;    /* [dim] */
    void *wqkv;         /* [q_dim + 2 * kv_dim, dim] rows of q_proj, k_proj, v_proj */
    void *bqkv;         /* [q_dim + 2 * kv_dim] their biases; NULL without qkv_bias */
    void *q_norm;       /* [head_dim]; NULL without qk_norm */
    void *k_norm;       /* [head_dim]; NULL without qk_norm */
    void *wo;           /* [dim, q_dim] */
    void *ffn_norm;     /* [dim] */
    void *w_router;     /* [n_experts, dim]; NULL for a dense MLP */
    void *w_gate_up;    /* [2 * hidden_dim, dim] rows of gate_proj, then up_proj (MoE: expert
                           e's at + e * layout.expert_gate_up_stride elements) */
    void *w_down;       /* [dim, hidden_dim] (MoE: + e * layout.expert_down_stride) */
} cuda_layer;

typedef struct {
    void *embed;        /* [vocab, dim] */
    void *lm_head;      /* [vocab, dim], == embed when tied */
    void *norm;         /* [dim] */
    cuda_layer *layers; /* [n_layers] (host array of device pointers) */
    void *mem;          /* one device allocation holding all of the above */
    int borrowed;       /* 1: mem is not ours to free (the holder's, opened through IPC) */
    size_t n_elems;     /* elements in mem */
    kdtype dt;
    weights_layout layout;  /* where each HF tensor lives in mem (align 8) */
    int skip_fp8_linear;    /* an FP8 checkpoint: cuda_weights_read leaves the projections and
                               their scales to cuda_fp8.cu (their 16-bit places stay unset) */
} cuda_weights;

/* Lays the weights of model C out over MEM (device, layout.n_elems 16-bit elements; NULL:
 * allocates it), values left as they are. 0, or negative with a message in ERR. */
int cuda_weights_init(cuda_weights *w, const model_config *c, kdtype dt, void *mem, char *err,
                      size_t n_err);
/* Reads the safetensors of DIR into initialized weights (progress on the log); 0 or negative. */
int cuda_weights_read(cuda_weights *w, const model_config *c, const char *dir, char *err,
                      size_t n_err);
/* Fills initialized weights with the random model of SEED: 0, or -1 out of host memory
 * (said in ERR). */
int cuda_weights_fill_random(cuda_weights *w, const model_config *c, uint64_t seed, char *err,
                             size_t n_err);
/* Init (allocating), then read or fill: 0, or negative with a message in ERR. */
int cuda_weights_load(cuda_weights *w, const model_config *c, const char *dir, kdtype dt,
                      char *err, size_t n_err);
int cuda_weights_random(cuda_weights *w, const model_config *c, uint64_t seed, kdtype dt,
                        char *err, size_t n_err);
void cuda_weights_free(cuda_weights *w);

/* Fills N 16-bit elements at P (device) with uniform values in [-scale, scale) keyed by KEY:
 * for data the kernels read before anything writes it (benchmark KV caches). */
int cuda_fill_random(void *p, size_t n, uint64_t key, float scale, kdtype dt);

#ifdef __cplusplus
}
#endif

#endif
