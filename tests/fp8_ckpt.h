/* fp8_ckpt.h - writes FP8 checkpoints for the tests (tests/unit/test_fp8.c on the CPU,
 * tests/gpu/test_backend_diff.c against the CUDA reader): a model directory's tensors with
 * every projection as E4M3 codes and a weight_scale, and its config.json with a
 * quantization_config, the way llm-compressor / AutoFP8 save them. Header-only, plain C.
 */
#ifndef CINDER_TEST_FP8_CKPT_H
#define CINDER_TEST_FP8_CKPT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_util.h"
#include "../common/safetensors.h"
#include "../kernels/fp8.h"
#include "../worker/fp8_weights.h"

/* compressed-tensors FP8_DYNAMIC with weight strategy %s and input_activations %s */
static const char FP8CK_CT[] =
    "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
    "\"quantization_status\": \"compressed\", \"ignore\": [\"lm_head\"], \"kv_cache_scheme\": null, "
    "\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], \"output_activations\": null, "
    "\"weights\": {\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, \"dynamic\": false, "
    "\"strategy\": \"%s\"}, \"input_activations\": %s}}}";
static const char FP8CK_TOKEN[] = "{\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, "
                                  "\"dynamic\": true, \"strategy\": \"token\"}";
/* quant_method fp8, per-tensor scales (AutoFP8's dynamic form) */
static const char FP8CK_TENSOR[] = "{\"quant_method\": \"fp8\", \"activation_scheme\": \"dynamic\", "
                                   "\"ignored_layers\": [\"lm_head\"]}";

/* DST/config.json: SRC's with "quantization_config": QC (NULL: none) as its first member. */
static int fp8ck_write_config(const char *src, const char *dst, const char *qc)
{
    char p[512], err[256];
    size_t len;
    snprintf(p, sizeof p, "%s/config.json", src);
    char *s = file_read_all(p, &len, err, sizeof err), *brace = s ? strchr(s, '{') : NULL;
    snprintf(p, sizeof p, "%s/config.json", dst);
    FILE *f = brace ? fopen(p, "wb") : NULL;
    int rc = f && fprintf(f, "{%s%s%s%s", qc ? "\"quantization_config\": " : "", qc ? qc : "",
                          qc ? ",\n" : "", brace + 1) > 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(s);
    return rc;
}

static int fp8ck_is_proj(const char *name)
{
    size_t n = strlen(name), k = strlen("_proj.weight");
    return strstr(name, "layers.") && n > k && !strcmp(name + n - k, "_proj.weight");
}

/* DST/model.safetensors: SRC's tensors with every projection as E4M3 codes and a
 * weight_scale: per row [rows, 1] F32 (fp8_quantize_rows: the codes --quantization fp8 makes),
 * or PER_TENSOR [1] BF16 (codes made with the rounded scale); DROP: the first projection's
 * scale left out. 0 or -1. */
static int fp8ck_write(const char *src, const char *dst, int per_tensor, int drop)
{
    char err[512], p[512];
    safetensors st;
    if (st_open_dir(&st, src, err, sizeof err) < 0)
        return -1;
    int n = 0, rc = -1;
    st_write_tensor *out = (st_write_tensor *)calloc((size_t)st.n_tensors * 2, sizeof *out);
    void **bufs = (void **)calloc((size_t)st.n_tensors * 2, sizeof *bufs);
    char (*names)[160] = (char (*)[160])calloc((size_t)st.n_tensors, sizeof *names);
    for (int i = 0; out && bufs && names && i < st.n_tensors; i++) {
        const st_tensor *t = &st.tensors[i];
        out[n] = (st_write_tensor){t->name, t->dtype, t->n_dims, {t->shape[0], t->shape[1]}, t->data};
        if (!fp8ck_is_proj(t->name)) {
            n++;
            continue;
        }
        long rows = (long)t->shape[0], cols = (long)t->shape[1];
        float *w = (float *)malloc((size_t)rows * cols * sizeof *w);
        float *sc = (float *)malloc((size_t)rows * sizeof *sc);
        uint8_t *codes = (uint8_t *)malloc((size_t)rows * cols);
        if (!w || !sc || !codes || st_to_f32(t, w) < 0) {
            free(w), free(sc), free(codes);
            goto done;
        }
        if (per_tensor) {
            uint16_t s16 = st_f32_to_bf16(fp8_scale_of(fp8_amax(w, rows * cols)));
            fp8_quantize(codes, w, rows * cols, st_bf16_to_f32(s16));
            memcpy(sc, &s16, 2);
        } else {
            fp8_quantize_rows(codes, sc, w, rows, cols);
        }
        free(w);
        out[n].dtype = ST_F8_E4M3;
        out[n].data = bufs[n] = codes;
        n++;
        if (drop-- == 1) {
            free(sc);
            continue;
        }
        snprintf(names[i], sizeof names[i], "%.*sweight_scale", (int)(strlen(t->name) - 6), t->name);
        out[n] = per_tensor ? (st_write_tensor){names[i], ST_BF16, 1, {1}, sc}
                            : (st_write_tensor){names[i], ST_F32, 2, {rows, 1}, sc};
        bufs[n++] = sc;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    rc = out && bufs && names ? st_write(p, out, n, err, sizeof err) : -1;
done:
    for (int i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(out);
    free(names);
    st_free(&st);
    return rc;
}

#endif
