/* st-convert - rewrites the safetensors of a model directory with every float tensor in
 * another dtype (f32, f16, bf16), for a smaller copy of a model: the GPU tests carry
 * stories15M in bf16 (30 MB instead of 61). Other files (config, tokenizer) are the caller's
 * to copy.
 *
 * usage: st-convert --in DIR --out FILE.safetensors --dtype bf16
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/safetensors.h"

static int usage(void)
{
    fprintf(stderr, "usage: st-convert --in DIR --out FILE.safetensors --dtype f32|f16|bf16\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *dt = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--in")) in = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype")) dt = argv[i + 1];
        else return usage();
    }
    st_dtype to = !dt ? ST_N_DTYPES : !strcmp(dt, "f32") ? ST_F32 : !strcmp(dt, "f16") ? ST_F16
                : !strcmp(dt, "bf16") ? ST_BF16 : ST_N_DTYPES;
    if (!in || !out || to == ST_N_DTYPES)
        return usage();
    char err[512];
    safetensors st;
    if (st_open_dir(&st, in, err, sizeof err) < 0) {
        fprintf(stderr, "st-convert: %s\n", err);
        return 1;
    }
    st_write_tensor *w = calloc((size_t)st.n_tensors, sizeof *w);
    void **bufs = calloc((size_t)st.n_tensors, sizeof *bufs);
    int rc = 1;
    if (!w || !bufs)
        goto done;
    for (int i = 0; i < st.n_tensors; i++) {
        const st_tensor *t = &st.tensors[i];
        w[i] = (st_write_tensor){t->name, t->dtype, t->n_dims, {0}, t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
            continue;                                   /* kept as is */
        float *f = malloc((size_t)t->n_elems * sizeof *f);
        bufs[i] = f;
        if (!f || st_to_f32(t, f) < 0)
            goto done;
        if (to != ST_F32) {
            uint16_t *h = (uint16_t *)f;                /* in place: 2 bytes behind 4 */
            for (int64_t k = 0; k < t->n_elems; k++)
                h[k] = to == ST_F16 ? st_f32_to_f16(f[k]) : st_f32_to_bf16(f[k]);
        }
        w[i].dtype = to;
        w[i].data = f;
    }
    if (st_write(out, w, st.n_tensors, err, sizeof err) < 0) {
        fprintf(stderr, "st-convert: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; bufs && i < st.n_tensors; i++)
        free(bufs[i]);
    free(bufs);
    free(w);
    st_free(&st);
    return rc;
}
