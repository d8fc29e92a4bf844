/* fuzz_safetensors.c - libFuzzer target: arbitrary files through st_add_file.
 *
 * Any bytes must load or fail with a message, never crash or leak. A loaded file must
 * describe only data inside itself: each tensor lies in the data region, its byte count is
 * elements x dtype size, its shape multiplies to its element count, names are unique and
 * found by st_find, and float tensors convert (reading every byte). Adding the same file
 * again must fail on the duplicate names and leave the tensors loaded so far untouched.
 */
#include <string.h>

#include "../../common/safetensors.h"
#include "fuzz_util.h"

#define MAX_CONVERT (1 << 16) /* elements converted per tensor */

static void check_loaded(const safetensors *st, size_t size)
{
    const char *map = st->maps[0];
    uint64_t n_hdr;
    memcpy(&n_hdr, map, 8);
    const char *data = map + 8 + n_hdr;
    FUZZ_CHECK(st->n_files == 1 && st->map_bytes[0] == size && 8 + n_hdr <= size);
    for (int i = 0; i < st->n_tensors; i++) {
        const st_tensor *t = &st->tensors[i];
        FUZZ_CHECK(t->name && st_find(st, t->name) == t && t->file == 0);
        FUZZ_CHECK((unsigned)t->dtype < ST_N_DTYPES && t->n_dims >= 0 && t->n_dims <= ST_MAX_DIMS);
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            n *= t->shape[d];
        }
        FUZZ_CHECK(n == t->n_elems && t->n_bytes == (size_t)n * st_dtype_size(t->dtype));
        const char *p = t->data;
        FUZZ_CHECK(p >= data && p + t->n_bytes <= map + size);
        if ((t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) && n <= MAX_CONVERT) {
            float *out = malloc((size_t)n * sizeof *out + 1);
            FUZZ_CHECK(out && st_to_f32(t, out) == 0);
            free(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    int fd = fuzz_file_path(data, size, path, sizeof path);
    FUZZ_CHECK(fd >= 0);
    safetensors st;
    st_init(&st);
    err[0] = 0;
    if (st_add_file(&st, path, err, sizeof err) == 0) {
        check_loaded(&st, size);
        int n = st.n_tensors;
        if (n > 0) {
            FUZZ_CHECK(st_add_file(&st, path, err, sizeof err) < 0 && strstr(err, "duplicate"));
            FUZZ_CHECK(st.n_tensors == n && st.n_files == 1);
            check_loaded(&st, size);
        }
    } else {
        FUZZ_CHECK(err[0] && st.n_tensors == 0 && st.n_files == 0);
    }
    st_free(&st);
    close(fd);
    return 0;
}
