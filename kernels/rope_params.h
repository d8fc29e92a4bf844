/* rope_params.h - rotary embedding parameters shared by the RoPE kernel and its CPU reference
 * (plain C). Llama-3.1 "llama3" rope scaling when factor > 0; factor 0 means plain RoPE. */
#ifndef CINDER_ROPE_PARAMS_H
#define CINDER_ROPE_PARAMS_H

typedef struct {
    float theta;             /* rope_theta */
    float factor;            /* rope_scaling.factor; 0 = no scaling */
    float low_freq_factor;   /* rope_scaling.low_freq_factor */
    float high_freq_factor;  /* rope_scaling.high_freq_factor */
    int orig_max_pos;        /* rope_scaling.original_max_position_embeddings */
} rope_params;

#endif
