/* model_family.h - the per-family part of config.json parsing (model_family.c), used by
 * model_config.c only. */
#ifndef CINDER_MODEL_FAMILY_H
#define CINDER_MODEL_FAMILY_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "model_config.h"

/* The architecture is supported and no field asks for math cinder does not compute: 0, or
 * -1 with the message in ERR. Called first, before any other field is read. */
int model_family_check(const cJSON *j, char *err, size_t n_err);
/* Fills C's family fields (arch, qkv_bias, qk_norm, window, MoE); C's shared fields (n_layers,
 * hidden_dim) must be set. 0 or -1 with ERR. */
int model_family_parse(model_config *c, const cJSON *j, char *err, size_t n_err);

#endif
