/* safetensors.h - reader (mmap) and writer of HF .safetensors files.
 *
 * File format: u64 little-endian header length N, then N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data region; offsets are relative to the start of the data region.
 * The reader validates every offset and size against the file and never trusts the header:
 * a malformed file gives a negative return and a message, never a crash.
 * A model directory holds model.safetensors, or shards model-0000x-of-0000y.safetensors
 * (listed by model.safetensors.index.json when present).
 */
#ifndef CINDER_SAFETENSORS_H
#define CINDER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_FILES 256

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_F8_E4M3, /* FP8 checkpoints: decoded by kernels/fp8.h with their scales, never by st_to_f32 */
    ST_N_DTYPES
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    int64_t n_elems;
    const void *data;     /* [n_bytes] inside the mapping; not necessarily aligned */
    size_t n_bytes;
    int file;             /* index of the shard holding it */
    int used;             /* set by st_load_f32: st_check_used finds the ones never loaded */
} st_tensor;

typedef struct {
    int n_files;
    void *maps[ST_MAX_FILES];      /* [n_files] mmap'd files */
    size_t map_bytes[ST_MAX_FILES];
    int n_tensors;
    st_tensor *tensors;            /* [n_tensors] */
} safetensors;

const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);
/* "F32" -> ST_F32; -1 if unknown */
int st_dtype_parse(const char *s);

/* Zeroes ST; then st_add_file / st_open_dir add tensors to it. */
void st_init(safetensors *st);
/* Maps one .safetensors file and adds its tensors; 0 or negative with a message in ERR
 * (malformed file, duplicate tensor name). */
int st_add_file(safetensors *st, const char *path, char *err, size_t n_err);
/* st_init + every shard of the model directory DIR. */
int st_open_dir(safetensors *st, const char *dir, char *err, size_t n_err);
void st_free(safetensors *st);

/* NULL if absent. */
const st_tensor *st_find(const safetensors *st, const char *name);
/* Converts T (F32, F16 or BF16) to fp32 into OUT [t->n_elems]; negative for other dtypes. */
int st_to_f32(const st_tensor *t, float *out);
/* Finds NAME and checks its shape against SHAPE [n_dims]; marks it used (st_check_used) and
 * returns it, or NULL with a message in ERR when absent or wrongly shaped. */
const st_tensor *st_take(safetensors *st, const char *name, int n_dims, const int64_t *shape,
                         char *err, size_t n_err);
/* st_take, then converts NAME into OUT. Negative with a
 * message in ERR when absent, wrongly shaped or of a dtype that is not a float. */
int st_load_f32(safetensors *st, const char *name, int n_dims, const int64_t *shape,
                float *out, char *err, size_t n_err);
/* After loading: 0 when every tensor was loaded, or its name ends with one of IGNORE
 * (NULL-terminated; tensors a checkpoint may carry that change nothing, such as
 * "rotary_emb.inv_freq"); else negative, naming the first unexplained tensor and their
 * count in ERR (a config.json that says 5 layers for a file of 6 must not load). */
int st_check_used(const safetensors *st, const char *const *ignore, char *err, size_t n_err);

/* Element conversions (round to nearest even for the narrowing ones). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);

/* One tensor to write: DATA holds n_elems(shape) elements of DTYPE, little-endian. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_write_tensor;

/* Writes a .safetensors file at PATH with tensors in the given order; 0 or negative with a
 * message in ERR. */
int st_write(const char *path, const st_write_tensor *t, int n, char *err, size_t n_err);

#endif
