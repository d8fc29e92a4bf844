/* fp8_weights.c - FP8 projections from checkpoints and per-row quantization (see
 * fp8_weights.h). */
#include "fp8_weights.h"
#include "../kernels/fp8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NAME with its last "weight" replaced by SUFFIX ("weight_scale"). */
static void sibling(char *out, size_t n, const char *name, const char *suffix)
{
    size_t k = strlen(name) - strlen("weight");
    snprintf(out, n, "%.*s%s", (int)k, name, suffix);
}

int fp8_read_linear(safetensors *st, const wl_tensor *t, uint8_t *codes, float *scales,
                    char *err, size_t n_err)
{
    long rows = (long)t->shape[0], cols = (long)t->shape[1];
    const st_tensor *w = st_take(st, t->name, 2, t->shape, err, n_err);
    if (!w)
        return -1;
    if (w->dtype != ST_F8_E4M3) {
        snprintf(err, n_err, "tensor %s: dtype %s, but quantization_config says FP8 (F8_E4M3)",
                 t->name, st_dtype_name(w->dtype));
        return -1;
    }
    char sname[160];
    sibling(sname, sizeof sname, t->name, "weight_scale_inv");
    if (st_find(st, sname)) {
        snprintf(err, n_err, "tensor %s: block-wise FP8 scales are not supported", sname);
        return -1;
    }
    sibling(sname, sizeof sname, t->name, "weight_scale");
    const st_tensor *s = st_find(st, sname);
    if (!s) {
        snprintf(err, n_err, "tensor %s not found (the scale of an FP8 weight)", sname);
        return -1;
    }
    int per_tensor = s->n_elems == 1;
    int per_row = s->n_elems == rows && (s->n_dims == 1 || (s->n_dims == 2 && s->shape[1] == 1));
    if (!per_tensor && !per_row) {
        snprintf(err, n_err, "tensor %s: %lld elements, expected 1 (per tensor) or %ld (per "
                 "output channel)", sname, (long long)s->n_elems, rows);
        return -1;
    }
    if (!(s = st_take(st, sname, s->n_dims, s->shape, err, n_err)))
        return -1;
    float *tmp = malloc((size_t)s->n_elems * sizeof *tmp);
    if (!tmp || st_to_f32(s, tmp) < 0) {
        snprintf(err, n_err, "tensor %s: %s", sname, tmp ? "not F32/F16/BF16" : "out of memory");
        free(tmp);
        return -1;
    }
    for (long r = 0; r < rows; r++)
        scales[r] = tmp[per_tensor ? 0 : r];
    free(tmp);
    for (long r = 0; r < rows; r++)
        if (!(scales[r] > 0) || !isfinite(scales[r])) {
            snprintf(err, n_err, "tensor %s: scale %g is not positive and finite", sname,
                     (double)scales[r]);
            return -1;
        }
    memcpy(codes, w->data, (size_t)rows * cols);
    return 0;
}

void fp8_quantize_rows(uint8_t *codes, float *scales, const float *w, long rows, long cols)
{
    for (long r = 0; r < rows; r++) {
        scales[r] = fp8_scale_of(fp8_amax(w + r * cols, cols));
        fp8_quantize(codes + r * cols, w + r * cols, cols, scales[r]);
    }
}
